package challenge

import "time"

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

	// claims are the instances live swaps use besides the active one: a
	// swap's new instance joins the slots only at its cut-over.
	claims []string
}

// Claims lists every instance this status keeps in use: the active one and
// those of running or draining swaps. The orphan reaper spares them.
func (s *Status) Claims() []string {
	out := append([]string{}, s.claims...)
	if s.ContainerID != "" {
		out = append(out, s.ContainerID)
	}
	return out
}

// SwapStatus describes a version swap in progress or just finished.
type SwapStatus struct {
	ID        string    `json:"id"`
	Phase     string    `json:"phase"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	StartedAt time.Time `json:"started_at"`
	Error     string    `json:"error"`
}
