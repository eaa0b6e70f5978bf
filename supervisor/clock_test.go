package supervisor_test

import (
	"context"
	"testing"
	"time"

	"berth/supervisor"
)

func fired(tm supervisor.Timer) bool {
	select {
	case <-tm.C():
		return true
	default:
		return false
	}
}

func TestFakeClockTimers(t *testing.T) {
	clk := supervisor.NewFakeClock(epoch)
	late := clk.NewTimer(2 * time.Second)
	early := clk.NewTimer(time.Second)
	if n := clk.Timers(); n != 2 {
		t.Fatalf("Timers() = %d, want 2", n)
	}

	clk.Advance(time.Second - 1)
	if fired(early) || fired(late) {
		t.Fatal("a timer fired before its deadline")
	}
	clk.Advance(1)
	select {
	case at := <-early.C():
		if want := epoch.Add(time.Second); !at.Equal(want) {
			t.Errorf("early fired with %v, want %v", at, want)
		}
	default:
		t.Fatal("early did not fire at its deadline")
	}
	if fired(late) {
		t.Fatal("late fired early")
	}
	if n := clk.Timers(); n != 1 {
		t.Fatalf("Timers() = %d after one fired, want 1", n)
	}
	if early.Stop() {
		t.Error("Stop on a fired timer reported it pending")
	}

	if !late.Stop() {
		t.Error("Stop on a pending timer reported it not pending")
	}
	if late.Stop() {
		t.Error("second Stop reported the timer pending")
	}
	clk.Advance(time.Hour)
	if fired(late) {
		t.Error("a stopped timer fired")
	}
	if n := clk.Timers(); n != 0 {
		t.Errorf("Timers() = %d, want 0", n)
	}
	if got, want := clk.Now(), epoch.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}

func TestFakeClockZeroDurationFiresAtOnce(t *testing.T) {
	clk := supervisor.NewFakeClock(epoch)
	for _, d := range []time.Duration{0, -time.Second} {
		if !fired(clk.NewTimer(d)) {
			t.Errorf("NewTimer(%v) did not fire at once", d)
		}
	}
	if n := clk.Timers(); n != 0 {
		t.Errorf("Timers() = %d, want 0", n)
	}
}

func TestFakeClockWaitTimers(t *testing.T) {
	clk := supervisor.NewFakeClock(epoch)
	armed := make(chan supervisor.Timer)
	go func() { armed <- clk.NewTimer(time.Minute) }()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("WaitTimers: %v", err)
	}
	tm := <-armed
	tm.Stop()

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := clk.WaitTimers(ctx, 1); err != context.Canceled {
		t.Fatalf("WaitTimers with no timers and a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestRealClock(t *testing.T) {
	clk := supervisor.RealClock()
	if d := time.Since(clk.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Now() is %v away from time.Now", d)
	}
	tm := clk.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(waitLimit):
		t.Fatal("real timer did not fire")
	}
	long := clk.NewTimer(time.Hour)
	if !long.Stop() {
		t.Error("Stop on a pending real timer reported it not pending")
	}
}

func TestSleep(t *testing.T) {
	clock := supervisor.NewFakeClock(time.Unix(0, 0))
	done := make(chan bool, 1)
	go func() { done <- supervisor.Sleep(context.Background(), clock, time.Second) }()
	if err := clock.WaitTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("Sleep returned before its time")
	default:
	}
	clock.Advance(time.Second)
	if !<-done {
		t.Fatal("Sleep reported a cancelled context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if supervisor.Sleep(ctx, clock, time.Hour) {
		t.Fatal("Sleep with an ended context reported the full wait")
	}
	if clock.Timers() != 0 {
		t.Fatalf("%d timers left armed", clock.Timers())
	}
}
