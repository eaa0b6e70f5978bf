//go:build ignore

package challenge

import (
	"berth/agent/challenge"
	"strconv"
	"testing"
	"time"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
)

// swappedFixture has swapped web from 1.0.0 (container old01) to 2.0.0, and
// the old container is still draining a request that does not end.
func swappedFixture(t *testing.T, adjust ...func(*configs.Challenge)) (f *challengeFixture, v1, v2 *version, newID string) {
	t.Helper()
	spec := testSpec()
	for _, fn := range adjust {
		fn(&spec)
	}
	f = newChallengeFixture(t, nil, nil)
	v1, v2 = newVersion(t), newVersion(t)
	f.engine.setPort("2.0.0", v2.port())
	f.seed(spec, v1)
	f.inflight.Store(1) // a long evaluation keeps the old container draining
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.State == Running },
		"seeded container not adopted: %+v", f.status())
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
		"rollback did not route back to the draining 1.0.0 container")
	t.Logf("routed back in %s", time.Since(start))
	// A berth crash now must complete the rollback: stop 2.0.0, keep 1.0.0.
	plan, ok, err := f.store.GetSwap("web")
	if err != nil || !ok || !plan.CutOver || plan.FromSlot != "b" || plan.ToSlot != "a" || plan.ToContainerID != "old01" {
		t.Fatalf("persisted plan after the rollback: %+v ok=%v err=%v", plan, ok, err)
	}
	f.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { ct, _ := f.engine.Get(newID); return !ct.Running },
		"2.0.0 container %s still running after the rollback drained it", newID)
	time.Sleep(300 * time.Millisecond)
	if n := f.engine.count("stop", "old01"); n != 0 {
		t.Fatalf("the container rolled back to was stopped %d times", n)
	}
	if ct, ok := f.engine.Get("old01"); !ok || !ct.Running {
		t.Fatalf("old01 is not running after the rollback: %+v", ct)
	}
	if st := f.status(); st.PreviousVersion != "2.0.0" || st.Health != challenge.HealthHealthy {
		t.Fatalf("status after rollback: previous %q health %s", st.PreviousVersion, st.Health)
	}
	eventually(t, 2*time.Second, func() bool { _, ok, _ := f.store.GetSwap("web"); return !ok }, "rollback plan not closed")
	evs, err := f.store.Events(statestore.EventQuery{Challenge: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != "swap_rolled_back" {
		t.Fatalf("last event %s %q, want swap_rolled_back", last.Type, last.Message)
	}
}

func TestAutoRollbackWhileOldVersionDrains(t *testing.T) {
	f, _, v2, newID := swappedFixture(t)
	v2.healthy.Store(false)
	eventually(t, 3*time.Second, func() bool { st := f.status(); return st.ContainerID == "old01" && st.Version == "1.0.0" },
		"unhealthy 2.0.0 within rollback_window was not rolled back while 1.0.0 drained: %+v", f.status())
	f.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { ct, _ := f.engine.Get(newID); return !ct.Running },
		"bad 2.0.0 container %s still running", newID)
	time.Sleep(300 * time.Millisecond)
	if n := f.engine.count("stop", "old01"); n != 0 {
		t.Fatalf("the container rolled back to was stopped %d times", n)
	}
	if st := f.status(); st.Swap == nil || st.PreviousVersion != "2.0.0" {
		t.Fatalf("status after the auto-rollback: %+v", st)
	}
}

// A swap that changes the port records the new container's address with the
// new port, so a berth restarted later routes to the right place at once.
func TestCutOverRecordsUpstreamWithNewPort(t *testing.T) {
	v1, v2 := newVersion(t), newVersion(t)
	spec := testSpec()
	spec.Port = mustAtoi(t, v1.port())
	f := newChallengeFixture(t, nil, nil)
	f.sh.agent.Reach, f.sh.agent.Network = "network", "net"
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	next := spec.Clone()
	next.Version, next.Port = "2.0.0", mustAtoi(t, v2.port())
	f.handle.setSpec(next)
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over to 2.0.0")
	want := "http://127.0.0.1:" + v2.port()
	if got := f.status().Upstream; got != want {
		t.Fatalf("status upstream %s, want %s", got, want)
	}
	rec, _, err := f.store.GetRuntime("web")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Upstream != want {
		t.Fatalf("persisted upstream after the cut-over is %s, want %s (the new spec's port)", rec.Upstream, want)
	}
}

func mustAtoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Whichever comes first wins: the old container's stop, or a rollback that
// routes back to it; the other then backs off.
func TestDrainingOldContainerStopOrRouteBack(t *testing.T) {
	j := &swapJob{routedBack: make(chan struct{})}
	if !j.beginStop() || j.routeBack() {
		t.Error("a rollback routed back to a container whose stop had begun")
	}
	j = &swapJob{routedBack: make(chan struct{})}
	if !j.routeBack() || j.beginStop() {
		t.Error("a container a rollback routed back to was stopped")
	}
}

// exitContainer marks id exited in the engine and tells the owner, as the
// engine's die event would.
func (f *challengeFixture) exitContainer(id string, code int) {
	f.t.Helper()
	f.engine.mu.Lock()
	if ct := f.engine.cts[id]; ct != nil {
		ct.Running, ct.State, ct.ExitCode = false, "exited", code
	}
	f.engine.mu.Unlock()
	f.handle.inbox <- msgContainerEvent{ev: docker.Event{ContainerID: id, Action: "die", ExitCode: &code}}
}

// A new version that crashes while the old one drains has no current
// container; a rollback then still routes back to the draining one.
func TestManualRollbackAfterNewVersionExitedWhileOldDrains(t *testing.T) {
	f, _, _, newID := swappedFixture(t, func(c *configs.Challenge) { c.Update.AutoRollback = false })
	f.engine.failNext("start", 1000) // 2.0.0 never comes back
	f.engine.failNext("create", 1000)
	f.exitContainer(newID, 1)
	eventually(t, 2*time.Second, func() bool { return f.status().State != Running }, "exit of 2.0.0 not noticed")
	if r := f.swap(swapRollback, ""); r.err != nil {
		t.Fatalf("rollback after 2.0.0 exited: %v", r.err)
	}
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.ContainerID == "old01" && st.Version == "1.0.0" && st.State == Running
	}, "rollback did not route back to the draining 1.0.0 container: %+v", func() any { return *f.status() })
	time.Sleep(300 * time.Millisecond) // a pending restart of 2.0.0 would fire now
	if st := f.status(); st.ContainerID != "old01" || st.State != Running {
		t.Fatalf("after the rollback: %+v", *st)
	}
	if ct, ok := f.engine.Get("old01"); !ok || !ct.Running || f.engine.count("stop", "old01") != 0 {
		t.Fatalf("the container rolled back to: %+v present=%v stops=%d", ct, ok, f.engine.count("stop", "old01"))
	}
}

// A new version that crashes within rollback_window while the old one still
// drains is rolled back, not restart-looped.
func TestAutoRollbackWhenNewVersionExitsWhileOldDrains(t *testing.T) {
	f, _, _, newID := swappedFixture(t)
	f.exitContainer(newID, 3)
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.ContainerID == "old01" && st.Version == "1.0.0" && st.State == Running
	}, "2.0.0 exited within rollback_window but 1.0.0 was not routed back: %+v", func() any { return *f.status() })
}

// A route-back that cannot be persisted changes nothing: the old container
// still drains and is then stopped, not left running.
func TestFailedRouteBackStillStopsOldContainer(t *testing.T) {
	f, _, _, _ := swappedFixture(t)
	if err := f.store.Close(); err != nil { // every write fails from now on
		t.Fatal(err)
	}
	if r := f.swap(swapRollback, ""); r.err == nil {
		t.Fatal("rollback succeeded with a closed store")
	}
	if st := f.status(); st.ContainerID == "old01" {
		t.Fatalf("routed back although nothing was persisted: %+v", *st)
	}
	f.inflight.Store(0)
	eventually(t, 5*time.Second, func() bool { ct, _ := f.engine.Get("old01"); return !ct.Running },
		"old container left running after a failed route-back")
}
