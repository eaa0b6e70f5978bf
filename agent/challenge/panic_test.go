package challenge

import (
	"context"
	"testing"
	"time"
)

// A panic in the owner goroutine while a swap runs must not leave Serve
// waiting for a swap job that can never deliver its result.
func TestPanicDuringSwapDoesNotDeadlock(t *testing.T) {
	spec := testSpec()
	f := newFixture(t)
	v1 := newVersion(t)
	f.seed(spec, v1)
	release := make(chan struct{})
	pulling := make(chan struct{}, 1)
	f.rt.OnLocalImage = func(ctx context.Context) error {
		pulling <- struct{}{}
		select {
		case <-release:
			return ErrMemFailure
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().State == Running }, "not adopted")
	if r := f.swap(swapRequested, "2.0.0"); r.err != nil {
		t.Fatal(r.err)
	}
	<-pulling
	// Set only now: the owner inspects next for the event below, after the
	// inbox hand-over.
	f.rt.OnInspect = func() { panic("challenge goroutine bug") }
	f.handle.Notify(InstanceEvent{ID: "old01", Challenge: spec.Name, Kind: InstanceChanged})
	time.Sleep(100 * time.Millisecond) // the panic unwinds into Serve's deferred waits
	close(release)                     // the swap fails and reports back
	select {
	case r := <-f.done:
		if r != "challenge goroutine bug" {
			t.Fatalf("Serve ended with %v, want the panic", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after a panic during a swap: it waits for the swap job, which waits for Serve")
	}
	f.cancel = nil
}
