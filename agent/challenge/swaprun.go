package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// swapRunner runs one swap's phases away from the owner. It holds only what
// the phases use; the cut-over and the end go to the owner by message.
type swapRunner struct {
	job     *swapJob
	rt      Runtime
	store   Store
	obs     Observer
	clock   Clock
	prober  *Prober
	traffic Traffic
	images  images
	jobs    chan<- jobReport
}

func (c *Owner) swapRunner(job *swapJob) *swapRunner {
	return &swapRunner{job: job, rt: c.Runtime, store: c.Store, obs: c.Observer, clock: c.Clock, prober: c.Prober,
		traffic: c.Traffic, images: c.images(), jobs: c.jobs}
}

func (s *swapRunner) logf(level Level, msg string, err error, fields ...Field) {
	s.obs.Log(level, s.job.spec.Name, msg, err, fields...)
}

// setPhase persists the plan's next phase before the phase is acted on.
func (s *swapRunner) setPhase(ctx context.Context, phase string, change func(*SwapPlan)) error {
	plan := s.job.snapshot()
	if err := NextPhase(plan.Phase, phase); err != nil {
		return err
	}
	plan.Phase = phase
	plan.UpdatedAt = s.clock.Now()
	if change != nil {
		change(&plan)
	}
	_, err := s.store.Commit(Write{Challenge: plan.Challenge, Swap: &plan, Events: []Event{{Type: EventSwapPhase, Challenge: plan.Challenge,
		Phase: phase, From: plan.From, To: plan.To, Message: "swap " + plan.ID + ": " + phase}}})
	if err != nil {
		return fmt.Errorf("persist swap phase %s: %w", phase, err)
	}
	s.job.plan.Store(&plan)
	// The owner publishes the new phase at once, for the API and the
	// orphan reaper; it never waits on a runner, so this send is short.
	s.logf(LevelInfo, "swap phase", nil, F(FieldSwap, plan.ID), F(FieldPhase, phase), F(FieldFrom, plan.From), F(FieldTo, plan.To))
	report(ctx, s.jobs, msgSwapProgress{job: s.job})
	return nil
}

// run runs the phases up to the cut-over, then retires the old instance.
func (s *swapRunner) run(ctx context.Context) error {
	job, spec := s.job, s.job.spec
	tag, err := ResolveVersion(ctx, s.rt, spec.Image, job.requested)
	if err != nil {
		return s.fail(ctx, err)
	}
	if err := s.setPhase(ctx, PhasePulling, func(p *SwapPlan) { p.To, p.Delta = tag, VersionDelta(p.From, tag) }); err != nil {
		return err
	}
	if tag == job.snapshot().From && job.hash == job.fromHash && job.kind != swapAutoRollback && job.kind != swapRollback {
		return errSwapNoop
	}
	ref := spec.Image + ":" + tag
	digest, err := s.images.digest(ctx, spec.Name, spec.PullPolicy, ref, nil)
	if err != nil {
		return s.fail(ctx, err)
	}
	if spec.Digest != "" && digest != spec.Digest {
		return s.fail(ctx, fmt.Errorf("image %s has digest %q, but the challenge pins %s", ref, digest, spec.Digest))
	}

	// A swap is a planned stop of the old version: its state is exported
	// and stored. It is handed to the new version within a major version
	// (or across, when allowed); otherwise the new version gets the newest
	// snapshot it may use, as a rollback to an older major version does.
	handOff := HandOffAllowed(job.snapshot().From, tag, spec.State.AcrossMajor)
	var snapshot []byte
	if spec.State.Export != "" {
		if err := s.setPhase(ctx, PhaseExporting, nil); err != nil {
			return err
		}
		data, err := exportState(ctx, job.fromURL, spec.State.Export, spec.State.ExportLimit(), maxStateTransfer)
		if err == nil {
			_, err = s.store.PutSnapshot(Snapshot{Challenge: spec.Name, Version: job.snapshot().From, Data: data}, spec.State.Kept())
		}
		if err != nil && handOff {
			return s.fail(ctx, fmt.Errorf("export state: %w", err))
		}
		if handOff {
			snapshot = data
		}
	}
	if snapshot == nil && spec.State.Restores() {
		if snap, _, found, err := s.store.NewestSnapshot(spec.Name, usableSnapshot(tag, spec.State.AcrossMajor)); err == nil && found {
			snapshot = snap.Data
		}
	}

	slot := otherSlot(job.fromSlot)
	if err := s.setPhase(ctx, PhaseStarting, nil); err != nil {
		return err
	}
	in, err := s.startInSlot(ctx, ref, tag, slot)
	if err != nil {
		return s.fail(ctx, err)
	}
	if err := s.setPhase(ctx, PhaseWaitingHealthy, func(p *SwapPlan) { p.ToContainerID = in.ID }); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, spec, in.Address); err != nil {
		return s.fail(ctx, err)
	}
	if spec.State.Import != "" && snapshot != nil {
		if err := s.setPhase(ctx, PhaseImporting, nil); err != nil {
			return err
		}
		if err := importState(ctx, in.Address, spec.State.Import, snapshot); err != nil {
			return s.fail(ctx, fmt.Errorf("import state: %w", err))
		}
	}

	if err := s.setPhase(ctx, PhaseCuttingOver, nil); err != nil {
		return err
	}
	reply := make(chan error, 1)
	if !report(ctx, s.jobs, msgCutOver{job: job, inst: in, slot: slot, tag: tag, dig: digest, reply: reply}) {
		return ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return s.fail(ctx, err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	s.retireOld(ctx)
	return nil
}

// retireOld runs after the cut-over: it drains the old instance, then stops
// it (it is kept for rollback), unless a rollback routed back to it meanwhile.
func (s *swapRunner) retireOld(ctx context.Context) {
	job := s.job
	s.drain(ctx, job.routedBack, job.fromURL, job.spec.Update.DrainTimeout)
	if !job.beginStop() {
		return
	}
	s.stopPrevious(ctx, job.fromID, job.fromSpec.Restart.StopTimeout)
}

// stopPrevious stops a drained previous instance, even while berth stops.
func (s *swapRunner) stopPrevious(ctx context.Context, id string, timeout time.Duration) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
	defer cancel()
	if err := s.rt.Stop(stopCtx, id, timeout); err != nil {
		s.logf(LevelWarn, "stop previous container", err, F(FieldContainerID, ShortID(id)))
	}
}

// startInSlot starts the new version in slot, reusing a kept instance of
// exactly that version and spec (a fast rollback) or creating a fresh one.
func (s *swapRunner) startInSlot(ctx context.Context, ref, tag, slot string) (Instance, error) {
	job := s.job
	if old, err := s.rt.InSlot(ctx, job.spec.Name, slot); err == nil {
		reusable := old.Version == tag && old.SpecHash == job.hash && !old.Running && old.ForeignVolume == ""
		if reusable {
			if err := s.claimNew(ctx, old.ID); err != nil {
				return Instance{}, err
			}
			if s.rt.Start(ctx, old.ID) == nil {
				return s.rt.Inspect(ctx, old.ID)
			}
		}
		if err := s.rt.Remove(ctx, old.ID); err != nil {
			return Instance{}, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return Instance{}, err
	}
	spec, err := instanceSpec(job.spec, job.hash, ref, tag, slot)
	if err != nil {
		return Instance{}, err
	}
	created, err := s.rt.Create(ctx, spec)
	if err != nil {
		return Instance{}, err
	}
	id := created.ID
	if err := s.claimNew(ctx, id); err != nil {
		return Instance{}, err
	}
	if err := s.rt.Start(ctx, id); err != nil {
		return Instance{}, err
	}
	return s.rt.Inspect(ctx, id)
}

// claimNew records id as the swap's new instance, in the plan too, before
// it starts: the orphan reaper spares it and a crash-recovery removes it.
func (s *swapRunner) claimNew(ctx context.Context, id string) error {
	s.job.newID = id
	plan := s.job.snapshot()
	plan.ToContainerID = id
	plan.UpdatedAt = s.clock.Now()
	if _, err := s.store.Commit(Write{Challenge: plan.Challenge, Swap: &plan}); err != nil {
		return fmt.Errorf("persist the new container of swap %s: %w", plan.ID, err)
	}
	s.job.plan.Store(&plan)
	report(ctx, s.jobs, msgSwapProgress{job: s.job})
	return nil
}

// fail removes the new instance; the old one never stopped serving.
func (s *swapRunner) fail(ctx context.Context, cause error) error {
	if ctx.Err() != nil {
		return ctx.Err() // berth is stopping: the plan stays for recovery
	}
	_ = s.setPhase(ctx, PhaseRollingBack, func(p *SwapPlan) { p.Error = cause.Error() })
	if id := s.job.newID; id != "" {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.rt.Remove(rmCtx, id); err != nil {
			s.logf(LevelWarn, "remove container of failed swap", err)
		}
	}
	_ = s.setPhase(ctx, PhaseRolledBack, nil)
	return cause
}
