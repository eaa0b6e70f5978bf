package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth/configs"
)

// onCutOver makes the new instance active: one transaction records the new
// active slot and the plan's cut-over, then the proxy routes to it.
func (c *Owner) onCutOver(m msgCutOver) {
	plan := m.job.snapshot()
	plan.Phase = PhaseDraining
	plan.CutOver = true
	plan.UpdatedAt = c.Clock.Now()
	slot := Slot{ContainerID: m.inst.ID, ContainerName: m.inst.Name, Image: m.job.spec.Image + ":" + m.tag,
		Version: m.tag, Digest: m.dig, SpecHash: m.job.hash, CreatedAt: c.Clock.Now()}
	ev := Event{Type: EventSwapPhase, Challenge: c.spec.Name, ContainerID: m.inst.ID, Version: m.tag,
		Phase: PhaseDraining, From: plan.From, To: m.tag, Message: "swap " + plan.ID + ": cut over to " + m.tag}
	m.reply <- c.cutOver(m.job, plan, m.slot, slot, m.inst, ev)
}

// cutOver makes in (in slot) active for job, in one transaction with the
// job's plan and events; the swap has then served its purpose, and only the
// old instance's drain remains.
func (c *Owner) cutOver(job *swapJob, plan SwapPlan, slot string, sr Slot, in Instance, events ...Event) error {
	rec := c.rec
	rec.Slots = make(map[string]Slot, len(c.rec.Slots)+1)
	for k, v := range c.rec.Slots {
		rec.Slots[k] = v
	}
	rec.Slots[slot] = sr
	rec.ActiveSlot = slot
	rec.Upstream = in.Address
	rec.PreviousVersion = c.rec.Version
	rec.Version = sr.Version
	rec.Digest = sr.Digest
	rec.StartedAt = in.StartedAt
	rec.RestartAttempt = 0
	if job.kind != swapConfig && job.kind != swapAuto {
		rec.DesiredVersion = job.requested
	}
	tracker := NewHealthTracker(c.Clock.Now())
	tracker.State, tracker.PassedOnce = HealthHealthy, true
	rec.Health = string(HealthHealthy)
	rec.HealthySince = c.Clock.Now()
	rec.UpdatedAt = c.Clock.Now()
	saved, err := c.Store.Commit(Write{Challenge: c.spec.Name, Runtime: &rec, Swap: &plan, Events: events})
	if err != nil {
		return fmt.Errorf("persist cut-over: %w", err)
	}
	for _, ev := range saved {
		c.Observer.Event(ev)
	}
	job.plan.Store(&plan)
	job.cutOver.Store(true)
	job.previous = job.fromID
	c.rec = rec
	c.spec = job.spec
	c.hash = job.hash
	c.current = &in
	c.tracker = tracker
	c.cutOverAt = c.Clock.Now()
	if c.swap == job {
		c.swap = nil
	}
	c.draining = job
	c.publish()
	c.armProbe(c.spec.Health.Interval)
	return nil
}

// routeBack rolls back a swap whose old instance still drains: that
// instance still runs and serves, so the rollback is a cut-over back to it,
// with no start and no health wait. The version rolled back from then drains
// in turn and is stopped and kept like any previous version.
func (c *Owner) routeBack(ctx context.Context, kind string) swapReply {
	old := c.draining
	oldPlan := old.snapshot()
	in, err := c.Runtime.Inspect(ctx, old.fromID)
	if err != nil || !in.Running {
		return swapReply{err: ErrSwapRunning} // the drain ends soon; roll back then
	}
	if !old.routeBack() {
		return swapReply{err: ErrSwapRunning} // its stop has begun
	}
	// The version rolled back from may have exited already (then it has no
	// current instance); its slot still names it.
	fromID, fromURL := c.rec.Slots[c.activeSlot()].ContainerID, ""
	if c.current != nil {
		fromID, fromURL = c.current.ID, c.current.Address
	}
	now := c.Clock.Now()
	job := &swapJob{kind: kind, requested: oldPlan.From, spec: old.fromSpec, hash: old.fromHash, fromID: fromID,
		fromSlot: c.activeSlot(), fromURL: fromURL, fromHash: c.hash, fromSpec: c.spec.Clone(), newID: old.fromID,
		startedAt: now, routedBack: make(chan struct{})}
	plan := SwapPlan{ID: newSwapID(), Challenge: c.spec.Name, Phase: PhaseDraining, From: c.rec.Version, To: oldPlan.From,
		Delta: VersionDelta(c.rec.Version, oldPlan.From), FromSlot: job.fromSlot, ToSlot: old.fromSlot, ToContainerID: old.fromID,
		CutOver: true, StartedAt: now, UpdatedAt: now}
	job.plan.Store(&plan)
	sr := c.rec.Slots[old.fromSlot]
	sr.ContainerID, sr.Version = old.fromID, oldPlan.From
	started := Event{Type: EventSwapStarted, Challenge: c.spec.Name, Version: plan.From, From: plan.From, To: plan.To,
		Phase: PhaseDraining, Message: fmt.Sprintf("%s %s → %s (%s): routed back to the draining container", kind, plan.From, plan.To, plan.ID)}
	cut := Event{Type: EventSwapPhase, Challenge: c.spec.Name, ContainerID: old.fromID, Version: plan.To,
		Phase: PhaseDraining, From: plan.From, To: plan.To, Message: "swap " + plan.ID + ": cut over to " + plan.To}
	if err := c.cutOver(job, plan, old.fromSlot, sr, in, started, cut); err != nil {
		// Nothing changed, but the old job saw the route-back and leaves its
		// instance running: drain and stop it here instead.
		c.logf(LevelError, "route back to the draining container", err)
		run := c.swapRunner(old)
		id, upstream, drainFor, stopFor := old.fromID, old.fromURL, old.spec.Update.DrainTimeout, old.fromSpec.Restart.StopTimeout
		c.goJob(func() {
			run.drain(ctx, nil, upstream, drainFor)
			run.stopPrevious(ctx, id, stopFor)
		})
		return swapReply{err: err}
	}
	c.lastSwap = job
	if c.lifecycle != Running {
		// A restart of the exited version was pending: the rollback replaces it.
		if c.actionTimer != nil {
			c.actionTimer.Stop()
			c.actionTimer = nil
		}
		// Nor may a bring-up waiting for the exited version's stop run
		// once that stop ends: it would adopt this instance a second time.
		c.upAfterStop = false
		c.imageGen++
		c.lastErr = ""
		c.setLifecycle(Running)
		c.persist()
	}
	run := c.swapRunner(job)
	c.goJob(func() {
		run.retireOld(ctx)
		report(ctx, run.jobs, msgSwapDone{job: job})
	})
	return swapReply{id: plan.ID, from: plan.From, to: plan.To}
}

// onSwapDone records how a swap ended and schedules removal of the kept
// previous instance.
func (c *Owner) onSwapDone(ctx context.Context, m msgSwapDone) {
	switch m.job {
	case c.swap:
		c.swap = nil
	case c.draining:
		c.draining = nil
	default:
		return // a rollback routed back to its old instance and took over
	}
	c.loadSnapshotInfo() // the swap stored its hand-off as a snapshot
	plan := m.job.snapshot()
	took := c.Clock.Now().Sub(m.job.startedAt)
	ev := Event{Type: EventSwapCompleted, Challenge: c.spec.Name, From: plan.From, To: plan.To, Phase: PhaseCompleted,
		Message: fmt.Sprintf("swap %s: %s → %s completed in %s", plan.ID, plan.From, plan.To, took.Round(time.Millisecond))}
	result := "completed"
	switch {
	case errors.Is(m.err, errSwapNoop):
		ev.Message = "swap " + plan.ID + ": " + plan.To + " is already running"
		result = "noop"
	case m.err != nil:
		c.badVersions[plan.To] = true
		plan.Phase, plan.Error = PhaseRolledBack, m.err.Error()
		ev.Type, ev.Phase, ev.Error = EventSwapFailed, PhaseRolledBack, m.err.Error()
		ev.Message = fmt.Sprintf("swap %s: %s → %s failed; %s keeps serving", plan.ID, plan.From, plan.To, plan.From)
		result = "failed"
	case m.job.kind == swapAutoRollback || m.job.kind == swapRollback:
		c.badVersions[plan.From] = m.job.kind == swapAutoRollback
		ev.Type = EventSwapRolledBack
		ev.Message = fmt.Sprintf("rolled back %s → %s", plan.From, plan.To)
		result = "rolled_back"
	}
	if m.err == nil || errors.Is(m.err, errSwapNoop) {
		plan.Phase = PhaseCompleted
	}
	c.Observer.SwapEnded(c.spec.Name, result, took)
	m.job.plan.Store(&plan)
	if m.job.cutOver.Load() && m.job.previous != "" {
		c.keepPrevious(m.job.previous, c.spec.Update.KeepPrevious)
	}
	c.closeSwapRecord(ev)
	if c.keepTimer == nil {
		c.armKept()
	}
	c.publish()
	if next := c.pendingSpec; next != nil {
		c.pendingSpec = nil
		c.applySpec(ctx, *next)
	}
}

// applySpec takes a changed spec (config reload or API update): a serving
// challenge swaps to it blue-green; otherwise it applies at the next start
// and clears a give-up.
func (c *Owner) applySpec(ctx context.Context, spec configs.Challenge) {
	if spec.SpecHash() == c.hash {
		// Only what steers berth alone changed (snapshots, pruning).
		interval := c.spec.State.SnapshotInterval
		c.spec = spec
		if spec.State.SnapshotInterval != interval {
			c.armSnapshots(true)
		}
		return
	}
	c.rec.DesiredVersion = ""
	if c.swap != nil || c.draining != nil || c.recoverTimer != nil || c.recoveryStop != "" {
		c.pendingSpec = &spec
		return
	}
	if c.current != nil && c.lifecycle == Running {
		if r := c.startSwapTo(ctx, spec, spec.Version, swapConfig); r.err == nil {
			return
		}
	}
	c.spec, c.hash = spec, spec.SpecHash()
	c.imageGen++ // a bring-up in progress starts over with the new spec
	c.rec.RestartTimes, c.rec.RestartAttempt = nil, 0
	if c.lifecycle == Failed && c.setLifecycle(Restarting) {
		c.persist(Event{Type: EventRestarting, Message: "spec changed; starting again"})
		c.armAction(0)
	}
}
