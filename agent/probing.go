package agent

import (
	"context"
	"time"

	"berth/statestore"
)

func (c *challenge) startProbe(ctx context.Context) {
	if c.probing || c.current == nil || c.upstream == "" || c.lifecycle != Running {
		return
	}
	c.probing = true
	url, cfg, tracker := c.upstream+c.spec.Health.Path, c.spec.Health, c.tracker
	c.probes.Add(1)
	go func() {
		defer c.probes.Done()
		r := c.prober.ProbeFor(ctx, url, cfg, tracker)
		r.At = c.clock.Now()
		select {
		case c.probeResults <- r:
		case <-ctx.Done():
		}
	}()
}

func (c *challenge) onProbe(ctx context.Context, r ProbeResult) {
	if c.lifecycle != Running || c.current == nil {
		return
	}
	before := c.tracker.State
	c.tracker = c.tracker.Observe(r, c.spec.Health)
	c.metrics.probeDuration.WithLabelValues(c.spec.Name).Observe(r.Duration.Seconds())
	result := "pass"
	if !r.Pass {
		result = "fail"
	}
	c.metrics.probes.WithLabelValues(c.spec.Name, result).Inc()
	after := c.tracker.State
	now := c.clock.Now()
	var events []statestore.Event
	if before != after {
		events = append(events, statestore.Event{Type: "health_changed", Health: string(after), From: string(before), To: string(after),
			Error: c.tracker.LastError, Message: "health " + string(before) + " → " + string(after)})
		if after == HealthHealthy {
			c.rec.HealthySince = now
		} else {
			c.rec.HealthySince = time.Time{}
		}
	}
	// The backoff attempt count resets only after continuous health.
	if after == HealthHealthy && c.rec.RestartAttempt > 0 && !c.rec.HealthySince.IsZero() &&
		now.Sub(c.rec.HealthySince) >= c.spec.Restart.ResetAfter {
		c.rec.RestartAttempt = 0
		events = append(events, statestore.Event{Type: "backoff_reset", Message: "healthy for " + c.spec.Restart.ResetAfter.String()})
	}
	if len(events) > 0 {
		c.persist(events...)
	} else {
		c.publish()
	}
	if after == HealthUnhealthy && c.autoRollbackDue(now) {
		if r := c.startSwap(ctx, c.rec.PreviousVersion, swapAutoRollback); r.err == nil {
			c.log.Warn().Str("to", c.rec.PreviousVersion).Msg("new version unhealthy within rollback_window; rolling back")
			return
		}
	}
	if after == HealthUnhealthy && c.spec.Restart.OnUnhealthy {
		c.restartUnhealthy(ctx)
		return
	}
	// Probes keep their cadence even when each one takes its full timeout.
	next := c.tracker.NextProbeIn(c.spec.Health) - r.Spent
	if c.tracker.PassedOnce {
		next = onProbeGrid(now, next, c.spec.Health.Interval)
	}
	c.armProbe(max(0, next))
}

// onProbeGrid moves a steady-state probe due after d to the nearest point of
// a grid shared by every challenge, so the agent wakes once per grid step for
// a batch of probes rather than once per probe: waking from idle costs more
// than the probe itself. Once on the grid, probes keep their exact interval;
// getting there moves one probe by at most half a grid step.
func onProbeGrid(now time.Time, d, interval time.Duration) time.Duration {
	grain := min(probeGrid, interval/2)
	if grain <= 0 {
		return d
	}
	return max(0, now.Add(d).Round(grain).Sub(now))
}

// probeGrid is the step of the shared probe grid.
const probeGrid = time.Second

// autoRollbackDue: the version cut over recently turned unhealthy.
func (c *challenge) autoRollbackDue(now time.Time) bool {
	return c.spec.Update.AutoRollback && c.swap == nil && c.rec.PreviousVersion != "" &&
		!c.cutOverAt.IsZero() && now.Sub(c.cutOverAt) < c.spec.Update.RollbackWindow
}
