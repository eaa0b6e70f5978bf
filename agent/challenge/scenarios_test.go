package challenge

import (
	"strings"
	"testing"
	"time"
)

// Lifecycle scenarios on the in-memory runtime: crashes, crash loops, hangs
// and OOM kills. Backoffs run on a fake clock, so every delay is exact.

// A crash restarts the same stopped instance after the backoff, which grows
// with each crash and resets after reset_after of continuous health.
func TestScenarioCrashRestartsWithBackoff(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	id := scWaitServing(t, f).ContainerID
	if n := f.rt.Count("start", id); n != 1 {
		t.Fatalf("first start: %d starts of %s", n, id)
	}

	// Crash 1: attempt 1 after initial_backoff.
	f.exit(id, 3, false)
	ev := scWaitEvent(t, f.store, EventRestarting, 1)
	if ev.Attempt != 1 || ev.DelayMS != 50 {
		t.Fatalf("restarting event attempt %d delay %dms, want attempt 1 after 50ms", ev.Attempt, ev.DelayMS)
	}
	exited := scWaitEvent(t, f.store, EventExited, 1)
	if exited.ExitCode == nil || *exited.ExitCode != 3 || exited.ContainerID != id || exited.OOM {
		t.Fatalf("exit event %+v", exited)
	}
	st := scWaitState(t, f, Restarting)
	if st.Restarts != 1 || st.LastExitCode == nil || *st.LastExitCode != 3 {
		t.Fatalf("status after the crash: restarts %d last exit %v", st.Restarts, st.LastExitCode)
	}
	if got := f.obs.restartCount(EventExited); got != 1 {
		t.Fatalf("observer saw %d restarts for exits", got)
	}
	// Nothing starts before the backoff has passed.
	clk.Advance(49 * time.Millisecond)
	scNoChange(t, 20*time.Millisecond, "starts before the backoff", func() int { return f.rt.Count("start", id) }, 1)
	clk.Advance(time.Millisecond)
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("start", id) == 2 }, "%s not started again", id)
	if st := scWaitServing(t, f); st.ContainerID != id {
		t.Fatalf("restart serves %s, want the same instance %s", st.ContainerID, id)
	}
	if n := f.rt.Count("create", memName("web", slotA)); n != 1 {
		t.Fatalf("%d creates: a crash must restart the stopped instance, not recreate it", n)
	}

	// Crash 2: the backoff doubles.
	f.exit(id, 1, false)
	if ev := scWaitEvent(t, f.store, EventRestarting, 2); ev.Attempt != 2 || ev.DelayMS != 100 {
		t.Fatalf("second restart: attempt %d delay %dms, want 2 after 100ms", ev.Attempt, ev.DelayMS)
	}
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.rt.Count("start", id) == 3 }, "no third start")
	scWaitServing(t, f)

	// Healthy for reset_after: the attempt count resets.
	scAdvanceUntil(t, clk, 20*time.Second, func() bool { return f.store.hasEvent(EventBackoffReset) }, "no backoff reset")
	if rec := scRecord(t, f.store); rec.RestartAttempt != 0 || rec.Restarts != 2 {
		t.Fatalf("after the reset: attempt %d restarts %d", rec.RestartAttempt, rec.Restarts)
	}
	f.exit(id, 1, false)
	if ev := scWaitEvent(t, f.store, EventRestarting, 3); ev.Attempt != 1 || ev.DelayMS != 50 {
		t.Fatalf("restart after the reset: attempt %d delay %dms, want 1 after 50ms", ev.Attempt, ev.DelayMS)
	}
}

// The jitter draw spreads the delay as the backoff formula says.
func TestScenarioRestartDelayUsesJitterDraw(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	f.deps.Rand = func() float64 { return 0.25 }
	spec := testSpec()
	spec.Restart.Jitter = 0.2
	spec.Restart.InitialBackoff = time.Second
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(spec)
	id := scWaitServing(t, f).ContainerID
	f.exit(id, 1, false)
	// 1s × (1 + 0.2 × (2×0.25 − 1)) = 900ms
	if ev := scWaitEvent(t, f.store, EventRestarting, 1); ev.DelayMS != 900 {
		t.Fatalf("delay %dms, want 900ms", ev.DelayMS)
	}
	clk.Advance(899 * time.Millisecond)
	scNoChange(t, 20*time.Millisecond, "starts before the jittered backoff", func() int { return f.rt.Count("start", id) }, 1)
	clk.Advance(time.Millisecond)
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("start", id) == 2 }, "not restarted after 900ms")
}

// A crash loop gives up at max_restarts within the window; an operator's
// restart clears the give-up at once.
func TestScenarioCrashLoopGivesUpUntilOperatorRestart(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Restart.MaxRestarts = 2
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(spec)
	id := scWaitServing(t, f).ContainerID

	for i := 1; i <= 2; i++ {
		f.exit(id, 1, false)
		scWaitEvent(t, f.store, EventRestarting, i)
		scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.rt.Count("start", id) == i+1 }, "restart %d did not start", i)
		scWaitServing(t, f)
	}
	f.exit(id, 1, false)
	gave := scWaitEvent(t, f.store, EventGaveUp, 1)
	if !strings.Contains(gave.Message, "2 restarts") {
		t.Fatalf("gave_up message %q", gave.Message)
	}
	st := scWaitState(t, f, Failed)
	if st.Restarts != 2 || f.store.countEvents(EventRestarting) != 2 {
		t.Fatalf("after giving up: restarts %d, %d restarting events", st.Restarts, f.store.countEvents(EventRestarting))
	}
	if rec := scRecord(t, f.store); rec.Lifecycle != string(Failed) {
		t.Fatalf("stored lifecycle %q, want failed", rec.Lifecycle)
	}
	// Time passing does not bring it back.
	clk.Advance(10 * time.Minute)
	scNoChange(t, 50*time.Millisecond, "starts after giving up", func() int { return f.rt.Count("start", id) }, 3)

	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatalf("operator restart: %v", err)
	}
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("start", id) == 4 }, "operator restart did not start %s", id)
	st = scWaitServing(t, f)
	if st.ContainerID != id || st.Restarts != 3 {
		t.Fatalf("after the operator's restart: %+v", st)
	}
	if f.obs.restartCount("operator") != 1 {
		t.Fatal("operator restart not reported to the observer")
	}
	if rec := scRecord(t, f.store); len(rec.RestartTimes) != 0 || rec.RestartAttempt != 0 {
		t.Fatalf("operator restart kept the history: %+v", rec)
	}
	// The history is cleared: the next crash restarts again.
	f.exit(id, 1, false)
	if ev := scWaitEvent(t, f.store, EventRestarting, 4); ev.Attempt != 1 {
		t.Fatalf("crash after the operator's restart: attempt %d, want 1", ev.Attempt)
	}
}

// An operator's restart of a serving instance stops it (as a job) and
// starts it again without backoff.
func TestScenarioOperatorRestartOfServingInstance(t *testing.T) {
	f := newFixture(t)
	scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	id := scWaitServing(t, f).ContainerID
	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("stop", id) == 1 && f.rt.Count("start", id) == 2 },
		"stop %d start %d", func() any { return f.rt.Count("stop", id) }, func() any { return f.rt.Count("start", id) })
	st := scWaitServing(t, f)
	if st.ContainerID != id || st.Restarts != 1 {
		t.Fatalf("after the operator restart: %+v", st)
	}
	ev := scWaitEvent(t, f.store, EventRestarting, 1)
	if ev.Attempt != 0 || ev.DelayMS != 0 || !strings.Contains(ev.Message, "operator") {
		t.Fatalf("operator restart event %+v", ev)
	}
}

// A hung instance turns unhealthy and, with on_unhealthy, is stopped and
// started again after the backoff.
func TestScenarioHangRestartsUnhealthy(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	id := scWaitServing(t, f).ContainerID

	v1.healthy.Store(false)
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.store.hasEvent(EventUnhealthy) }, "no unhealthy event")
	ev := scWaitEvent(t, f.store, EventUnhealthy, 1)
	if ev.ContainerID != id || !strings.Contains(ev.Error, "500") {
		t.Fatalf("unhealthy event %+v", ev)
	}
	if r := scWaitEvent(t, f.store, EventRestarting, 1); r.Attempt != 1 || r.DelayMS != 50 {
		t.Fatalf("restarting event %+v", r)
	}
	eventually(t, 5*time.Second, func() bool { in, _ := f.rt.Get(id); return !in.Running && f.rt.Count("stop", id) == 1 },
		"unhealthy %s not stopped", id)
	if f.obs.restartCount(EventUnhealthy) != 1 {
		t.Fatal("restart for unhealth not reported")
	}
	v1.healthy.Store(true)
	scAdvanceUntil(t, clk, 25*time.Millisecond, func() bool { return f.rt.Count("start", id) == 2 }, "%s not started again", id)
	if st := scWaitServing(t, f); st.ContainerID != id || st.Restarts != 1 {
		t.Fatalf("after the restart: %+v", st)
	}
}

// Without on_unhealthy a hung instance keeps serving and recovers in place.
func TestScenarioHangWithoutOnUnhealthyKeepsServing(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Restart.OnUnhealthy = false
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(spec)
	id := scWaitServing(t, f).ContainerID
	v1.healthy.Store(false)
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.status().Health == HealthUnhealthy }, "never unhealthy")
	if st := f.status(); st.State != Running || st.ContainerID != id {
		t.Fatalf("unhealthy without on_unhealthy: %+v", st)
	}
	v1.healthy.Store(true)
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.status().Health == HealthHealthy }, "never healthy again")
	if f.rt.Count("stop", id) != 0 || f.rt.Count("start", id) != 1 || f.store.hasEvent(EventRestarting) || f.store.hasEvent(EventUnhealthy) {
		t.Fatalf("restarted without on_unhealthy: stops %d starts %d events %v", f.rt.Count("stop", id), f.rt.Count("start", id), f.store.eventTypes())
	}
}

// An OOM kill is recorded as oom_killed with its exit code, then restarted.
func TestScenarioOOMKillRecorded(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.rt.SetLogs("allocating\nout of memory\x1b[31m!\n")
	f.start(testSpec())
	id := scWaitServing(t, f).ContainerID
	f.exit(id, 137, true)
	ev := scWaitEvent(t, f.store, EventOOMKilled, 1)
	if !ev.OOM || ev.ExitCode == nil || *ev.ExitCode != 137 || ev.ContainerID != id {
		t.Fatalf("oom event %+v", ev)
	}
	if !strings.Contains(ev.Message, "out of memory") || strings.Contains(ev.Message, "\x1b") {
		t.Fatalf("oom event message %q: want the printable last output", ev.Message)
	}
	if f.store.hasEvent(EventExited) {
		t.Fatal("an OOM kill also recorded as a plain exit")
	}
	if f.obs.restartCount(EventOOMKilled) != 1 {
		t.Fatal("restart for the OOM kill not reported")
	}
	scWaitEvent(t, f.store, EventRestarting, 1)
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.rt.Count("start", id) == 2 }, "not restarted after the OOM kill")
	if st := scWaitServing(t, f); *st.LastExitCode != 137 {
		t.Fatalf("last exit code %d", *st.LastExitCode)
	}
}

// Runtime hints other than an exit code are confirmed by an inspect: a
// stopped instance, one gone from the runtime, one missing from a re-list.
func TestScenarioRuntimeHintsConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hint     func(f *fixture, id string)
		wantCode int
	}{
		{"changed and stopped", func(f *fixture, id string) {
			f.rt.Exit(id, 2, false)
			f.handle.Notify(InstanceEvent{ID: id, Challenge: "web", Kind: InstanceChanged})
		}, 2},
		{"removed behind berth's back", func(f *fixture, id string) {
			_ = f.rt.Remove(t.Context(), id)
			f.handle.Notify(InstanceEvent{ID: id, Challenge: "web", Kind: InstanceChanged})
		}, -1},
		{"missing from a re-list", func(f *fixture, id string) {
			f.rt.Exit(id, 4, false)
			f.handle.NotifyList(nil)
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			scFakeClock(f)
			v1 := newVersion(t)
			f.rt.SetAddress("1.0.0", v1.srv.URL)
			f.start(testSpec())
			id := scWaitServing(t, f).ContainerID
			// Hints that do not concern the serving instance change nothing.
			f.handle.Notify(InstanceEvent{ID: "someone-else", Kind: InstanceChanged})
			in, _ := f.rt.Get(id)
			f.handle.NotifyList([]Instance{in})
			tc.hint(f, id)
			ev := scWaitEvent(t, f.store, EventExited, 1)
			if ev.ExitCode == nil || *ev.ExitCode != tc.wantCode {
				t.Fatalf("exit event %+v, want code %d", ev, tc.wantCode)
			}
			if n := f.store.countEvents(EventExited); n != 1 {
				t.Fatalf("%d exit events", n)
			}
			scWaitEvent(t, f.store, EventRestarting, 1)
		})
	}
}

// An instance that stopped while no berth ran is recorded as an exit and
// started again at once.
func TestScenarioStoppedWhileBerthWasDown(t *testing.T) {
	f := newFixture(t)
	spec := testSpec()
	v1 := newVersion(t)
	f.seed(spec, v1)
	f.rt.Exit("old01", 9, true)
	f.start(spec)
	st := scWaitServing(t, f)
	if st.ContainerID != "old01" || f.rt.Count("start", "old01") != 1 || st.Restarts != 1 {
		t.Fatalf("after berth's restart: %+v, %d starts", st, f.rt.Count("start", "old01"))
	}
	ev := scWaitEvent(t, f.store, EventOOMKilled, 1)
	if ev.ExitCode == nil || *ev.ExitCode != 9 || !strings.Contains(ev.Message, "while berth was not running") {
		t.Fatalf("exit while down: %+v", ev)
	}
}
