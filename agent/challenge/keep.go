package challenge

import (
	"context"
	"time"

	"berth/supervisor"
)

// keepPrevious records id as the kept previous instance, due for removal
// after keep; the caller persists the record.
func (c *Owner) keepPrevious(id string, keep time.Duration) {
	c.rec.Kept = &Kept{ContainerID: id, RemoveAt: c.Clock.Now().Add(keep)}
	c.keepAttempt = 0
	c.rearm(&c.keepTimer, keep)
}

// armKept arms the removal of the kept previous instance, if any, for when
// it is due.
func (c *Owner) armKept() {
	if k := c.rec.Kept; k != nil {
		c.rearm(&c.keepTimer, max(0, k.RemoveAt.Sub(c.Clock.Now())))
	}
}

// cleanupBackoff paces retries of a failed stop or remove of an instance
// that should no longer run or exist.
var cleanupBackoff = supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}

// removePrevious removes the kept previous instance once it is due; a
// failed removal is retried with backoff.
func (c *Owner) removePrevious(ctx context.Context) {
	kept := c.rec.Kept
	if kept == nil {
		return
	}
	if !c.recovered || c.swap != nil {
		// An interrupted swap is settled first, and a running swap may be
		// starting the kept instance again for a rollback; each re-arms
		// the removal when it ends.
		return
	}
	id := kept.ContainerID
	if c.inUse(id) {
		c.rec.Kept = nil
		c.persist()
		return
	}
	// Its image is pruned after it; a failed inspect only skips that.
	prev, _ := c.Runtime.Inspect(ctx, id)
	if err := c.Runtime.Remove(ctx, id); err != nil {
		c.keepAttempt++
		delay := cleanupBackoff.Delay(c.keepAttempt, c.Rand())
		c.logf(LevelWarn, "remove previous container; will retry", err, F(FieldContainerID, ShortID(id)),
			F(FieldRetryIn, delay.Round(time.Millisecond).String()))
		c.rearm(&c.keepTimer, delay)
		return
	}
	c.keepAttempt = 0
	c.rec.Kept = nil
	for slot, rec := range c.rec.Slots {
		if rec.ContainerID == id && slot != c.activeSlot() {
			delete(c.rec.Slots, slot)
		}
	}
	c.persist()
	c.pruneImage(ctx, prev.Image)
}

// inUse says whether id serves or is about to: the active instance, or a
// draining swap's old instance.
func (c *Owner) inUse(id string) bool {
	return (c.current != nil && c.current.ID == id) || c.rec.Slots[c.activeSlot()].ContainerID == id ||
		(c.draining != nil && c.draining.fromID == id)
}

// How far a recovery attempt got.
type recovery int

const (
	recoverySettled recovery = iota
	recoveryPending          // a stop job continues it
	recoveryFailed           // try again after the cleanup backoff
)

// retryRecovery settles an interrupted swap, and retries with backoff while
// its stop or remove fails: an old version must not run on until the next
// bring-up, which for an adopted instance may never come.
func (c *Owner) retryRecovery(ctx context.Context) {
	if c.recoveryStop != "" {
		return // its stop job reports
	}
	switch c.recoverSwap(ctx) {
	case recoverySettled:
		c.onRecovered(ctx)
	case recoveryFailed:
		c.retryRecoveryLater(ctx)
	}
}

// onRecovered runs once an interrupted swap is settled: what waited for it
// (a spec change, a swap to a changed config entry) goes ahead.
func (c *Owner) onRecovered(ctx context.Context) {
	c.recovered = true
	c.recoverTries = 0
	c.armKept()
	if next := c.pendingSpec; next != nil && c.swap == nil && c.draining == nil {
		c.pendingSpec = nil
		c.applySpec(ctx, *next)
	} else if c.pendingSwap && c.current != nil && c.lifecycle == Running {
		c.pendingSwap = false
		if r := c.startSwap(ctx, c.spec.Version, swapConfig); r.err != nil {
			c.logf(LevelError, "swap to the changed config entry", r.err)
		}
	}
}

func (c *Owner) retryRecoveryLater(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	c.recoverTries++
	delay := cleanupBackoff.Delay(c.recoverTries, c.Rand())
	c.logf(LevelWarn, "interrupted swap not settled; will retry", nil, F(FieldRetryIn, delay.Round(time.Millisecond).String()))
	c.rearm(&c.recoverTimer, delay)
}

// recoverSwap settles a swap interrupted by a berth crash as RecoverSwap
// decides. Removals are short and run here; the old instance's stop after
// a cut-over may take its stop_timeout and runs as a job.
func (c *Owner) recoverSwap(ctx context.Context) recovery {
	plan, ok, err := c.Store.Swap(c.spec.Name)
	if err != nil {
		return recoveryFailed
	}
	if !ok {
		return recoverySettled
	}
	r := RecoverSwap(plan, c.rec)
	switch {
	case r.Remove != "":
		if err := c.Runtime.Remove(ctx, r.Remove); err != nil {
			c.logf(LevelWarn, "remove container of interrupted swap; will retry", err)
			return recoveryFailed
		}
	case r.RemoveSlot != "":
		if in, err := c.Runtime.InSlot(ctx, c.spec.Name, r.RemoveSlot); err == nil {
			_ = c.Runtime.Remove(ctx, in.ID)
		}
	case r.StopAndKeep != "":
		c.recoveryStop = r.StopAndKeep
		id, timeout, ev, rt, jobs := r.StopAndKeep, c.spec.Restart.StopTimeout, r.Event, c.Runtime, c.jobs
		c.goJob(func() {
			// A stop begun is finished even while berth stops.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
			defer cancel()
			report(ctx, jobs, msgRecoveryStopped{id: id, ev: ev, err: rt.Stop(stopCtx, id, timeout)})
		})
		return recoveryPending
	}
	if c.closeSwapRecord(r.Event) != nil {
		return recoveryFailed
	}
	return recoverySettled
}

// onRecoveryStopped completes a recovery once the old instance stopped: it
// is kept for a rollback and the swap is recorded as completed.
func (c *Owner) onRecoveryStopped(ctx context.Context, m msgRecoveryStopped) {
	if m.id != c.recoveryStop {
		return
	}
	c.recoveryStop = ""
	if m.err != nil {
		c.logf(LevelWarn, "stop previous container of interrupted swap; will retry", m.err)
		c.retryRecoveryLater(ctx)
		return
	}
	c.keepPrevious(m.id, c.spec.Update.KeepPrevious)
	if c.closeSwapRecord(m.ev) != nil {
		c.retryRecoveryLater(ctx)
		return
	}
	c.onRecovered(ctx)
}

// closeSwapRecord deletes the swap plan and records how the swap ended,
// with the record (the kept previous instance), in one transaction.
func (c *Owner) closeSwapRecord(ev Event) error {
	rec := c.rec
	return c.commit(Write{Runtime: &rec, DeleteSwap: true, Events: []Event{ev}})
}
