package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/configs"
	"berth/statestore"
	"berth/supervisor"
)

// reaperFixture runs the orphan reaper over an in-memory runtime and a real
// (in-memory) store, with owners on demand.
type reaperFixture struct {
	t     *testing.T
	rt    *challenge.MemRuntime
	store *statestore.Store
	dir   *challenge.Directory
}

func newReaperFixture(t *testing.T) *reaperFixture {
	t.Helper()
	store, err := statestore.Open("", statestore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &reaperFixture{t: t, rt: challenge.NewMemRuntime(), store: store, dir: &challenge.Directory{}}
}

// reapConstantly sweeps for orphans every 10 ms with a short grace until the
// test ends.
func (f *reaperFixture) reapConstantly(grace time.Duration) {
	o := &orphanReaper{runtime: f.rt, store: f.store, dir: f.dir, clock: supervisor.RealClock(),
		grace: grace, log: zerolog.Nop(), ready: func() bool { return true }, firstSeen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for supervisor.Sleep(ctx, o.clock, 10*time.Millisecond) {
			o.sweep(ctx)
		}
	}()
	f.t.Cleanup(func() { cancel(); wg.Wait() })
}

// run starts an owner of spec until the test ends.
func (f *reaperFixture) run(spec configs.Challenge) *challenge.Handle {
	h := challenge.NewHandle(spec.Name)
	f.dir.Put(h)
	deps := &challenge.Deps{Runtime: f.rt, Store: lifeStore{f.store}, Observer: observer{log: zerolog.Nop(), metrics: newMetrics(f.dir, func() bool { return true })},
		Traffic: noTraffic{}, Prober: challenge.NewProber(), Clock: supervisor.RealClock(), Rand: func() float64 { return 0.5 }}
	owner := challenge.New(deps, h, spec, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = owner.Serve(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
	return h
}

type noTraffic struct{}

func (noTraffic) InFlight(string) int64 { return 0 }
func (noTraffic) CloseIdle()            {}

// testServer is a challenge version whose health can be switched off.
func testServer(t *testing.T, healthy *atomic.Bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func reaperSpec() configs.Challenge {
	spec := configs.BuiltinDefaults().NewChallenge()
	spec.Name, spec.Image, spec.Version, spec.Port = "web", "registry.test/web", "1.0.0", 8080
	spec.Health.Interval, spec.Health.StartInterval, spec.Health.SuccessThreshold = 50*time.Millisecond, 20*time.Millisecond, 1
	spec.Update.HealthyDeadline, spec.Update.DrainTimeout, spec.Update.MinHealthyTime = 10*time.Second, time.Hour, 0
	return spec
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A new version that takes longer than orphan_grace to become healthy is the
// swap's, not an orphan.
func TestOrphanReaperSparesSwapContainer(t *testing.T) {
	f := newReaperFixture(t)
	var up1, up2 atomic.Bool
	up1.Store(true)
	f.rt.SetAddress("1.0.0", testServer(t, &up1))
	f.rt.SetAddress("2.0.0", testServer(t, &up2))
	h := f.run(reaperSpec())
	waitFor(t, 5*time.Second, func() bool { return h.Status().Health == challenge.HealthHealthy }, "1.0.0 never healthy")
	first := h.Status().ContainerID
	f.reapConstantly(100 * time.Millisecond)
	if _, err := h.Swap(context.Background(), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // ten times orphan_grace while 2.0.0 starts
	up2.Store(true)
	waitFor(t, 5*time.Second, func() bool { return h.Status().Version == "2.0.0" }, "no cut-over to 2.0.0")
	id := h.Status().ContainerID
	if n := f.rt.Count("remove", id); n != 0 {
		t.Fatalf("the orphan reaper removed the swap's new instance %s (%d removes); berth cut over to a dead one", id, n)
	}
	if in, ok := f.rt.Get(id); !ok || !in.Running {
		t.Fatalf("serving instance %s is gone", id)
	}
	if _, ok := f.rt.Get(first); !ok {
		t.Fatal("the orphan reaper removed the old instance while it drained")
	}
}

// The reaper counts a persisted swap plan's instance as claimed even with
// no owner running (a berth that just started), and removes what nothing
// claims once the grace has passed.
func TestOrphanReaperCountsSwapPlans(t *testing.T) {
	f := newReaperFixture(t)
	f.rt.Add(challenge.Instance{ID: "swapnew", Name: "berth-web-b", Challenge: "web", Running: true})
	f.rt.Add(challenge.Instance{ID: "stray", Name: "berth-web-x", Challenge: "web", Running: true})
	if err := f.store.Update(func(tx *statestore.Tx) error {
		return tx.PutSwap(statestore.SwapPlan{ID: "s1", Challenge: "web", Phase: challenge.PhaseWaitingHealthy, FromSlot: "a", ToSlot: "b", ToContainerID: "swapnew"})
	}); err != nil {
		t.Fatal(err)
	}
	f.reapConstantly(50 * time.Millisecond)
	waitFor(t, 5*time.Second, func() bool { _, ok := f.rt.Get("stray"); return !ok }, "the unclaimed instance was never removed")
	if _, ok := f.rt.Get("swapnew"); !ok {
		t.Fatal("the orphan reaper removed the instance a persisted swap plan names")
	}
}
