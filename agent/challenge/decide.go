package challenge

import (
	"time"

	"github.com/Masterminds/semver/v3"

	"berth/configs"
	"berth/supervisor"
)

// The decisions below are pure: they read their arguments only, so each
// is table-tested without an owner, a runtime or a clock.

// Cause is why an instance needs restarting.
type Cause int

const (
	CauseExited Cause = iota + 1
	CauseOOMKilled
	CauseUnhealthy
	CauseStartFailed
	CauseOperator
)

// RestartAction is what to do about a cause.
type RestartAction int

const (
	// KeepServing: no restart (an unhealthy instance without on_unhealthy).
	KeepServing RestartAction = iota
	// RestartNow: without backoff (an operator's restart).
	RestartNow
	// RestartLater: after Delay.
	RestartLater
	// GiveUp: max_restarts within window reached; wait for an operator.
	GiveUp
)

// RestartDecision is what DecideRestart chose and the history to record.
type RestartDecision struct {
	Action  RestartAction
	Delay   time.Duration
	Attempt int         // backoff attempt after this decision
	Times   []time.Time // restarts within the window, this one included
	Count   bool        // the restart counts toward the challenge's total
}

// maxRestartTimes bounds the recorded restart history.
const maxRestartTimes = 1000

// DecideRestart applies policy to cause, given the restarts recorded within
// the window (times), the backoff attempt so far and a jitter draw in [0,1).
func DecideRestart(cause Cause, policy configs.Restart, times []time.Time, attempt int, now time.Time, draw float64) RestartDecision {
	switch {
	case cause == CauseOperator:
		return RestartDecision{Action: RestartNow, Count: true}
	case cause == CauseUnhealthy && !policy.OnUnhealthy:
		return RestartDecision{Action: KeepServing, Attempt: attempt, Times: times}
	}
	kept := make([]time.Time, 0, len(times)+1)
	for _, t := range times {
		if now.Sub(t) < policy.Window {
			kept = append(kept, t)
		}
	}
	if policy.MaxRestarts > 0 && len(kept) >= policy.MaxRestarts {
		return RestartDecision{Action: GiveUp, Attempt: attempt, Times: kept}
	}
	kept = append(kept, now)
	if len(kept) > maxRestartTimes {
		kept = kept[len(kept)-maxRestartTimes:]
	}
	attempt++
	backoff := supervisor.Backoff{Initial: policy.InitialBackoff, Max: policy.MaxBackoff, Multiplier: policy.Multiplier, Jitter: policy.Jitter}
	return RestartDecision{Action: RestartLater, Delay: backoff.Delay(attempt, draw), Attempt: attempt, Times: kept, Count: true}
}

// BackoffReset says whether continuous health since healthySince has
// earned a reset of the backoff attempt count.
func BackoffReset(health Health, attempt int, healthySince, now time.Time, resetAfter time.Duration) bool {
	return health == HealthHealthy && attempt > 0 && !healthySince.IsZero() && now.Sub(healthySince) >= resetAfter
}

// AutoRollbackDue says whether a version cut over at cutOverAt that has just
// failed (unhealthy or exited) is rolled back instead of restarted.
func AutoRollbackDue(update configs.Update, swapRunning bool, previous string, cutOverAt, now time.Time) bool {
	return update.AutoRollback && !swapRunning && previous != "" && !cutOverAt.IsZero() && now.Sub(cutOverAt) < update.RollbackWindow
}

// DesiredVersion is the version precedence: a version set through the API
// stands over the config entry's until that entry changes. keep=false means
// the config's version applies and the API's is forgotten.
func DesiredVersion(configVersion, apiVersion string, configChanged bool) (string, bool) {
	if configChanged || apiVersion == "" {
		return configVersion, false
	}
	return apiVersion, true
}

// VersionDelta classifies a version change for the plan and hand-off rules.
func VersionDelta(from, to string) string {
	a, errA := semver.NewVersion(from)
	b, errB := semver.NewVersion(to)
	switch {
	case errA != nil || errB != nil:
		return "other"
	case b.LessThan(a):
		return "downgrade"
	case a.Major() != b.Major():
		return "major"
	case a.Minor() != b.Minor():
		return "minor"
	case a.Equal(b):
		return "same"
	default:
		return "patch"
	}
}

// HandOffAllowed refuses state hand-off across a major version unless the
// challenge allows it.
func HandOffAllowed(from, to string, acrossMajor bool) bool {
	if acrossMajor {
		return true
	}
	a, errA := semver.NewVersion(from)
	b, errB := semver.NewVersion(to)
	if errA != nil || errB != nil {
		return false
	}
	return a.Major() == b.Major()
}
