package challenge

import (
	"math"
	"slices"
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

var decideT0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// decidePolicy is a restart policy with round numbers: 100ms doubling up to
// 1s, ±20% jitter, at most maxRestarts within a minute.
func decidePolicy(maxRestarts int, onUnhealthy bool) configs.Restart {
	return configs.Restart{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 0.2,
		ResetAfter: time.Minute, OnUnhealthy: onUnhealthy, MaxRestarts: maxRestarts, Window: time.Minute, StopTimeout: time.Second}
}

// ago is a restart history: one time per argument, that long before decideT0.
func ago(ds ...time.Duration) []time.Time {
	out := make([]time.Time, len(ds))
	for i, d := range ds {
		out[i] = decideT0.Add(-d)
	}
	return out
}

// expectedDelay is the backoff formula of supervisor/backoff.go written out:
// min(Max, Initial*Multiplier^(n-1)) * (1 + Jitter*(2r-1)).
func expectedDelay(p configs.Restart, n int, r float64) time.Duration {
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(n-1))
	d = min(d, float64(p.MaxBackoff))
	return time.Duration(math.Round(d * (1 + p.Jitter*(2*r-1))))
}

func TestDecideRestart(t *testing.T) {
	const ms = time.Millisecond
	s := time.Second
	tests := []struct {
		name    string
		cause   Cause
		policy  configs.Restart
		times   []time.Time
		attempt int
		draw    float64

		action    RestartAction
		delay     time.Duration
		wantTry   int
		wantTimes []time.Time // nil: not checked beyond its length
		nTimes    int
		count     bool
	}{
		// Causes.
		{name: "exited, first restart", cause: CauseExited, policy: decidePolicy(0, true), draw: 0.5,
			action: RestartLater, delay: 100 * ms, wantTry: 1, wantTimes: []time.Time{decideT0}, nTimes: 1, count: true},
		{name: "oom killed restarts like an exit", cause: CauseOOMKilled, policy: decidePolicy(0, true), draw: 0.5,
			action: RestartLater, delay: 100 * ms, wantTry: 1, nTimes: 1, count: true},
		{name: "start failed restarts like an exit", cause: CauseStartFailed, policy: decidePolicy(0, true), draw: 0.5,
			action: RestartLater, delay: 100 * ms, wantTry: 1, nTimes: 1, count: true},
		{name: "unhealthy with on_unhealthy restarts", cause: CauseUnhealthy, policy: decidePolicy(0, true), draw: 0.5,
			action: RestartLater, delay: 100 * ms, wantTry: 1, nTimes: 1, count: true},
		{name: "unhealthy without on_unhealthy keeps serving", cause: CauseUnhealthy, policy: decidePolicy(0, false),
			times: ago(10 * s), attempt: 3, draw: 0.5,
			action: KeepServing, wantTry: 3, wantTimes: ago(10 * s), nTimes: 1},
		{name: "unhealthy without on_unhealthy keeps serving even past max_restarts", cause: CauseUnhealthy, policy: decidePolicy(1, false),
			times: ago(s, 2*s), attempt: 2, draw: 0.5, action: KeepServing, wantTry: 2, nTimes: 2},
		{name: "operator restarts now and resets the attempt", cause: CauseOperator, policy: decidePolicy(1, true),
			times: ago(s, 2*s, 3*s), attempt: 7, draw: 0.9, action: RestartNow, count: true},

		// Backoff growth and cap, at the middle draw (no jitter effect).
		{name: "second attempt doubles", cause: CauseExited, policy: decidePolicy(0, true), attempt: 1, draw: 0.5,
			action: RestartLater, delay: 200 * ms, wantTry: 2, nTimes: 1, count: true},
		{name: "fourth attempt", cause: CauseExited, policy: decidePolicy(0, true), attempt: 3, draw: 0.5,
			action: RestartLater, delay: 800 * ms, wantTry: 4, nTimes: 1, count: true},
		{name: "capped at max_backoff", cause: CauseExited, policy: decidePolicy(0, true), attempt: 4, draw: 0.5,
			action: RestartLater, delay: time.Second, wantTry: 5, nTimes: 1, count: true},
		{name: "stays capped", cause: CauseExited, policy: decidePolicy(0, true), attempt: 60, draw: 0.5,
			action: RestartLater, delay: time.Second, wantTry: 61, nTimes: 1, count: true},

		// Jitter draws.
		{name: "lowest draw shortens by jitter", cause: CauseExited, policy: decidePolicy(0, true), draw: 0,
			action: RestartLater, delay: 80 * ms, wantTry: 1, nTimes: 1, count: true},
		{name: "quarter draw", cause: CauseExited, policy: decidePolicy(0, true), attempt: 1, draw: 0.25,
			action: RestartLater, delay: 180 * ms, wantTry: 2, nTimes: 1, count: true},
		{name: "three-quarter draw lengthens", cause: CauseExited, policy: decidePolicy(0, true), attempt: 2, draw: 0.75,
			action: RestartLater, delay: 440 * ms, wantTry: 3, nTimes: 1, count: true},
		{name: "jitter applies after the cap", cause: CauseExited, policy: decidePolicy(0, true), attempt: 9, draw: 0,
			action: RestartLater, delay: 800 * ms, wantTry: 10, nTimes: 1, count: true},
		{name: "no jitter configured ignores the draw", cause: CauseExited,
			policy: func() configs.Restart { p := decidePolicy(0, true); p.Jitter = 0; return p }(), attempt: 1, draw: 0.99,
			action: RestartLater, delay: 200 * ms, wantTry: 2, nTimes: 1, count: true},
		{name: "no initial backoff restarts at once", cause: CauseExited,
			policy: func() configs.Restart { p := decidePolicy(0, true); p.InitialBackoff = 0; return p }(), attempt: 4, draw: 0.5,
			action: RestartLater, delay: 0, wantTry: 5, nTimes: 1, count: true},

		// History against max_restarts and window.
		{name: "below max_restarts inside the window", cause: CauseExited, policy: decidePolicy(3, true),
			times: ago(20*s, 10*s), attempt: 2, draw: 0.5,
			action: RestartLater, delay: 400 * ms, wantTry: 3, wantTimes: append(ago(20*s, 10*s), decideT0), nTimes: 3, count: true},
		{name: "max_restarts reached inside the window gives up", cause: CauseExited, policy: decidePolicy(3, true),
			times: ago(30*s, 20*s, 10*s), attempt: 3, draw: 0.5,
			action: GiveUp, wantTry: 3, wantTimes: ago(30*s, 20*s, 10*s), nTimes: 3},
		{name: "oom counts toward max_restarts", cause: CauseOOMKilled, policy: decidePolicy(1, true),
			times: ago(s), attempt: 1, draw: 0.5, action: GiveUp, wantTry: 1, nTimes: 1},
		{name: "unhealthy with on_unhealthy counts toward max_restarts", cause: CauseUnhealthy, policy: decidePolicy(2, true),
			times: ago(2*s, s), attempt: 2, draw: 0.5, action: GiveUp, wantTry: 2, nTimes: 2},
		{name: "restarts outside the window are forgotten", cause: CauseExited, policy: decidePolicy(3, true),
			times: ago(3*time.Minute, 2*time.Minute, 61*s, 10*s), attempt: 4, draw: 0.5,
			action: RestartLater, delay: time.Second, wantTry: 5, wantTimes: append(ago(10*s), decideT0), nTimes: 2, count: true},
		{name: "a restart exactly one window ago is outside it", cause: CauseExited, policy: decidePolicy(1, true),
			times: ago(time.Minute), attempt: 1, draw: 0.5,
			action: RestartLater, delay: 200 * ms, wantTry: 2, wantTimes: []time.Time{decideT0}, nTimes: 1, count: true},
		{name: "just inside the window still counts", cause: CauseExited, policy: decidePolicy(1, true),
			times: ago(time.Minute - time.Nanosecond), attempt: 1, draw: 0.5, action: GiveUp, wantTry: 1, nTimes: 1},
		{name: "max_restarts 0 never gives up", cause: CauseExited, policy: decidePolicy(0, true),
			times: ago(5*s, 4*s, 3*s, 2*s, s), attempt: 5, draw: 0.5,
			action: RestartLater, delay: time.Second, wantTry: 6, nTimes: 6, count: true},
		{name: "zero window keeps no history", cause: CauseExited,
			policy: func() configs.Restart { p := decidePolicy(1, true); p.Window = 0; return p }(), times: ago(s), attempt: 1, draw: 0.5,
			action: RestartLater, delay: 200 * ms, wantTry: 2, wantTimes: []time.Time{decideT0}, nTimes: 1, count: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.times)
			d := DecideRestart(tt.cause, tt.policy, tt.times, tt.attempt, decideT0, tt.draw)
			if d.Action != tt.action {
				t.Fatalf("action %v, want %v (%+v)", d.Action, tt.action, d)
			}
			if d.Delay != tt.delay {
				t.Errorf("delay %s, want %s", d.Delay, tt.delay)
			}
			if d.Action == RestartLater {
				if want := expectedDelay(tt.policy, d.Attempt, tt.draw); tt.policy.InitialBackoff > 0 && d.Delay != want {
					t.Errorf("delay %s, but the backoff formula gives %s for attempt %d", d.Delay, want, d.Attempt)
				}
				b := supervisor.Backoff{Initial: tt.policy.InitialBackoff, Max: tt.policy.MaxBackoff, Multiplier: tt.policy.Multiplier, Jitter: tt.policy.Jitter}
				if want := b.Delay(d.Attempt, tt.draw); d.Delay != want {
					t.Errorf("delay %s, supervisor.Backoff gives %s", d.Delay, want)
				}
			}
			if d.Attempt != tt.wantTry {
				t.Errorf("attempt %d, want %d", d.Attempt, tt.wantTry)
			}
			if d.Count != tt.count {
				t.Errorf("count %v, want %v", d.Count, tt.count)
			}
			if tt.action != RestartNow {
				if len(d.Times) != tt.nTimes {
					t.Errorf("%d restart times %v, want %d", len(d.Times), d.Times, tt.nTimes)
				}
				if tt.wantTimes != nil && !slices.Equal(d.Times, tt.wantTimes) {
					t.Errorf("times %v, want %v", d.Times, tt.wantTimes)
				}
				if d.Action == RestartLater && (len(d.Times) == 0 || !d.Times[len(d.Times)-1].Equal(decideT0)) {
					t.Errorf("a restart's own time is not last in %v", d.Times)
				}
			} else if d.Attempt != 0 || len(d.Times) != 0 || d.Delay != 0 {
				t.Errorf("operator restart carries history: %+v", d)
			}
			if !slices.Equal(tt.times, in) {
				t.Errorf("DecideRestart changed its input history: %v, was %v", tt.times, in)
			}
		})
	}
}

// The recorded history is bounded, keeping the newest restarts.
func TestDecideRestartBoundsHistory(t *testing.T) {
	times := make([]time.Time, maxRestartTimes+5)
	for i := range times {
		times[i] = decideT0.Add(-time.Duration(len(times)-i) * time.Millisecond)
	}
	d := DecideRestart(CauseExited, decidePolicy(0, true), times, 2, decideT0, 0.5)
	if d.Action != RestartLater || len(d.Times) != maxRestartTimes {
		t.Fatalf("action %v with %d times, want a restart keeping %d", d.Action, len(d.Times), maxRestartTimes)
	}
	if !d.Times[len(d.Times)-1].Equal(decideT0) || !d.Times[0].Equal(times[6]) {
		t.Fatalf("kept %v … %v, want the newest ending at now", d.Times[0], d.Times[len(d.Times)-1])
	}
}

// A crash loop walks the backoff up, then gives up at max_restarts.
func TestDecideRestartSequence(t *testing.T) {
	policy := decidePolicy(4, true)
	var times []time.Time
	attempt := 0
	now := decideT0
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, w := range want {
		d := DecideRestart(CauseExited, policy, times, attempt, now, 0.5)
		if d.Action != RestartLater || d.Delay != w || d.Attempt != i+1 {
			t.Fatalf("restart %d: %+v, want a restart after %s", i+1, d, w)
		}
		times, attempt = d.Times, d.Attempt
		now = now.Add(d.Delay + time.Second)
	}
	d := DecideRestart(CauseExited, policy, times, attempt, now, 0.5)
	if d.Action != GiveUp || d.Attempt != 4 || len(d.Times) != 4 {
		t.Fatalf("fifth crash within the window: %+v, want give-up", d)
	}
	// A minute later the window has emptied: the next crash restarts again,
	// with the backoff attempt still where it was.
	d = DecideRestart(CauseExited, policy, times, attempt, now.Add(time.Minute), 0.5)
	if d.Action != RestartLater || d.Attempt != 5 || d.Delay != time.Second || len(d.Times) != 1 {
		t.Fatalf("crash after the window: %+v", d)
	}
}

func TestBackoffReset(t *testing.T) {
	const after = time.Minute
	since := decideT0.Add(-after)
	tests := []struct {
		name    string
		health  Health
		attempt int
		since   time.Time
		now     time.Time
		want    bool
	}{
		{"healthy for reset_after", HealthHealthy, 3, since, decideT0, true},
		{"healthy for longer", HealthHealthy, 1, since.Add(-time.Hour), decideT0, true},
		{"healthy one ns short", HealthHealthy, 3, since.Add(time.Nanosecond), decideT0, false},
		{"nothing to reset", HealthHealthy, 0, since, decideT0, false},
		{"degraded", HealthDegraded, 3, since, decideT0, false},
		{"unhealthy", HealthUnhealthy, 3, since, decideT0, false},
		{"unknown", HealthUnknown, 3, since, decideT0, false},
		{"never healthy", HealthHealthy, 3, time.Time{}, decideT0, false},
		{"healthy since the future", HealthHealthy, 3, decideT0.Add(time.Second), decideT0, false},
	}
	for _, tt := range tests {
		if got := BackoffReset(tt.health, tt.attempt, tt.since, tt.now, after); got != tt.want {
			t.Errorf("%s: BackoffReset = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !BackoffReset(HealthHealthy, 1, decideT0, decideT0, 0) {
		t.Error("reset_after 0 does not reset at once")
	}
}

func TestAutoRollbackDue(t *testing.T) {
	on := configs.Update{AutoRollback: true, RollbackWindow: 5 * time.Minute}
	off := on
	off.AutoRollback = false
	cut := decideT0.Add(-time.Minute)
	tests := []struct {
		name     string
		update   configs.Update
		swapping bool
		previous string
		cutOver  time.Time
		now      time.Time
		want     bool
	}{
		{"inside the window", on, false, "1.0.0", cut, decideT0, true},
		{"at the cut-over", on, false, "1.0.0", decideT0, decideT0, true},
		{"one ns before the window ends", on, false, "1.0.0", decideT0.Add(-5*time.Minute + time.Nanosecond), decideT0, true},
		{"window ended", on, false, "1.0.0", decideT0.Add(-5 * time.Minute), decideT0, false},
		{"long after", on, false, "1.0.0", decideT0.Add(-time.Hour), decideT0, false},
		{"auto_rollback off", off, false, "1.0.0", cut, decideT0, false},
		{"a swap runs", on, true, "1.0.0", cut, decideT0, false},
		{"no previous version", on, false, "", cut, decideT0, false},
		{"never cut over", on, false, "1.0.0", time.Time{}, decideT0, false},
		{"zero window", configs.Update{AutoRollback: true}, false, "1.0.0", decideT0, decideT0, false},
	}
	for _, tt := range tests {
		if got := AutoRollbackDue(tt.update, tt.swapping, tt.previous, tt.cutOver, tt.now); got != tt.want {
			t.Errorf("%s: AutoRollbackDue = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDesiredVersion(t *testing.T) {
	tests := []struct {
		name        string
		config, api string
		changed     bool
		wantVersion string
		wantKeep    bool
	}{
		{"config only", "1.0.0", "", false, "1.0.0", false},
		{"api version stands over the config's", "1.0.0", "2.0.0", false, "2.0.0", true},
		{"api constraint stands too", "1.0.0", "^2", false, "^2", true},
		{"a changed config entry wins", "1.0.0", "2.0.0", true, "1.0.0", false},
		{"a changed entry without an api version", "1.1.0", "", true, "1.1.0", false},
		{"api equal to config", "1.0.0", "1.0.0", false, "1.0.0", true},
		{"config constraint, api tag", "^1.0", "1.4.2", false, "1.4.2", true},
	}
	for _, tt := range tests {
		v, keep := DesiredVersion(tt.config, tt.api, tt.changed)
		if v != tt.wantVersion || keep != tt.wantKeep {
			t.Errorf("%s: DesiredVersion(%q, %q, %v) = %q, %v; want %q, %v", tt.name, tt.config, tt.api, tt.changed, v, keep, tt.wantVersion, tt.wantKeep)
		}
	}
}

func TestVersionDelta(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"1.0.0", "1.0.1", "patch"},
		{"1.0.9", "1.0.10", "patch"},
		{"1.0.0", "1.1.0", "minor"},
		{"1.9.3", "1.10.0", "minor"},
		{"1.0.0", "2.0.0", "major"},
		{"1.5.5", "3.0.0", "major"},
		{"0.1.0", "0.2.0", "minor"},
		{"1.0.1", "1.0.0", "downgrade"},
		{"2.0.0", "1.9.9", "downgrade"},
		{"1.1.0", "1.0.5", "downgrade"},
		{"1.0.0", "1.0.0", "same"},
		{"v1.2.3", "1.2.3", "same"},
		{"1.2", "1.2.0", "same"},
		{"1.0.0-rc.1", "1.0.0", "patch"},
		{"1.0.0", "1.0.0-rc.1", "downgrade"},
		{"latest", "1.0.0", "other"},
		{"1.0.0", "latest", "other"},
		{"", "1.0.0", "other"},
		{"main", "edge", "other"},
	}
	for _, tt := range tests {
		if got := VersionDelta(tt.from, tt.to); got != tt.want {
			t.Errorf("VersionDelta(%q, %q) = %q, want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestHandOffAllowed(t *testing.T) {
	tests := []struct {
		from, to    string
		acrossMajor bool
		want        bool
	}{
		{"1.0.0", "1.0.1", false, true},
		{"1.0.0", "1.9.0", false, true},
		{"1.9.0", "1.0.0", false, true}, // a downgrade within the major
		{"1.0.0", "2.0.0", false, false},
		{"2.0.0", "1.0.0", false, false},
		{"1.0.0", "2.0.0", true, true},
		{"v1.0.0", "1.2.0", false, true},
		{"latest", "1.0.0", false, false},
		{"1.0.0", "edge", false, false},
		{"latest", "edge", true, true},
		{"0.1.0", "0.2.0", false, true},
	}
	for _, tt := range tests {
		if got := HandOffAllowed(tt.from, tt.to, tt.acrossMajor); got != tt.want {
			t.Errorf("HandOffAllowed(%q, %q, %v) = %v, want %v", tt.from, tt.to, tt.acrossMajor, got, tt.want)
		}
	}
}

func TestCauseOf(t *testing.T) {
	tests := map[string]Cause{
		EventOOMKilled: CauseOOMKilled, EventUnhealthy: CauseUnhealthy, EventStartFailed: CauseStartFailed,
		EventExited: CauseExited, "anything else": CauseExited,
	}
	for typ, want := range tests {
		if got := causeOf(typ); got != want {
			t.Errorf("causeOf(%q) = %v, want %v", typ, got, want)
		}
	}
}
