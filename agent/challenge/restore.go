package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth/supervisor"
)

// Errors of state requests.
var (
	ErrNoState     = errors.New("the challenge declares no state paths")
	ErrNotServing  = errors.New("the challenge has no serving container")
	ErrStateBusy   = errors.New("a state snapshot or restore of this challenge is already running")
	errRestoreGone = errors.New("the container was replaced before its state was restored")
)

// restoreRun is the import of a snapshot into one new instance, which is
// migrating (not served) until it ends.
type restoreRun struct {
	of      *Instance
	since   time.Time // healthy_deadline counts from here
	attempt int
	busy    bool       // an import job runs
	seq     uint64     // the operator's choice; 0 is the newest usable
	reply   chan error // the operator's answer, for a requested restore
}

// restoreBackoff paces retries of a failed import.
var restoreBackoff = supervisor.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}

// usableSnapshot accepts snapshots whose state version may import: the
// same major version, or any with across_major.
func usableSnapshot(version string, acrossMajor bool) func(Snapshot) bool {
	return func(s Snapshot) bool { return HandOffAllowed(s.Version, version, acrossMajor) }
}

func (c *Owner) usableFor(version string) func(Snapshot) bool {
	return usableSnapshot(version, c.spec.State.AcrossMajor)
}

// beginRestore runs after a new instance started: with state.restore and a
// usable snapshot, the instance is migrating until the import succeeds.
func (c *Owner) beginRestore(ctx context.Context) {
	if !c.spec.State.Restores() || c.current == nil {
		return
	}
	list, err := c.Store.Snapshots(c.spec.Name)
	if err != nil {
		c.logf(LevelError, "read snapshots; starting without state", err)
		c.persist(Event{Type: EventStateRestoreFailed, Message: "serving without state", Error: "reading the snapshots: " + err.Error()})
		return
	}
	if len(list) == 0 {
		return
	}
	usable := c.usableFor(c.rec.Version)
	found := false
	for _, s := range list {
		found = found || usable(s)
	}
	if !found {
		c.persist(Event{Type: EventStateRestoreFailed, Message: "serving without state",
			Error: fmt.Sprintf("the newest snapshot is of version %s, another major version than %s, and state.across_major is off", list[0].Version, c.rec.Version)})
		return
	}
	c.restoring = &restoreRun{of: c.current, since: c.Clock.Now()}
	c.setLifecycle(Migrating)
	c.persist()
	c.startRestore(ctx)
}

// startRestore imports the snapshot in a job, within healthy_deadline.
func (c *Owner) startRestore(ctx context.Context) {
	run := c.restoring
	run.busy = true
	store, name, path, base, usable, jobs := c.Store, c.spec.Name, c.spec.State.Import, run.of.Address, c.usableFor(c.rec.Version), c.jobs
	deadline := run.since.Add(c.spec.Update.HealthyDeadline)
	if run.reply != nil {
		deadline = c.Clock.Now().Add(maxStateTransfer)
	}
	wait := deadline.Sub(c.Clock.Now())
	c.goJob(func() {
		importCtx, cancel := context.WithTimeout(ctx, max(wait, time.Second))
		defer cancel()
		m := msgRestored{run: run}
		if run.seq > 0 {
			m.snap, m.err = store.SnapshotBySeq(name, run.seq)
			m.found = m.err == nil
		} else {
			m.snap, m.corrupt, m.found, m.err = store.NewestSnapshot(name, usable)
		}
		if m.err == nil && m.found {
			m.err = importState(importCtx, base, path, m.snap.Data)
		}
		report(ctx, jobs, m)
	})
}

func (c *Owner) onRestored(ctx context.Context, m msgRestored) {
	run := c.restoring
	if m.run != run {
		return
	}
	run.busy = false
	for _, seq := range m.corrupt {
		c.logf(LevelError, "snapshot fails its checksum; trying an older one", nil, F(FieldSeq, seq))
	}
	if c.current != run.of {
		c.endRestore(errRestoreGone)
		return
	}
	if m.err == nil {
		var events []Event
		if m.found {
			msg := fmt.Sprintf("state snapshot %d of version %s restored (%d bytes)", m.snap.Seq, m.snap.Version, m.snap.Bytes)
			if len(m.corrupt) > 0 {
				msg += fmt.Sprintf("; skipped %d newer snapshot(s) that failed their checksum", len(m.corrupt))
			}
			c.snapshot = snapshotInfo(m.snap)
			events = append(events, Event{Type: EventStateRestored, Version: c.rec.Version, Message: msg})
		}
		c.endRestore(nil, events...)
		return
	}
	if run.reply != nil {
		c.logf(LevelWarn, "requested state restore failed", m.err, F(FieldSeq, run.seq))
		c.endRestore(m.err)
		return
	}
	if c.Clock.Now().Sub(run.since) >= c.spec.Update.HealthyDeadline {
		c.endRestore(m.err, Event{Type: EventStateRestoreFailed, Message: fmt.Sprintf("serving without state after %d import attempts within healthy_deadline %s",
			run.attempt+1, c.spec.Update.HealthyDeadline), Error: m.err.Error()})
		return
	}
	run.attempt++
	delay := restoreBackoff.Delay(run.attempt, c.Rand())
	c.logf(LevelWarn, "state import failed; will retry", m.err, F(FieldAttempt, run.attempt), F(FieldRetryIn, delay.Round(time.Millisecond).String()))
	c.rearm(&c.restoreTimer, delay)
}

// restoreDue retries an import after its backoff.
func (c *Owner) restoreDue(ctx context.Context) {
	if run := c.restoring; run != nil && !run.busy {
		if c.current != run.of {
			c.endRestore(errRestoreGone)
			return
		}
		c.startRestore(ctx)
	}
}

// endRestore lets the instance serve and answers an operator's request.
func (c *Owner) endRestore(err error, events ...Event) {
	run := c.restoring
	c.restoring = nil
	if c.restoreTimer != nil {
		c.restoreTimer.Stop()
		c.restoreTimer = nil
	}
	if c.lifecycle == Migrating && c.current == run.of {
		c.setLifecycle(Running)
	}
	c.persist(events...)
	if run.reply != nil {
		run.reply <- err
	}
}

// requestRestore imports snapshot seq into the serving instance now.
func (c *Owner) requestRestore(ctx context.Context, seq uint64, reply chan error) {
	switch {
	case c.spec.State.Import == "":
		reply <- ErrNoState
	case c.current == nil || c.lifecycle != Running:
		reply <- ErrNotServing
	case c.restoring != nil || c.swap != nil:
		reply <- ErrStateBusy
	default:
		c.restoring = &restoreRun{of: c.current, since: c.Clock.Now(), seq: seq, reply: reply}
		c.setLifecycle(Migrating)
		c.persist()
		c.startRestore(ctx)
	}
}

// requestSave exports a snapshot of the serving instance now.
func (c *Owner) requestSave(ctx context.Context, reply chan saveReply) {
	switch {
	case c.spec.State.Export == "":
		reply <- saveReply{err: ErrNoState}
	case c.current == nil || c.lifecycle != Running:
		reply <- saveReply{err: ErrNotServing}
	case c.saving:
		reply <- saveReply{err: ErrStateBusy}
	default:
		c.saveInJob(ctx, snapOperator, reply)
	}
}
