package challenge

import (
	"context"
	"slices"
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// Helpers of the lifecycle scenarios; all named sc* so they stay apart from
// the fixture's.

// scT0 is where the scenarios' fake clocks start.
var scT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// scFakeClock gives f a fake clock; call before f.start.
func scFakeClock(f *fixture) *supervisor.FakeClock {
	clk := supervisor.NewFakeClock(scT0)
	f.deps.Clock = clk
	return clk
}

// scEvents returns copies of the stored events of type typ, all when typ is "".
func scEvents(s *memStore, typ string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, ev := range s.events {
		if typ == "" || ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// scWaitEvent waits for the n-th (1-based) stored event of typ and returns it.
func scWaitEvent(t *testing.T, s *memStore, typ string, n int) Event {
	t.Helper()
	eventually(t, 5*time.Second, func() bool { return len(scEvents(s, typ)) >= n },
		"no %d %s event(s) in %v", n, typ, func() any { return s.eventTypes() })
	return scEvents(s, typ)[n-1]
}

// scPhases lists the phases the swap_phase events recorded, in order.
func scPhases(s *memStore) []string {
	var out []string
	for _, ev := range scEvents(s, EventSwapPhase) {
		out = append(out, ev.Phase)
	}
	return out
}

// scRecord is the stored runtime record of web.
func scRecord(t *testing.T, s *memStore) Record {
	t.Helper()
	rec, ok, _ := s.Runtime("web")
	if !ok {
		t.Fatal("no runtime record stored for web")
	}
	return rec
}

// scHasPlan reports whether a swap plan is stored for web.
func scHasPlan(s *memStore) bool {
	_, ok, _ := s.Swap("web")
	return ok
}

// scAdvanceUntil advances clk by step until cond holds; the owner's probes,
// backoffs, drains and keeps all run on it.
func scAdvanceUntil(t *testing.T, clk *supervisor.FakeClock, step time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if fn, ok := a.(func() any); ok {
					args[i] = fn()
				}
			}
			t.Fatalf("fake clock at %s: "+format, append([]any{clk.Now().Sub(scT0)}, args...)...)
		}
		clk.Advance(step)
		time.Sleep(2 * time.Millisecond)
	}
}

// scWaitServing waits until web runs healthy on some instance and returns
// its status.
func scWaitServing(t *testing.T, f *fixture) *Status {
	t.Helper()
	eventually(t, 5*time.Second, func() bool {
		st := f.status()
		return st.State == Running && st.Health == HealthHealthy && st.ContainerID != ""
	}, "web not serving healthy: %+v", func() any { return f.status() })
	return f.status()
}

// scWaitState waits for the lifecycle state.
func scWaitState(t *testing.T, f *fixture, want Lifecycle) *Status {
	t.Helper()
	eventually(t, 5*time.Second, func() bool { return f.status().State == want },
		"state is not %s: %+v", want, func() any { return f.status() })
	return f.status()
}

// scStartSeeded starts the owner over the running instance old01 of spec
// that an earlier berth recorded, and waits until it is adopted.
func scStartSeeded(t *testing.T, f *fixture, spec configs.Challenge) *version {
	t.Helper()
	v1 := newVersion(t)
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.State == Running },
		"seeded instance not adopted: %+v", func() any { return f.status() })
	return v1
}

// scAddInstance puts an instance of web at ver in slot into the runtime, as
// an earlier berth would have created it.
func scAddInstance(f *fixture, id, slot, ver string, spec configs.Challenge, running bool) Instance {
	s := spec.Clone()
	s.Version = ver
	in := Instance{ID: id, Name: memName(spec.Name, slot), Challenge: spec.Name, Slot: slot, Version: ver,
		SpecHash: s.SpecHash(), Image: spec.Image + ":" + ver, Running: running, StartedAt: time.Now()}
	f.rt.Add(in)
	return in
}

// scCtx is a context for one API call that must be answered within a second.
func scCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

// scNoChange checks, after d, that got() still equals want: the negative
// checks of the scenarios (nothing restarted, nothing stopped).
func scNoChange[T comparable](t *testing.T, d time.Duration, what string, got func() T, want T) {
	t.Helper()
	time.Sleep(d)
	if g := got(); g != want {
		t.Fatalf("%s: %v, want it to stay %v", what, g, want)
	}
}

// scContains reports whether list holds all of ids.
func scContains(list []string, ids ...string) bool {
	for _, id := range ids {
		if !slices.Contains(list, id) {
			return false
		}
	}
	return true
}
