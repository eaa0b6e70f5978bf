//go:build ignore

package challenge

import (
	"testing"
	"time"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
)

// seedInterruptedSwap records a swap from old01 (slot a, 1.0.0) to new01
// (slot b, 2.0.0) that berth was running when it died, cut over or not.
func seedInterruptedSwap(t *testing.T, f *challengeFixture, cutOver bool) {
	t.Helper()
	spec := testSpec()
	v1, v2 := newVersion(t), newVersion(t)
	f.seed(spec, v1)
	labels := docker.OwnerLabels(f.agentID)
	labels[docker.LabelChallenge], labels[docker.LabelVersion] = spec.Name, "2.0.0"
	labels[docker.LabelSlot], labels[docker.LabelSpecHash] = "b", spec.SpecHash()
	name := docker.ContainerName(f.agentID, spec.Name, "b")
	f.engine.add(docker.Container{ID: "new01", Name: name, Labels: labels, State: "running", Running: true,
		StartedAt: time.Now(), HostPort: v2.port()})
	rec, _, err := f.store.GetRuntime(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if cutOver {
		rec.Slots["b"] = statestore.SlotRecord{ContainerID: "new01", ContainerName: name, Version: "2.0.0", SpecHash: spec.SpecHash()}
		rec.ActiveSlot, rec.Version, rec.PreviousVersion = "b", "2.0.0", "1.0.0"
	}
	plan := statestore.SwapPlan{ID: "s1", Challenge: spec.Name, Phase: phaseWaitingHealthy, From: "1.0.0", To: "2.0.0",
		FromSlot: "a", ToSlot: "b", ToContainerID: "new01", CutOver: cutOver}
	if cutOver {
		plan.Phase = phaseDraining
	}
	if err := f.store.Update(func(tx *statestore.Tx) error {
		if err := tx.PutRuntime(rec); err != nil {
			return err
		}
		return tx.PutSwap(plan)
	}); err != nil {
		t.Fatal(err)
	}
}

// A stop or remove that fails while settling an interrupted swap is retried
// soon, not only at the next bring-up (which, once the serving container is
// adopted, may never come).
func TestRecoveryRetriesFailedCleanup(t *testing.T) {
	tests := []struct {
		name    string
		cutOver bool
		op, id  string
		gone    func(docker.Container, bool) bool
	}{
		{"cut over: stop the old version", true, "stop", "old01", func(ct docker.Container, ok bool) bool { return ok && !ct.Running }},
		{"not cut over: remove the new version", false, "remove", "new01", func(_ docker.Container, ok bool) bool { return !ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChallengeFixture(t, nil, nil)
			seedInterruptedSwap(t, f, tt.cutOver)
			f.engine.failNext(tt.op, 1)
			f.start(testSpec())
			eventually(t, 5*time.Second, func() bool { ct, ok := f.engine.Get(tt.id); return tt.gone(ct, ok) },
				"%s of %s failed once during recovery and was not retried (%d calls)", tt.op, tt.id, func() any { return f.engine.count(tt.op, tt.id) })
			eventually(t, 2*time.Second, func() bool { _, ok, _ := f.store.GetSwap("web"); return !ok }, "interrupted swap not closed")
		})
	}
}

// A failed removal of the kept previous container is retried.
func TestRemovePreviousRetriesAfterFailure(t *testing.T) {
	spec := testSpec()
	spec.Update.KeepPrevious = 100 * time.Millisecond
	f := newChallengeFixture(t, nil, nil)
	v1, v2 := newVersion(t), newVersion(t)
	f.engine.setPort("2.0.0", v2.port())
	f.seed(spec, v1)
	f.engine.failNext("remove", 1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := f.engine.Get("old01"); return !ok },
		"kept previous container not removed after a failed removal (%d removes)", func() any { return f.engine.count("remove", "old01") })
}

// A berth restart within keep_previous still removes the kept previous
// container: at its deadline if that has not passed, at once if it has.
func TestKeptPreviousRemovedAfterBerthRestart(t *testing.T) {
	for _, downFor := range []time.Duration{0, 700 * time.Millisecond} {
		t.Run("down "+downFor.String(), func(t *testing.T) {
			f, spec := swappedKeepingPrevious(t, 500*time.Millisecond)
			if ct, ok := f.engine.Get("old01"); !ok || ct.Running {
				t.Fatalf("previous container after the swap: %+v present=%v, want kept stopped", ct, ok)
			}
			f.stop() // berth stops within keep_previous
			time.Sleep(downFor)
			restarted := time.Now()
			f.start(spec)
			eventually(t, 3*time.Second, func() bool { _, ok := f.engine.Get("old01"); return !ok },
				"kept previous container still there after a berth restart")
			if took := time.Since(restarted); downFor > 0 && took > time.Second {
				t.Errorf("kept container past its deadline removed %s after the restart, want at once", took)
			}
			if rec, _, _ := f.store.GetRuntime("web"); len(rec.Slots) != 1 {
				t.Errorf("slots after removal: %+v", rec.Slots)
			}
		})
	}
}

// swappedKeepingPrevious has swapped web from 1.0.0 (old01) to 2.0.0; old01
// is kept stopped for keep.
func swappedKeepingPrevious(t *testing.T, keep time.Duration) (*challengeFixture, configs.Challenge) {
	t.Helper()
	spec := testSpec()
	spec.Update.KeepPrevious = keep
	f := newChallengeFixture(t, nil, nil)
	v1, v2 := newVersion(t), newVersion(t)
	f.engine.setPort("2.0.0", v2.port())
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	f.waitSwapPhase(phaseCompleted, 5*time.Second)
	return f, spec
}

// A challenge that had given up when berth stopped still removes its kept
// previous container after the restart.
func TestKeptPreviousRemovedAfterRestartOfFailedChallenge(t *testing.T) {
	f, spec := swappedKeepingPrevious(t, 300*time.Millisecond)
	f.stop()
	rec, _, err := f.store.GetRuntime("web")
	if err != nil || rec.Kept == nil {
		t.Fatalf("kept record before the restart: %+v %v", rec.Kept, err)
	}
	rec.Lifecycle = string(Failed) // berth had given up on 2.0.0
	if err := f.store.Update(func(tx *statestore.Tx) error { return tx.PutRuntime(rec) }); err != nil {
		t.Fatal(err)
	}
	f.start(spec)
	eventually(t, 3*time.Second, func() bool { _, ok := f.engine.Get("old01"); return !ok },
		"kept previous container of a failed challenge still there after a berth restart")
}

// A container made before volumes were namespaced, mounting a volume of
// another owner, is not adopted as it is: it is swapped for one that mounts
// the challenge's own volume.
func TestAdoptedContainerWithForeignVolumeIsReplaced(t *testing.T) {
	spec := testSpec()
	spec.Volumes = []configs.Volume{{Name: "data", Target: "/data"}}
	f := newChallengeFixture(t, nil, nil)
	v1 := newVersion(t)
	ct := f.seed(spec, v1)
	ct.Volumes = []string{"berth-data"} // berth's own volume in compose
	f.engine.add(ct)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID != "" && st.ContainerID != "old01" },
		"the container mounting a foreign volume still serves: %+v", func() any { return *f.status() })
	eventually(t, 5*time.Second, func() bool { c, _ := f.engine.Get("old01"); return !c.Running },
		"the container mounting a foreign volume still runs")
}
