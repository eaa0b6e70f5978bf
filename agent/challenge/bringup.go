package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// bringUp makes the challenge's instance run: adopt, start or create it.
// Pulls run as a job; the rest are short runtime calls.
func (c *Owner) bringUp(ctx context.Context) {
	if c.lifecycle == Failed && c.recovered {
		return
	}
	if c.RuntimeUp != nil && !c.RuntimeUp() {
		// Not a failure of the challenge; try again when the runtime answers.
		c.armAction(time.Second)
		return
	}
	if c.stopping != "" {
		c.upAfterStop = true // the stopped instance must not be adopted
		return
	}
	if c.imageJob {
		return // its answer continues the bring-up
	}
	// An interrupted swap and a kept instance are settled even for a
	// challenge that has given up: they outlive the give-up.
	if !c.recovered && c.recoverTimer == nil {
		c.retryRecovery(ctx)
	}
	if c.lifecycle == Failed {
		return
	}
	c.afterBringUp(ctx, c.ensureRunning(ctx))
}

// afterBringUp handles how a bring-up step ended; errPending means a job
// continues it.
func (c *Owner) afterBringUp(ctx context.Context, err error) {
	if errors.Is(err, errPending) {
		return
	}
	if err == nil && c.pendingSwap && c.recovered {
		c.pendingSwap = false
		if r := c.startSwap(ctx, c.spec.Version, swapConfig); r.err != nil {
			c.logf(LevelError, "swap to the changed config entry", r.err)
		}
	}
	if err == nil || ctx.Err() != nil {
		return
	}
	c.lastErr = err.Error()
	var refused *refusal
	if errors.As(err, &refused) {
		c.setLifecycle(Failed)
		c.persist(Event{Type: refused.event, Message: "start refused", Error: err.Error()})
		return
	}
	if errors.Is(err, ErrUnavailable) || (c.RuntimeUp != nil && !c.RuntimeUp()) {
		c.logf(LevelWarn, "runtime unavailable; will retry", err)
		c.armAction(time.Second)
		c.publish()
		return
	}
	c.scheduleRestart(Event{Type: EventStartFailed, Message: "could not start container", Error: err.Error()})
}

// errPending: a job was started and will continue the bring-up.
var errPending = errors.New("pending")

// refusal is an error retrying cannot fix; the challenge waits in failed
// until its spec changes or an operator restarts it.
type refusal struct {
	event string
	err   error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// activeSlot is the slot of the serving instance.
func (c *Owner) activeSlot() string {
	if c.rec.ActiveSlot == "" {
		return slotA
	}
	return c.rec.ActiveSlot
}

func (c *Owner) ensureRunning(ctx context.Context) error {
	active := c.activeSlot()
	if slot, ok := c.rec.Slots[active]; !ok || slot.ContainerID == "" {
		c.claimInSlot(ctx, active)
	}
	if slot, ok := c.rec.Slots[active]; ok && slot.ContainerID != "" {
		done, err := c.reuse(ctx, slot)
		if done || err != nil {
			return err
		}
	}
	c.startImageJob(ctx)
	return errPending
}

// startImageJob resolves the version and makes its image present (pulling
// if the policy says so) in a job, so the owner keeps answering meanwhile.
func (c *Owner) startImageJob(ctx context.Context) {
	c.imageJob = true
	gen, spec, rt, images := c.imageGen, c.spec, c.Runtime, c.images()
	c.goJob(func() {
		tag, err := ResolveVersion(ctx, rt, spec.Image, spec.Version)
		if err != nil {
			report(ctx, c.jobs, msgImage{gen: gen, err: err})
			return
		}
		ref := spec.Image + ":" + tag
		digest, err := images.digest(ctx, spec.Name, spec.PullPolicy, ref, func() {
			report(ctx, c.jobs, msgPulling{gen: gen, ref: ref})
		})
		report(ctx, c.jobs, msgImage{gen: gen, tag: tag, ref: ref, digest: digest, err: err})
	})
}

// onImage continues a bring-up once its image is present.
func (c *Owner) onImage(ctx context.Context, m msgImage) {
	c.imageJob = false
	if m.gen != c.imageGen {
		// The spec changed or a restart was asked for meanwhile: begin again.
		if c.actionTimer == nil && c.current == nil && c.lifecycle != Failed {
			c.armAction(0)
		}
		return
	}
	err := m.err
	if err == nil && c.spec.Digest != "" && m.digest != c.spec.Digest {
		err = &refusal{event: EventDigestMismatch, err: fmt.Errorf("image %s has digest %q, but the challenge pins %s", m.ref, m.digest, c.spec.Digest)}
	}
	if err == nil {
		err = c.createAndStart(ctx, m.ref, m.tag, m.digest)
	}
	c.afterBringUp(ctx, err)
}

// claimInSlot finds this challenge's instance in slot when no record names
// it (a lost store, or a crash between create and persist), so it is
// adopted instead of duplicated.
func (c *Owner) claimInSlot(ctx context.Context, slot string) {
	in, err := c.Runtime.InSlot(ctx, c.spec.Name, slot)
	if err != nil {
		return
	}
	c.rec.Slots[slot] = Slot{ContainerID: in.ID, ContainerName: in.Name, Image: in.Image,
		Version: in.Version, SpecHash: in.SpecHash, CreatedAt: c.Clock.Now()}
	c.logf(LevelInfo, "found unrecorded container by name", nil, F(FieldContainerID, ShortID(in.ID)))
}

// reuse adopts a running instance of the current spec or starts a stopped
// one again (the fast path after a crash). done=false means create anew.
func (c *Owner) reuse(ctx context.Context, slot Slot) (bool, error) {
	in, err := c.Runtime.Inspect(ctx, slot.ContainerID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if in.ForeignVolume != "" {
		// Made before volumes were namespaced: replace it like a changed spec.
		c.logf(LevelWarn, "container mounts a volume outside its namespace; replacing it", nil,
			F(FieldContainerID, ShortID(in.ID)), F("volume", in.ForeignVolume))
		slot.SpecHash = ""
		if s, ok := c.rec.Slots[c.activeSlot()]; ok && s.ContainerID == in.ID {
			s.SpecHash = ""
			c.rec.Slots[c.activeSlot()] = s
		}
	}
	if slot.SpecHash != c.hash && in.Running {
		// Serve on with the old spec while a blue-green swap brings in the new.
		c.logf(LevelInfo, "spec changed; swapping to it", nil, F(FieldContainerID, ShortID(in.ID)))
		c.adopt(ctx, in)
		c.pendingSwap = true
		return true, nil
	}
	if slot.SpecHash != c.hash {
		c.logf(LevelInfo, "spec changed; replacing stopped container", nil, F(FieldContainerID, ShortID(in.ID)))
		return false, c.Runtime.Remove(ctx, in.ID)
	}
	if in.Running {
		c.adopt(ctx, in)
		return true, nil
	}
	if c.lifecycle == Registered {
		// It stopped while no berth was watching: record that exit like any other.
		code := in.ExitCode
		c.rec.LastExitCode = &code
		c.rec.Restarts++
		ev := Event{Type: EventExited, ContainerID: in.ID, ExitCode: &code, OOM: in.OOMKilled,
			Message: fmt.Sprintf("container exited with code %d while berth was not running", code)}
		if in.OOMKilled {
			ev.Type = EventOOMKilled
		}
		if c.promoteRecordedStandby(ctx, in, ev) {
			return true, nil
		}
		c.persist(ev)
	}
	c.setLifecycle(Starting)
	c.publish() // the record already names this instance; "started" is persisted next
	if err := c.Runtime.Start(ctx, in.ID); err != nil {
		c.logf(LevelWarn, "starting existing container failed; recreating", err)
		return false, c.Runtime.Remove(ctx, in.ID)
	}
	in, err = c.Runtime.Inspect(ctx, in.ID)
	if err != nil {
		return false, err
	}
	c.started(ctx, in, slot.Version, slot.Digest)
	return true, nil
}

func (c *Owner) createAndStart(ctx context.Context, ref, tag, digest string) error {
	slot := c.activeSlot()
	spec, err := instanceSpec(c.spec, c.hash, ref, tag, slot)
	if err != nil {
		return &refusal{event: EventStartFailed, err: err}
	}
	c.setLifecycle(Starting)
	c.persist()
	created, err := c.Runtime.Create(ctx, spec)
	if errors.Is(err, ErrConflict) {
		// An instance of that deterministic name exists but no record
		// claims it (e.g. berth died between create and persist): replace it.
		if old, ierr := c.Runtime.InSlot(ctx, c.spec.Name, slot); ierr == nil {
			if rerr := c.Runtime.Remove(ctx, old.ID); rerr != nil {
				return rerr
			}
			created, err = c.Runtime.Create(ctx, spec)
		}
	}
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return &refusal{event: EventStartFailed, err: err}
		}
		return err
	}
	id := created.ID
	c.rec.Slots[slot] = Slot{ContainerID: id, ContainerName: created.Name, Image: ref, Version: tag,
		Digest: digest, SpecHash: c.hash, CreatedAt: c.Clock.Now()}
	c.rec.ActiveSlot = slot
	c.persist() // record the id before starting, so a crash now cannot orphan it
	if err := c.Runtime.Start(ctx, id); err != nil {
		return err
	}
	in, err := c.Runtime.Inspect(ctx, id)
	if err != nil {
		return err
	}
	c.started(ctx, in, tag, digest)
	return nil
}

// started records an instance that is now running and begins probing it;
// its state is restored before it serves.
func (c *Owner) started(ctx context.Context, in Instance, version, digest string) {
	c.serveFrom(ctx, in, version, digest, Event{Type: EventStarted, ContainerID: in.ID, Message: "container started", To: in.Address})
}

// serveFrom makes the running instance in the active one, recording events.
func (c *Owner) serveFrom(ctx context.Context, in Instance, version, digest string, events ...Event) {
	c.current = &in
	c.rec.Version = version
	c.rec.Digest = digest
	c.rec.StartedAt = in.StartedAt
	c.rec.ActiveSlot = c.activeSlot()
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.Clock.Now())
	c.setLifecycle(Running)
	c.persist(events...)
	c.armProbe(0)
	c.armSnapshots(true)
	c.beginRestore(ctx)
}

// adopt takes over an instance that is already running (after berth
// restarted); one that was migrating gets its state first.
func (c *Owner) adopt(ctx context.Context, in Instance) {
	c.current = &in
	slot := c.rec.Slots[c.activeSlot()]
	c.rec.Version = slot.Version
	c.rec.Digest = slot.Digest
	// Keep the recorded health so clients never see a healthy instance flip to unknown.
	c.tracker = NewHealthTracker(in.StartedAt)
	if h := Health(c.rec.Health); h != "" {
		c.tracker.State = h
		c.tracker.PassedOnce = h == HealthHealthy || h == HealthDegraded
	}
	c.setLifecycle(Running)
	c.persist(Event{Type: EventAdopted, ContainerID: in.ID, Message: "adopted running container", To: in.Address})
	c.armProbe(0)
	c.armSnapshots(true)
	if c.resumeRestore {
		c.resumeRestore = false
		c.beginRestore(ctx)
	}
}
