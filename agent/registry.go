package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"berth/agent/challenge"
	"berth/configs"
	"berth/statestore"
)

// The registry: what the store remembers of each challenge's desired state,
// and how a challenge nobody desires any more is removed.

// removeUndesired stops and removes challenges the store knows but nothing
// desires any more, containers first, records last.
func (a *Agent) removeUndesired(ctx context.Context, desired map[string]configs.Challenge) error {
	specs, err := a.store.ListSpecs()
	if err != nil {
		return fmt.Errorf("list stored challenges: %w", err)
	}
	for _, rec := range specs {
		if _, ok := desired[rec.Name]; ok {
			continue
		}
		if a.dir.Get(rec.Name) != nil && a.reconciled.Load() {
			continue // running: the reconciler stops its service first
		}
		if err := a.forget(ctx, rec.Name); err != nil {
			return err
		}
	}
	return nil
}

// forget removes a challenge's containers, then its records.
func (a *Agent) forget(ctx context.Context, name string) error {
	stopTimeout := configs.BuiltinDefaults().Restart.StopTimeout
	if rec, ok, err := a.store.GetSpec(name); err == nil && ok {
		var old configs.Challenge
		if json.Unmarshal(rec.Spec, &old) == nil && old.Restart.StopTimeout > 0 {
			stopTimeout = old.Restart.StopTimeout
		}
	}
	if err := a.removeChallengeContainers(ctx, name, stopTimeout); err != nil {
		return fmt.Errorf("remove challenge %s: %w", name, err)
	}
	err := a.store.Update(func(tx *statestore.Tx) error {
		for _, del := range []func(string) error{tx.DeleteSpec, tx.DeleteRuntime, tx.DeleteSwap} {
			if err := del(name); err != nil {
				return err
			}
		}
		ev, err := tx.AppendEvent(statestore.Event{Type: challenge.EventRemoved, Challenge: name, Message: "no longer in the desired state; containers removed"})
		if err == nil {
			logEvent(a.log.With().Str(fieldChallenge, name).Logger(), challenge.Event(ev))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("forget challenge %s: %w", name, err)
	}
	return nil
}

func (a *Agent) removeChallengeContainers(ctx context.Context, name string, stopTimeout time.Duration) error {
	list, err := a.runtime.List(ctx)
	if err != nil {
		return err
	}
	for _, ct := range list {
		if ct.Challenge != name {
			continue
		}
		if ct.Running {
			if err := a.runtime.Stop(ctx, ct.ID, stopTimeout); err != nil {
				return err
			}
		}
		if err := a.runtime.Remove(ctx, ct.ID); err != nil {
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
			ev, err := tx.AppendEvent(statestore.Event{Type: challenge.EventRegistered, Challenge: spec.Name, Version: spec.Version, Message: "registered from " + source})
			if err != nil {
				return err
			}
			logEvent(a.log.With().Str(fieldChallenge, spec.Name).Logger(), challenge.Event(ev))
		}
		return nil
	})
	return changed, err
}

// publishRecorded lists the configured challenges at once, with what the
// store remembers, so the stable endpoint serves while berth starts.
func (a *Agent) publishRecorded() {
	cfg := a.config()
	specs := append([]configs.Challenge(nil), cfg.Challenges...)
	if stored, err := a.store.ListSpecs(); err == nil {
		for _, rec := range stored {
			if _, inConfig := cfg.Challenge(rec.Name); inConfig || rec.Source != "api" {
				continue
			}
			if c, err := storedAPISpec(cfg, rec); err == nil {
				specs = append(specs, c)
			}
		}
	}
	for _, spec := range specs {
		h := challenge.NewHandle(spec.Name)
		if rec, ok, err := a.store.GetRuntime(spec.Name); err == nil && ok {
			st := *h.Status()
			st.Image, st.Endpoint = spec.Image, a.deps.Endpoint+"/"+spec.Name+"/"
			challenge.CarryRecorded(&st, fromRuntime(rec))
			h.SetStatus(&st)
		}
		a.dir.Put(h)
	}
}

// specRefusedError is an API spec the config in force refuses.
type specRefusedError struct{ err error }

func (e *specRefusedError) Error() string { return e.err.Error() }
func (e *specRefusedError) Unwrap() error { return e.err }

// storedAPISpec decodes a spec stored from the admin API and checks it again
// against cfg: a spec stored by an older berth, restored from a checkpoint or
// admitted before a reload tightened the policy must not run unchecked.
func storedAPISpec(cfg *configs.Config, rec statestore.SpecRecord) (configs.Challenge, error) {
	var c configs.Challenge
	if err := json.Unmarshal(rec.Spec, &c); err != nil {
		return c, fmt.Errorf("stored spec is unreadable: %w", err)
	}
	if c.Name != rec.Name {
		return c, fmt.Errorf("stored spec names %q", c.Name)
	}
	if err := cfg.CheckAPIChallenge(c); err != nil {
		return c, err
	}
	return c, nil
}

// refuseStored records that a stored API spec will not run; the reconciler
// then removes it like any challenge nobody desires.
func (a *Agent) refuseStored(name string, err error) {
	log := a.log.With().Str(fieldChallenge, name).Logger()
	log.Error().Err(err).Msg("stored API spec refused by the config in force; its containers are removed")
	ev, aerr := a.store.AppendEvent(statestore.Event{Type: challenge.EventRefused, Challenge: name,
		Message: "stored API spec refused by the config in force (register it again once it is allowed): " + err.Error()})
	if aerr == nil {
		logEvent(log, challenge.Event(ev))
	}
}
