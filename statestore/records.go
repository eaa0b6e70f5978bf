package statestore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SpecRecord is the desired state of one challenge as last registered.
type SpecRecord struct {
	Name      string    `json:"name"`
	Source    string    `json:"source"` // "config" | "api" | "dir"
	Spec      []byte    `json:"spec"`   // JSON of the challenge spec, opaque here
	SpecHash  string    `json:"spec_hash"`
	Applied   []byte    `json:"applied,omitempty"` // last applied config entry, for version precedence
	UpdatedAt time.Time `json:"updated_at"`
}

// SlotRecord is the container recorded in one blue-green slot.
type SlotRecord struct {
	ContainerID   string    `json:"container_id"`
	ContainerName string    `json:"container_name"`
	Image         string    `json:"image"`
	Version       string    `json:"version"`
	Digest        string    `json:"digest"`
	SpecHash      string    `json:"spec_hash"`
	CreatedAt     time.Time `json:"created_at"`
}

// MaxRestartTimes bounds RuntimeRecord.RestartTimes; PutRuntime keeps the newest.
const MaxRestartTimes = 1000

// RuntimeRecord is what berth knows about a challenge's running state; it is
// what re-adoption after a berth restart starts from.
type RuntimeRecord struct {
	Name            string                `json:"name"`
	Lifecycle       string                `json:"lifecycle"`
	Health          string                `json:"health"`
	ActiveSlot      string                `json:"active_slot"` // "a" | "b" | ""
	Slots           map[string]SlotRecord `json:"slots"`
	Version         string                `json:"version"`
	Digest          string                `json:"digest"`
	PreviousVersion string                `json:"previous_version"`
	// DesiredVersion is a version set through the API; it stands until the
	// challenge's config entry changes.
	DesiredVersion string `json:"desired_version,omitempty"`
	// Upstream is the serving container's address, so the proxy can route
	// to it as soon as berth starts, before the engine has been asked.
	Upstream       string      `json:"upstream,omitempty"`
	Restarts       int         `json:"restarts"`        // total
	RestartAttempt int         `json:"restart_attempt"` // n for backoff, reset after healthy reset_after
	RestartTimes   []time.Time `json:"restart_times"`   // within window, for max_restarts; newest MaxRestartTimes kept
	LastExitCode   *int        `json:"last_exit_code"`
	StartedAt      time.Time   `json:"started_at"`
	HealthySince   time.Time   `json:"healthy_since"`
	UpdatedAt      time.Time   `json:"updated_at"`
	// Kept is the stopped previous version kept for a fast rollback until
	// its removal is due; recorded so that a berth restart still removes it.
	Kept *KeptContainer `json:"kept,omitempty"`
}

// KeptContainer is a stopped previous version and when it is due for removal.
type KeptContainer struct {
	ContainerID string    `json:"container_id"`
	RemoveAt    time.Time `json:"remove_at"`
}

// Event is one entry of the event log. Seq is assigned by the store.
type Event struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Type        string    `json:"type"`
	Challenge   string    `json:"challenge,omitempty"`
	ContainerID string    `json:"container_id,omitempty"`
	Version     string    `json:"version,omitempty"`
	Message     string    `json:"message,omitempty"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	OOM         bool      `json:"oom,omitempty"`
	Health      string    `json:"health,omitempty"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	Phase       string    `json:"phase,omitempty"`
	Error       string    `json:"error,omitempty"`
	Attempt     int       `json:"attempt,omitempty"`
	DelayMS     int64     `json:"delay_ms,omitempty"`
}

// Key layout. Event keys carry a big-endian seq so byte order is seq order.
const (
	prefixSpec    = "spec/"
	prefixRuntime = "rt/"
	prefixEvent   = "ev/"
	prefixMeta    = "meta/"
	prefixSwap    = "swap/"
	prefixSnap    = "snap/"
	// prefixSnapData holds snapshot bytes in raw chunks: snapdata/<name>/<ts>/<n>.
	prefixSnapData = "snapdata/"

	// keyNextSeq survives trimming of the whole log, so seqs are never reused.
	keyNextSeq = prefixMeta + "next_seq"
)

var knownPrefixes = []string{prefixSpec, prefixRuntime, prefixEvent, prefixMeta, prefixSwap, prefixSnapData, prefixSnap}

var (
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("state store is closed")
	// ErrCorrupt marks a stored record or backup stream that cannot be decoded.
	ErrCorrupt = errors.New("corrupt state store data")
	// ErrLocked means another process holds the data directory.
	ErrLocked = errors.New("data directory is locked by another process (is another berth running with the same data dir?)")
	// ErrNotEmpty is returned by Restore into a store that already holds data.
	ErrNotEmpty = errors.New("state store is not empty; restore needs an empty data directory")
	// ErrTxDone is returned when a Tx is used after its Update returned.
	ErrTxDone = errors.New("state store transaction already finished")
)

func specKey(name string) []byte    { return []byte(prefixSpec + name) }
func runtimeKey(name string) []byte { return []byte(prefixRuntime + name) }

func eventKey(seq uint64) []byte {
	k := make([]byte, len(prefixEvent)+8)
	copy(k, prefixEvent)
	binary.BigEndian.PutUint64(k[len(prefixEvent):], seq)
	return k
}

func eventSeq(key []byte) (uint64, error) {
	if len(key) != len(prefixEvent)+8 || !strings.HasPrefix(string(key), prefixEvent) {
		return 0, fmt.Errorf("event key %q: %w: malformed key", key, ErrCorrupt)
	}
	return binary.BigEndian.Uint64(key[len(prefixEvent):]), nil
}

func encodeUint64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func decodeUint64(key, val []byte) (uint64, error) {
	if len(val) != 8 {
		return 0, fmt.Errorf("decode record %q: %w: want 8 bytes, got %d", key, ErrCorrupt, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

func validName(name string) error {
	if name == "" {
		return errors.New("record name is empty")
	}
	return nil
}

func encode(key []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", key, err)
	}
	return b, nil
}

func decode(key, val []byte, v any) error {
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("decode record %q: %w: %w", key, ErrCorrupt, err)
	}
	return nil
}

func decodeEvent(key, val []byte) (Event, error) {
	seq, err := eventSeq(key)
	if err != nil {
		return Event{}, err
	}
	var e Event
	if err := decode(key, val, &e); err != nil {
		return Event{}, err
	}
	if e.Seq != seq {
		return Event{}, fmt.Errorf("decode record %q: %w: seq %d does not match key", key, ErrCorrupt, e.Seq)
	}
	return e, nil
}

// safeErr keeps only the first line of a Badger error: Badger appends a hex
// dump of a refused key or value, which is stored data and must not travel
// into logs, events, API answers or alerts.
func safeErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	i := strings.IndexByte(msg, '\n')
	if i < 0 {
		return err
	}
	first := strings.TrimSpace(msg[:i])
	for _, dump := range []string{" Value:", " Key:"} {
		first = strings.TrimSuffix(first, dump)
	}
	return &cutError{msg: first, err: err}
}

// cutError is an error whose message was cut; Is and As still see the cause.
type cutError struct {
	msg string
	err error
}

func (e *cutError) Error() string { return e.msg }
func (e *cutError) Unwrap() error { return e.err }
