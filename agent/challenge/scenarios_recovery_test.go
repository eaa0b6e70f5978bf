package challenge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// What a berth killed with -9 leaves behind, and what a new owner settles.

// scInterrupted seeds web as a berth killed mid-swap left it: old01 serving
// 1.0.0 in slot a, maybe new01 (2.0.0) in slot b, and a swap plan in phase.
// A cut-over plan also has the record name new01 as active, as the cut-over
// transaction wrote them together.
func scInterrupted(t *testing.T, f *fixture, phase string, withNew, idRecorded, cutOver bool) {
	t.Helper()
	spec := testSpec()
	v1, v2 := newVersion(t), newVersion(t)
	f.seed(spec, v1)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	plan := SwapPlan{ID: "s1", Challenge: "web", Phase: phase, From: "1.0.0", To: "2.0.0", FromSlot: slotA, ToSlot: "b",
		CutOver: cutOver, StartedAt: time.Now(), UpdatedAt: time.Now()}
	if withNew {
		in := scAddInstance(f, "new01", "b", "2.0.0", spec, true)
		if idRecorded {
			plan.ToContainerID = in.ID
		}
		if cutOver {
			rec := scRecord(t, f.store)
			rec.Slots["b"] = Slot{ContainerID: in.ID, ContainerName: in.Name, Image: in.Image, Version: "2.0.0", SpecHash: in.SpecHash}
			rec.ActiveSlot, rec.Version, rec.PreviousVersion, rec.DesiredVersion = "b", "2.0.0", "1.0.0", "2.0.0"
			rec.Upstream = v2.srv.URL
			f.store.put(rec)
		}
	}
	f.store.putSwap(plan)
}

// Before the cut-over, an interrupted swap is rolled back whatever phase it
// had reached: its new instance goes, the old one is adopted untouched.
func TestScenarioKill9BeforeCutOverRollsBack(t *testing.T) {
	for _, tc := range []struct {
		phase      string
		withNew    bool
		idRecorded bool
	}{
		{PhasePulling, false, false},
		{PhaseExporting, false, false},
		{PhaseStarting, false, false},
		{PhaseStarting, true, false}, // created, killed before its id was recorded
		{PhaseStarting, true, true},
		{PhaseWaitingHealthy, true, true},
		{PhaseImporting, true, true},
		{PhaseCuttingOver, true, true},
		{PhaseRollingBack, true, true},
	} {
		name := tc.phase
		if tc.withNew && !tc.idRecorded {
			name += "/id not recorded"
		} else if tc.withNew {
			name += "/id recorded"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			scInterrupted(t, f, tc.phase, tc.withNew, tc.idRecorded, false)
			f.start(testSpec())
			ev := scWaitEvent(t, f.store, EventSwapFailed, 1)
			if ev.Phase != PhaseRolledBack || ev.From != "1.0.0" || ev.To != "2.0.0" || ev.Error == "" {
				t.Fatalf("recovery event %+v", ev)
			}
			st := scWaitServing(t, f)
			if st.ContainerID != "old01" || st.Version != "1.0.0" || st.Slot != slotA {
				t.Fatalf("after recovery: %+v", st)
			}
			if _, ok := f.rt.Get("new01"); ok {
				t.Fatal("the interrupted swap's new instance was not removed")
			}
			if tc.withNew && f.rt.Count("remove", "new01") != 1 {
				t.Fatalf("new01 removed %d times", f.rt.Count("remove", "new01"))
			}
			if f.rt.Count("start", "old01") != 0 || f.rt.Count("stop", "old01") != 0 || !f.store.hasEvent(EventAdopted) {
				t.Fatal("old01 was not adopted untouched")
			}
			if scHasPlan(f.store) {
				t.Fatal("swap plan not closed")
			}
			if rec := scRecord(t, f.store); rec.Kept != nil || rec.ActiveSlot != slotA {
				t.Fatalf("record after recovery: %+v", rec)
			}
		})
	}
}

// After the cut-over (the plan drains), the swap is completed: the old
// instance is stopped and kept, the new one adopted.
func TestScenarioKill9AfterCutOverCompletes(t *testing.T) {
	f := newFixture(t)
	scInterrupted(t, f, PhaseDraining, true, true, true)
	f.start(testSpec())
	ev := scWaitEvent(t, f.store, EventSwapCompleted, 1)
	if ev.Phase != PhaseCompleted || ev.To != "2.0.0" {
		t.Fatalf("recovery event %+v", ev)
	}
	st := scWaitServing(t, f)
	if st.ContainerID != "new01" || st.Version != "2.0.0" || st.Slot != "b" || st.PreviousVersion != "1.0.0" {
		t.Fatalf("after recovery: %+v", st)
	}
	old, ok := f.rt.Get("old01")
	if !ok || old.Running || f.rt.Count("remove", "old01") != 0 {
		t.Fatalf("old01 after recovery: %+v present %v, want stopped and kept", old, ok)
	}
	rec := scRecord(t, f.store)
	if rec.Kept == nil || rec.Kept.ContainerID != "old01" || scHasPlan(f.store) {
		t.Fatalf("record after recovery: kept %+v, plan still stored %v", rec.Kept, scHasPlan(f.store))
	}
	if f.rt.Count("start", "new01") != 0 || f.store.hasEvent(EventSwapStarted) {
		t.Fatal("new01 was restarted or swapped instead of adopted")
	}
}

// A failed cleanup of an interrupted swap is retried on the cleanup backoff
// until it succeeds; a swap asked for meanwhile is refused.
func TestScenarioKill9RecoveryRetried(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	scInterrupted(t, f, PhaseWaitingHealthy, true, true, false)
	f.rt.FailNext("remove", 2)
	f.start(testSpec())
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("remove", "new01") == 1 && f.status().State == Running },
		"first removal not tried: %+v", func() any { return f.status() })
	if _, err := f.handle.Swap(scCtx(t), "3.0.0"); !errors.Is(err, ErrSwapRunning) {
		t.Fatalf("swap while the interrupted one is unsettled: %v, want ErrSwapRunning", err)
	}
	scAdvanceUntil(t, clk, 500*time.Millisecond, func() bool { _, ok := f.rt.Get("new01"); return !ok },
		"new01 never removed (%d tries)", func() any { return f.rt.Count("remove", "new01") })
	if n := f.rt.Count("remove", "new01"); n != 3 {
		t.Fatalf("%d removals, want 3 (two failures)", n)
	}
	eventually(t, 5*time.Second, func() bool { return !scHasPlan(f.store) }, "plan not closed")
	if st := f.status(); st.ContainerID != "old01" {
		t.Fatalf("serving %s", st.ContainerID)
	}
}

// A running instance recorded in the store is adopted without a restart
// and keeps its recorded health until a probe says otherwise.
func TestScenarioReadoptionKeepsRecordedHealth(t *testing.T) {
	for _, recorded := range []Health{HealthHealthy, HealthDegraded} {
		t.Run(string(recorded), func(t *testing.T) {
			f := newFixture(t)
			spec := testSpec()
			release := make(chan struct{})
			probed := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case probed <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) }) // runs before srv.Close
			v := &version{srv: srv}
			f.seed(spec, v)
			rec := scRecord(t, f.store)
			rec.Health, rec.Restarts = string(recorded), 4
			f.store.put(rec)
			f.start(spec)
			// The first probe hangs: whatever the status says now comes from the record.
			select {
			case <-probed:
			case <-time.After(5 * time.Second):
				t.Fatal("adopted instance never probed")
			}
			st := f.status()
			if st.ContainerID != "old01" || st.State != Running || st.Health != recorded || st.Restarts != 4 || st.Upstream != srv.URL {
				t.Fatalf("status of the adopted instance: %+v", st)
			}
			if f.rt.Count("start", "old01") != 0 || f.rt.Count("stop", "old01") != 0 || f.rt.Count("create", memName("web", slotA)) != 0 {
				t.Fatal("adoption touched the instance")
			}
			ev := scWaitEvent(t, f.store, EventAdopted, 1)
			if ev.ContainerID != "old01" || ev.To != srv.URL {
				t.Fatalf("adopted event %+v", ev)
			}
			if f.store.hasEvent(EventHealthChanged) {
				t.Fatal("health changed before any probe answered")
			}
		})
	}
}

// An instance the record lost (a crash between create and persist) is
// found by its slot's name and adopted, not duplicated.
func TestScenarioUnrecordedInstanceClaimedBySlot(t *testing.T) {
	f := newFixture(t)
	spec := testSpec()
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	scAddInstance(f, "lost01", slotA, "1.0.0", spec, true)
	f.start(spec)
	st := scWaitServing(t, f)
	if st.ContainerID != "lost01" || f.rt.Count("create", memName("web", slotA)) != 0 || f.rt.Count("start", "lost01") != 0 {
		t.Fatalf("unrecorded instance not adopted: %+v", st)
	}
	if rec := scRecord(t, f.store); rec.Slots[slotA].ContainerID != "lost01" {
		t.Fatalf("record slots %+v", rec.Slots)
	}
}

// A stopped instance of an older spec is replaced by a fresh one; a name
// conflict with an unrecorded instance is resolved by replacing it.
func TestScenarioStaleInstancesReplaced(t *testing.T) {
	f := newFixture(t)
	spec := testSpec()
	v1 := newVersion(t)
	f.seed(spec, v1)
	f.rt.Exit("old01", 0, false)
	changed := spec.Clone()
	changed.Env = map[string]string{"MODE": "new"}
	f.start(changed)
	st := scWaitServing(t, f)
	if st.ContainerID == "old01" || f.rt.Count("remove", "old01") != 1 {
		t.Fatalf("stopped instance of the old spec not replaced: %+v", st)
	}
	if rec := scRecord(t, f.store); rec.Slots[slotA].SpecHash != changed.SpecHash() {
		t.Fatalf("slot records spec %s, want %s", rec.Slots[slotA].SpecHash, changed.SpecHash())
	}
}

// StopOnShutdown stops the serving instance when berth stops.
func TestScenarioStopOnShutdown(t *testing.T) {
	f := newFixture(t)
	f.deps.StopOnShutdown = true
	scStartSeeded(t, f, testSpec())
	if r := f.stop(); r != nil {
		t.Fatalf("Serve returned %v", r)
	}
	if in, _ := f.rt.Get("old01"); in.Running || f.rt.Count("stop", "old01") != 1 {
		t.Fatal("instance not stopped at shutdown")
	}
	if rec := scRecord(t, f.store); rec.Lifecycle != string(Stopped) || !f.store.hasEvent(EventStopped) {
		t.Fatalf("stored lifecycle %q, events %v", rec.Lifecycle, f.store.eventTypes())
	}
}

// Without StopOnShutdown, instances outlive berth.
func TestScenarioShutdownLeavesInstanceRunning(t *testing.T) {
	f := newFixture(t)
	scStartSeeded(t, f, testSpec())
	f.stop()
	if in, _ := f.rt.Get("old01"); !in.Running || f.rt.Count("stop", "old01") != 0 {
		t.Fatal("instance stopped at shutdown")
	}
}

// The stop that settles a swap interrupted after its cut-over runs as a job:
// while the old instance takes its time to stop, the owner answers requests
// (a swap is refused until the recovery is settled, not left hanging), and
// the recovery completes once the stop ends.
func TestScenarioRecoveryStopDoesNotBlockOwner(t *testing.T) {
	f := newFixture(t)
	scInterrupted(t, f, PhaseDraining, true, true, true)
	release := make(chan struct{})
	f.rt.OnStop = func(ctx context.Context) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	shortOwnerTimeouts(t, 500*time.Millisecond, 500*time.Millisecond)
	f.start(testSpec())
	eventually(t, 5*time.Second, func() bool { return f.status().ContainerID == "new01" },
		"new01 not adopted: %+v", func() any { return f.status() })
	time.Sleep(100 * time.Millisecond) // the recovery's stop has begun and hangs
	if _, err := f.handle.Swap(scCtx(t), "3.0.0"); !errors.Is(err, ErrSwapRunning) {
		t.Fatalf("swap while the recovery's stop runs: %v, want ErrSwapRunning (the owner must answer)", err)
	}
	close(release)
	ev := scWaitEvent(t, f.store, EventSwapCompleted, 1)
	if ev.Phase != PhaseCompleted {
		t.Fatalf("recovery event %+v", ev)
	}
	eventually(t, 5*time.Second, func() bool { rec := scRecord(t, f.store); return rec.Kept != nil && rec.Kept.ContainerID == "old01" },
		"old01 not kept after the recovery's stop")
	if old, _ := f.rt.Get("old01"); old.Running {
		t.Fatal("old01 still running after the recovery")
	}
}
