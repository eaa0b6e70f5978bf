package agent

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/statestore"
	"berth/supervisor"
)

// orphanReaper removes containers carrying this agent's labels that no
// record claims, once they have stayed unclaimed for the grace period.
// Instances of other agent ids are never listed, so never touched.
type orphanReaper struct {
	runtime challenge.Runtime
	store   *statestore.Store
	dir     *challenge.Directory
	clock   supervisor.Clock
	grace   time.Duration
	log     zerolog.Logger
	ready   func() bool // reaping waits for the first reconcile

	firstSeen map[string]time.Time // owned by Serve
}

func (o *orphanReaper) Serve(ctx context.Context) error {
	o.firstSeen = map[string]time.Time{}
	period := min(max(o.grace/2, time.Second), 30*time.Second)
	for supervisor.Sleep(ctx, o.clock, period) {
		if o.ready() {
			o.sweep(ctx)
		}
	}
	return nil
}

// claimed is every container id a challenge record, swap plan, live swap
// or status refers to. A swap's new container joins the slots only at the
// cut-over, and may take longer than the grace to become healthy.
func (o *orphanReaper) claimed() (map[string]bool, error) {
	recs, err := o.store.ListRuntime()
	if err != nil {
		return nil, err
	}
	plans, err := o.store.ListSwaps()
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, r := range recs {
		for _, slot := range r.Slots {
			ids[slot.ContainerID] = true
		}
	}
	for _, p := range plans {
		ids[p.ToContainerID] = true
	}
	for _, h := range o.dir.List() {
		for _, id := range h.Status().Claims() {
			ids[id] = true
		}
	}
	delete(ids, "")
	return ids, nil
}

func (o *orphanReaper) sweep(ctx context.Context) {
	list, err := o.runtime.List(ctx)
	if err != nil {
		return // the watcher reports engine trouble
	}
	claimed, err := o.claimed()
	if err != nil {
		o.log.Error().Err(err).Msg("read records for orphan check")
		return
	}
	now := o.clock.Now()
	present := map[string]bool{}
	for _, ct := range list {
		present[ct.ID] = true
		if claimed[ct.ID] {
			delete(o.firstSeen, ct.ID)
			continue
		}
		seen, ok := o.firstSeen[ct.ID]
		if !ok {
			o.firstSeen[ct.ID] = now
			continue
		}
		if now.Sub(seen) < o.grace {
			continue
		}
		if err := o.runtime.Remove(ctx, ct.ID); err != nil {
			o.log.Warn().Err(err).Str(fieldContainerID, challenge.ShortID(ct.ID)).Msg("remove orphan container")
			continue
		}
		delete(o.firstSeen, ct.ID)
		ev, err := o.store.AppendEvent(statestore.Event{Type: challenge.EventOrphanRemoved, Challenge: ct.Challenge,
			ContainerID: ct.ID, Version: ct.Version, Message: "removed container " + ct.Name + " that no record claims"})
		if err != nil {
			ev = statestore.Event{Type: challenge.EventOrphanRemoved, ContainerID: ct.ID}
		}
		logEvent(o.log, challenge.Event(ev))
	}
	for id := range o.firstSeen {
		if !present[id] {
			delete(o.firstSeen, id)
		}
	}
}
