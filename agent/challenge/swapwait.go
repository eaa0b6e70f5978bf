package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// waitHealthy probes the new instance until it has passed success_threshold
// probes and stayed healthy for min_healthy_time, within healthy_deadline.
func (s *swapRunner) waitHealthy(ctx context.Context, spec configs.Challenge, upstream string) error {
	if upstream == "" {
		return errors.New("new container has no reachable address")
	}
	deadline := s.clock.Now().Add(spec.Update.HealthyDeadline)
	tracker := NewHealthTracker(s.clock.Now())
	var healthySince time.Time
	for {
		r := s.prober.ProbeFor(ctx, upstream+spec.Health.Path, spec.Health, tracker)
		r.At = s.clock.Now()
		tracker = tracker.Observe(r, spec.Health)
		switch {
		case tracker.State != HealthHealthy:
			healthySince = time.Time{}
		case healthySince.IsZero():
			healthySince = r.At
		}
		if !healthySince.IsZero() && r.At.Sub(healthySince) >= spec.Update.MinHealthyTime {
			return nil
		}
		if !r.At.Before(deadline) {
			last := tracker.LastError
			if last == "" {
				last = "health " + string(tracker.State)
			}
			return fmt.Errorf("new version not healthy within healthy_deadline %s (last: %s)", spec.Update.HealthyDeadline, last)
		}
		wait := max(0, tracker.NextProbeIn(spec.Health)-r.Spent)
		if !healthySince.IsZero() {
			wait = min(wait, spec.Update.MinHealthyTime-r.At.Sub(healthySince))
		}
		if !supervisor.Sleep(ctx, s.clock, min(wait, deadline.Sub(r.At)+time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// drain waits until the old upstream has no proxied request in flight, up to
// timeout or until stop closes, then drops idle connections to it.
func (s *swapRunner) drain(ctx context.Context, stop <-chan struct{}, upstream string, timeout time.Duration) {
	deadline := s.clock.Now().Add(timeout)
	// Requests that read the old address just before the cut-over count
	// themselves in right after; give them a moment.
	grace := 250 * time.Millisecond
	for {
		t := s.clock.NewTimer(grace)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		case <-t.C():
		}
		grace = 100 * time.Millisecond
		n := s.traffic.InFlight(upstream)
		if n == 0 || !s.clock.Now().Before(deadline) {
			if n > 0 {
				s.logf(LevelWarn, "drain timed out; stopping the previous container", nil, F("in_flight", n), F("drain_timeout", timeout.String()))
			}
			break
		}
	}
	s.traffic.CloseIdle()
}
