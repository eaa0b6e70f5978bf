package challenge

import (
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// waitStandby waits for a ready standby and returns its container id.
func waitStandby(t *testing.T, f *fixture, n int) string {
	t.Helper()
	scWaitEvent(t, f.store, EventStandbyReady, n)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.StandbyContainerID != "" && st.StandbyUpstream != "" },
		"no ready standby in the status: %+v", func() any { return f.status() })
	return f.status().StandbyContainerID
}

// startWithStandby starts a challenge with standby: true on a fake clock
// and returns its serving container and its ready standby.
func startWithStandby(t *testing.T) (f *fixture, clk *supervisor.FakeClock, spec configs.Challenge, active, standby string) {
	t.Helper()
	f = newFixture(t)
	clk = scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	spec = testSpec()
	spec.Standby = true
	f.start(spec)
	active = scWaitServing(t, f).ContainerID
	return f, clk, spec, active, waitStandby(t, f, 1)
}

// A crash of the active container promotes the ready standby at once; the
// crashed one comes back as the next standby after the backoff.
func TestScenarioStandbyPromotedOnCrash(t *testing.T) {
	f, clk, _, active, standby := startWithStandby(t)
	if sb, _ := f.rt.Get(standby); sb.Slot != "as" || !sb.Running || standby == active {
		t.Fatalf("standby %+v", sb)
	}
	if claims := f.status().Claims(); !scContains(claims, active, standby) {
		t.Fatalf("claims %v miss the standby", claims)
	}

	f.exit(active, 1, false)
	eventually(t, 2*time.Second, func() bool { return f.status().ContainerID == standby }, "standby not promoted: %+v", func() any { return f.status() })
	st := f.status()
	if st.State != Running || !st.Serving() || st.Slot != "as" || st.Restarts != 1 {
		t.Fatalf("after the promotion: %+v", st)
	}
	ev := scWaitEvent(t, f.store, EventStandbyPromoted, 1)
	if ev.ContainerID != standby || ev.From != ShortID(active) {
		t.Fatalf("standby_promoted %+v", ev)
	}
	if f.store.hasEvent(EventRestarting) {
		t.Error("a promotion went through restarting")
	}
	// After the backoff the crashed container starts again as the standby.
	scAdvanceUntil(t, clk, 20*time.Millisecond, func() bool { return f.store.countEvents(EventStandbyReady) == 2 }, "no second standby")
	if st := f.status(); st.StandbyContainerID != active || st.ContainerID != standby {
		t.Fatalf("after the new standby: %+v", st)
	}
	// And it is promoted in turn, OOM kill this time.
	f.exit(standby, 137, true)
	eventually(t, 2*time.Second, func() bool { return f.status().ContainerID == active }, "second promotion missing")
	if ev := scWaitEvent(t, f.store, EventOOMKilled, 1); ev.ContainerID != standby {
		t.Fatalf("oom_killed %+v", ev)
	}
}

// berth restarting adopts both the active container and the standby
// without starting either again.
func TestScenarioStandbyAdoptedAfterBerthRestart(t *testing.T) {
	f := newFixture(t)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	spec := testSpec()
	spec.Standby = true
	f.start(spec)
	active := scWaitServing(t, f).ContainerID
	standby := waitStandby(t, f, 1)
	f.stop()
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { return f.status().StandbyContainerID == standby && f.status().ContainerID == active },
		"not both adopted: %+v", func() any { return f.status() })
	if f.rt.Count("start", standby) != 1 || f.rt.Count("start", active) != 1 || f.rt.Count("create", memName("web", "as")) != 1 {
		t.Fatalf("starts: active %d, standby %d; standby creates %d", f.rt.Count("start", active), f.rt.Count("start", standby), f.rt.Count("create", memName("web", "as")))
	}
}

// A swap keeps the old standby until the cut-over, then replaces it with
// one of the new version in the new slot's family; turning standby off
// removes it.
func TestScenarioStandbyFollowsSwapAndSpec(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1, v2 := newVersion(t), newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	spec := testSpec()
	spec.Standby = true
	f.start(spec)
	scWaitServing(t, f)
	old := waitStandby(t, f, 1)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.store.countEvents(EventStandbyReady) == 2 }, "no standby of 2.0.0")
	st := f.status()
	sb, _ := f.rt.Get(st.StandbyContainerID)
	if st.Version != "2.0.0" || sb.Version != "2.0.0" || sb.Slot != "bs" || st.Slot != "b" {
		t.Fatalf("after the swap: status %+v, standby %+v", st, sb)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get(old); return !ok }, "old standby %s not removed", old)

	off := spec.Clone()
	off.Version = "2.0.0"
	off.Standby = false
	f.handle.SetSpec(off)
	scAdvanceUntil(t, clk, 50*time.Millisecond, func() bool { return f.status().StandbyContainerID == "" }, "standby not retired")
	eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get(sb.ID); return !ok }, "standby container not removed")
}

// A standby recorded in the other family (berth was killed before it could
// retire it after a swap) is removed once the challenge serves again.
func TestScenarioStaleStandbyRemoved(t *testing.T) {
	f := newFixture(t)
	spec := testSpec()
	spec.Standby = true
	v1 := newVersion(t)
	f.seed(spec, v1)
	stale := scAddInstance(f, "stale01", "bs", "1.0.0", spec, true)
	rec := scRecord(t, f.store)
	rec.Slots["bs"] = Slot{ContainerID: stale.ID, ContainerName: stale.Name, Version: "1.0.0", SpecHash: spec.SpecHash()}
	f.store.put(rec)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get("stale01"); return !ok }, "stale standby not removed")
	waitStandby(t, f, 1)
	if r := scRecord(t, f.store); r.Slots["bs"].ContainerID != "" || r.Slots["as"].ContainerID == "" {
		t.Fatalf("slots after the cleanup: %+v", r.Slots)
	}
}

// An active container that died while berth was down is replaced at once by
// the standby still running beside it, as if berth had seen the crash; the
// dead one comes back as the next standby after the backoff.
func TestScenarioStandbyServesWhenActiveDiedWhileBerthWasDown(t *testing.T) {
	f, clk, spec, active, standby := startWithStandby(t)
	f.stop()
	f.rt.Exit(active, 137, false)
	f.start(spec)
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.ContainerID == standby && st.Serving() },
		"the standby does not serve after the restart: %+v", func() any { return f.status() })
	if n := f.rt.Count("start", active); n != 1 {
		t.Fatalf("the dead container was started again (%d starts) instead of the standby serving", n)
	}
	st := f.status()
	if st.Slot != "as" || st.Restarts != 1 {
		t.Fatalf("after the promotion: %+v", st)
	}
	if ev := scWaitEvent(t, f.store, EventStandbyPromoted, 1); ev.ContainerID != standby || ev.From != ShortID(active) {
		t.Fatalf("standby_promoted %+v", ev)
	}
	scAdvanceUntil(t, clk, 20*time.Millisecond, func() bool { return f.status().StandbyContainerID == active && f.status().StandbyUpstream != "" },
		"the dead container did not come back as the standby")
	if st := f.status(); st.ContainerID != standby {
		t.Fatalf("after the new standby: %+v", st)
	}
}
