package challenge

import (
	"context"
	"time"
)

func (c *Owner) startProbe(ctx context.Context) {
	if c.probing || c.current == nil || c.current.Address == "" || !c.lifecycle.Probed() {
		return
	}
	c.probing = true
	of, url, cfg, tracker, prober, clock, jobs := c.current, c.current.Address+c.spec.Health.Path, c.spec.Health, c.tracker, c.Prober, c.Clock, c.jobs
	c.goJob(func() {
		r := prober.ProbeFor(ctx, url, cfg, tracker)
		r.At = clock.Now()
		report(ctx, jobs, msgProbed{of: of, r: r})
	})
}

func (c *Owner) onProbe(ctx context.Context, of *Instance, r ProbeResult) {
	if !c.lifecycle.Probed() || c.current == nil {
		return
	}
	if of != c.current {
		// The probe began before the instance was restarted, replaced or
		// cut over to: its answer (often a timeout of the hung instance
		// just restarted) says nothing about the current one, whose tracker
		// is fresh. Its own first probe was skipped while this one was in
		// flight; run it now.
		c.armProbe(0)
		return
	}
	c.handle.RecordProbe(sampleOf(r))
	before := c.tracker.State
	c.tracker = c.tracker.Observe(r, c.spec.Health)
	c.Observer.Probed(c.spec.Name, r.Pass, r.Duration)
	after := c.tracker.State
	now := c.Clock.Now()
	var events []Event
	if before != after {
		events = append(events, Event{Type: EventHealthChanged, Health: string(after), From: string(before), To: string(after),
			Error: c.tracker.LastError, Message: "health " + string(before) + " → " + string(after)})
		if after == HealthHealthy {
			c.rec.HealthySince = now
		} else {
			c.rec.HealthySince = time.Time{}
		}
	}
	// The backoff attempt count resets only after continuous health.
	if BackoffReset(after, c.rec.RestartAttempt, c.rec.HealthySince, now, c.spec.Restart.ResetAfter) {
		c.rec.RestartAttempt = 0
		events = append(events, Event{Type: EventBackoffReset, Message: "healthy for " + c.spec.Restart.ResetAfter.String()})
	}
	if after == HealthUnhealthy && c.spec.Restart.OnUnhealthy && c.standby != nil && c.standby.ready && !c.autoRollbackDue(now) {
		// The standby takes over in the same step: the endpoint never sees
		// the challenge unhealthy.
		c.restartUnhealthy(ctx, events...)
		return
	}
	if len(events) > 0 {
		c.persist(events...)
	} else {
		c.publish()
	}
	if after == HealthUnhealthy && c.autoRollbackDue(now) {
		if r := c.startSwap(ctx, c.rec.PreviousVersion, swapAutoRollback); r.err == nil {
			c.logf(LevelWarn, "new version unhealthy within rollback_window; rolling back", nil, F(FieldTo, c.rec.PreviousVersion))
			return
		}
	}
	if after == HealthUnhealthy && c.spec.Restart.OnUnhealthy {
		c.restartUnhealthy(ctx)
		return
	}
	c.reconcileStandby(ctx)
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
func (c *Owner) autoRollbackDue(now time.Time) bool {
	return AutoRollbackDue(c.spec.Update, c.swap != nil, c.rec.PreviousVersion, c.cutOverAt, now)
}
