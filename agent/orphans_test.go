package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// reapConstantly sweeps for orphans every 10 ms with a short grace until the
// test ends.
func reapConstantly(t *testing.T, f *challengeFixture, grace time.Duration) {
	t.Helper()
	dir := &directory{}
	dir.put(f.handle)
	o := &orphanReaper{agentID: f.agentID, engine: f.engine, store: f.store, dir: dir, clock: supervisor.RealClock(),
		grace: grace, log: zerolog.Nop(), ready: func() bool { return true }, firstSeen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sleepCtx(ctx, o.clock, 10*time.Millisecond) {
			o.sweep(ctx)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// A new version that takes longer than orphan_grace to become healthy is the
// swap's, not an orphan.
func TestOrphanReaperSparesSwapContainer(t *testing.T) {
	spec := testSpec()
	f := newChallengeFixture(t, nil, nil)
	v1, v2 := newVersion(t), newVersion(t)
	v2.healthy.Store(false)
	f.engine.setPort("2.0.0", v2.port())
	f.seed(spec, v1)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	reapConstantly(t, f, 100*time.Millisecond)
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	time.Sleep(time.Second) // ten times orphan_grace while 2.0.0 starts
	v2.healthy.Store(true)
	eventually(t, 5*time.Second, func() bool { return f.status().Version == "2.0.0" }, "no cut-over to 2.0.0")
	id := f.status().ContainerID
	if n := f.engine.count("remove", id); n != 0 {
		t.Fatalf("the orphan reaper removed the swap's new container %s (%d removes); berth cut over to a dead container", id, n)
	}
	if ct, ok := f.engine.get(id); !ok || !ct.Running {
		t.Fatalf("serving container %s is gone", id)
	}
	if _, ok := f.engine.get("old01"); !ok {
		t.Fatal("the orphan reaper removed the old container while it drained")
	}
}

// The reaper counts a persisted swap plan's container as claimed even with
// no challenge goroutine running (a berth that just started).
func TestOrphanReaperCountsSwapPlans(t *testing.T) {
	f := newChallengeFixture(t, nil, nil)
	f.handle = newChallengeHandle("web")
	labels := docker.OwnerLabels(f.agentID)
	labels[docker.LabelChallenge] = "web"
	f.engine.add(docker.Container{ID: "swapnew", Name: "berth-test-web-b", Labels: labels, Running: true})
	if err := f.store.Update(func(tx *statestore.Tx) error {
		return tx.PutSwap(statestore.SwapPlan{ID: "s1", Challenge: "web", Phase: phaseWaitingHealthy, FromSlot: "a", ToSlot: "b", ToContainerID: "swapnew"})
	}); err != nil {
		t.Fatal(err)
	}
	reapConstantly(t, f, 50*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	if _, ok := f.engine.get("swapnew"); !ok {
		t.Fatal("the orphan reaper removed the container a persisted swap plan names")
	}
}

// A live swap's containers are claimed through the challenge's status, even
// before (or without) a persisted plan naming them.
func TestOrphanReaperCountsLiveSwaps(t *testing.T) {
	f := newChallengeFixture(t, nil, nil)
	f.handle = newChallengeHandle("web")
	labels := docker.OwnerLabels(f.agentID)
	labels[docker.LabelChallenge] = "web"
	f.engine.add(docker.Container{ID: "livenew", Name: "berth-test-web-b", Labels: labels, Running: true})
	f.engine.add(docker.Container{ID: "liveold", Name: "berth-test-web-a", Labels: labels, Running: true})
	job := &swapJob{fromID: "liveold"}
	job.plan.Store(&statestore.SwapPlan{ID: "s1", Challenge: "web", ToContainerID: "livenew"})
	f.handle.status.Store(&ChallengeStatus{Name: "web", swaps: []*swapJob{job}})
	reapConstantly(t, f, 50*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	for _, id := range []string{"livenew", "liveold"} {
		if _, ok := f.engine.get(id); !ok {
			t.Errorf("the orphan reaper removed %s, a live swap's container", id)
		}
	}
}
