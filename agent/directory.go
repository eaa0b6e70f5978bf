package agent

import (
	"sort"
	"sync"
	"sync/atomic"

	"berth/configs"
)

// challengeHandle is how the rest of berth reaches one challenge's goroutine:
// messages go in through inbox, spec changes through a latest-value slot,
// the latest status comes out through status.
type challengeHandle struct {
	name   string
	inbox  chan any
	status atomic.Pointer[ChallengeStatus]

	// specMu guards spec, the newest spec the reconciler wants applied and
	// the owner has not taken yet. A newer spec replaces an unread one, so
	// the slot never fills and the latest spec is never lost to a busy inbox.
	specMu    sync.Mutex
	spec      *configs.Challenge
	specReady chan struct{} // capacity 1: "spec holds something"
}

func newChallengeHandle(name string) *challengeHandle {
	h := &challengeHandle{name: name, inbox: make(chan any, 64), specReady: make(chan struct{}, 1)}
	h.status.Store(&ChallengeStatus{Name: name, State: Registered, Health: HealthUnknown})
	return h
}

// setSpec hands the owner a changed spec. It never blocks and never drops
// the latest spec.
func (h *challengeHandle) setSpec(spec configs.Challenge) {
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
func (h *challengeHandle) takeSpec() (configs.Challenge, bool) {
	h.specMu.Lock()
	defer h.specMu.Unlock()
	if h.spec == nil {
		return configs.Challenge{}, false
	}
	spec := *h.spec
	h.spec = nil
	return spec, true
}

// send delivers a hint without blocking; a full inbox drops it, and the
// periodic re-list delivers the engine's truth again. Spec changes do not
// go this way: see setSpec.
func (h *challengeHandle) send(msg any) bool {
	select {
	case h.inbox <- msg:
		return true
	default:
		return false
	}
}

// directory maps challenge names to handles. Readers load an immutable map;
// writers replace it whole, so lookups never take a lock.
type directory struct {
	writeMu sync.Mutex
	m       atomic.Pointer[map[string]*challengeHandle]
}

func (d *directory) get(name string) *challengeHandle {
	if m := d.m.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// list returns handles sorted by name.
func (d *directory) list() []*challengeHandle {
	m := d.m.Load()
	if m == nil {
		return nil
	}
	out := make([]*challengeHandle, 0, len(*m))
	for _, h := range *m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (d *directory) put(h *challengeHandle) {
	d.update(func(m map[string]*challengeHandle) { m[h.name] = h })
}

func (d *directory) remove(name string) {
	d.update(func(m map[string]*challengeHandle) { delete(m, name) })
}

func (d *directory) update(change func(map[string]*challengeHandle)) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	next := map[string]*challengeHandle{}
	if cur := d.m.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	change(next)
	d.m.Store(&next)
}
