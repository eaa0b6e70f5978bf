package challenge

import (
	"testing"
	"time"

	"berth/configs"
)

var healthT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func healthCfg(failures, successes int, startPeriod time.Duration) configs.Health {
	return configs.Health{
		Path:             "/health",
		Interval:         5 * time.Second,
		Timeout:          2 * time.Second,
		FailureThreshold: failures,
		SuccessThreshold: successes,
		StartPeriod:      startPeriod,
		StartInterval:    250 * time.Millisecond,
	}
}

type healthStep struct {
	pass bool
	at   time.Duration // since the tracker's start
	want Health
}

func passAt(at time.Duration, want Health) healthStep {
	return healthStep{pass: true, at: at, want: want}
}
func failAt(at time.Duration, want Health) healthStep {
	return healthStep{pass: false, at: at, want: want}
}

// runHealth feeds steps into a fresh tracker and checks the state after each.
func runHealth(tb testing.TB, cfg configs.Health, steps []healthStep) HealthTracker {
	tb.Helper()
	tr := NewHealthTracker(healthT0)
	if tr.State != HealthUnknown {
		tb.Fatalf("new tracker state %q, want unknown", tr.State)
	}
	for i, s := range steps {
		r := ProbeResult{Pass: s.pass, At: healthT0.Add(s.at), Duration: 10 * time.Millisecond}
		if !s.pass {
			r.Err = "status 500"
		}
		tr = tr.Observe(r, cfg)
		if tr.State != s.want {
			tb.Fatalf("step %d (pass=%v at %s): state %q, want %q (tracker %+v)", i, s.pass, s.at, tr.State, s.want, tr)
		}
	}
	return tr
}

func TestHealthThresholds(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name  string
		cfg   configs.Health
		steps []healthStep
	}{
		{
			name: "degraded below threshold, unhealthy at it",
			cfg:  healthCfg(3, 1, 0),
			steps: []healthStep{
				passAt(1*s, HealthHealthy),
				failAt(2*s, HealthDegraded),
				failAt(3*s, HealthDegraded),
				failAt(4*s, HealthUnhealthy),
				failAt(5*s, HealthUnhealthy),
			},
		},
		{
			name: "threshold 5 stays degraded for four failures",
			cfg:  healthCfg(5, 1, 0),
			steps: []healthStep{
				passAt(1*s, HealthHealthy),
				failAt(2*s, HealthDegraded),
				failAt(3*s, HealthDegraded),
				failAt(4*s, HealthDegraded),
				failAt(5*s, HealthDegraded),
				failAt(6*s, HealthUnhealthy),
			},
		},
		{
			name: "threshold 1 goes straight to unhealthy",
			cfg:  healthCfg(1, 1, 0),
			steps: []healthStep{
				passAt(1*s, HealthHealthy),
				failAt(2*s, HealthUnhealthy),
			},
		},
		{
			name: "a pass between failures resets the count",
			cfg:  healthCfg(3, 1, 0),
			steps: []healthStep{
				passAt(1*s, HealthHealthy),
				failAt(2*s, HealthDegraded),
				failAt(3*s, HealthDegraded),
				passAt(4*s, HealthHealthy),
				failAt(5*s, HealthDegraded),
				failAt(6*s, HealthDegraded),
				failAt(7*s, HealthUnhealthy),
			},
		},
		{
			name: "success threshold 3 from unhealthy",
			cfg:  healthCfg(2, 3, 0),
			steps: []healthStep{
				failAt(1*s, HealthDegraded),
				failAt(2*s, HealthUnhealthy),
				passAt(3*s, HealthUnhealthy),
				passAt(4*s, HealthUnhealthy),
				passAt(5*s, HealthHealthy),
			},
		},
		{
			name: "a failure between passes resets the pass count",
			cfg:  healthCfg(2, 3, 0),
			steps: []healthStep{
				failAt(1*s, HealthDegraded),
				failAt(2*s, HealthUnhealthy),
				passAt(3*s, HealthUnhealthy),
				passAt(4*s, HealthUnhealthy),
				failAt(5*s, HealthUnhealthy),
				passAt(6*s, HealthUnhealthy),
				passAt(7*s, HealthUnhealthy),
				passAt(8*s, HealthHealthy),
			},
		},
		{
			name: "success threshold 3 from unknown",
			cfg:  healthCfg(3, 3, 0),
			steps: []healthStep{
				passAt(1*s, HealthUnknown),
				passAt(2*s, HealthUnknown),
				passAt(3*s, HealthHealthy),
			},
		},
		{
			name: "degraded needs the success threshold too",
			cfg:  healthCfg(3, 2, 0),
			steps: []healthStep{
				passAt(1*s, HealthUnknown),
				passAt(2*s, HealthHealthy),
				failAt(3*s, HealthDegraded),
				passAt(4*s, HealthDegraded),
				passAt(5*s, HealthHealthy),
			},
		},
		{
			name: "zero thresholds behave as one",
			cfg:  healthCfg(0, 0, 0),
			steps: []healthStep{
				passAt(1*s, HealthHealthy),
				failAt(2*s, HealthUnhealthy),
				passAt(3*s, HealthHealthy),
			},
		},
		{
			name: "failures inside start period before the first pass do not count",
			cfg:  healthCfg(3, 1, 60*s),
			steps: []healthStep{
				failAt(1*s, HealthUnknown),
				failAt(10*s, HealthUnknown),
				failAt(30*s, HealthUnknown),
				failAt(59*s, HealthUnknown),
				failAt(61*s, HealthDegraded),
				failAt(62*s, HealthDegraded),
				failAt(63*s, HealthUnhealthy),
			},
		},
		{
			name: "start period does not protect after the first pass",
			cfg:  healthCfg(3, 1, 60*s),
			steps: []healthStep{
				failAt(1*s, HealthUnknown),
				passAt(2*s, HealthHealthy),
				failAt(3*s, HealthDegraded),
				failAt(4*s, HealthDegraded),
				failAt(5*s, HealthUnhealthy),
			},
		},
		{
			name: "a pass inside start period becomes healthy",
			cfg:  healthCfg(3, 1, 60*s),
			steps: []healthStep{
				failAt(1*s, HealthUnknown),
				failAt(2*s, HealthUnknown),
				passAt(3*s, HealthHealthy),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runHealth(t, tt.cfg, tt.steps)
		})
	}
}

func TestHealthStartPeriodFailuresNotCounted(t *testing.T) {
	cfg := healthCfg(3, 1, time.Minute)
	tr := runHealth(t, cfg, []healthStep{
		failAt(time.Second, HealthUnknown),
		failAt(2*time.Second, HealthUnknown),
		failAt(3*time.Second, HealthUnknown),
	})
	if tr.Failures != 0 {
		t.Fatalf("failures inside start period counted: %d", tr.Failures)
	}
	if tr.LastError != "status 500" {
		t.Fatalf("LastError = %q, want the probe error kept", tr.LastError)
	}
	tr = tr.Observe(ProbeResult{Pass: true, At: healthT0.Add(4 * time.Second)}, cfg)
	if tr.LastError != "" {
		t.Fatalf("LastError = %q after a pass, want empty", tr.LastError)
	}
}

func TestHealthObserveIsPure(t *testing.T) {
	cfg := healthCfg(1, 1, 0)
	before := NewHealthTracker(healthT0).Observe(ProbeResult{Pass: true, At: healthT0}, cfg)
	after := before.Observe(ProbeResult{Pass: false, At: healthT0.Add(time.Second), Err: "x"}, cfg)
	if before.State != HealthHealthy || before.Failures != 0 || before.LastError != "" {
		t.Fatalf("Observe changed its receiver: %+v", before)
	}
	if after.State != HealthUnhealthy {
		t.Fatalf("after failure: %q, want unhealthy", after.State)
	}
}

func TestHealthNextProbeIn(t *testing.T) {
	cfg := healthCfg(3, 1, time.Minute)
	tr := NewHealthTracker(healthT0)
	if got := tr.NextProbeIn(cfg); got != cfg.StartInterval {
		t.Fatalf("fresh tracker: %s, want start_interval %s", got, cfg.StartInterval)
	}
	tr = tr.Observe(ProbeResult{Pass: false, At: healthT0.Add(time.Second)}, cfg)
	if got := tr.NextProbeIn(cfg); got != cfg.StartInterval {
		t.Fatalf("after failure in start period: %s, want start_interval", got)
	}
	tr = tr.Observe(ProbeResult{Pass: false, At: healthT0.Add(2 * time.Minute)}, cfg)
	if got := tr.NextProbeIn(cfg); got != cfg.StartInterval {
		t.Fatalf("no pass yet, past start period: %s, want start_interval", got)
	}
	tr = tr.Observe(ProbeResult{Pass: true, At: healthT0.Add(3 * time.Minute)}, cfg)
	if got := tr.NextProbeIn(cfg); got != cfg.Interval {
		t.Fatalf("after first pass: %s, want interval %s", got, cfg.Interval)
	}
	tr = tr.Observe(ProbeResult{Pass: false, At: healthT0.Add(4 * time.Minute)}, cfg)
	if got := tr.NextProbeIn(cfg); got != cfg.Interval {
		t.Fatalf("failure after first pass: %s, want interval %s", got, cfg.Interval)
	}
	// A restart starts a new tracker, which probes fast again.
	if got := NewHealthTracker(healthT0.Add(5 * time.Minute)).NextProbeIn(cfg); got != cfg.StartInterval {
		t.Fatalf("after restart: %s, want start_interval", got)
	}

	noFast := cfg
	noFast.StartInterval = 0
	if got := NewHealthTracker(healthT0).NextProbeIn(noFast); got != noFast.Interval {
		t.Fatalf("start_interval 0: %s, want interval", got)
	}
}

func TestHealthMovingAverage(t *testing.T) {
	cfg := healthCfg(3, 1, 0)
	tr := NewHealthTracker(healthT0)
	tr = tr.Observe(ProbeResult{Pass: true, Duration: 10 * time.Millisecond, At: healthT0}, cfg)
	if tr.AvgResponse != 10*time.Millisecond {
		t.Fatalf("first sample: avg %s, want 10ms", tr.AvgResponse)
	}
	prev := tr.AvgResponse
	for i := range 60 {
		tr = tr.Observe(ProbeResult{Pass: true, Duration: 110 * time.Millisecond, At: healthT0}, cfg)
		if i < 10 && tr.AvgResponse <= prev {
			t.Fatalf("step %d: avg %s did not rise from %s toward 110ms", i, tr.AvgResponse, prev)
		}
		if tr.AvgResponse > 110*time.Millisecond {
			t.Fatalf("step %d: avg %s overshot 110ms", i, tr.AvgResponse)
		}
		prev = tr.AvgResponse
	}
	if d := 110*time.Millisecond - tr.AvgResponse; d > time.Millisecond {
		t.Fatalf("avg %s did not converge to 110ms", tr.AvgResponse)
	}
	// Failures are timed too, and move the average down again.
	tr = tr.Observe(ProbeResult{Pass: false, Duration: 10 * time.Millisecond, At: healthT0}, cfg)
	if tr.AvgResponse >= prev || tr.AvgResponse <= 10*time.Millisecond {
		t.Fatalf("avg %s did not move from %s toward 10ms", tr.AvgResponse, prev)
	}
}

func TestOnProbeGrid(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		now      time.Duration // after base
		d        time.Duration
		interval time.Duration
		want     time.Duration
	}{
		{"already on the grid keeps the interval", 3 * time.Millisecond, 5*time.Second - 3*time.Millisecond, 5 * time.Second, 5*time.Second - 3*time.Millisecond},
		{"late start rounds back to the grid", 20 * time.Millisecond, 5 * time.Second, 5 * time.Second, 4*time.Second + 980*time.Millisecond},
		{"off the grid moves at most half a step", 400 * time.Millisecond, 5 * time.Second, 5 * time.Second, 4*time.Second + 600*time.Millisecond},
		{"past the middle rounds up", 600 * time.Millisecond, 5 * time.Second, 5 * time.Second, 5*time.Second + 400*time.Millisecond},
		{"short intervals use half the interval as the step", 100 * time.Millisecond, time.Second, time.Second, time.Second - 100*time.Millisecond},
		{"never negative", 0, -time.Second, 5 * time.Second, 0},
		{"zero interval leaves the delay alone", 123 * time.Millisecond, 7 * time.Millisecond, 0, 7 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := base.Add(tc.now)
			got := onProbeGrid(now, tc.d, tc.interval)
			if got != tc.want {
				t.Fatalf("onProbeGrid(+%s, %s, %s) = %s, want %s", tc.now, tc.d, tc.interval, got, tc.want)
			}
			if tc.interval > 0 && now.Add(got).Sub(base)%min(probeGrid, tc.interval/2) != 0 {
				t.Fatalf("probe at +%s is off the grid", now.Add(got).Sub(base))
			}
		})
	}
}
