package challenge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// newQuietFixture is a fixture on a fake clock whose runtime is reported
// down, so the owner never calls it: tests see only its message handling.
func newQuietFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.deps.Clock = supervisor.NewFakeClock(time.Unix(1700000000, 0))
	f.deps.RuntimeUp = func() bool { return false }
	return f
}

func namedSpec(name, image string) configs.Challenge {
	spec := configs.BuiltinDefaults().NewChallenge()
	spec.Name, spec.Image, spec.Version = name, image, "1.0.0"
	return spec
}

// A spec update must reach the owner even when runtime events have filled
// its inbox: the reconciler answers the PUT only once delivery is certain,
// so handing over the spec may neither block nor be dropped.
func TestSpecUpdateSurvivesFullInbox(t *testing.T) {
	f := newQuietFixture(t)
	v1, v2 := namedSpec("flood", "example.test/one"), namedSpec("flood", "example.test/two")
	f.handle = NewHandle("flood")
	for range 1000 {
		f.handle.Notify(InstanceEvent{ID: "x", Challenge: "flood", Kind: InstanceChanged})
	}
	handed := make(chan struct{})
	go func() {
		f.handle.SetSpec(v2)
		close(handed)
	}()
	select {
	case <-handed:
	case <-time.After(5 * time.Second):
		t.Fatal("handing a spec to an owner with a full inbox blocked")
	}
	f.start(v1)
	eventually(t, 5*time.Second, func() bool { return f.status().Image == "example.test/two" },
		"the updated spec (image example.test/two) was not applied; status %+v", func() any { return *f.status() })
}

// shortOwnerTimeouts makes requests give up on a busy owner quickly.
func shortOwnerTimeouts(tb testing.TB, accept, reply time.Duration) {
	tb.Helper()
	oldAccept, oldReply := OwnerAcceptTimeout, OwnerReplyTimeout
	OwnerAcceptTimeout, OwnerReplyTimeout = accept, reply
	tb.Cleanup(func() { OwnerAcceptTimeout, OwnerReplyTimeout = oldAccept, oldReply })
}

// settle waits until the owner has handled everything queued before now:
// the inbox is FIFO, so the answer to a later request proves it.
func settle(tb testing.TB, h *Handle) {
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

// A request answered "busy; try again" must not run later anyway: the
// operator would retry and get two restarts (or two swaps).
func TestBusyRestartDoesNotRunLater(t *testing.T) {
	shortOwnerTimeouts(t, 100*time.Millisecond, 100*time.Millisecond)
	f := newQuietFixture(t)
	f.handle = NewHandle("busy")

	// The owner is not running yet: it is busy past the requester's patience.
	if err := f.handle.Restart(context.Background()); !errors.Is(err, ErrOwnerBusy) {
		t.Fatalf("restart of a busy challenge = %v, want %v", err, ErrOwnerBusy)
	}

	f.start(namedSpec("busy", "example.test/busy"))
	settle(t, f.handle)
	if f.store.hasEvent(EventRestarting) {
		t.Fatalf("the restart answered busy ran later anyway (events %v)", f.store.eventTypes())
	}
	if st := f.status(); st.Restarts != 0 {
		t.Fatalf("restarts = %d after a request answered busy, want 0", st.Restarts)
	}
	if n := f.obs.restartCount("operator"); n != 0 {
		t.Fatalf("%d operator restarts reported after a request answered busy", n)
	}
}

func TestBusySwapDoesNotRunLater(t *testing.T) {
	shortOwnerTimeouts(t, 100*time.Millisecond, 100*time.Millisecond)
	f := newQuietFixture(t)
	f.handle = NewHandle("busy")
	if _, err := f.handle.Swap(context.Background(), "1.1.0"); !errors.Is(err, ErrOwnerBusy) {
		t.Fatalf("swap of a busy challenge = %v, want %v", err, ErrOwnerBusy)
	}
	// The withdrawn request is still queued; the owner must skip it, not
	// answer it (an answer would mean it acted).
	queued := <-f.handle.inbox
	m, ok := queued.(msgSwap)
	if !ok {
		t.Fatalf("queued %T, want msgSwap", queued)
	}
	f.start(namedSpec("busy", "example.test/busy"))
	f.handle.inbox <- m
	settle(t, f.handle)
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
