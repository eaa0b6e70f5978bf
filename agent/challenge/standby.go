package challenge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// standbySlotOf is where the warm standby of the instance in slot runs: in
// the same family (a and as, b and bs), so the target of a swap, the other
// family's first slot, never meets it. A promotion swaps the two.
func standbySlotOf(slot string) string {
	if s, ok := strings.CutSuffix(slot, "s"); ok {
		return s
	}
	return slot + "s"
}

// warmStandby is the second instance of a challenge with standby: started,
// probed and fed the state snapshots, but not routed to until promoted.
type warmStandby struct {
	in      *Instance
	tracker HealthTracker
	ready   bool // healthy, with the newest snapshot when state.restore
	probing bool
}

// wantStandby says whether a standby should run now: the active instance
// serves, of the spec in force, and no swap is under way.
func (c *Owner) wantStandby() bool {
	return c.spec.Standby && c.current != nil && c.lifecycle == Running && c.swap == nil && c.recovered &&
		c.tracker.State == HealthHealthy && c.rec.Slots[c.activeSlot()].SpecHash == c.hash
}

// reconcileStandby retires a standby that no longer fits (spec or version
// changed, standby turned off, the active instance moved) and starts one
// when wanted. It runs after every probe of the active instance.
func (c *Owner) reconcileStandby(ctx context.Context) {
	slot := standbySlotOf(c.activeSlot())
	c.removeStaleStandbys(ctx)
	if sb := c.standby; sb != nil && c.swap == nil &&
		(!c.spec.Standby || sb.in.Slot != slot || sb.in.SpecHash != c.hash || sb.in.Version != c.rec.Version) {
		c.retireStandby(ctx)
	}
	if c.standby != nil || c.standbyTimer != nil || c.stopping != "" || c.discarding[c.rec.Slots[slot].ContainerID] {
		return
	}
	if !c.wantStandby() {
		c.adoptRecordedStandby(ctx, slot)
		return
	}
	if err := c.startStandby(ctx, slot); err != nil {
		c.standbyLater("start standby; will retry", err, F(FieldSlot, slot))
	}
}

// standbyLater arms the next standby start after the cleanup backoff,
// which grows with each failure in a row.
func (c *Owner) standbyLater(msg string, err error, fields ...Field) {
	c.standbyAttempt++
	delay := cleanupBackoff.Delay(c.standbyAttempt, c.Rand())
	c.logf(LevelWarn, msg, err, append(fields, F(FieldRetryIn, delay.Round(time.Millisecond).String()))...)
	c.rearm(&c.standbyTimer, delay)
}

// adoptRecordedStandby takes over the running standby recorded in slot
// when berth restarted while no new one may start (a swap runs, the active
// instance is not healthy yet): it stays claimed and visible meanwhile.
func (c *Owner) adoptRecordedStandby(ctx context.Context, slot string) {
	if !c.spec.Standby || c.current == nil || !c.recovered {
		return
	}
	if in, _, ok := c.recordedStandby(ctx, slot); ok {
		c.standbyIs(in, "standby container running")
	}
}

// recordedStandby is the instance recorded in slot when it runs with the
// spec and version its record names.
func (c *Owner) recordedStandby(ctx context.Context, slot string) (Instance, Slot, bool) {
	rec, ok := c.rec.Slots[slot]
	if !ok || rec.ContainerID == "" {
		return Instance{}, rec, false
	}
	in, err := c.Runtime.Inspect(ctx, rec.ContainerID)
	ok = err == nil && in.Running && in.SpecHash == rec.SpecHash && in.Version == rec.Version
	return in, rec, ok
}

// removeStaleStandbys removes recorded instances no role claims any more:
// a standby left in the other family by a swap or a promotion that berth
// did not see through (it was stopped or killed meanwhile). Only
// challenges that have had a standby are looked at.
func (c *Owner) removeStaleStandbys(ctx context.Context) {
	if !c.recovered || c.current == nil || !c.hadStandby() {
		return
	}
	active, swapSlot := c.activeSlot(), ""
	if c.swap != nil {
		swapSlot = c.swap.snapshot().ToSlot
	}
	for slot, rec := range c.rec.Slots {
		switch {
		case slot == active, slot == standbySlotOf(active), slot == swapSlot, rec.ContainerID == "":
		case c.rec.Kept != nil && rec.ContainerID == c.rec.Kept.ContainerID:
		case c.draining != nil && rec.ContainerID == c.draining.fromID:
		case c.standby != nil && rec.ContainerID == c.standby.in.ID:
		case c.discarding[rec.ContainerID]:
		default:
			c.logf(LevelInfo, "removing a standby no longer in use", nil, F(FieldContainerID, ShortID(rec.ContainerID)), F(FieldSlot, slot))
			c.discard(ctx, slot, rec.ContainerID)
		}
	}
}

// hadStandby says whether a standby slot was ever recorded, or is wanted.
func (c *Owner) hadStandby() bool {
	if c.spec.Standby {
		return true
	}
	for slot := range c.rec.Slots {
		if strings.HasSuffix(slot, "s") {
			return true
		}
	}
	return false
}

// discard stops and removes the instance id recorded in slot, in a job;
// its record goes only once it is gone, so berth stopping meanwhile leaves
// it claimed and removed again at the next start, never orphaned.
func (c *Owner) discard(ctx context.Context, slot, id string) {
	if c.discarding == nil {
		c.discarding = map[string]bool{}
	}
	c.discarding[id] = true
	rt, timeout, jobs := c.Runtime, c.spec.Restart.StopTimeout, c.jobs
	c.goJob(func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
		defer cancel()
		_ = rt.Stop(stopCtx, id, timeout)
		err := rt.Remove(stopCtx, id)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		report(ctx, jobs, msgDiscarded{slot: slot, id: id, err: err})
	})
}

func (c *Owner) onDiscarded(m msgDiscarded) {
	delete(c.discarding, m.id)
	if m.err != nil {
		c.logf(LevelWarn, "remove a standby no longer in use; will retry", m.err, F(FieldContainerID, ShortID(m.id)))
		return
	}
	if rec, ok := c.rec.Slots[m.slot]; ok && rec.ContainerID == m.id {
		delete(c.rec.Slots, m.slot)
		c.persist()
	}
}

// startStandby adopts, starts again or creates the instance in slot.
func (c *Owner) startStandby(ctx context.Context, slot string) error {
	active := c.rec.Slots[c.activeSlot()]
	if rec, ok := c.rec.Slots[slot]; ok && rec.ContainerID != "" {
		in, err := c.Runtime.Inspect(ctx, rec.ContainerID)
		switch {
		case err == nil && in.SpecHash == c.hash && in.Version == c.rec.Version && in.ForeignVolume == "":
			if !in.Running {
				if err := c.Runtime.Start(ctx, in.ID); err != nil {
					return err
				}
				if in, err = c.Runtime.Inspect(ctx, in.ID); err != nil {
					return err
				}
			}
			c.standbyIs(in, "standby container running")
			return nil
		case err == nil:
			if err := c.Runtime.Remove(ctx, in.ID); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		delete(c.rec.Slots, slot)
	}
	if old, err := c.Runtime.InSlot(ctx, c.spec.Name, slot); err == nil {
		// Unrecorded (berth stopped between create and persist): replace it.
		if err := c.Runtime.Remove(ctx, old.ID); err != nil {
			return err
		}
	}
	spec, err := instanceSpec(c.spec, c.hash, active.Image, c.rec.Version, slot)
	if err != nil {
		return err
	}
	created, err := c.Runtime.Create(ctx, spec)
	if err != nil {
		return err
	}
	c.rec.Slots[slot] = Slot{ContainerID: created.ID, ContainerName: created.Name, Image: active.Image, Version: c.rec.Version,
		Digest: active.Digest, SpecHash: c.hash, CreatedAt: c.Clock.Now()}
	c.persist() // recorded before it starts, so a crash now cannot orphan it
	if err := c.Runtime.Start(ctx, created.ID); err != nil {
		return err
	}
	in, err := c.Runtime.Inspect(ctx, created.ID)
	if err != nil {
		return err
	}
	c.standbyIs(in, "standby container started")
	return nil
}

func (c *Owner) standbyIs(in Instance, msg string) {
	c.standby = &warmStandby{in: &in, tracker: NewHealthTracker(c.Clock.Now())}
	c.standbyAttempt = 0
	c.logf(LevelInfo, msg, nil, F(FieldContainerID, ShortID(in.ID)), F(FieldSlot, in.Slot))
	c.publish()
	c.rearm(&c.standbyProbeTimer, 0)
}

// retireStandby stops and removes the standby in a job and forgets it.
func (c *Owner) retireStandby(ctx context.Context) {
	sb := c.standby
	c.standby = nil
	if sb.in.Slot != c.activeSlot() {
		c.discard(ctx, sb.in.Slot, sb.in.ID)
	}
}

// probeStandby probes the standby in a job.
func (c *Owner) probeStandby(ctx context.Context) {
	sb := c.standby
	if sb == nil || sb.probing || sb.in.Address == "" {
		return
	}
	sb.probing = true
	of, url, cfg, tracker, prober, clock, jobs := sb.in, sb.in.Address+c.spec.Health.Path, c.spec.Health, sb.tracker, c.Prober, c.Clock, c.jobs
	c.goJob(func() {
		r := prober.ProbeFor(ctx, url, cfg, tracker)
		r.At = clock.Now()
		report(ctx, jobs, msgStandbyProbed{of: of, r: r})
	})
}

func (c *Owner) onStandbyProbed(ctx context.Context, m msgStandbyProbed) {
	sb := c.standby
	if sb == nil || sb.in != m.of {
		return
	}
	sb.probing = false
	sb.tracker = sb.tracker.Observe(m.r, c.spec.Health)
	switch st := sb.tracker.State; {
	case st == HealthUnhealthy:
		c.retireStandby(ctx)
		c.standbyLater("standby unhealthy; replacing it", nil, F(FieldContainerID, ShortID(sb.in.ID)))
		c.publish()
		return
	case st == HealthHealthy && !sb.ready:
		c.readyStandby(ctx)
	}
	next := sb.tracker.NextProbeIn(c.spec.Health) - m.r.Spent
	c.rearm(&c.standbyProbeTimer, max(0, next))
}

// readyStandby makes a healthy standby ready: with state.restore it first
// imports the newest usable snapshot, as a restarted container would.
func (c *Owner) readyStandby(ctx context.Context) {
	sb := c.standby
	if !c.spec.State.Restores() {
		c.standbyReady(sb)
		return
	}
	store, name, path, base, usable, jobs := c.Store, c.spec.Name, c.spec.State.Import, sb.in.Address, c.usableFor(c.rec.Version), c.jobs
	sb.probing = true // no probe overtakes the import
	c.goJob(func() {
		snap, _, found, err := store.NewestSnapshot(name, usable)
		if err == nil && found {
			err = importState(ctx, base, path, snap.Data)
		}
		report(ctx, jobs, msgStandbyFed{of: sb.in, err: err})
	})
}

func (c *Owner) onStandbyFed(ctx context.Context, m msgStandbyFed) {
	sb := c.standby
	if sb == nil || sb.in != m.of {
		return
	}
	sb.probing = false
	if m.err != nil {
		c.logf(LevelWarn, "standby state import failed; trying again at the next probe", m.err)
		sb.tracker.State = HealthUnknown // the next passing probe readies it again
		c.rearm(&c.standbyProbeTimer, c.spec.Health.Interval)
		return
	}
	if !sb.ready {
		c.standbyReady(sb)
	}
	c.rearm(&c.standbyProbeTimer, c.spec.Health.Interval)
}

func (c *Owner) standbyReady(sb *warmStandby) {
	sb.ready = true
	c.persist(Event{Type: EventStandbyReady, ContainerID: sb.in.ID, To: sb.in.Address,
		Message: fmt.Sprintf("standby %s ready in slot %s", ShortID(sb.in.ID), sb.in.Slot)})
}

// feedStandby hands a fresh snapshot to a ready standby, so a promotion
// loses no more than the snapshot interval.
func (c *Owner) feedStandby(ctx context.Context, snap Snapshot) {
	sb := c.standby
	if sb == nil || !sb.ready || sb.probing || c.spec.State.Import == "" || snap.Data == nil {
		return
	}
	sb.probing = true
	base, path, jobs, of := sb.in.Address, c.spec.State.Import, c.jobs, sb.in
	c.goJob(func() {
		report(ctx, jobs, msgStandbyFed{of: of, err: importState(ctx, base, path, snap.Data)})
	})
}

// promoteStandby makes a ready standby active when the active instance
// failed (cause: its exit, OOM kill or unhealthy event). The proxy moves at
// once; the failed instance restarts as the next standby after the
// challenge's backoff. False when there is no ready standby.
func (c *Owner) promoteStandby(failed *Instance, cause Event, before ...Event) bool {
	sb := c.standby
	if sb == nil || !sb.ready || c.swap != nil {
		return false
	}
	c.standby = nil
	c.current = sb.in
	c.tracker = sb.tracker
	c.rec.ActiveSlot = sb.in.Slot
	c.rec.StartedAt = sb.in.StartedAt
	c.rec.HealthySince = c.Clock.Now()
	c.rec.Restarts++
	events := append(append(before, cause, promotedEvent(sb.in, failed)), c.nextStandbyAfter(cause)...)
	c.Observer.Restarted(c.spec.Name, cause.Type)
	c.persist(events...)
	c.armProbe(0)
	return true
}

// promoteRecordedStandby serves from the standby recorded beside an active
// instance that stopped while berth was not running, as berth would have
// had it seen the exit; the stopped instance comes back as the next
// standby. exit is the stopped instance's exit event. False when no
// standby of the same version and spec runs there.
func (c *Owner) promoteRecordedStandby(ctx context.Context, failed Instance, exit Event) bool {
	if !c.spec.Standby || !c.recovered {
		return false
	}
	slot := standbySlotOf(c.activeSlot())
	in, rec, ok := c.recordedStandby(ctx, slot)
	if !ok || rec.SpecHash != c.hash || rec.Version != c.rec.Slots[c.activeSlot()].Version || in.ForeignVolume != "" {
		return false
	}
	c.rec.ActiveSlot = slot
	events := append([]Event{exit, promotedEvent(&in, &failed)}, c.nextStandbyAfter(exit)...)
	c.Observer.Restarted(c.spec.Name, exit.Type)
	c.serveFrom(ctx, in, rec.Version, rec.Digest, events...)
	return true
}

func promotedEvent(standby, failed *Instance) Event {
	return Event{Type: EventStandbyPromoted, ContainerID: standby.ID, From: ShortID(failed.ID), To: standby.Address,
		Message: fmt.Sprintf("standby %s promoted; %s restarts as the next standby", ShortID(standby.ID), ShortID(failed.ID))}
}

// nextStandbyAfter arms the start of the next standby after a promotion
// with the challenge's restart backoff for cause; at max_restarts it
// returns the gave_up event instead.
func (c *Owner) nextStandbyAfter(cause Event) []Event {
	d := DecideRestart(causeOf(cause.Type), c.spec.Restart, c.rec.RestartTimes, c.rec.RestartAttempt, c.Clock.Now(), c.Rand())
	c.rec.RestartTimes, c.rec.RestartAttempt = d.Times, d.Attempt
	if d.Action == GiveUp {
		c.standbyGaveUp = true
		return []Event{{Type: EventGaveUp, Message: fmt.Sprintf("%d restarts within %s; no new standby until restarted by an operator", len(d.Times), c.spec.Restart.Window)}}
	}
	c.rearm(&c.standbyTimer, d.Delay)
	return nil
}

// standbyDue starts the next standby after its backoff.
func (c *Owner) standbyDue(ctx context.Context) {
	if c.standbyGaveUp {
		return
	}
	if c.stopping != "" {
		c.rearm(&c.standbyTimer, 100*time.Millisecond) // the failed instance is still stopping
		return
	}
	c.reconcileStandby(ctx)
}

// onStandbyExit forgets a standby whose process ended; it starts again
// after the cleanup backoff.
func (c *Owner) onStandbyExit() {
	sb := c.standby
	c.standby = nil
	c.standbyLater("standby exited; starting it again", nil, F(FieldContainerID, ShortID(sb.in.ID)))
	c.publish()
}

// checkStandby confirms with the runtime that the standby still runs.
func (c *Owner) checkStandby(ctx context.Context) {
	in, err := c.Runtime.Inspect(ctx, c.standby.in.ID)
	if (err == nil && !in.Running) || errors.Is(err, ErrNotFound) {
		c.onStandbyExit()
	}
}

func runningIn(list []Instance, id string) bool {
	for _, in := range list {
		if in.ID == id && in.Running {
			return true
		}
	}
	return false
}
