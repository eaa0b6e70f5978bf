package challenge

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// Swap scenarios: a good swap, a swap that never turns healthy, rollbacks
// after the cut-over, and what the status claims meanwhile.

// swapEventTypes lists the stored swap_* events, in order, with the phase of
// each swap_phase.
func swapEventTypes(s *memStore) []string {
	var out []string
	for _, ev := range scEvents(s, "") {
		switch {
		case ev.Type == EventSwapPhase:
			out = append(out, ev.Phase)
		case strings.HasPrefix(ev.Type, "swap_"):
			out = append(out, ev.Type)
		}
	}
	return out
}

// scSwapped swaps a seeded web from 1.0.0 (old01) to 2.0.0 on clk and waits
// until the swap has completed: the old instance drained, stopped and kept.
func scSwapped(t *testing.T, f *fixture, clk *supervisor.FakeClock, spec configs.Challenge) (v1, v2 *version, newID string) {
	t.Helper()
	v1 = scStartSeeded(t, f, spec)
	v2 = newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	res, err := f.handle.Swap(scCtx(t), "2.0.0")
	if err != nil || res.From != "1.0.0" || res.To != "2.0.0" || res.ID == "" {
		t.Fatalf("swap to 2.0.0: %+v, %v", res, err)
	}
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over to 2.0.0: %+v",
		func() any { return f.status() })
	newID = f.status().ContainerID
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) },
		"swap never completed: %v", func() any { return swapEventTypes(f.store) })
	return v1, v2, newID
}

func TestScenarioGoodSwap(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Update.KeepPrevious = 10 * time.Second
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	res, err := f.handle.Swap(scCtx(t), "2.0.0")
	if err != nil || res.From != "1.0.0" || res.To != "2.0.0" {
		t.Fatalf("swap: %+v, %v", res, err)
	}
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over")
	st := f.status()
	newID := st.ContainerID
	if newID == "old01" || st.Slot != "b" || st.Upstream != v2.srv.URL || st.PreviousVersion != "1.0.0" || st.Health != HealthHealthy {
		t.Fatalf("status at the cut-over: %+v", st)
	}
	// While the old instance drains, the status claims both.
	if claims := st.Claims(); !scContains(claims, "old01", newID) {
		t.Fatalf("claims while draining %v, want old01 and %s", claims, newID)
	}
	if in, _ := f.rt.Get("old01"); !in.Running {
		t.Fatal("old01 stopped before its drain")
	}
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) }, "no swap_completed")

	want := []string{EventSwapStarted, PhasePulling, PhaseStarting, PhaseWaitingHealthy, PhaseCuttingOver, PhaseDraining, EventSwapCompleted}
	if got := swapEventTypes(f.store); !slices.Equal(got, want) {
		t.Fatalf("swap events %v, want %v", got, want)
	}
	old, ok := f.rt.Get("old01")
	if !ok || old.Running || f.rt.Count("stop", "old01") != 1 || f.rt.Count("remove", "old01") != 0 {
		t.Fatalf("old01 after the swap: %+v present %v (stopped and kept expected)", old, ok)
	}
	if f.traffic.closed.Load() == 0 {
		t.Fatal("idle connections to the drained instance not closed")
	}
	rec := scRecord(t, f.store)
	if rec.Kept == nil || rec.Kept.ContainerID != "old01" || rec.ActiveSlot != "b" || rec.PreviousVersion != "1.0.0" ||
		rec.DesiredVersion != "2.0.0" || rec.Upstream != v2.srv.URL || rec.Slots["b"].ContainerID != newID {
		t.Fatalf("record after the swap: %+v", rec)
	}
	if scHasPlan(f.store) {
		t.Fatal("swap plan not closed")
	}
	if f.obs.swapCount("completed") != 1 {
		t.Fatal("swap end not reported")
	}
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.Swap != nil && st.Swap.Phase == PhaseCompleted && slices.Equal(st.Claims(), []string{newID})
	}, "status after the swap: %+v", func() any { return *f.status() })

	// keep_previous later the kept instance is removed, and its slot freed.
	clk.Advance(10 * time.Second)
	eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get("old01"); return !ok }, "kept old01 not removed")
	eventually(t, 5*time.Second, func() bool { r := scRecord(t, f.store); _, a := r.Slots[slotA]; return r.Kept == nil && !a },
		"record still keeps old01: %+v", func() any { return scRecord(t, f.store) })
	if in, _ := f.rt.Get(newID); !in.Running {
		t.Fatal("the serving instance stopped")
	}
}

// A new version that never turns healthy is rolled back: its instance is
// removed and the old one never stopped serving.
func TestScenarioSwapNeverHealthy(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Update.HealthyDeadline = 2 * time.Second
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	v2.healthy.Store(false)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	scAdvanceUntil(t, clk, 250*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapFailed) }, "no swap_failed: %v",
		func() any { return swapEventTypes(f.store) })
	ev := scWaitEvent(t, f.store, EventSwapFailed, 1)
	if ev.Phase != PhaseRolledBack || !strings.Contains(ev.Error, "healthy_deadline") || !strings.Contains(ev.Error, "500") {
		t.Fatalf("swap_failed %+v", ev)
	}
	want := []string{EventSwapStarted, PhasePulling, PhaseStarting, PhaseWaitingHealthy, PhaseRollingBack, PhaseRolledBack, EventSwapFailed}
	if got := swapEventTypes(f.store); !slices.Equal(got, want) {
		t.Fatalf("swap events %v, want %v", got, want)
	}
	if f.rt.Count("create", memName("web", "b")) != 1 {
		t.Fatal("no new instance was created")
	}
	if _, err := f.rt.InSlot(t.Context(), "web", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed version's instance is still there: %v", err)
	}
	// The owner publishes its status just after it stores the swap's end.
	eventually(t, 2*time.Second, func() bool {
		st := f.status()
		return st.ContainerID == "old01" && st.Version == "1.0.0" && st.State == Running && st.Swap != nil &&
			st.Swap.Phase == PhaseRolledBack && st.Swap.Error != "" && slices.Equal(st.Claims(), []string{"old01"})
	}, "status after the failed swap: %+v", func() any { return *f.status() })
	if f.rt.Count("stop", "old01") != 0 || scHasPlan(f.store) || f.obs.swapCount("failed") != 1 {
		t.Fatalf("old01 stops %d, plan kept %v, failed swaps %d", f.rt.Count("stop", "old01"), scHasPlan(f.store), f.obs.swapCount("failed"))
	}
}

// After the cut-over a rollback (automatic when the new version turns
// unhealthy within rollback_window, or asked for) starts the kept previous
// instance again and keeps the rolled-back one in turn.
func TestScenarioRollbackAfterCutOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		act  func(t *testing.T, f *fixture, v2 *version)
	}{
		{"automatic", swapAutoRollback, func(t *testing.T, f *fixture, v2 *version) { v2.healthy.Store(false) }},
		{"manual", swapRollback, func(t *testing.T, f *fixture, v2 *version) {
			res, err := f.handle.Rollback(scCtx(t))
			if err != nil || res.From != "2.0.0" || res.To != "1.0.0" {
				t.Fatalf("rollback: %+v, %v", res, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			clk := scFakeClock(f)
			_, v2, newID := scSwapped(t, f, clk, testSpec())
			tc.act(t, f, v2)
			scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapRolledBack) },
				"no swap_rolled_back: %v", func() any { return swapEventTypes(f.store) })
			st := f.status()
			if st.ContainerID != "old01" || st.Version != "1.0.0" || st.PreviousVersion != "2.0.0" || st.Slot != slotA {
				t.Fatalf("status after the rollback: %+v", st)
			}
			if f.rt.Count("start", "old01") != 1 || f.rt.Count("create", memName("web", slotA)) != 0 {
				t.Fatal("the kept instance was not started again")
			}
			if in, ok := f.rt.Get(newID); !ok || in.Running {
				t.Fatalf("rolled-back instance %s: %+v present %v, want stopped and kept", newID, in, ok)
			}
			started := scEvents(f.store, EventSwapStarted)
			if len(started) != 2 || !strings.HasPrefix(started[1].Message, tc.kind+" 2.0.0 → 1.0.0") {
				t.Fatalf("swap_started events %+v", started)
			}
			if rec := scRecord(t, f.store); rec.Kept == nil || rec.Kept.ContainerID != newID {
				t.Fatalf("kept after the rollback: %+v", rec.Kept)
			}
			if f.store.hasEvent(EventRestarting) {
				t.Fatal("the unhealthy new version was restarted instead of rolled back")
			}
			if f.obs.swapCount("rolled_back") != 1 {
				t.Fatal("rollback not reported")
			}
		})
	}
}

// A rollback while the previous version still drains routes straight back
// to it: no start, no health wait.
func TestScenarioRollbackRoutesBackToDrainingInstance(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.traffic.inflight.Store(1)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over")
	newID := f.status().ContainerID
	res, err := f.handle.Rollback(scCtx(t))
	if err != nil || res.To != "1.0.0" {
		t.Fatalf("rollback while draining: %+v %v", res, err)
	}
	st := f.status()
	if st.ContainerID != "old01" || st.Version != "1.0.0" || !scContains(st.Claims(), "old01", newID) {
		t.Fatalf("status right after the route-back: %+v claims %v", st, st.Claims())
	}
	f.traffic.inflight.Store(0)
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapRolledBack) }, "route-back never ended")
	if in, _ := f.rt.Get(newID); in.Running {
		t.Fatal("2.0.0 still runs after the route-back drained it")
	}
	if f.rt.Count("stop", "old01") != 0 || f.rt.Count("start", "old01") != 0 {
		t.Fatal("the instance routed back to was stopped or started")
	}
	eventually(t, 5*time.Second, func() bool { return !scHasPlan(f.store) }, "route-back plan not closed")
}

// The status claims a swap's new instance while it waits to turn healthy,
// and the old one while it drains; the orphan reaper spares both.
func TestScenarioSwapClaimsInstances(t *testing.T) {
	f := newFixture(t) // the real clock: probes of the serving instance publish the status
	spec := testSpec()
	spec.Update.HealthyDeadline = time.Minute
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	v2.healthy.Store(false)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.traffic.inflight.Store(1)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	f.waitSwapPhase(PhaseWaitingHealthy, 5*time.Second)
	in, err := f.rt.InSlot(t.Context(), "web", "b")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return scContains(f.status().Claims(), "old01", in.ID) },
		"claims %v while waiting healthy, want old01 and %s", func() any { return f.status().Claims() }, in.ID)
	if plan, ok, _ := f.store.Swap("web"); !ok || plan.ToContainerID != in.ID {
		t.Fatalf("stored plan %+v does not name the new instance", plan)
	}
	// A second swap meanwhile is refused.
	if _, err := f.handle.Swap(scCtx(t), "3.0.0"); !errors.Is(err, ErrSwapRunning) {
		t.Fatalf("second swap: %v, want ErrSwapRunning", err)
	}

	v2.healthy.Store(true)
	f.waitSwapPhase(PhaseDraining, 5*time.Second)
	st := f.status()
	if st.ContainerID != in.ID || !scContains(st.Claims(), "old01") {
		t.Fatalf("while old01 drains: active %s claims %v", st.ContainerID, st.Claims())
	}
	f.traffic.inflight.Store(0)
	f.waitSwapPhase(PhaseCompleted, 5*time.Second)
	if claims := f.status().Claims(); slices.Contains(claims, "old01") {
		t.Fatalf("claims %v still name the stopped old01", claims)
	}
}

// The published status follows a swap's phases as they happen, not at the
// owner's next probe: with the clock stopped (no probe runs), the API still
// sees the swap reach waiting_healthy and its new instance claimed.
func TestScenarioSwapPhasesPublishedAtOnce(t *testing.T) {
	f := newFixture(t)
	scFakeClock(f)
	spec := testSpec()
	spec.Health.Interval = time.Hour // no probe of the serving instance republishes meanwhile
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	v2.healthy.Store(false)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() bool {
		st := f.status()
		return st.Swap != nil && st.Swap.Phase == PhaseWaitingHealthy && len(st.Claims()) == 2
	}, "status lags the swap: %+v claims %v", func() any { return f.status().Swap }, func() any { return f.status().Claims() })
}
