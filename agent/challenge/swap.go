package challenge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"

	"berth/configs"
)

// Why a swap runs; rollbacks report swap_rolled_back when they finish.
const (
	swapRequested    = "swap"
	swapRollback     = "rollback"
	swapAutoRollback = "auto_rollback"
	swapConfig       = "config"
	swapAuto         = "auto"
)

// Errors a swap request can be refused with.
var (
	ErrSwapRunning = errors.New("a swap is already running for this challenge")
	ErrNoContainer = errors.New("challenge has no running container to swap from")
	ErrNoPrevious  = errors.New("challenge has no previous version to roll back to")
	ErrBadVersion  = errors.New("bad version")
	errSwapNoop    = errors.New("version already running")
)

// swapJob is one swap. Its runner owns everything but plan, which it
// publishes for the owner to read, and the route-back hand-shake.
type swapJob struct {
	kind      string
	requested string
	spec      configs.Challenge // target spec: the challenge's with the new version
	hash      string
	fromID    string
	fromSlot  string
	fromURL   string
	fromHash  string
	fromSpec  configs.Challenge // the spec the old instance runs, for a rollback to it
	previous  string            // instance id of the previous version, after cut-over
	plan      atomic.Pointer[SwapPlan]
	cutOver   atomic.Bool
	newID     string
	startedAt time.Time

	// After the cut-over the old instance drains and is then stopped,
	// unless a rollback routed back to it first; mu orders the two.
	mu         sync.Mutex
	stopping   bool          // the old instance's stop has begun
	routedBack chan struct{} // closed when a rollback routed back to the old instance
}

// beginStop claims the old instance for stopping; false means a rollback
// routed back to it and it must keep serving.
func (j *swapJob) beginStop() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.routedBack:
		return false
	default:
	}
	j.stopping = true
	return true
}

// routeBack claims the old instance for serving again; false means its stop
// has begun.
func (j *swapJob) routeBack() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopping {
		return false
	}
	close(j.routedBack)
	return true
}

func (j *swapJob) snapshot() SwapPlan { return *j.plan.Load() }

func newSwapID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startSwap begins a swap from the active instance; the work runs in its
// own job so the owner keeps supervising the serving instance.
func (c *Owner) startSwap(ctx context.Context, version, kind string) swapReply {
	return c.startSwapTo(ctx, c.spec, version, kind)
}

// startSwapTo swaps to base's spec at version (a spec change swaps too).
func (c *Owner) startSwapTo(ctx context.Context, base configs.Challenge, version, kind string) swapReply {
	if c.swap != nil {
		return swapReply{err: ErrSwapRunning}
	}
	if !c.recovered && c.current != nil {
		return swapReply{err: fmt.Errorf("%w: the swap berth was running when it stopped is still being settled", ErrSwapRunning)}
	}
	if c.draining != nil {
		// The last swap has served its purpose; only its old instance
		// still drains, and a rollback routes straight back to it.
		if (kind == swapRollback || kind == swapAutoRollback) && version == c.draining.snapshot().From {
			return c.routeBack(ctx, kind)
		}
		return swapReply{err: ErrSwapRunning}
	}
	if c.current == nil || c.lifecycle != Running {
		return swapReply{err: ErrNoContainer}
	}
	if version == "" {
		return swapReply{err: ErrNoPrevious}
	}
	if !configs.IsExactVersion(version) {
		if _, err := semver.NewConstraint(version); err != nil {
			return swapReply{err: fmt.Errorf("%w: %q is neither a tag nor a semver constraint", ErrBadVersion, version)}
		}
	}
	target := base.Clone()
	target.Version = version
	job := &swapJob{kind: kind, requested: version, spec: target, hash: target.SpecHash(), fromID: c.current.ID,
		fromSlot: c.activeSlot(), fromURL: c.current.Address, fromHash: c.rec.Slots[c.activeSlot()].SpecHash, fromSpec: c.spec.Clone(),
		startedAt: c.Clock.Now(), routedBack: make(chan struct{})}
	plan := SwapPlan{ID: newSwapID(), Challenge: c.spec.Name, Phase: PhasePulling, From: c.rec.Version, To: version,
		FromSlot: job.fromSlot, ToSlot: otherSlot(job.fromSlot), StartedAt: job.startedAt, UpdatedAt: job.startedAt}
	job.plan.Store(&plan)
	saved, err := c.Store.Commit(Write{Challenge: c.spec.Name, Swap: &plan, Events: []Event{{Type: EventSwapStarted, Challenge: c.spec.Name,
		Version: c.rec.Version, From: plan.From, To: version, Phase: plan.Phase, Message: fmt.Sprintf("%s %s → %s (%s)", kind, plan.From, version, plan.ID)}}})
	if err != nil {
		return swapReply{err: err}
	}
	for _, ev := range saved {
		c.Observer.Event(ev)
	}
	c.swap = job
	c.lastSwap = job
	run := c.swapRunner(job)
	c.goJob(func() {
		err := run.run(ctx)
		report(ctx, run.jobs, msgSwapDone{job: job, err: err})
	})
	c.publish()
	return swapReply{id: plan.ID, from: plan.From, to: version}
}

// swapStatus is the API view of a swap.
func swapStatus(job *swapJob) *SwapStatus {
	if job == nil {
		return nil
	}
	p := job.snapshot()
	return &SwapStatus{ID: p.ID, Phase: p.Phase, From: p.From, To: p.To, StartedAt: p.StartedAt, Error: p.Error}
}
