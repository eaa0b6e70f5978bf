package challenge

import (
	"testing"
	"time"

	"berth/configs"
)

// seedInterruptedSwap records a swap from old01 (slot a, 1.0.0) to new01
// (slot b, 2.0.0) that berth was running when it died, cut over or not.
func seedInterruptedSwap(t *testing.T, f *fixture, cutOver bool) {
	t.Helper()
	spec := testSpec()
	v1, v2 := newVersion(t), newVersion(t)
	f.seed(spec, v1)
	name := memName(spec.Name, "b")
	f.rt.Add(Instance{ID: "new01", Name: name, Challenge: spec.Name, Slot: "b", Version: "2.0.0",
		SpecHash: spec.SpecHash(), Image: spec.Image + ":2.0.0", Running: true, StartedAt: time.Now()})
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	rec, _, err := f.store.Runtime(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if cutOver {
		rec.Slots["b"] = Slot{ContainerID: "new01", ContainerName: name, Version: "2.0.0", SpecHash: spec.SpecHash()}
		rec.ActiveSlot, rec.Version, rec.PreviousVersion = "b", "2.0.0", "1.0.0"
	}
	plan := SwapPlan{ID: "s1", Challenge: spec.Name, Phase: PhaseWaitingHealthy, From: "1.0.0", To: "2.0.0",
		FromSlot: "a", ToSlot: "b", ToContainerID: "new01", CutOver: cutOver}
	if cutOver {
		plan.Phase = PhaseDraining
	}
	f.store.put(rec)
	f.store.putSwap(plan)
}

// A stop or remove that fails while settling an interrupted swap is retried
// soon, not only at the next bring-up (which, once the serving instance is
// adopted, may never come).
func TestRecoveryRetriesFailedCleanup(t *testing.T) {
	tests := []struct {
		name    string
		cutOver bool
		op, id  string
		gone    func(Instance, bool) bool
	}{
		{"cut over: stop the old version", true, "stop", "old01", func(in Instance, ok bool) bool { return ok && !in.Running }},
		{"not cut over: remove the new version", false, "remove", "new01", func(_ Instance, ok bool) bool { return !ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			seedInterruptedSwap(t, f, tt.cutOver)
			f.rt.FailNext(tt.op, 1)
			f.start(testSpec())
			eventually(t, 5*time.Second, func() bool { in, ok := f.rt.Get(tt.id); return tt.gone(in, ok) },
				"%s of %s failed once during recovery and was not retried (%d calls)", tt.op, tt.id, func() any { return f.rt.Count(tt.op, tt.id) })
			eventually(t, 2*time.Second, func() bool { _, ok, _ := f.store.Swap("web"); return !ok }, "interrupted swap not closed")
		})
	}
}

// A failed removal of the kept previous instance is retried.
func TestRemovePreviousRetriesAfterFailure(t *testing.T) {
	spec := testSpec()
	spec.Update.KeepPrevious = 100 * time.Millisecond
	f := newFixture(t)
	v1, v2 := newVersion(t), newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.seed(spec, v1)
	f.rt.FailNext("remove", 1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get("old01"); return !ok },
		"kept previous instance not removed after a failed removal (%d removes)", func() any { return f.rt.Count("remove", "old01") })
	if n := f.rt.Count("remove", "old01"); n < 2 {
		t.Fatalf("old01 removed after %d removes, want the failed one and a retry", n)
	}
}

// A berth restart within keep_previous still removes the kept previous
// instance: at its deadline if that has not passed, at once if it has.
func TestKeptPreviousRemovedAfterBerthRestart(t *testing.T) {
	for _, downFor := range []time.Duration{0, 700 * time.Millisecond} {
		t.Run("down "+downFor.String(), func(t *testing.T) {
			f, spec := swappedKeepingPrevious(t, 500*time.Millisecond)
			if in, ok := f.rt.Get("old01"); !ok || in.Running {
				t.Fatalf("previous instance after the swap: %+v present=%v, want kept stopped", in, ok)
			}
			f.stop() // berth stops within keep_previous
			time.Sleep(downFor)
			restarted := time.Now()
			f.start(spec)
			eventually(t, 3*time.Second, func() bool { _, ok := f.rt.Get("old01"); return !ok },
				"kept previous instance still there after a berth restart")
			if took := time.Since(restarted); downFor > 0 && took > time.Second {
				t.Errorf("kept instance past its deadline removed %s after the restart, want at once", took)
			}
			eventually(t, time.Second, func() bool { rec, _, _ := f.store.Runtime("web"); return len(rec.Slots) == 1 },
				"slots after removal: %+v", func() any { rec, _, _ := f.store.Runtime("web"); return rec.Slots })
		})
	}
}

// swappedKeepingPrevious has swapped web from 1.0.0 (old01) to 2.0.0; old01
// is kept stopped for keep.
func swappedKeepingPrevious(t *testing.T, keep time.Duration) (*fixture, configs.Challenge) {
	t.Helper()
	spec := testSpec()
	spec.Update.KeepPrevious = keep
	f := newFixture(t)
	v1, v2 := newVersion(t), newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	f.waitSwapPhase(PhaseCompleted, 5*time.Second)
	return f, spec
}

// A challenge that had given up when berth stopped still removes its kept
// previous instance after the restart.
func TestKeptPreviousRemovedAfterRestartOfFailedChallenge(t *testing.T) {
	f, spec := swappedKeepingPrevious(t, 300*time.Millisecond)
	f.stop()
	rec, _, err := f.store.Runtime("web")
	if err != nil || rec.Kept == nil {
		t.Fatalf("kept record before the restart: %+v %v", rec.Kept, err)
	}
	rec.Lifecycle = string(Failed) // berth had given up on 2.0.0
	f.store.put(rec)
	f.start(spec)
	eventually(t, 3*time.Second, func() bool { _, ok := f.rt.Get("old01"); return !ok },
		"kept previous instance of a failed challenge still there after a berth restart")
}

// An instance made before volumes were namespaced, mounting a volume of
// another owner, is not adopted as it is: it is swapped for one that mounts
// the challenge's own volume.
func TestAdoptedContainerWithForeignVolumeIsReplaced(t *testing.T) {
	spec := testSpec()
	spec.Volumes = []configs.Volume{{Name: "data", Target: "/data"}}
	f := newFixture(t)
	v1 := newVersion(t)
	in := f.seed(spec, v1)
	in.ForeignVolume = "berth-data" // berth's own volume in compose
	f.rt.Add(in)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID != "" && st.ContainerID != "old01" },
		"the instance mounting a foreign volume still serves: %+v", func() any { return *f.status() })
	eventually(t, 5*time.Second, func() bool { in, _ := f.rt.Get("old01"); return !in.Running },
		"the instance mounting a foreign volume still runs")
}
