package challenge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Bring-up scenarios around the image step and the runtime's availability.

const scRef = "registry.test/web:1.0.0"

// pull_policy never with the image missing refuses the start: the challenge
// waits in failed, without a pull, until an operator restarts it.
func TestScenarioPullPolicyNeverMissingImage(t *testing.T) {
	f := newFixture(t)
	var present atomic.Bool
	f.rt.OnLocalImage = func(context.Context) error {
		if present.Load() {
			return nil
		}
		return fmt.Errorf("image %s: %w", scRef, ErrNotFound)
	}
	spec := testSpec()
	spec.PullPolicy = "never"
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(spec)
	st := scWaitState(t, f, Failed)
	if !strings.Contains(st.LastError, "pull_policy is never") || st.ContainerID != "" {
		t.Fatalf("status after the refusal: %+v", st)
	}
	ev := scWaitEvent(t, f.store, EventStartFailed, 1)
	if !strings.Contains(ev.Error, "not present locally") {
		t.Fatalf("start_failed %+v", ev)
	}
	if f.rt.Count("pull", scRef) != 0 || f.rt.Count("create", memName("web", slotA)) != 0 || f.store.hasEvent(EventRestarting) {
		t.Fatal("a refused start pulled, created or scheduled a restart")
	}
	present.Store(true)
	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	if st := scWaitServing(t, f); st.LastError != "" {
		t.Fatalf("last error kept after the restart: %q", st.LastError)
	}
}

// A missing image is pulled (if_not_present), or always pulled (always).
func TestScenarioPullPolicies(t *testing.T) {
	for _, policy := range []string{"if_not_present", "always"} {
		t.Run(policy, func(t *testing.T) {
			f := newFixture(t)
			f.rt.OnLocalImage = func(context.Context) error { return ErrNotFound }
			spec := testSpec()
			spec.PullPolicy = policy
			v1 := newVersion(t)
			f.rt.SetAddress("1.0.0", v1.srv.URL)
			f.start(spec)
			scWaitServing(t, f)
			if f.rt.Count("pull", scRef) != 1 {
				t.Fatalf("%d pulls", f.rt.Count("pull", scRef))
			}
			if got := f.rt.Count("image", scRef); policy == "always" && got != 0 {
				t.Fatal("pull_policy always looked for a local image")
			}
			ev := scWaitEvent(t, f.store, EventPulled, 1)
			if ev.To != memDigest(scRef) || !strings.Contains(ev.Message, scRef) {
				t.Fatalf("pulled event %+v", ev)
			}
			if p := scWaitEvent(t, f.store, EventPulling, 1); !strings.Contains(p.Message, scRef) {
				t.Fatalf("pulling event %+v", p)
			}
			if rec := scRecord(t, f.store); rec.Digest != memDigest(scRef) {
				t.Fatalf("recorded digest %q", rec.Digest)
			}
		})
	}
}

// A pinned digest that the image does not have refuses the start; the
// right pin runs.
func TestScenarioDigestPin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pin   string
		match bool
	}{
		{"mismatch", "sha256:" + strings.Repeat("f", 64), false},
		{"match", memDigest(scRef), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			spec := testSpec()
			spec.Digest = tc.pin
			v1 := newVersion(t)
			f.rt.SetAddress("1.0.0", v1.srv.URL)
			f.start(spec)
			if tc.match {
				if st := scWaitServing(t, f); st.Digest != tc.pin {
					t.Fatalf("digest %q", st.Digest)
				}
				return
			}
			st := scWaitState(t, f, Failed)
			ev := scWaitEvent(t, f.store, EventDigestMismatch, 1)
			if !strings.Contains(ev.Error, tc.pin) || !strings.Contains(st.LastError, "pins") {
				t.Fatalf("digest_mismatch %+v, last error %q", ev, st.LastError)
			}
			if f.rt.Count("create", memName("web", slotA)) != 0 || f.store.hasEvent(EventRestarting) {
				t.Fatal("a mismatched image was run or retried")
			}
		})
	}
}

// While the runtime is down the owner does nothing but wait; the status
// carries what the record says. Once the runtime is up, it adopts.
func TestScenarioRuntimeDownWaits(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	var up atomic.Bool
	f.deps.RuntimeUp = up.Load
	spec := testSpec()
	v1 := newVersion(t)
	f.seed(spec, v1)
	f.start(spec)
	if err := clk.WaitTimers(scCtx(t), 1); err != nil {
		t.Fatal("no retry armed while the runtime is down")
	}
	st := f.status()
	if st.State != Registered || st.ContainerID != "old01" || st.Health != HealthHealthy || st.Version != "1.0.0" {
		t.Fatalf("status while the runtime is down: %+v", st)
	}
	clk.Advance(time.Second)
	scNoChange(t, 30*time.Millisecond, "runtime calls while it is down", func() int {
		return f.rt.Count("inspect", "old01") + f.rt.Count("image", scRef) + f.rt.Count("start", "old01")
	}, 0)
	up.Store(true)
	scAdvanceUntil(t, clk, time.Second, func() bool { return f.status().State == Running }, "not adopted once the runtime is up")
	if f.rt.Count("start", "old01") != 0 || !f.store.hasEvent(EventAdopted) {
		t.Fatal("not adopted as it was")
	}
}

// An unavailable runtime during a bring-up is retried without counting as a
// restart.
func TestScenarioRuntimeUnavailableRetried(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	var calls atomic.Int32
	f.rt.OnLocalImage = func(context.Context) error {
		if calls.Add(1) == 1 {
			return fmt.Errorf("dial: %w", ErrUnavailable)
		}
		return nil
	}
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	eventually(t, 5*time.Second, func() bool { return strings.Contains(f.status().LastError, "unavailable") },
		"unavailability not reported: %+v", func() any { return f.status() })
	scAdvanceUntil(t, clk, 250*time.Millisecond, func() bool { return f.status().State == Running }, "never started")
	st := scWaitServing(t, f)
	if st.Restarts != 0 || f.store.hasEvent(EventRestarting) || f.store.hasEvent(EventStartFailed) || calls.Load() != 2 {
		t.Fatalf("retry counted as a restart: %+v events %v", st, f.store.eventTypes())
	}
}

// A start that fails is restarted after the backoff, reusing the created
// instance.
func TestScenarioStartFailureRestarts(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.rt.FailNext("start", 1)
	f.start(testSpec())
	ev := scWaitEvent(t, f.store, EventStartFailed, 1)
	if !strings.Contains(ev.Error, ErrMemFailure.Error()) {
		t.Fatalf("start_failed %+v", ev)
	}
	if r := scWaitEvent(t, f.store, EventRestarting, 1); r.Attempt != 1 || r.DelayMS != 50 {
		t.Fatalf("restarting %+v", r)
	}
	if f.obs.restartCount(EventStartFailed) != 1 {
		t.Fatal("restart not reported")
	}
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.status().State == Running }, "never started")
	st := scWaitServing(t, f)
	if f.rt.Count("create", memName("web", slotA)) != 1 || f.rt.Count("start", st.ContainerID) != 2 {
		t.Fatal("the failed instance was not started again")
	}
}

// refusingRuntime refuses every create, as a runtime policy would.
type refusingRuntime struct{ *MemRuntime }

func (r refusingRuntime) Create(context.Context, InstanceSpec) (Instance, error) {
	return Instance{}, fmt.Errorf("create: privileged: %w", ErrRefused)
}

func TestScenarioCreateRefusedFails(t *testing.T) {
	f := newFixture(t)
	f.deps.Runtime = refusingRuntime{f.rt}
	f.start(testSpec())
	st := scWaitState(t, f, Failed)
	if !strings.Contains(st.LastError, "privileged") || !f.store.hasEvent(EventStartFailed) || f.store.hasEvent(EventRestarting) {
		t.Fatalf("refused create: %+v events %v", st, f.store.eventTypes())
	}
}

// An owner blocked on an image answers API calls meanwhile; a restart asked
// for during the pull begins the bring-up again.
func TestScenarioAPIAnsweredDuringPull(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	var calls atomic.Int32
	f.rt.OnLocalImage = func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	eventually(t, 5*time.Second, func() bool { return calls.Load() == 1 }, "image step never reached")

	start := time.Now()
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); !errors.Is(err, ErrNoContainer) {
		t.Fatalf("swap during the pull: %v, want ErrNoContainer", err)
	}
	if _, err := f.handle.Rollback(scCtx(t)); !errors.Is(err, ErrNoContainer) {
		t.Fatalf("rollback during the pull: %v, want ErrNoContainer", err)
	}
	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatalf("restart during the pull: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("answers took %s", took)
	}
	// The reply comes before the restart is recorded.
	scWaitState(t, f, Restarting)
	close(gate)
	scWaitServing(t, f)
	if calls.Load() != 2 || f.rt.Count("create", memName("web", slotA)) != 1 {
		t.Fatalf("image steps %d, creates %d: the stale image answer must not start anything", calls.Load(),
			f.rt.Count("create", memName("web", slotA)))
	}
}
