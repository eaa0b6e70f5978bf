package challenge

import (
	"context"
	"sync"
	"sync/atomic"

	"berth/configs"
)

// Handle is how the rest of berth reaches one challenge's owner: requests
// go in through its inbox, spec changes through a latest-value slot, the
// latest status comes out as an immutable value.
type Handle struct {
	name   string
	inbox  chan message
	status atomic.Pointer[Status]
	probes probeHistory // recent probes, for the status page

	// specMu guards spec, the newest spec the reconciler wants applied and
	// the owner has not taken yet. A newer spec replaces an unread one, so
	// the slot never fills and the latest spec is never lost to a busy inbox.
	specMu    sync.Mutex
	spec      *configs.Challenge
	specReady chan struct{} // capacity 1: "spec holds something"
}

// NewHandle returns the handle of a challenge with no owner running yet.
func NewHandle(name string) *Handle {
	h := &Handle{name: name, inbox: make(chan message, 64), specReady: make(chan struct{}, 1)}
	h.status.Store(&Status{Name: name, State: Registered, Health: HealthUnknown})
	return h
}

// Name is the challenge's name.
func (h *Handle) Name() string { return h.name }

// Status is the latest published status; never nil, never to be mutated.
func (h *Handle) Status() *Status { return h.status.Load() }

// SetStatus publishes st before an owner runs (what the store remembers).
func (h *Handle) SetStatus(st *Status) { h.status.Store(st) }

// SetSpec hands the owner a changed spec. It never blocks and never drops
// the latest spec.
func (h *Handle) SetSpec(spec configs.Challenge) {
	h.specMu.Lock()
	h.spec = &spec
	h.specMu.Unlock()
	select {
	case h.specReady <- struct{}{}:
	default: // already signalled; the owner will read the newest spec
	}
}

// takeSpec returns the pending spec, if any, and empties the slot. Only the
// owner calls it, after a value on specReady.
func (h *Handle) takeSpec() (configs.Challenge, bool) {
	h.specMu.Lock()
	defer h.specMu.Unlock()
	if h.spec == nil {
		return configs.Challenge{}, false
	}
	spec := *h.spec
	h.spec = nil
	return spec, true
}

// Notify delivers a runtime event without blocking; a full inbox drops it,
// and the periodic re-list delivers the runtime's truth again.
func (h *Handle) Notify(ev InstanceEvent) bool { return h.send(msgInstanceEvent{ev: ev}) }

// NotifyList delivers the runtime's full list of the challenge's instances.
func (h *Handle) NotifyList(instances []Instance) bool {
	return h.send(msgInstanceList{instances: instances})
}

func (h *Handle) send(msg message) bool {
	select {
	case h.inbox <- msg:
		return true
	default:
		return false
	}
}

// Restart asks the owner to restart now (it also clears a give-up).
// ErrOwnerBusy means nothing was done.
func (h *Handle) Restart(ctx context.Context) error {
	m := msgRestart{reply: make(chan error, 1), ticket: newTicket()}
	err, busy := askOwner(ctx, h, m, m.ticket, m.reply)
	if busy != nil {
		return busy
	}
	return err
}

// SwapResult is a started swap.
type SwapResult struct{ ID, From, To string }

// Swap asks the owner to swap to version. ErrOwnerBusy means nothing was
// done; ErrBadVersion, ErrSwapRunning, ErrNoContainer refuse it.
func (h *Handle) Swap(ctx context.Context, version string) (SwapResult, error) {
	return h.askSwap(ctx, msgSwap{version: version, kind: swapRequested})
}

// Rollback asks the owner to swap back to the previous version.
func (h *Handle) Rollback(ctx context.Context) (SwapResult, error) {
	return h.askSwap(ctx, msgSwap{kind: swapRollback})
}

// SaveState asks the owner to export a state snapshot now and returns it,
// without its data. ErrNoState, ErrNotServing or ErrStateBusy refuse it.
func (h *Handle) SaveState(ctx context.Context) (Snapshot, error) {
	m := msgSaveState{reply: make(chan saveReply, 1), ticket: newTicket()}
	rep, busy := askOwner(ctx, h, m, m.ticket, m.reply)
	if busy != nil {
		return Snapshot{}, busy
	}
	rep.snap.Data = nil
	return rep.snap, rep.err
}

// RestoreState asks the owner to import snapshot seq into the serving
// instance, which is migrating (not served) meanwhile.
func (h *Handle) RestoreState(ctx context.Context, seq uint64) error {
	m := msgRestoreState{seq: seq, reply: make(chan error, 1), ticket: newTicket()}
	err, busy := askOwner(ctx, h, m, m.ticket, m.reply)
	if busy != nil {
		return busy
	}
	return err
}

func (h *Handle) askSwap(ctx context.Context, m msgSwap) (SwapResult, error) {
	m.reply, m.ticket = make(chan swapReply, 1), newTicket()
	rep, busy := askOwner(ctx, h, m, m.ticket, m.reply)
	if busy != nil {
		return SwapResult{}, busy
	}
	return SwapResult{ID: rep.id, From: rep.from, To: rep.to}, rep.err
}
