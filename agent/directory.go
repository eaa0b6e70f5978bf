package agent

import (
	"sort"
	"sync"
	"sync/atomic"
)

// challengeHandle is how the rest of berth reaches one challenge's goroutine:
// messages go in through inbox, the latest status comes out through status.
type challengeHandle struct {
	name   string
	inbox  chan any
	status atomic.Pointer[ChallengeStatus]
}

func newChallengeHandle(name string) *challengeHandle {
	h := &challengeHandle{name: name, inbox: make(chan any, 64)}
	h.status.Store(&ChallengeStatus{Name: name, State: Registered, Health: HealthUnknown})
	return h
}

// send delivers a hint without blocking; a full inbox drops it, and the
// periodic re-list delivers the engine's truth again.
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
