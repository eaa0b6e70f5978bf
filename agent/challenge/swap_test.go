package challenge

import (
	"context"
	"testing"
	"time"

	"berth/configs"
)

// swappedFixture has swapped web from 1.0.0 (instance old01) to 2.0.0, and
// the old instance is still draining a request that does not end.
func swappedFixture(t *testing.T, adjust ...func(*configs.Challenge)) (f *fixture, v1, v2 *version, newID string) {
	t.Helper()
	spec := testSpec()
	for _, fn := range adjust {
		fn(&spec)
	}
	f = newFixture(t)
	v1, v2 = newVersion(t), newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.seed(spec, v1)
	f.traffic.inflight.Store(1) // a long evaluation keeps the old instance draining
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.State == Running },
		"seeded instance not adopted: %+v", func() any { return *f.status() })
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatalf("swap to 2.0.0: %v", r.err)
	}
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over to 2.0.0")
	newID = f.status().ContainerID
	return f, v1, v2, newID
}

func TestManualRollbackWhileOldVersionDrains(t *testing.T) {
	f, _, _, newID := swappedFixture(t)
	start := time.Now()
	if r := f.swap(swapRollback, ""); r.err != nil {
		t.Fatalf("rollback while 1.0.0 drains: %v", r.err)
	}
	eventually(t, 2*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.Version == "1.0.0" },
		"rollback did not route back to the draining 1.0.0 instance")
	t.Logf("routed back in %s", time.Since(start))
	// A berth crash now must complete the rollback: stop 2.0.0, keep 1.0.0.
	plan, ok, err := f.store.Swap("web")
	if err != nil || !ok || !plan.CutOver || plan.FromSlot != "b" || plan.ToSlot != "a" || plan.ToContainerID != "old01" {
		t.Fatalf("persisted plan after the rollback: %+v ok=%v err=%v", plan, ok, err)
	}
	f.traffic.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { in, _ := f.rt.Get(newID); return !in.Running },
		"2.0.0 instance %s still running after the rollback drained it", newID)
	time.Sleep(300 * time.Millisecond)
	if n := f.rt.Count("stop", "old01"); n != 0 {
		t.Fatalf("the instance rolled back to was stopped %d times", n)
	}
	if in, ok := f.rt.Get("old01"); !ok || !in.Running {
		t.Fatalf("old01 is not running after the rollback: %+v", in)
	}
	if st := f.status(); st.PreviousVersion != "2.0.0" || st.Health != HealthHealthy {
		t.Fatalf("status after rollback: previous %q health %s", st.PreviousVersion, st.Health)
	}
	eventually(t, 2*time.Second, func() bool { _, ok, _ := f.store.Swap("web"); return !ok }, "rollback plan not closed")
	types := f.store.eventTypes()
	if last := types[len(types)-1]; last != EventSwapRolledBack {
		t.Fatalf("last event %s (events %v), want %s", last, types, EventSwapRolledBack)
	}
}

func TestAutoRollbackWhileOldVersionDrains(t *testing.T) {
	f, _, v2, newID := swappedFixture(t)
	v2.healthy.Store(false)
	eventually(t, 3*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.Version == "1.0.0" },
		"unhealthy 2.0.0 within rollback_window was not rolled back while 1.0.0 drained: %+v", func() any { return *f.status() })
	f.traffic.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { in, _ := f.rt.Get(newID); return !in.Running },
		"bad 2.0.0 instance %s still running", newID)
	time.Sleep(300 * time.Millisecond)
	if n := f.rt.Count("stop", "old01"); n != 0 {
		t.Fatalf("the instance rolled back to was stopped %d times", n)
	}
	if st := f.status(); st.Swap == nil || st.PreviousVersion != "2.0.0" {
		t.Fatalf("status after the auto-rollback: %+v", st)
	}
}

// A swap that changes the port records the new instance's address, so a
// berth restarted later routes to the right place at once.
func TestCutOverRecordsUpstreamWithNewPort(t *testing.T) {
	v1, v2 := newVersion(t), newVersion(t)
	spec := testSpec()
	f := newFixture(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	next := spec.Clone()
	next.Version, next.Port = "2.0.0", spec.Port+1
	f.handle.SetSpec(next)
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over to 2.0.0")
	want := v2.srv.URL
	if got := f.status().Upstream; got != want {
		t.Fatalf("status upstream %s, want %s", got, want)
	}
	rec, _, err := f.store.Runtime("web")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Upstream != want {
		t.Fatalf("persisted upstream after the cut-over is %s, want %s (the new instance's)", rec.Upstream, want)
	}
}

// Whichever comes first wins: the old instance's stop, or a rollback that
// routes back to it; the other then backs off.
func TestDrainingOldContainerStopOrRouteBack(t *testing.T) {
	j := &swapJob{routedBack: make(chan struct{})}
	if !j.beginStop() || j.routeBack() {
		t.Error("a rollback routed back to an instance whose stop had begun")
	}
	j = &swapJob{routedBack: make(chan struct{})}
	if !j.routeBack() || j.beginStop() {
		t.Error("an instance a rollback routed back to was stopped")
	}
}

// A new version that crashes while the old one drains has no current
// instance; a rollback then still routes back to the draining one.
func TestManualRollbackAfterNewVersionExitedWhileOldDrains(t *testing.T) {
	f, _, _, newID := swappedFixture(t, func(c *configs.Challenge) { c.Update.AutoRollback = false })
	f.rt.FailNext("start", 1000) // 2.0.0 never comes back
	f.rt.FailNext("create", 1000)
	f.exit(newID, 1, false)
	eventually(t, 2*time.Second, func() bool { return f.status().State != Running }, "exit of 2.0.0 not noticed")
	if r := f.swap(swapRollback, ""); r.err != nil {
		t.Fatalf("rollback after 2.0.0 exited: %v", r.err)
	}
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.ContainerID == "old01" && st.Version == "1.0.0" && st.State == Running
	}, "rollback did not route back to the draining 1.0.0 instance: %+v", func() any { return *f.status() })
	time.Sleep(300 * time.Millisecond) // a pending restart of 2.0.0 would fire now
	if st := f.status(); st.ContainerID != "old01" || st.State != Running {
		t.Fatalf("after the rollback: %+v", *st)
	}
	if in, ok := f.rt.Get("old01"); !ok || !in.Running || f.rt.Count("stop", "old01") != 0 {
		t.Fatalf("the instance rolled back to: %+v present=%v stops=%d", in, ok, f.rt.Count("stop", "old01"))
	}
}

// A new version that crashes within rollback_window while the old one still
// drains is rolled back, not restart-looped.
func TestAutoRollbackWhenNewVersionExitsWhileOldDrains(t *testing.T) {
	f, _, _, newID := swappedFixture(t)
	f.exit(newID, 3, false)
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.ContainerID == "old01" && st.Version == "1.0.0" && st.State == Running
	}, "2.0.0 exited within rollback_window but 1.0.0 was not routed back: %+v", func() any { return *f.status() })
}

// A route-back that cannot be persisted changes nothing: the old instance
// still drains and is then stopped, not left running.
func TestFailedRouteBackStillStopsOldContainer(t *testing.T) {
	f, _, _, _ := swappedFixture(t)
	f.store.mu.Lock()
	f.store.failNext = 1 << 30 // every write fails from now on
	f.store.mu.Unlock()
	if r := f.swap(swapRollback, ""); r.err == nil {
		t.Fatal("rollback succeeded with a failing store")
	}
	if st := f.status(); st.ContainerID == "old01" {
		t.Fatalf("routed back although nothing was persisted: %+v", *st)
	}
	f.traffic.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { in, _ := f.rt.Get("old01"); return !in.Running },
		"old instance left running after a failed route-back")
}

// A rollback that routes back to the draining instance while the unhealthy
// new version's stop is still running, with its restart already due, keeps
// serving the instance it routed back to: the finished stop must not start
// a bring-up that adopts it a second time.
func TestRouteBackCancelsBringUpWaitingForStop(t *testing.T) {
	f, _, v2, newID := swappedFixture(t, func(s *configs.Challenge) { s.Update.AutoRollback = false })
	release := make(chan struct{})
	f.rt.OnStop = func(ctx context.Context) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	v2.healthy.Store(false)
	// The restart's backoff (50 ms) ends while the stop still runs.
	eventually(t, 3*time.Second, func() bool { return f.status().State == Restarting }, "unhealthy 2.0.0 not restarting: %+v",
		func() any { return *f.status() })
	time.Sleep(200 * time.Millisecond)
	if r := f.swap(swapRollback, ""); r.err != nil {
		t.Fatalf("rollback while 1.0.0 drains: %v", r.err)
	}
	eventually(t, 2*time.Second, func() bool { return f.status().ContainerID == "old01" }, "no route back to old01")
	adopted := f.store.countEvents(EventAdopted)
	close(release)
	eventually(t, 2*time.Second, func() bool { in, _ := f.rt.Get(newID); return !in.Running }, "2.0.0 never stopped")
	time.Sleep(300 * time.Millisecond)
	if n := f.store.countEvents(EventAdopted); n != adopted {
		t.Fatalf("the instance routed back to was adopted again after the stop finished (%d adopted events, want %d): %v",
			n, adopted, f.store.eventTypes())
	}
	if st := f.status(); st.ContainerID != "old01" || st.State != Running || st.Health != HealthHealthy {
		t.Fatalf("status after the stop finished: %+v", *st)
	}
}
