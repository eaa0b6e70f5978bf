package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/supervisor"
)

// waitLimit only bounds a broken test; passing tests never wait on the real clock.
const waitLimit = 10 * time.Second

var (
	epoch   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	errBoom = errors.New("boom")
)

// recorder collects events from any number of supervisors.
type recorder struct {
	mu      sync.Mutex
	events  []supervisor.Event
	changed chan struct{} // closed and replaced on every event
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) hook(e supervisor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

func serviceOf(e supervisor.Event) string {
	switch e := e.(type) {
	case supervisor.EventServiceStarted:
		return e.Service
	case supervisor.EventServiceFailed:
		return e.Service
	case supervisor.EventServiceBackoff:
		return e.Service
	case supervisor.EventServiceCompleted:
		return e.Service
	case supervisor.EventStopTimeout:
		return e.Service
	}
	panic("unknown event type")
}

func matching[T supervisor.Event](events []supervisor.Event, service string) []T {
	var out []T
	for _, e := range events {
		if te, ok := e.(T); ok && serviceOf(e) == service {
			out = append(out, te)
		}
	}
	return out
}

// count returns how many events of type T service has emitted so far.
func count[T supervisor.Event](r *recorder, service string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(matching[T](r.events, service))
}

// waitEvent waits for the n-th event of type T about service and returns it.
func waitEvent[T supervisor.Event](t testing.TB, r *recorder, service string, n int) T {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		r.mu.Lock()
		got := matching[T](r.events, service)
		ch := r.changed
		all := slices.Clone(r.events)
		r.mu.Unlock()
		if len(got) >= n {
			return got[n-1]
		}
		select {
		case <-ch:
		case <-limit.C:
			var zero T
			t.Fatalf("timed out waiting for %T #%d of %q; events so far: %v", zero, n, service, all)
		}
	}
}

// harness runs one supervisor on a fake clock and records its events.
type harness struct {
	t      *testing.T
	clk    *supervisor.FakeClock
	rec    *recorder
	sup    *supervisor.Supervisor
	cancel context.CancelFunc
	done   chan error
	ended  bool
	err    error
}

// newHarness fills spec, unless set, with a deterministic 1s×2 backoff whose
// jitter cancels out (Rand returns 0.5), then calls newBareHarness.
func newHarness(t *testing.T, spec supervisor.Spec) *harness {
	t.Helper()
	if spec.Rand == nil {
		spec.Rand = func() float64 { return 0.5 }
	}
	if spec.Backoff == (supervisor.Backoff{}) {
		spec.Backoff = supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}
	}
	return newBareHarness(t, spec)
}

// newBareHarness sets only the name, a fake clock and a recorder, leaving every
// other field to the supervisor's defaults.
func newBareHarness(t *testing.T, spec supervisor.Spec) *harness {
	t.Helper()
	h := &harness{t: t, clk: supervisor.NewFakeClock(epoch), rec: newRecorder()}
	if spec.Name == "" {
		spec.Name = "test"
	}
	spec.Clock = h.clk
	spec.EventHook = h.rec.hook
	h.sup = supervisor.New(spec)
	// Registered first so it runs last, after services have been released.
	t.Cleanup(func() {
		if h.cancel != nil {
			h.stop()
		}
	})
	return h
}

func (h *harness) add(name string, svc supervisor.Service) supervisor.ServiceID {
	h.t.Helper()
	id, err := h.sup.Add(name, svc)
	if err != nil {
		h.t.Fatalf("Add(%q): %v", name, err)
	}
	return id
}

// serve runs Serve in a goroutine that the harness cleanup stops and waits for.
func (h *harness) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.sup.Serve(ctx) }()
}

// stop cancels Serve's ctx and waits for Serve to return.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	return h.wait()
}

func (h *harness) wait() error {
	h.t.Helper()
	if h.ended {
		return h.err
	}
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	select {
	case h.err = <-h.done:
		h.ended = true
		return h.err
	case <-limit.C:
		h.t.Fatal("Serve did not return")
		return nil
	}
}

// returned reports, without blocking, whether Serve has returned.
func (h *harness) returned() bool {
	select {
	case h.err = <-h.done:
		h.ended = true
		return true
	default:
		return h.ended
	}
}

// sync makes a round trip through the owner goroutine. The owner catches up with the
// clock before answering, so afterwards every restart or timeout that is due has
// been acted on and reported.
func (h *harness) sync() []string { return h.sup.Services() }

// waitClosing returns once the owner has taken in the cancellation of Serve's ctx,
// seen as Add being refused. Probes added before that are stopped with the rest.
func (h *harness) waitClosing() {
	h.t.Helper()
	for i := 0; i < 1000; i++ {
		_, err := h.sup.Add(fmt.Sprintf("probe-%d", i), newGated())
		if errors.Is(err, supervisor.ErrStopped) {
			return
		}
		if err != nil {
			h.t.Fatalf("Add probe: %v", err)
		}
	}
	h.t.Fatal("supervisor never began shutting down")
}

func (h *harness) waitTimers(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := h.clk.WaitTimers(ctx, n); err != nil {
		h.t.Fatalf("waiting for %d pending timers (have %d): %v", n, h.clk.Timers(), err)
	}
}

// gated is a service whose every run lasts until the test picks its outcome.
type gated struct {
	outcome chan error
	runs    atomic.Int32
}

func newGated() *gated { return &gated{outcome: make(chan error)} }

func (g *gated) Serve(ctx context.Context) error {
	g.runs.Add(1)
	select {
	case err := <-g.outcome:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// end makes the current (or next) run return err; it blocks until a run takes it.
func (g *gated) end(t testing.TB, err error) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	select {
	case g.outcome <- err:
	case <-limit.C:
		t.Fatal("no run of the service took the outcome")
	}
}

// stubborn keeps running after its ctx is cancelled until the test releases it.
type stubborn struct {
	cancelled chan struct{} // closed once the run has seen its ctx cancelled
	release   chan struct{} // closed by free to let Serve return
	once      sync.Once
	done      atomic.Bool // set just before Serve returns
}

// newStubborn also frees the service at cleanup so a failing test cannot hang.
func newStubborn(t testing.TB) *stubborn {
	s := &stubborn{cancelled: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(s.free)
	return s
}

func (s *stubborn) free() { s.once.Do(func() { close(s.release) }) }

func (s *stubborn) Serve(ctx context.Context) error {
	<-ctx.Done()
	close(s.cancelled)
	<-s.release
	s.done.Store(true)
	return nil
}

func (s *stubborn) waitCancelled(t testing.TB) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	select {
	case <-s.cancelled:
	case <-limit.C:
		t.Fatal("service ctx was not cancelled")
	}
}
