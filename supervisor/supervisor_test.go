package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth/supervisor"
)

type (
	started   = supervisor.EventServiceStarted
	failed    = supervisor.EventServiceFailed
	backedOff = supervisor.EventServiceBackoff
	completed = supervisor.EventServiceCompleted
	stopSlow  = supervisor.EventStopTimeout
)

func TestServicesStart(t *testing.T) {
	h := newHarness(t, supervisor.Spec{Name: "root"})
	zeta, alpha := newGated(), newGated()
	h.add("zeta", zeta)
	h.serve()

	ev := waitEvent[started](t, h.rec, "zeta", 1)
	if ev.Supervisor != "root" {
		t.Errorf("Supervisor = %q, want root", ev.Supervisor)
	}
	h.add("alpha", alpha) // during Serve: starts at once
	waitEvent[started](t, h.rec, "alpha", 1)
	if got, want := h.sync(), []string{"alpha", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if n := count[failed](h.rec, "zeta") + count[failed](h.rec, "alpha"); n != 0 {
		t.Errorf("%d failure events on a clean shutdown", n)
	}
	if zeta.runs.Load() != 1 || alpha.runs.Load() != 1 {
		t.Errorf("runs = %d, %d; want 1 each", zeta.runs.Load(), alpha.runs.Load())
	}
}

func TestErrorRestartsAfterBackoff(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	g := newGated()
	h.add("svc", g)
	h.serve()
	waitEvent[started](t, h.rec, "svc", 1)

	delays := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, delay := range delays {
		attempt := i + 1
		g.end(t, errBoom)
		f := waitEvent[failed](t, h.rec, "svc", attempt)
		if !errors.Is(f.Err, errBoom) || f.Panic || f.Failures != attempt {
			t.Fatalf("failure %d: %+v", attempt, f)
		}
		b := waitEvent[backedOff](t, h.rec, "svc", attempt)
		if b.Delay != delay || b.Attempt != attempt {
			t.Fatalf("backoff %d = %v (attempt %d), want %v (attempt %d)", attempt, b.Delay, b.Attempt, delay, attempt)
		}

		h.clk.Advance(delay - time.Nanosecond)
		h.sync()
		if n := count[started](h.rec, "svc"); n != attempt {
			t.Fatalf("restarted %v before its %v backoff ended (%d starts)", delay-time.Nanosecond, delay, n)
		}
		h.clk.Advance(time.Nanosecond)
		// A round trip through the owner observes every restart already due.
		h.sync()
		if n := count[started](h.rec, "svc"); n != attempt+1 {
			t.Fatalf("not restarted once its %v backoff ended (%d starts)", delay, n)
		}
	}
	if got := h.sync(); !slices.Equal(got, []string{"svc"}) {
		t.Errorf("Services() = %v", got)
	}
}

func TestPanicIsFailureWithStack(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	var runs atomic.Int32
	h.add("panicky", supervisor.ServiceFunc(func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			panic("kaboom")
		}
		<-ctx.Done()
		return ctx.Err()
	}))
	h.serve()

	f := waitEvent[failed](t, h.rec, "panicky", 1)
	if !f.Panic || f.Failures != 1 {
		t.Errorf("failure = %+v, want Panic and Failures 1", f)
	}
	if f.Err == nil || !strings.Contains(f.Err.Error(), "kaboom") {
		t.Errorf("Err = %v, want the panic value", f.Err)
	}
	if !strings.Contains(f.Stack, "TestPanicIsFailureWithStack") {
		t.Errorf("Stack does not show the panicking function:\n%s", f.Stack)
	}
	if b := waitEvent[backedOff](t, h.rec, "panicky", 1); b.Delay != time.Second {
		t.Errorf("backoff = %v, want 1s", b.Delay)
	}
	h.clk.Advance(time.Second)
	waitEvent[started](t, h.rec, "panicky", 2)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if n := count[failed](h.rec, "panicky"); n != 1 {
		t.Errorf("%d failures, want 1", n)
	}
}

func TestPanicWithErrorAndGoexit(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	h.add("err-panic", supervisor.ServiceFunc(func(context.Context) error {
		panic(fmt.Errorf("wrapped: %w", errBoom))
	}))
	h.add("goexit", supervisor.ServiceFunc(func(context.Context) error {
		runtime.Goexit()
		return nil
	}))
	h.serve()

	if f := waitEvent[failed](t, h.rec, "err-panic", 1); !f.Panic || !errors.Is(f.Err, errBoom) {
		t.Errorf("failure = %+v, want a panic wrapping errBoom", f)
	}
	// A service that unwinds via runtime.Goexit must still be noticed, not hang the tree.
	if f := waitEvent[failed](t, h.rec, "goexit", 1); f.Err == nil {
		t.Errorf("failure = %+v, want an error", f)
	}
	h.clk.Advance(time.Second)
	waitEvent[started](t, h.rec, "goexit", 2)
}

// A crash-looping service must not slow its siblings: backoff is per service.
func TestFlappingServiceDoesNotDelaySibling(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	flappy, steady := newGated(), newGated()
	h.add("flappy", flappy)
	h.add("steady", steady)
	h.serve()
	waitEvent[started](t, h.rec, "flappy", 1)
	waitEvent[started](t, h.rec, "steady", 1)

	for attempt := 1; attempt <= 5; attempt++ {
		flappy.end(t, errBoom)
		b := waitEvent[backedOff](t, h.rec, "flappy", attempt)
		h.clk.Advance(b.Delay)
		waitEvent[started](t, h.rec, "flappy", attempt+1)
	}
	flappy.end(t, errBoom)
	if b := waitEvent[backedOff](t, h.rec, "flappy", 6); b.Delay != 32*time.Second {
		t.Fatalf("flappy's 6th backoff = %v, want 32s", b.Delay)
	}

	steady.end(t, errBoom)
	b := waitEvent[backedOff](t, h.rec, "steady", 1)
	if b.Delay != time.Second || b.Attempt != 1 {
		t.Fatalf("steady's backoff = %v attempt %d, want 1s attempt 1: it inherited flappy's failures", b.Delay, b.Attempt)
	}
	h.clk.Advance(time.Second)
	waitEvent[started](t, h.rec, "steady", 2)
	if n := count[started](h.rec, "flappy"); n != 6 {
		t.Fatalf("flappy restarted early: %d starts, want 6", n)
	}

	h.clk.Advance(31*time.Second - time.Nanosecond)
	h.sync()
	if n := count[started](h.rec, "flappy"); n != 6 {
		t.Fatalf("flappy restarted before its own backoff ended: %d starts", n)
	}
	h.clk.Advance(time.Nanosecond)
	waitEvent[started](t, h.rec, "flappy", 7)
}

func TestReturnWithoutErrorCompletes(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"nil", nil},
		{"ErrDoNotRestart", fmt.Errorf("finished migrating: %w", supervisor.ErrDoNotRestart)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, supervisor.Spec{})
			g := newGated()
			h.add("once", g)
			h.serve()
			g.end(t, tt.err)

			waitEvent[completed](t, h.rec, "once", 1)
			if got := h.sync(); len(got) != 0 {
				t.Errorf("Services() = %v after completion, want none", got)
			}
			h.clk.Advance(time.Hour)
			h.sync()
			if n := count[started](h.rec, "once"); n != 1 {
				t.Errorf("completed service started %d times, want 1", n)
			}
			if n := count[failed](h.rec, "once") + count[backedOff](h.rec, "once"); n != 0 {
				t.Errorf("completion reported as a failure (%d events)", n)
			}
			// A completed service frees its name.
			h.add("once", newGated())
			waitEvent[started](t, h.rec, "once", 2)
		})
	}
}

func TestRemoveWaitsForServe(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	slow, slower := newStubborn(t), newStubborn(t)
	slowID := h.add("slow", slow)
	h.add("slower", slower)
	h.add("other", newGated())
	h.serve()
	waitEvent[started](t, h.rec, "slow", 1)
	waitEvent[started](t, h.rec, "slower", 1)

	// Give up waiting only after the owner has handled the removal: a Remove that
	// did not wait for Serve would already have its answer.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-slower.cancelled
		h.sync()
		cancel()
	}()
	if err := h.sup.RemoveByName(ctx, "slower"); !errors.Is(err, context.Canceled) {
		t.Fatalf("RemoveByName returned %v while Serve was still running, want context.Canceled", err)
	}
	if got := h.sync(); !slices.Contains(got, "slower") {
		t.Errorf("Services() = %v, want slower listed until it stops", got)
	}

	removed := make(chan error, 1)
	go func() { removed <- h.sup.Remove(context.Background(), slowID) }()
	slow.waitCancelled(t) // the owner has registered the Remove
	slow.free()
	select {
	case err := <-removed:
		if err != nil {
			t.Fatalf("Remove = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Remove did not return after Serve returned")
	}
	if !slow.done.Load() {
		t.Error("Remove returned before Serve did")
	}
	if got := h.sync(); slices.Contains(got, "slow") {
		t.Errorf("Services() = %v, want slow gone", got)
	}
	if n := count[failed](h.rec, "slow") + count[completed](h.rec, "slow"); n != 0 {
		t.Errorf("a removed service was reported as failed or completed (%d events)", n)
	}

	if err := h.sup.Remove(context.Background(), slowID); !errors.Is(err, supervisor.ErrUnknownService) {
		t.Errorf("Remove of a removed id = %v, want ErrUnknownService", err)
	}
	if err := h.sup.RemoveByName(context.Background(), "nope"); !errors.Is(err, supervisor.ErrUnknownService) {
		t.Errorf("RemoveByName(nope) = %v, want ErrUnknownService", err)
	}
}

func TestRemoveDuringBackoff(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	g := newGated()
	id := h.add("svc", g)
	h.serve()
	g.end(t, errBoom)
	waitEvent[backedOff](t, h.rec, "svc", 1)

	if err := h.sup.Remove(context.Background(), id); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	h.clk.Advance(time.Hour)
	h.sync()
	if n := count[started](h.rec, "svc"); n != 1 {
		t.Errorf("removed service restarted (%d starts)", n)
	}
}

func TestRemoveBeforeServe(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	id := h.add("gone", newGated())
	h.add("kept", newGated())
	if got := h.sup.Services(); !slices.Equal(got, []string{"gone", "kept"}) {
		t.Fatalf("Services() before Serve = %v", got)
	}
	if err := h.sup.Remove(context.Background(), id); err != nil {
		t.Fatalf("Remove before Serve = %v", err)
	}
	if err := h.sup.Remove(context.Background(), id); !errors.Is(err, supervisor.ErrUnknownService) {
		t.Fatalf("second Remove = %v, want ErrUnknownService", err)
	}
	h.serve()
	waitEvent[started](t, h.rec, "kept", 1)
	if n := count[started](h.rec, "gone"); n != 0 {
		t.Errorf("a service removed before Serve was started")
	}
}

func TestShutdownWaitsForEveryChild(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	slow, quick := newStubborn(t), newGated()
	h.add("slow", slow)
	h.add("quick", quick)
	h.serve()
	waitEvent[started](t, h.rec, "slow", 1)
	waitEvent[started](t, h.rec, "quick", 1)

	h.cancel()
	slow.waitCancelled(t)
	h.waitTimers(1) // the owner armed the stop timeout: it is shutting down

	if _, err := h.sup.Add("late", newGated()); !errors.Is(err, supervisor.ErrStopped) {
		t.Errorf("Add during shutdown = %v, want ErrStopped", err)
	}
	// The owner still answers, so Serve has not returned while slow runs.
	if got := h.sync(); !slices.Contains(got, "slow") {
		t.Fatalf("Services() = %v during shutdown, want slow still listed", got)
	}
	if h.returned() {
		t.Fatal("Serve returned while a child was still running")
	}

	slow.free()
	if err := h.wait(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if !slow.done.Load() {
		t.Error("Serve returned before its child did")
	}
	if n := count[stopSlow](h.rec, "slow"); n != 0 {
		t.Errorf("stop timeout reported without the clock advancing")
	}
	if n := count[failed](h.rec, "quick"); n != 0 {
		t.Errorf("a service stopped by shutdown was reported as failed")
	}
}

func TestShutdownDropsPendingRestarts(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	slow, quick := newStubborn(t), newGated()
	h.add("slow", slow)
	h.add("quick", quick)
	h.serve()
	waitEvent[started](t, h.rec, "slow", 1)
	quick.end(t, errBoom)
	waitEvent[backedOff](t, h.rec, "quick", 1)

	h.cancel()
	h.waitClosing()
	h.clk.Advance(time.Hour)
	if got := h.sync(); slices.Contains(got, "quick") || !slices.Contains(got, "slow") {
		t.Errorf("Services() during shutdown = %v, want slow but not quick", got)
	}
	if n := count[started](h.rec, "quick"); n != 1 {
		t.Errorf("quick restarted during shutdown (%d starts)", n)
	}
	slow.free()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestStopTimeoutEvent(t *testing.T) {
	h := newHarness(t, supervisor.Spec{StopTimeout: 5 * time.Second})
	slow := newStubborn(t)
	h.add("slow", slow)
	h.serve()
	waitEvent[started](t, h.rec, "slow", 1)

	h.cancel()
	h.waitTimers(1)
	h.clk.Advance(5*time.Second - time.Nanosecond)
	h.sync()
	if n := count[stopSlow](h.rec, "slow"); n != 0 {
		t.Fatal("stop timeout reported before StopTimeout elapsed")
	}
	h.clk.Advance(time.Nanosecond)
	ev := waitEvent[stopSlow](t, h.rec, "slow", 1)
	if ev.Supervisor != "test" {
		t.Errorf("Supervisor = %q", ev.Supervisor)
	}

	// It keeps waiting, and says so only once.
	h.clk.Advance(time.Hour)
	if got := h.sync(); !slices.Contains(got, "slow") || h.returned() {
		t.Fatal("Serve gave up on a child after the stop timeout")
	}
	if n := count[stopSlow](h.rec, "slow"); n != 1 {
		t.Errorf("%d stop timeout events, want 1", n)
	}
	slow.free()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestStopTimeoutOnRemove(t *testing.T) {
	h := newHarness(t, supervisor.Spec{StopTimeout: 2 * time.Second})
	slow := newStubborn(t)
	h.add("slow", slow)
	h.serve()
	waitEvent[started](t, h.rec, "slow", 1)

	removed := make(chan error, 1)
	go func() { removed <- h.sup.RemoveByName(context.Background(), "slow") }()
	h.waitTimers(1)
	h.clk.Advance(2 * time.Second)
	waitEvent[stopSlow](t, h.rec, "slow", 1)
	slow.free()
	if err := <-removed; err != nil {
		t.Fatalf("RemoveByName = %v", err)
	}
}

func TestFailureCountResetsAfterResetAfter(t *testing.T) {
	h := newHarness(t, supervisor.Spec{ResetAfter: 10 * time.Second})
	g := newGated()
	h.add("svc", g)
	h.serve()
	waitEvent[started](t, h.rec, "svc", 1)

	g.end(t, errBoom)
	if f := waitEvent[failed](t, h.rec, "svc", 1); f.Failures != 1 {
		t.Fatalf("Failures = %d, want 1", f.Failures)
	}
	h.clk.Advance(waitEvent[backedOff](t, h.rec, "svc", 1).Delay)
	waitEvent[started](t, h.rec, "svc", 2)

	// Just short of ResetAfter: the count keeps growing.
	h.clk.Advance(10*time.Second - time.Nanosecond)
	g.end(t, errBoom)
	if f := waitEvent[failed](t, h.rec, "svc", 2); f.Failures != 2 {
		t.Fatalf("Failures = %d after a short run, want 2", f.Failures)
	}
	b := waitEvent[backedOff](t, h.rec, "svc", 2)
	if b.Delay != 2*time.Second || b.Attempt != 2 {
		t.Fatalf("backoff = %v attempt %d, want 2s attempt 2", b.Delay, b.Attempt)
	}
	h.clk.Advance(b.Delay)
	waitEvent[started](t, h.rec, "svc", 3)

	// A run of ResetAfter without failing starts the count over.
	h.clk.Advance(10 * time.Second)
	g.end(t, errBoom)
	if f := waitEvent[failed](t, h.rec, "svc", 3); f.Failures != 1 {
		t.Fatalf("Failures = %d after running ResetAfter, want 1", f.Failures)
	}
	b = waitEvent[backedOff](t, h.rec, "svc", 3)
	if b.Delay != time.Second || b.Attempt != 1 {
		t.Fatalf("backoff = %v attempt %d after reset, want 1s attempt 1", b.Delay, b.Attempt)
	}
}

func TestDefaultsApply(t *testing.T) {
	// Zero Backoff means 100ms×2 with 20% jitter; Rand 0 gives the lower bound.
	h := newBareHarness(t, supervisor.Spec{Rand: func() float64 { return 0 }})
	g := newGated()
	h.add("svc", g)
	h.serve()
	g.end(t, errBoom)
	if b := waitEvent[backedOff](t, h.rec, "svc", 1); b.Delay != 80*time.Millisecond {
		t.Errorf("default first backoff at r=0 = %v, want 80ms", b.Delay)
	}
	h.clk.Advance(80 * time.Millisecond)
	waitEvent[started](t, h.rec, "svc", 2)
	h.clk.Advance(time.Minute) // default ResetAfter
	g.end(t, errBoom)
	if f := waitEvent[failed](t, h.rec, "svc", 2); f.Failures != 1 {
		t.Errorf("Failures = %d after the default ResetAfter, want 1", f.Failures)
	}

	// Default StopTimeout is 10s.
	h.clk.Advance(time.Second)
	waitEvent[started](t, h.rec, "svc", 3)
	slow := newStubborn(t)
	h.add("slow", slow)
	waitEvent[started](t, h.rec, "slow", 1)
	h.cancel()
	h.waitTimers(1)
	h.clk.Advance(10*time.Second - time.Nanosecond)
	h.sync()
	if count[stopSlow](h.rec, "slow") != 0 {
		t.Fatal("stop timeout before the default 10s")
	}
	h.clk.Advance(time.Nanosecond)
	waitEvent[stopSlow](t, h.rec, "slow", 1)
	slow.free()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestNestedSupervisors(t *testing.T) {
	h := newHarness(t, supervisor.Spec{Name: "root"})
	inner := supervisor.New(supervisor.Spec{Name: "inner", Clock: h.clk, EventHook: h.rec.hook, Rand: func() float64 { return 0.5 },
		Backoff: supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}})
	leaf, slow := newGated(), newStubborn(t)
	if _, err := inner.Add("leaf", leaf); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Add("slow", slow); err != nil {
		t.Fatal(err)
	}
	h.add("inner", inner)
	h.serve()
	waitEvent[started](t, h.rec, "inner", 1)
	waitEvent[started](t, h.rec, "leaf", 1)
	waitEvent[started](t, h.rec, "slow", 1)

	// A failing leaf is handled inside the inner tree.
	leaf.end(t, errBoom)
	if f := waitEvent[failed](t, h.rec, "leaf", 1); f.Supervisor != "inner" {
		t.Errorf("leaf failure reported by %q, want inner", f.Supervisor)
	}
	h.clk.Advance(waitEvent[backedOff](t, h.rec, "leaf", 1).Delay)
	waitEvent[started](t, h.rec, "leaf", 2)
	if n := count[failed](h.rec, "inner"); n != 0 {
		t.Errorf("a leaf failure surfaced as %d failures of inner", n)
	}

	if err := inner.Serve(context.Background()); !errors.Is(err, supervisor.ErrAlreadyServed) {
		t.Errorf("second Serve of inner = %v, want ErrAlreadyServed", err)
	}

	// Shutting down the root reaches the grandchildren and waits for them.
	h.cancel()
	slow.waitCancelled(t)
	if got := h.sync(); !slices.Equal(got, []string{"inner"}) || h.returned() {
		t.Fatalf("root returned (services %v) while a grandchild still ran", got)
	}
	slow.free()
	if err := h.wait(); err != nil {
		t.Fatalf("root Serve = %v", err)
	}
	if !slow.done.Load() {
		t.Error("root returned before its grandchild")
	}
	if got := inner.Services(); got != nil {
		t.Errorf("inner.Services() after shutdown = %v, want nil", got)
	}
}

func TestAddRejectsBadInput(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	first := h.add("a", newGated())
	if _, err := h.sup.Add("a", newGated()); !errors.Is(err, supervisor.ErrDuplicateName) {
		t.Errorf("duplicate Add before Serve = %v, want ErrDuplicateName", err)
	}
	if _, err := h.sup.Add("", newGated()); err == nil {
		t.Error("Add with an empty name succeeded")
	}
	if _, err := h.sup.Add("nil", nil); err == nil {
		t.Error("Add of a nil service succeeded")
	}
	h.serve()
	waitEvent[started](t, h.rec, "a", 1)
	if _, err := h.sup.Add("a", newGated()); !errors.Is(err, supervisor.ErrDuplicateName) {
		t.Errorf("duplicate Add during Serve = %v, want ErrDuplicateName", err)
	}
	if err := h.sup.RemoveByName(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	second := h.add("a", newGated())
	if second == first {
		t.Errorf("ID %d reused after removal", second)
	}
	waitEvent[started](t, h.rec, "a", 2)
	if n := count[started](h.rec, "a"); n != 2 {
		t.Errorf("%d starts of a, want 2 (duplicates must not start)", n)
	}
}

func TestCallsAfterShutdown(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	id := h.add("a", newGated())
	h.serve()
	waitEvent[started](t, h.rec, "a", 1)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	if _, err := h.sup.Add("b", newGated()); !errors.Is(err, supervisor.ErrStopped) {
		t.Errorf("Add after shutdown = %v, want ErrStopped", err)
	}
	if err := h.sup.Remove(context.Background(), id); !errors.Is(err, supervisor.ErrStopped) {
		t.Errorf("Remove after shutdown = %v, want ErrStopped", err)
	}
	if got := h.sup.Services(); got != nil {
		t.Errorf("Services() after shutdown = %v, want nil", got)
	}
	err := h.sup.Serve(context.Background())
	if !errors.Is(err, supervisor.ErrAlreadyServed) || !errors.Is(err, supervisor.ErrDoNotRestart) {
		t.Errorf("second Serve = %v, want ErrAlreadyServed wrapping ErrDoNotRestart", err)
	}
}

func TestServeWithCancelledContext(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	g := newGated()
	h.add("a", g)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.sup.Serve(ctx); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if n := count[started](h.rec, "a"); n != 0 {
		t.Errorf("Serve with a done ctx started a service %d times", n)
	}
	if _, err := h.sup.Add("b", newGated()); !errors.Is(err, supervisor.ErrStopped) {
		t.Errorf("Add after Serve returned = %v, want ErrStopped", err)
	}
}

func TestPanicWhileStoppingIsReportedNotRestarted(t *testing.T) {
	h := newHarness(t, supervisor.Spec{})
	h.add("messy", supervisor.ServiceFunc(func(ctx context.Context) error {
		<-ctx.Done()
		panic("cleanup went wrong")
	}))
	h.serve()
	waitEvent[started](t, h.rec, "messy", 1)
	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if f := waitEvent[failed](t, h.rec, "messy", 1); !f.Panic || f.Stack == "" {
		t.Errorf("failure = %+v, want a panic with its stack", f)
	}
	if n := count[backedOff](h.rec, "messy") + count[started](h.rec, "messy"); n != 1 {
		t.Errorf("a service panicking on the way out was scheduled for restart")
	}
}
