package challenge

import (
	"time"

	"berth/configs"
)

// Health is a challenge's probe-derived state (SPEC §5.2).
type Health string

const (
	HealthUnknown   Health = "unknown"
	HealthHealthy   Health = "healthy"
	HealthDegraded  Health = "degraded"
	HealthUnhealthy Health = "unhealthy"
)

// Serving reports whether the proxy may route to a container in this state.
func (h Health) Serving() bool { return h == HealthHealthy || h == HealthDegraded }

// HealthTracker folds probe results into a health state. It is a value: each
// Observe returns the next tracker, so thresholds are pure and table-tested.
type HealthTracker struct {
	State       Health
	Passes      int  // consecutive passes
	Failures    int  // consecutive counted failures
	PassedOnce  bool // since the last (re)start
	StartedAt   time.Time
	LastError   string
	AvgResponse time.Duration // exponentially weighted moving average
}

// NewHealthTracker starts tracking a container (re)started at startedAt.
func NewHealthTracker(startedAt time.Time) HealthTracker {
	return HealthTracker{State: HealthUnknown, StartedAt: startedAt}
}

// ProbeResult is one probe outcome.
type ProbeResult struct {
	Pass     bool
	Err      string
	Duration time.Duration // response time of the answering request
	Spent    time.Duration // wall time including redials of a port not yet open
	At       time.Time
}

// Observe applies one probe result under cfg's thresholds.
func (t HealthTracker) Observe(r ProbeResult, cfg configs.Health) HealthTracker {
	if t.AvgResponse == 0 {
		t.AvgResponse = r.Duration
	} else {
		t.AvgResponse = (t.AvgResponse*4 + r.Duration) / 5
	}
	if r.Pass {
		t.PassedOnce = true
		t.Failures = 0
		t.Passes++
		t.LastError = ""
		if t.Passes >= max(cfg.SuccessThreshold, 1) {
			t.State = HealthHealthy
		}
		return t
	}
	t.LastError = r.Err
	t.Passes = 0
	// Failures while a fresh container is still starting do not count.
	if !t.PassedOnce && r.At.Sub(t.StartedAt) < cfg.StartPeriod {
		return t
	}
	t.Failures++
	switch {
	case t.Failures >= max(cfg.FailureThreshold, 1):
		t.State = HealthUnhealthy
	case t.State == HealthHealthy || t.State == HealthUnknown:
		t.State = HealthDegraded
	}
	return t
}

// NextProbeIn is how long to wait before the next probe: fast until the
// first pass after a (re)start, then the regular interval.
func (t HealthTracker) NextProbeIn(cfg configs.Health) time.Duration {
	if !t.PassedOnce && cfg.StartInterval > 0 {
		return cfg.StartInterval
	}
	return cfg.Interval
}
