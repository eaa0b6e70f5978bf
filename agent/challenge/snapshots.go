package challenge

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"berth/configs"
)

// snapshotTimeout bounds one export for a snapshot: a challenge that cannot
// answer within it is refused, and its previous snapshots stay.
const snapshotTimeout = 10 * time.Second

// Why a snapshot was taken.
const (
	snapPeriodic = "periodic"
	snapPlanned  = "before a planned stop"
	snapOperator = "operator"
)

// SnapshotInfo is the challenge object's view of its newest snapshot.
type SnapshotInfo struct {
	Seq     uint64    `json:"seq"`
	Version string    `json:"version"`
	Bytes   int       `json:"bytes"`
	At      time.Time `json:"at"`
}

func snapshotInfo(s Snapshot) *SnapshotInfo {
	return &SnapshotInfo{Seq: s.Seq, Version: s.Version, Bytes: s.Bytes, At: s.At}
}

// takeSnapshot exports the state of the instance at base and stores it. It
// runs in jobs; nothing of the state reaches its errors.
func takeSnapshot(ctx context.Context, store Store, spec configs.Challenge, version, base string, now time.Time) (Snapshot, error) {
	data, err := exportState(ctx, base, spec.State.Export, spec.State.ExportLimit(), snapshotTimeout)
	if err != nil {
		return Snapshot{}, err
	}
	return store.PutSnapshot(Snapshot{Challenge: spec.Name, Version: version, Data: data, At: now}, spec.State.Kept())
}

// snapshotOffset spreads the first snapshots of many challenges over the
// interval, the same way on every start, so they do not all fire together.
func snapshotOffset(name string, interval time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(name))
	return time.Duration(uint64(h.Sum32()) % uint64(interval))
}

// armSnapshots schedules periodic snapshots of the serving instance.
func (c *Owner) armSnapshots(first bool) {
	every := c.spec.State.SnapshotInterval
	if every <= 0 || c.spec.State.Export == "" {
		return
	}
	d := every
	if first {
		d = snapshotOffset(c.spec.Name, every)
	}
	c.rearm(&c.snapTimer, d)
}

// snapshotDue takes a periodic snapshot when the instance serves healthy
// and nothing else is exporting from it.
func (c *Owner) snapshotDue(ctx context.Context) {
	defer c.armSnapshots(false)
	if c.saving || c.swap != nil || c.current == nil || c.lifecycle != Running || !c.tracker.State.Serving() {
		return
	}
	c.saveInJob(ctx, snapPeriodic, nil)
}

// saveInJob takes a snapshot of the current instance in a job; reply, when
// set, gets the outcome too.
func (c *Owner) saveInJob(ctx context.Context, why string, reply chan<- saveReply) {
	c.saving = true
	of, store, spec, version, clock, jobs := c.current, c.Store, c.spec, c.rec.Version, c.Clock, c.jobs
	c.goJob(func() {
		snap, err := takeSnapshot(ctx, store, spec, version, of.Address, clock.Now())
		if reply != nil {
			reply <- saveReply{snap: snap, err: err}
		}
		report(ctx, jobs, msgSnapshotTaken{why: why, snap: snap, err: err})
	})
}

// onSnapshotTaken records how a snapshot went. A periodic success is quiet
// (it would flood the event log); a refusal is an event once per reason,
// and the snapshots stored before it stay.
func (c *Owner) onSnapshotTaken(m msgSnapshotTaken) {
	if m.why != snapPlanned {
		c.saving = false
	}
	if m.err != nil {
		msg := fmt.Sprintf("state snapshot (%s) refused: %v", m.why, m.err)
		if msg != c.saveFailure {
			c.saveFailure = msg
			c.persist(Event{Type: EventStateSaveFailed, Message: "state snapshot refused; the previous snapshots stay", Error: m.err.Error()})
		}
		c.logf(LevelWarn, "state snapshot refused", m.err)
		return
	}
	c.saveFailure = ""
	c.snapshot = snapshotInfo(m.snap)
	if m.why == snapPeriodic {
		c.publish()
		return
	}
	c.persist(Event{Type: EventStateSaved, Version: m.snap.Version,
		Message: fmt.Sprintf("state snapshot %d saved (%s, %d bytes)", m.snap.Seq, m.why, m.snap.Bytes)})
}

// saveBeforeStop says whether a planned stop of in exports first: with
// state.export, from an instance that serves.
func (c *Owner) saveBeforeStop(in *Instance) bool {
	return c.spec.State.Export != "" && in != nil && in.Address != "" && c.lifecycle == Running && c.tracker.State.Serving()
}

// planned is the address a planned stop of in exports from, or "".
func (c *Owner) planned(in *Instance) string {
	if c.saveBeforeStop(in) {
		return in.Address
	}
	return ""
}

// loadSnapshotInfo reads the newest snapshot's record for the status.
func (c *Owner) loadSnapshotInfo() {
	list, err := c.Store.Snapshots(c.spec.Name)
	if err != nil {
		c.logf(LevelWarn, "read snapshot list", err)
		return
	}
	c.snapshot = nil
	if len(list) > 0 {
		c.snapshot = snapshotInfo(list[0])
	}
}
