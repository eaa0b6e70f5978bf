package challenge

import (
	"slices"
	"time"
)

// Status is the challenge object of the admin API (SPEC §5.8). The
// owning goroutine publishes a fresh value on every change; readers never
// mutate it.
type Status struct {
	Name            string      `json:"name"`
	Image           string      `json:"image"`
	Version         string      `json:"version"`
	Digest          string      `json:"digest"`
	State           Lifecycle   `json:"state"`
	Health          Health      `json:"health"`
	ContainerID     string      `json:"container_id"`
	ContainerName   string      `json:"container_name"`
	Slot            string      `json:"slot"`
	Restarts        int         `json:"restarts"`
	LastExitCode    *int        `json:"last_exit_code"`
	Endpoint        string      `json:"endpoint"`
	Upstream        string      `json:"upstream"`
	StartedAt       *time.Time  `json:"started_at"`
	PreviousVersion string      `json:"previous_version"`
	Swap            *SwapStatus `json:"swap"`
	LastError       string      `json:"last_error,omitempty"`
	ResponseTimeMS  float64     `json:"response_time_ms"`
	// Snapshot is the newest stored state snapshot; null when none.
	Snapshot *SnapshotInfo `json:"snapshot"`
	// StandbyContainerID is the warm standby's container; empty when none.
	StandbyContainerID string `json:"standby_container_id"`
	// StandbyUpstream is the ready standby's address, where the proxy
	// sends a request the active container failed.
	StandbyUpstream string `json:"-"`

	// claims are the instances live swaps use besides the active one: a
	// swap's new instance joins the slots only at its cut-over.
	claims []string
}

// Claims lists every instance this status keeps in use: the active one and
// those of running or draining swaps. The orphan reaper spares them.
func (s *Status) Claims() []string {
	var out []string
	for _, id := range append(append([]string{}, s.claims...), s.ContainerID) {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Serving says whether the stable endpoint may route to the challenge: a
// migrating instance is healthy but has not got its state yet.
func (s *Status) Serving() bool { return s.Health.Serving() && s.State != Migrating }

// SwapStatus describes a version swap in progress or just finished.
type SwapStatus struct {
	ID        string    `json:"id"`
	Phase     string    `json:"phase"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	StartedAt time.Time `json:"started_at"`
	Error     string    `json:"error"`
}

// publish hands readers a fresh immutable status.
func (c *Owner) publish() {
	st := &Status{
		Name:            c.spec.Name,
		Image:           c.spec.Image,
		Version:         c.rec.Version,
		Digest:          c.rec.Digest,
		State:           c.lifecycle,
		Health:          c.tracker.State,
		Slot:            c.rec.ActiveSlot,
		Restarts:        c.rec.Restarts,
		LastExitCode:    c.rec.LastExitCode,
		Endpoint:        c.Endpoint + "/" + c.spec.Name + "/",
		PreviousVersion: c.rec.PreviousVersion,
		LastError:       c.lastErr,
		Swap:            swapStatus(c.lastSwap),
		ResponseTimeMS:  float64(c.tracker.AvgResponse.Microseconds()) / 1000,
		Snapshot:        c.snapshot,
	}
	if sb := c.standby; sb != nil {
		st.StandbyContainerID = sb.in.ID
		st.claims = append(st.claims, sb.in.ID)
		if sb.ready {
			st.StandbyUpstream = sb.in.Address
		}
	}
	for _, job := range []*swapJob{c.swap, c.draining} {
		if job != nil {
			st.claims = append(st.claims, job.fromID, job.snapshot().ToContainerID)
		}
	}
	if c.current != nil {
		st.ContainerID = c.current.ID
		st.ContainerName = c.current.Name
		st.Upstream = c.current.Address
		if !c.rec.StartedAt.IsZero() {
			started := c.rec.StartedAt
			st.StartedAt = &started
		}
	} else if c.lifecycle == Registered {
		CarryRecorded(st, c.rec)
	}
	c.handle.status.Store(st)
}

// CarryRecorded fills a not-yet-adopted challenge's status from its record:
// clients keep being served by the instance that was serving before berth
// restarted, and the API never flips it to unknown.
func CarryRecorded(st *Status, rec Record) {
	slot := rec.Slots[rec.ActiveSlot]
	st.ContainerID, st.ContainerName, st.Upstream = slot.ContainerID, slot.ContainerName, rec.Upstream
	if h := Health(rec.Health); h.Serving() && ParseLifecycle(rec.Lifecycle) != Migrating {
		st.Health = h
	}
	if !rec.StartedAt.IsZero() {
		started := rec.StartedAt
		st.StartedAt = &started
	}
	st.Version, st.Digest, st.Restarts = rec.Version, rec.Digest, rec.Restarts
	st.LastExitCode, st.PreviousVersion = rec.LastExitCode, rec.PreviousVersion
}
