package agent

import "time"

// ChallengeStatus is the challenge object of the admin API (SPEC §5.8). The
// owning goroutine publishes a fresh value on every change; readers never
// mutate it.
type ChallengeStatus struct {
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

	swaps []*swapJob // live swaps, whose containers the orphan reaper must spare
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
