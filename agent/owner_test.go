package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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

func namedSpec(name, image string) configs.Challenge {
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
	v1, v2 := namedSpec("flood", "example.test/one"), namedSpec("flood", "example.test/two")
	h := newChallengeHandle("flood")
	f.dir.put(h)
	for range 1000 {
		h.send(msgContainerEvent{ev: docker.Event{Action: "exec_start", ContainerID: "x"}})
	}
	a := &Agent{store: f.store, dir: f.dir, clock: f.clock, log: zerolog.Nop(), shared: f.sh}
	a.setConfig(&configs.Config{Challenges: []configs.Challenge{v2}})
	r := &reconciler{a: a, running: map[string]configs.Challenge{"flood": v1}}
	res, err := r.apply(context.Background())
	if err != nil || len(res.Updated) != 1 {
		t.Fatalf("apply = %+v, %v; want flood updated", res, err)
	}
	f.run(t, h, v1)
	waitStatus(t, h, "the updated spec (image example.test/two) to be applied", func(st *ChallengeStatus) bool {
		return st.Image == "example.test/two"
	})
}

// shortOwnerTimeouts makes API requests give up on a busy owner quickly.
func shortOwnerTimeouts(tb testing.TB, accept, reply time.Duration) {
	tb.Helper()
	oldAccept, oldReply := ownerAcceptTimeout, ownerReplyTimeout
	ownerAcceptTimeout, ownerReplyTimeout = accept, reply
	tb.Cleanup(func() { ownerAcceptTimeout, ownerReplyTimeout = oldAccept, oldReply })
}

// newOwnerAPI serves the admin API over the fixture's directory and store.
func newOwnerAPI(tb testing.TB, f *ownerFixture) *httptest.Server {
	tb.Helper()
	api := &adminAPI{dir: f.dir, store: f.store, log: zerolog.Nop(), started: time.Now()}
	srv := httptest.NewServer(api.routes())
	tb.Cleanup(srv.Close)
	return srv
}

// settle waits until the owner has handled everything queued before now:
// the inbox is FIFO, so the answer to a later request proves it.
func settle(tb testing.TB, h *challengeHandle) {
	tb.Helper()
	m := msgSwap{kind: swapRollback, reply: make(chan swapReply, 1)}
	select {
	case h.inbox <- m:
	case <-time.After(5 * time.Second):
		tb.Fatal("owner does not take messages")
	}
	select {
	case <-m.reply:
	case <-time.After(5 * time.Second):
		tb.Fatal("owner does not answer")
	}
}

func eventTypes(tb testing.TB, store *statestore.Store, challenge string) []string {
	tb.Helper()
	evs, err := store.Events(statestore.EventQuery{Challenge: challenge})
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// A request answered "busy; try again" must not run later anyway: the
// operator would retry and get two restarts (or two swaps).
func TestBusyRestartDoesNotRunLater(t *testing.T) {
	shortOwnerTimeouts(t, 100*time.Millisecond, 100*time.Millisecond)
	f := newOwnerFixture(t)
	h := newChallengeHandle("busy")
	f.dir.put(h)
	srv := newOwnerAPI(t, f)

	// The owner is not running yet: it is busy past the API's patience.
	resp, body := doRequest(t, http.MethodPost, srv.URL+"/v1/challenges/busy/restart", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"busy"`) {
		t.Fatalf("restart of a busy challenge = %d %s, want 503 busy", resp.StatusCode, body)
	}

	f.run(t, h, namedSpec("busy", "example.test/busy"))
	settle(t, h)
	for _, typ := range eventTypes(t, f.store, "busy") {
		if typ == "restarting" {
			t.Fatalf("the restart answered 503 busy ran later anyway (events %v)", eventTypes(t, f.store, "busy"))
		}
	}
	if st := h.status.Load(); st.Restarts != 0 {
		t.Fatalf("restarts = %d after a request answered busy, want 0", st.Restarts)
	}
}

func TestBusySwapDoesNotRunLater(t *testing.T) {
	shortOwnerTimeouts(t, 100*time.Millisecond, 100*time.Millisecond)
	f := newOwnerFixture(t)
	h := newChallengeHandle("busy")
	f.dir.put(h)
	srv := newOwnerAPI(t, f)
	resp, body := doRequest(t, http.MethodPost, srv.URL+"/v1/challenges/busy/swap", strings.NewReader(`{"version":"1.1.0"}`),
		http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"busy"`) {
		t.Fatalf("swap of a busy challenge = %d %s, want 503 busy", resp.StatusCode, body)
	}
	// The withdrawn request is still queued; the owner must skip it, not
	// answer it (an answer would mean it acted).
	queued := <-h.inbox
	m, ok := queued.(msgSwap)
	if !ok {
		t.Fatalf("queued %T, want msgSwap", queued)
	}
	f.run(t, h, namedSpec("busy", "example.test/busy"))
	h.inbox <- m
	settle(t, h)
	select {
	case rep := <-m.reply:
		t.Fatalf("owner acted on a withdrawn swap request: %+v", rep)
	default:
	}
}

func TestTicketTakeOrWithdrawExactlyOnce(t *testing.T) {
	for range 200 {
		tk := newTicket()
		var took, withdrew atomic.Bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); took.Store(tk.take()) }()
		go func() { defer wg.Done(); withdrew.Store(tk.withdraw()) }()
		wg.Wait()
		if took.Load() == withdrew.Load() {
			t.Fatalf("take %v, withdraw %v: exactly one must win", took.Load(), withdrew.Load())
		}
	}
	var none *ticket
	if !none.take() || none.withdraw() {
		t.Error("a nil ticket must always be taken and never withdrawn")
	}
}
