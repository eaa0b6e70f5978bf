package challenge

import "time"

// The records below are what an owner reads and writes through its Store.
// They mirror the state store's records field for field; the agent converts
// between the two, so this package never links the database.

// Record is what berth knows about a challenge's running state; re-adoption
// after a berth restart starts from it.
type Record struct {
	Name            string          `json:"name"`
	Lifecycle       string          `json:"lifecycle"`
	Health          string          `json:"health"`
	ActiveSlot      string          `json:"active_slot"`
	Slots           map[string]Slot `json:"slots"`
	Version         string          `json:"version"`
	Digest          string          `json:"digest"`
	PreviousVersion string          `json:"previous_version"`
	// DesiredVersion is a version set through the API; it stands until the
	// challenge's config entry changes.
	DesiredVersion string `json:"desired_version,omitempty"`
	// Upstream is the serving instance's address, so the proxy can route to
	// it as soon as berth starts, before the runtime has been asked.
	Upstream       string      `json:"upstream,omitempty"`
	Restarts       int         `json:"restarts"`
	RestartAttempt int         `json:"restart_attempt"`
	RestartTimes   []time.Time `json:"restart_times"`
	LastExitCode   *int        `json:"last_exit_code"`
	StartedAt      time.Time   `json:"started_at"`
	HealthySince   time.Time   `json:"healthy_since"`
	UpdatedAt      time.Time   `json:"updated_at"`
	// Kept is the stopped previous version kept for a fast rollback until
	// its removal is due.
	Kept *Kept `json:"kept,omitempty"`
}

// Slot is the instance recorded in one blue-green slot.
type Slot struct {
	ContainerID   string    `json:"container_id"`
	ContainerName string    `json:"container_name"`
	Image         string    `json:"image"`
	Version       string    `json:"version"`
	Digest        string    `json:"digest"`
	SpecHash      string    `json:"spec_hash"`
	CreatedAt     time.Time `json:"created_at"`
}

// Kept is a stopped previous version and when it is due for removal.
type Kept struct {
	ContainerID string    `json:"container_id"`
	RemoveAt    time.Time `json:"remove_at"`
}

// SwapPlan is a version swap in progress, written before each phase so a
// berth that crashed mid-swap can roll it back or complete it.
type SwapPlan struct {
	ID            string    `json:"id"`
	Challenge     string    `json:"challenge"`
	Phase         string    `json:"phase"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Delta         string    `json:"delta,omitempty"`
	FromSlot      string    `json:"from_slot"`
	ToSlot        string    `json:"to_slot"`
	ToContainerID string    `json:"to_container_id,omitempty"`
	CutOver       bool      `json:"cut_over"`
	Error         string    `json:"error,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Event is one entry of the event log; the store assigns Seq and Time.
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

// Snapshot is challenge state exported from an instance. Listings leave
// Data out.
type Snapshot struct {
	Challenge string
	Seq       uint64 // from 1 per challenge; 0 for one stored before numbering
	Version   string // of the instance it was exported from
	Data      []byte
	SHA256    string
	Bytes     int
	At        time.Time
}

// MaxSnapshotBytes caps one state snapshot; the store refuses larger ones.
const MaxSnapshotBytes = 16 << 20
