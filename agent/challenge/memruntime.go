package challenge

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// MemRuntime is a Runtime held in memory: instances are records, and an
// instance's address is whatever was registered for its version (an HTTP
// server of the caller's), so probes, hand-offs and the proxy reach real
// servers. The lifecycle's tests and the agent's run on it; it is safe for
// concurrent use.
type MemRuntime struct {
	mu        sync.Mutex
	instances map[string]*Instance
	next      int
	addrs     map[string]string // version → address
	calls     []string
	fail      map[string]int // op → failures still to return
	tags      []string
	logs      string

	// OnLocalImage, when set, runs first in LocalImage (to block or fail a
	// bring-up or a swap at its image step).
	OnLocalImage func(ctx context.Context) error
	// OnInspect, when set, runs first in Inspect.
	OnInspect func()
	// OnStop, when set, runs first in Stop (to hold a stop up).
	OnStop func(ctx context.Context)
}

var _ Runtime = (*MemRuntime)(nil)

// ErrMemFailure is what MemRuntime returns for a failure set with FailNext.
var ErrMemFailure = fmt.Errorf("in-memory runtime failure")

// NewMemRuntime returns an empty in-memory runtime.
func NewMemRuntime() *MemRuntime {
	return &MemRuntime{instances: map[string]*Instance{}, addrs: map[string]string{}, fail: map[string]int{}}
}

// SetAddress makes instances of version reachable at addr (http://host:port).
func (m *MemRuntime) SetAddress(version, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addrs[version] = addr
}

// SetTags sets what Tags answers for any image.
func (m *MemRuntime) SetTags(tags ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tags = tags
}

// SetLogs sets every instance's output.
func (m *MemRuntime) SetLogs(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logs = s
}

// FailNext makes the next n calls of op fail with ErrMemFailure.
func (m *MemRuntime) FailNext(op string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail[op] = n
}

// Add puts an instance in the runtime as if created earlier.
func (m *MemRuntime) Add(in Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := in
	m.instances[in.ID] = &c
}

// Get returns a copy of an instance and whether it exists.
func (m *MemRuntime) Get(id string) (Instance, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.instances[id]
	if !ok {
		return Instance{}, false
	}
	return *in, true
}

// Exit ends instance id's process with code, as a crash or an OOM kill
// would, and returns the event the runtime reports for it.
func (m *MemRuntime) Exit(id string, code int, oom bool) InstanceEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in, ok := m.instances[id]; ok {
		in.Running, in.ExitCode, in.OOMKilled = false, code, oom
	}
	return InstanceEvent{ID: id, Kind: InstanceExited, ExitCode: &code}
}

// Count is how often op was called for id.
func (m *MemRuntime) Count(op, id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == op+" "+id {
			n++
		}
	}
	return n
}

// Running lists the ids of running instances of challenge.
func (m *MemRuntime) Running(challenge string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, in := range m.instances {
		if in.Challenge == challenge && in.Running {
			ids = append(ids, id)
		}
	}
	return ids
}

// record notes a call; the caller holds mu.
func (m *MemRuntime) record(op, id string) error {
	m.calls = append(m.calls, op+" "+id)
	if m.fail[op] > 0 {
		m.fail[op]--
		return fmt.Errorf("%s %s: %w", op, id, ErrMemFailure)
	}
	return nil
}

func (m *MemRuntime) Prepare(context.Context) error { return nil }
func (m *MemRuntime) Ping(context.Context) error    { return nil }

func (m *MemRuntime) Tags(context.Context, string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.tags...), m.record("tags", "")
}

func (m *MemRuntime) LocalImage(ctx context.Context, ref string) (string, error) {
	if m.OnLocalImage != nil {
		if err := m.OnLocalImage(ctx); err != nil {
			return "", err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return memDigest(ref), m.record("image", ref)
}

func (m *MemRuntime) Pull(_ context.Context, ref string, _ func(PullProgress)) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return memDigest(ref), m.record("pull", ref)
}

// RemoveImage refuses, as Docker does, while any instance uses ref.
func (m *MemRuntime) RemoveImage(_ context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("remove_image", ref); err != nil {
		return err
	}
	for _, in := range m.instances {
		if in.Image == ref {
			return fmt.Errorf("remove image %s: used by %s: %w", ref, in.ID, ErrConflict)
		}
	}
	return nil
}

func memDigest(ref string) string {
	return "sha256:" + strings.Repeat("0", 64-len(ref)%8) + strings.Repeat("1", len(ref)%8)
}

func memName(challenge, slot string) string { return "berth-" + challenge + "-" + slot }

func (m *MemRuntime) Create(_ context.Context, spec InstanceSpec) (Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := memName(spec.Challenge.Name, spec.Slot)
	if err := m.record("create", name); err != nil {
		return Instance{}, err
	}
	for _, in := range m.instances {
		if in.Name == name {
			return Instance{}, fmt.Errorf("create %s: %w", name, ErrConflict)
		}
	}
	m.next++
	id := fmt.Sprintf("mem%04d", m.next)
	in := Instance{ID: id, Name: name, Challenge: spec.Challenge.Name, Slot: spec.Slot, Version: spec.Version,
		SpecHash: spec.SpecHash, Image: spec.Ref}
	m.instances[id] = &in
	return in, nil
}

func (m *MemRuntime) Start(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("start", id); err != nil {
		return err
	}
	in, ok := m.instances[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, ErrNotFound)
	}
	in.Running, in.ExitCode, in.OOMKilled, in.StartedAt = true, 0, false, time.Now()
	return nil
}

func (m *MemRuntime) Stop(ctx context.Context, id string, _ time.Duration) error {
	if m.OnStop != nil {
		m.OnStop(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("stop", id); err != nil {
		return err
	}
	if in, ok := m.instances[id]; ok && in.Running {
		in.Running, in.ExitCode = false, 143
	}
	return nil
}

func (m *MemRuntime) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("remove", id); err != nil {
		return err
	}
	delete(m.instances, id)
	return nil
}

func (m *MemRuntime) Inspect(_ context.Context, id string) (Instance, error) {
	if m.OnInspect != nil {
		m.OnInspect()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record("inspect", id); err != nil {
		return Instance{}, err
	}
	in, ok := m.instances[id]
	if !ok {
		return Instance{}, fmt.Errorf("inspect %s: %w", id, ErrNotFound)
	}
	return m.withAddress(*in), nil
}

// withAddress gives a running instance its version's address; the caller
// holds mu.
func (m *MemRuntime) withAddress(in Instance) Instance {
	if in.Running {
		in.Address = m.addrs[in.Version]
	} else {
		in.Address = ""
	}
	return in
}

func (m *MemRuntime) InSlot(_ context.Context, challenge, slot string) (Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := memName(challenge, slot)
	for _, in := range m.instances {
		if in.Name == name {
			return m.withAddress(*in), nil
		}
	}
	return Instance{}, fmt.Errorf("%s: %w", name, ErrNotFound)
}

func (m *MemRuntime) List(context.Context) ([]Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Instance, 0, len(m.instances))
	for _, in := range m.instances {
		out = append(out, m.withAddress(*in))
	}
	return out, m.record("list", "")
}

// Events streams nothing: callers deliver events with Handle.Notify.
func (m *MemRuntime) Events(ctx context.Context) (<-chan InstanceEvent, <-chan error) {
	out, errs := make(chan InstanceEvent), make(chan error, 1)
	go func() {
		<-ctx.Done()
		errs <- ctx.Err()
		close(out)
		close(errs)
	}()
	return out, errs
}

func (m *MemRuntime) Logs(context.Context, string, LogOptions) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return io.NopCloser(strings.NewReader(m.logs)), nil
}
