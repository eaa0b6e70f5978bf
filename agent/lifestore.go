package agent

import (
	"errors"

	"berth/agent/challenge"
	"berth/statestore"
)

// lifeStore is the lifecycle's Store on the state store. The two sets of
// records match field for field; the conversions below are all that joins
// them (records_test.go checks that no field is lost either way).
type lifeStore struct{ s *statestore.Store }

var _ challenge.Store = lifeStore{}

func (l lifeStore) Runtime(name string) (challenge.Record, bool, error) {
	r, ok, err := l.s.GetRuntime(name)
	return fromRuntime(r), ok, err
}

func (l lifeStore) Swap(name string) (challenge.SwapPlan, bool, error) {
	p, ok, err := l.s.GetSwap(name)
	return challenge.SwapPlan(p), ok, err
}

func (l lifeStore) PutSnapshot(snap challenge.Snapshot, keep int) (challenge.Snapshot, error) {
	saved, err := l.s.PutSnapshot(statestore.Snapshot{Challenge: snap.Challenge, Version: snap.Version, Data: snap.Data, Created: snap.At}, keep)
	return fromSnapshot(saved), err
}

func (l lifeStore) Snapshots(name string) ([]challenge.Snapshot, error) {
	list, err := l.s.Snapshots(name)
	out := make([]challenge.Snapshot, len(list))
	for i, s := range list {
		out[i] = fromSnapshot(s)
	}
	return out, err
}

func (l lifeStore) SnapshotBySeq(name string, seq uint64) (challenge.Snapshot, error) {
	snap, err := l.s.SnapshotBySeq(name, seq)
	switch {
	case errors.Is(err, statestore.ErrNoSnapshot):
		err = errors.Join(challenge.ErrNotFound, err)
	case errors.Is(err, statestore.ErrSnapshotCorrupt):
		err = errors.Join(challenge.ErrSnapshotCorrupt, err)
	}
	return fromSnapshot(snap), err
}

func (l lifeStore) NewestSnapshot(name string, usable func(challenge.Snapshot) bool) (challenge.Snapshot, []uint64, bool, error) {
	pick, err := l.s.NewestSnapshot(name, func(s statestore.Snapshot) bool { return usable == nil || usable(fromSnapshot(s)) })
	return fromSnapshot(pick.Snapshot), pick.Corrupt, pick.Found, err
}

func fromSnapshot(s statestore.Snapshot) challenge.Snapshot {
	return challenge.Snapshot{Challenge: s.Challenge, Seq: s.Seq, Version: s.Version, Data: s.Data, SHA256: s.SHA256, Bytes: s.Bytes, At: s.Created}
}

// Commit applies w in one transaction.
func (l lifeStore) Commit(w challenge.Write) ([]challenge.Event, error) {
	var saved []challenge.Event
	err := l.s.Update(func(tx *statestore.Tx) error {
		saved = saved[:0]
		if w.Runtime != nil {
			if err := tx.PutRuntime(toRuntime(*w.Runtime)); err != nil {
				return err
			}
		}
		if w.Swap != nil {
			if err := tx.PutSwap(statestore.SwapPlan(*w.Swap)); err != nil {
				return err
			}
		}
		if w.DeleteSwap {
			if err := tx.DeleteSwap(w.Challenge); err != nil {
				return err
			}
		}
		for _, ev := range w.Events {
			ev, err := tx.AppendEvent(statestore.Event(ev))
			if err != nil {
				return err
			}
			saved = append(saved, challenge.Event(ev))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return saved, nil
}

func fromRuntime(r statestore.RuntimeRecord) challenge.Record {
	out := challenge.Record{Name: r.Name, Lifecycle: r.Lifecycle, Health: r.Health, ActiveSlot: r.ActiveSlot,
		Version: r.Version, Digest: r.Digest, PreviousVersion: r.PreviousVersion, DesiredVersion: r.DesiredVersion,
		Upstream: r.Upstream, Restarts: r.Restarts, RestartAttempt: r.RestartAttempt, RestartTimes: r.RestartTimes,
		LastExitCode: r.LastExitCode, StartedAt: r.StartedAt, HealthySince: r.HealthySince, UpdatedAt: r.UpdatedAt}
	if r.Slots != nil {
		out.Slots = make(map[string]challenge.Slot, len(r.Slots))
		for k, v := range r.Slots {
			out.Slots[k] = challenge.Slot(v)
		}
	}
	if r.Kept != nil {
		k := challenge.Kept(*r.Kept)
		out.Kept = &k
	}
	return out
}

func toRuntime(r challenge.Record) statestore.RuntimeRecord {
	out := statestore.RuntimeRecord{Name: r.Name, Lifecycle: r.Lifecycle, Health: r.Health, ActiveSlot: r.ActiveSlot,
		Version: r.Version, Digest: r.Digest, PreviousVersion: r.PreviousVersion, DesiredVersion: r.DesiredVersion,
		Upstream: r.Upstream, Restarts: r.Restarts, RestartAttempt: r.RestartAttempt, RestartTimes: r.RestartTimes,
		LastExitCode: r.LastExitCode, StartedAt: r.StartedAt, HealthySince: r.HealthySince, UpdatedAt: r.UpdatedAt}
	if r.Slots != nil {
		out.Slots = make(map[string]statestore.SlotRecord, len(r.Slots))
		for k, v := range r.Slots {
			out.Slots[k] = statestore.SlotRecord(v)
		}
	}
	if r.Kept != nil {
		k := statestore.KeptContainer(*r.Kept)
		out.Kept = &k
	}
	return out
}
