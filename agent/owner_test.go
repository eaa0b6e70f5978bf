package agent

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// ownerFixture runs real challenge owners over a real store with an engine
// reported down, so a challenge never calls the engine: tests see only the
// owner's message handling.
type ownerFixture struct {
	store *statestore.Store
	dir   *directory
	clock *supervisor.FakeClock
	sh    *shared
}

func newOwnerFixture(tb testing.TB) *ownerFixture {
	tb.Helper()
	store, err := statestore.Open(tb.TempDir(), statestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	f := &ownerFixture{store: store, dir: &directory{}, clock: supervisor.NewFakeClock(time.Unix(1700000000, 0))}
	f.sh = &shared{
		agentID:   "owner-test",
		store:     store,
		clock:     f.clock,
		rand:      func() float64 { return 0.5 },
		log:       zerolog.Nop(),
		proxyBase: "http://127.0.0.1:1",
		dockerUp:  func() bool { return false },
		metrics:   newMetrics(f.dir, func() bool { return false }),
		inflight:  func(string) int64 { return 0 },
		closeIdle: func() {},
	}
	return f
}

func testSpec(name, image string) configs.Challenge {
	spec := configs.BuiltinDefaults().NewChallenge()
	spec.Name, spec.Image, spec.Version = name, image, "1.0.0"
	return spec
}

// run starts the owner of h with spec and stops it at cleanup.
func (f *ownerFixture) run(tb testing.TB, h *challengeHandle, spec configs.Challenge) *challenge {
	tb.Helper()
	c := newChallenge(f.sh, h, spec, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Error("challenge owner did not stop")
		}
	})
	return c
}

// waitStatus polls h's published status until ok holds.
func waitStatus(tb testing.TB, h *challengeHandle, what string, ok func(*ChallengeStatus) bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(h.status.Load()) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s; status %+v", what, *h.status.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A spec update must reach the owner even when engine events have filled
// its inbox: the reconciler answers the PUT only once delivery is certain.
func TestSpecUpdateSurvivesFullInbox(t *testing.T) {
	f := newOwnerFixture(t)
	v1, v2 := testSpec("flood", "example.test/one"), testSpec("flood", "example.test/two")
	h := newChallengeHandle("flood")
	f.dir.put(h)
	for range 1000 {
		h.send(msgContainerEvent{ev: docker.Event{Action: "exec_start", ContainerID: "x"}})
	}
	a := &Agent{cfg: &configs.Config{Challenges: []configs.Challenge{v2}}, store: f.store, dir: f.dir, clock: f.clock, log: zerolog.Nop(), shared: f.sh}
	r := &reconciler{a: a, cfg: a.cfg, running: map[string]configs.Challenge{"flood": v1}}
	res, err := r.apply(context.Background())
	if err != nil || len(res.Updated) != 1 {
		t.Fatalf("apply = %+v, %v; want flood updated", res, err)
	}
	f.run(t, h, v1)
	waitStatus(t, h, "the updated spec (image example.test/two) to be applied", func(st *ChallengeStatus) bool {
		return st.Image == "example.test/two"
	})
}
