package challenge

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Scenarios of the owner's jobs: a slow stop, a failing removal of the kept
// instance, and the stand-in API tests use in place of an owner.

// slowStopRuntime holds every Stop until gate closes.
type slowStopRuntime struct {
	*MemRuntime
	gate    chan struct{}
	stopped chan string
}

func (r slowStopRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	r.stopped <- id
	select {
	case <-r.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.MemRuntime.Stop(ctx, id, timeout)
}

// A restart's stop runs as a job: the owner answers meanwhile, and the
// bring-up waits for the stop instead of adopting the instance being stopped.
func TestScenarioBringUpWaitsForStopJob(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trigger func(t *testing.T, f *fixture, v1 *version)
	}{
		{"operator restart", func(t *testing.T, f *fixture, _ *version) {
			if err := f.handle.Restart(scCtx(t)); err != nil {
				t.Fatal(err)
			}
		}},
		{"unhealthy", func(t *testing.T, f *fixture, v1 *version) { v1.healthy.Store(false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rt := slowStopRuntime{MemRuntime: f.rt, gate: make(chan struct{}), stopped: make(chan string, 4)}
			f.deps.Runtime = rt
			v1 := newVersion(t)
			f.rt.SetAddress("1.0.0", v1.srv.URL)
			f.start(testSpec())
			release := sync.OnceFunc(func() { close(rt.gate) })
			t.Cleanup(release) // before the owner's stop, which waits for the stop job
			id := scWaitServing(t, f).ContainerID
			tc.trigger(t, f, v1)
			select {
			case got := <-rt.stopped:
				if got != id {
					t.Fatalf("stopping %s, want %s", got, id)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no stop")
			}
			v1.healthy.Store(true)
			// The owner answers while the stop hangs, and starts nothing.
			if _, err := f.handle.Swap(scCtx(t), "2.0.0"); !errors.Is(err, ErrNoContainer) {
				t.Fatalf("swap while stopping: %v, want ErrNoContainer", err)
			}
			scNoChange(t, 100*time.Millisecond, "starts while the stop runs", func() int { return f.rt.Count("start", id) }, 1)
			if in, _ := f.rt.Get(id); !in.Running || f.status().State == Running {
				t.Fatalf("while stopping: instance running %v, state %s", in.Running, f.status().State)
			}
			release()
			eventually(t, 5*time.Second, func() bool { return f.rt.Count("start", id) == 2 }, "not started after its stop")
			if st := scWaitServing(t, f); st.ContainerID != id || f.store.hasEvent(EventAdopted) {
				t.Fatalf("after the stop: %+v; the instance being stopped must be started, not adopted", st)
			}
		})
	}
}

// A failed removal of the kept previous instance is retried on the cleanup
// backoff.
func TestScenarioKeptRemovalRetried(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Update.KeepPrevious = 5 * time.Second
	_, _, newID := scSwapped(t, f, clk, spec)
	f.rt.FailNext("remove", 1)
	clk.Advance(5 * time.Second)
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("remove", "old01") == 1 }, "no removal tried")
	if _, ok := f.rt.Get("old01"); !ok {
		t.Fatal("old01 gone although its removal failed")
	}
	// cleanupBackoff attempt 1 at the draw 0.5: 1s.
	scAdvanceUntil(t, clk, 250*time.Millisecond, func() bool { _, ok := f.rt.Get("old01"); return !ok }, "removal never retried")
	if n := f.rt.Count("remove", "old01"); n != 2 {
		t.Fatalf("%d removals, want 2", n)
	}
	eventually(t, 5*time.Second, func() bool { return scRecord(t, f.store).Kept == nil }, "kept instance still recorded")
	if f.status().ContainerID != newID {
		t.Fatal("the serving instance changed")
	}
}

// A kept instance that serves again (a rollback reused it) is never removed.
func TestScenarioKeptInstanceInUseNotRemoved(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Update.KeepPrevious = time.Hour
	scSwapped(t, f, clk, spec)
	// Make the record claim old01 as kept while it is active again: roll
	// back, then put the stale kept entry back as a crash could leave it.
	if _, err := f.handle.Rollback(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapRolledBack) }, "no rollback")
	f.stop()
	rec := scRecord(t, f.store)
	rec.Kept = &Kept{ContainerID: "old01", RemoveAt: clk.Now()}
	f.store.put(rec)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { r := scRecord(t, f.store); return r.Kept == nil && f.status().State == Running },
		"stale kept entry not dropped")
	if f.rt.Count("remove", "old01") != 0 {
		t.Fatal("the serving instance was removed as kept")
	}
}

// StandIn answers requests in place of an owner.
func TestStandInAnswers(t *testing.T) {
	h := NewHandle("web")
	if h.Name() != "web" || h.Pending() != 0 {
		t.Fatalf("new handle %q with %d pending", h.Name(), h.Pending())
	}
	h.SetStatus(&Status{Name: "web", State: Failed})
	if h.Status().State != Failed {
		t.Fatal("SetStatus not published")
	}
	ctx := scCtx(t)
	done := make(chan [2]string, 1)
	boom := errors.New("boom")
	go func() {
		k, v := StandIn(ctx, h, boom, SwapResult{}, nil)
		done <- [2]string{k, v}
	}()
	h.Notify(InstanceEvent{ID: "x"}) // runtime hints are skipped
	if err := h.Restart(ctx); !errors.Is(err, boom) {
		t.Fatalf("restart answered %v", err)
	}
	if got := <-done; got != [2]string{RequestRestart, ""} {
		t.Fatalf("stand-in saw %v", got)
	}
	go func() {
		k, v := StandIn(ctx, h, nil, SwapResult{ID: "s1", From: "1", To: "2"}, nil)
		done <- [2]string{k, v}
	}()
	if res, err := h.Swap(ctx, "2"); err != nil || res.ID != "s1" {
		t.Fatalf("swap answered %+v %v", res, err)
	}
	if got := <-done; got != [2]string{RequestSwap, "2"} {
		t.Fatalf("stand-in saw %v", got)
	}
	go func() {
		k, v := StandIn(ctx, h, nil, SwapResult{}, ErrNoPrevious)
		done <- [2]string{k, v}
	}()
	if _, err := h.Rollback(ctx); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback answered %v", err)
	}
	if got := <-done; got[0] != RequestRollback {
		t.Fatalf("stand-in saw %v", got)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if k, _ := StandIn(cancelled, h, nil, SwapResult{}, nil); k != "" {
		t.Fatalf("stand-in without requests returned %q", k)
	}
}
