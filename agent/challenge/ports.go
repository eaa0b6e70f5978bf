package challenge

import (
	"context"
	"errors"
	"io"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// Runtime runs challenge instances: containers on one Docker Engine today,
// services on a Swarm next to it. Every verb speaks in instances; a runtime
// maps them to whatever its backend calls them. Errors wrap ErrNotFound,
// ErrConflict, ErrRefused or ErrUnavailable where those apply.
type Runtime interface {
	// Prepare readies the backend once before anything runs (networks).
	Prepare(ctx context.Context) error
	Ping(ctx context.Context) error
	// Tags lists the registry tags of image, for version constraints.
	Tags(ctx context.Context, image string) ([]string, error)
	// LocalImage returns the repository digest of ref when it is present
	// without a pull; ErrNotFound when it is not.
	LocalImage(ctx context.Context, ref string) (string, error)
	// Pull fetches ref and returns its repository digest.
	Pull(ctx context.Context, ref string, progress func(PullProgress)) (string, error)
	// RemoveImage removes the local image ref unless an instance, of any
	// state, still uses it: then ErrConflict.
	RemoveImage(ctx context.Context, ref string) error
	// Create makes a stopped instance of spec and returns its id and name.
	Create(ctx context.Context, spec InstanceSpec) (Instance, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (Instance, error)
	// InSlot is this agent's instance of challenge in slot, found by its
	// deterministic name; ErrNotFound when there is none.
	InSlot(ctx context.Context, challenge, slot string) (Instance, error)
	// List is every instance of this agent, in any state.
	List(ctx context.Context) ([]Instance, error)
	// Events streams changes of this agent's instances until ctx ends or
	// the stream breaks (then the error channel says why).
	Events(ctx context.Context) (<-chan InstanceEvent, <-chan error)
	Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
}

// Errors a Runtime's answers wrap.
var (
	ErrNotFound    = errors.New("no such instance or image")
	ErrConflict    = errors.New("name already in use")
	ErrRefused     = errors.New("refused by policy")
	ErrUnavailable = errors.New("runtime unavailable")
	// ErrSnapshotCorrupt: a stored snapshot no longer matches its checksum.
	ErrSnapshotCorrupt = errors.New("snapshot does not match its checksum")
)

// Instance is one running or stopped instance of a challenge.
type Instance struct {
	ID        string
	Name      string
	Challenge string
	Slot      string
	Version   string // the tag it runs
	SpecHash  string // of the spec it was created from
	Image     string
	// Address is the base URL berth dials it at (http://host:port), empty
	// while it has none.
	Address   string
	Running   bool
	ExitCode  int
	OOMKilled bool
	StartedAt time.Time
	// ForeignVolume names a volume it mounts outside its challenge's
	// namespace (made by an older berth); such an instance is replaced.
	ForeignVolume string
}

// InstanceSpec is everything the lifecycle decides about a new instance;
// the runtime adds names, labels, hardening and networking.
type InstanceSpec struct {
	Challenge configs.Challenge
	SpecHash  string
	Ref       string // image reference to run (repo:tag)
	Version   string // the tag
	Slot      string
	Env       []string // with secrets read; never logged
}

// InstanceEvent is a change the runtime noticed. Events are hints: the
// owner confirms with Inspect before acting on anything but an exit code.
type InstanceEvent struct {
	ID        string
	Challenge string
	Kind      InstanceEventKind
	ExitCode  *int // with InstanceExited, when the runtime knows it
}

// InstanceEventKind says what happened to an instance.
type InstanceEventKind int

const (
	// InstanceExited: its process ended.
	InstanceExited InstanceEventKind = iota + 1
	// InstanceChanged: stopped, killed, OOM-killed or removed; inspect it.
	InstanceChanged
)

// PullProgress is one progress report of a pull.
type PullProgress struct {
	Status         string
	Current, Total int64
}

// LogOptions select instance output.
type LogOptions struct {
	Follow bool
	// Tail is how many lines from the end; 0 none, TailAll everything.
	Tail int
}

// TailAll asks Logs for the whole output.
const TailAll = -1

// Store is the durable state an owner reads and writes.
type Store interface {
	Runtime(name string) (Record, bool, error)
	Swap(name string) (SwapPlan, bool, error)
	// Commit applies w in one transaction and returns its events as stored.
	Commit(w Write) ([]Event, error)
	// PutSnapshot stores s numbered after the newest and keeps the newest
	// keep; the answer carries the record fields.
	PutSnapshot(s Snapshot, keep int) (Snapshot, error)
	// Snapshots lists name's snapshots newest first, without their data.
	Snapshots(name string) ([]Snapshot, error)
	// SnapshotBySeq returns one snapshot with its data; errors wrap
	// ErrNotFound or ErrSnapshotCorrupt.
	SnapshotBySeq(name string, seq uint64) (Snapshot, error)
	// NewestSnapshot returns the newest snapshot usable accepts whose bytes
	// hold their checksum; corrupt lists the newer ones it skipped.
	NewestSnapshot(name string, usable func(Snapshot) bool) (snap Snapshot, corrupt []uint64, found bool, err error)
}

// Write is one atomic change of a challenge's records.
type Write struct {
	Challenge  string
	Runtime    *Record
	Swap       *SwapPlan
	DeleteSwap bool
	Events     []Event
}

// Observer receives what the lifecycle reports: committed events (to log),
// diagnostics, and the measurements metrics are made of. It must not block.
type Observer interface {
	Event(ev Event)
	Log(level Level, challenge, msg string, err error, fields ...Field)
	Restarted(challenge, cause string)
	Probed(challenge string, pass bool, took time.Duration)
	SwapEnded(challenge, result string, took time.Duration)
	Pulled(challenge string, took time.Duration)
}

// Level is the severity of a diagnostic.
type Level int

const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarn
	LevelError
)

// Field is one key/value of a diagnostic.
type Field struct {
	Key   string
	Value any
}

// F makes a Field.
func F(key string, value any) Field { return Field{Key: key, Value: value} }

// Traffic is what the stable endpoint tells the lifecycle about requests.
type Traffic interface {
	InFlight(upstream string) int64
	CloseIdle()
}

// Clock is the time source; tests drive a fake one.
type Clock = supervisor.Clock
