package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// reconcile brings desired state (the config's challenges) to life once the
// engine answers: network first, challenges no longer desired removed, then
// one supervised service per challenge.
func (a *Agent) reconcile(ctx context.Context, root *supervisor.Supervisor) error {
	for !a.watcher.dockerUp() {
		t := a.clock.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
	labels := docker.OwnerLabels(a.cfg.Agent.ID)
	if err := a.engine.EnsureNetwork(ctx, a.cfg.Agent.Network, labels); err != nil {
		return fmt.Errorf("ensure network %s: %w", a.cfg.Agent.Network, err)
	}
	if err := a.removeUndesired(ctx); err != nil {
		return err
	}
	for _, spec := range a.cfg.Challenges {
		changed, err := a.register(spec, "config")
		if err != nil {
			return err
		}
		h := a.dir.get(spec.Name)
		if h == nil {
			h = newChallengeHandle(spec.Name)
			a.dir.put(h)
		}
		if _, err := root.Add("challenge/"+spec.Name, newChallenge(a.shared, h, spec, changed)); err != nil {
			return err
		}
	}
	a.reconciled.Store(true)
	a.log.Info().Int("challenges", len(a.cfg.Challenges)).Msg("reconciled")
	return nil
}

// removeUndesired stops and removes challenges the store knows but the
// config no longer declares, containers first, records last.
func (a *Agent) removeUndesired(ctx context.Context) error {
	specs, err := a.store.ListSpecs()
	if err != nil {
		return fmt.Errorf("list stored challenges: %w", err)
	}
	for _, rec := range specs {
		if _, desired := a.cfg.Challenge(rec.Name); desired {
			continue
		}
		stopTimeout := configs.BuiltinDefaults().Restart.StopTimeout
		var old configs.Challenge
		if json.Unmarshal(rec.Spec, &old) == nil && old.Restart.StopTimeout > 0 {
			stopTimeout = old.Restart.StopTimeout
		}
		if err := a.removeChallengeContainers(ctx, rec.Name, stopTimeout); err != nil {
			return fmt.Errorf("remove challenge %s: %w", rec.Name, err)
		}
		err := a.store.Update(func(tx *statestore.Tx) error {
			if err := tx.DeleteSpec(rec.Name); err != nil {
				return err
			}
			if err := tx.DeleteRuntime(rec.Name); err != nil {
				return err
			}
			ev, err := tx.AppendEvent(statestore.Event{Type: "removed", Challenge: rec.Name, Message: "no longer in the desired state; containers removed"})
			if err == nil {
				logEvent(a.log.With().Str(fieldChallenge, rec.Name).Logger(), ev)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("forget challenge %s: %w", rec.Name, err)
		}
	}
	return nil
}

func (a *Agent) removeChallengeContainers(ctx context.Context, name string, stopTimeout time.Duration) error {
	labels := docker.OwnerLabels(a.cfg.Agent.ID)
	labels[docker.LabelChallenge] = name
	list, err := a.engine.List(ctx, labels)
	if err != nil {
		return err
	}
	for _, ct := range list {
		if ct.Running {
			if err := a.engine.Stop(ctx, ct.ID, stopTimeout); err != nil {
				return err
			}
		}
		if err := a.engine.Remove(ctx, ct.ID); err != nil {
			return err
		}
	}
	return nil
}

// register stores a challenge's desired spec before it is acted on and
// reports whether the entry differs from the one applied before.
func (a *Agent) register(spec configs.Challenge, source string) (changed bool, err error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	err = a.store.Update(func(tx *statestore.Tx) error {
		prev, ok, err := tx.GetSpec(spec.Name)
		if err != nil {
			return err
		}
		hash := spec.SpecHash()
		if ok && prev.SpecHash == hash {
			return nil
		}
		changed = ok
		if err := tx.PutSpec(statestore.SpecRecord{Name: spec.Name, Source: source, Spec: raw, SpecHash: hash, Applied: raw, UpdatedAt: a.clock.Now()}); err != nil {
			return err
		}
		if !ok {
			ev, err := tx.AppendEvent(statestore.Event{Type: "registered", Challenge: spec.Name, Version: spec.Version, Message: "registered from " + source})
			if err != nil {
				return err
			}
			logEvent(a.log.With().Str(fieldChallenge, spec.Name).Logger(), ev)
		}
		return nil
	})
	return changed, err
}

// publishRecorded lists the configured challenges at once, with what the
// store remembers, so the stable endpoint serves while berth starts.
func (a *Agent) publishRecorded() {
	for _, spec := range a.cfg.Challenges {
		h := newChallengeHandle(spec.Name)
		if rec, ok, err := a.store.GetRuntime(spec.Name); err == nil && ok {
			st := *h.status.Load()
			st.Image, st.Version, st.Digest = spec.Image, rec.Version, rec.Digest
			st.Restarts, st.LastExitCode, st.PreviousVersion = rec.Restarts, rec.LastExitCode, rec.PreviousVersion
			st.Endpoint = a.shared.proxyBase + "/" + spec.Name + "/"
			carryRecorded(&st, rec)
			h.status.Store(&st)
		}
		a.dir.put(h)
	}
}
