package challenge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/configs"
)

// Scenarios of spec changes, swap requests the owner refuses, automatic
// updates and state hand-offs.

// A spec changed while serving is swapped to blue-green, as a config swap
// that does not pin an API version.
func TestScenarioSpecChangeWhileServingSwaps(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	scStartSeeded(t, f, spec)
	changed := spec.Clone()
	changed.Env = map[string]string{"MODE": "fast"}
	f.handle.SetSpec(changed)
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) },
		"no config swap: %v", func() any { return swapEventTypes(f.store) })
	started := scWaitEvent(t, f.store, EventSwapStarted, 1)
	if !strings.HasPrefix(started.Message, "config 1.0.0 → 1.0.0") {
		t.Fatalf("swap_started %q", started.Message)
	}
	rec := scRecord(t, f.store)
	if rec.ActiveSlot != "b" || rec.Slots["b"].SpecHash != changed.SpecHash() || rec.DesiredVersion != "" || rec.Version != "1.0.0" {
		t.Fatalf("record after the config swap: %+v", rec)
	}
	if in, _ := f.rt.Get("old01"); in.Running {
		t.Fatal("the old spec's instance still runs")
	}
	// The same spec again changes nothing.
	f.handle.SetSpec(changed)
	scNoChange(t, 30*time.Millisecond, "swaps after an unchanged spec", func() int { return f.store.countEvents(EventSwapStarted) }, 1)
}

// A spec change while a swap runs waits for it, then applies.
func TestScenarioSpecChangeDuringSwapApplied(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	scStartSeeded(t, f, spec)
	v2 := newVersion(t)
	v2.healthy.Store(false)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return slices.Contains(scPhases(f.store), PhaseWaitingHealthy) }, "no health wait")
	changed := spec.Clone()
	changed.Version = "2.0.0"
	changed.Env = map[string]string{"MODE": "fast"}
	f.handle.SetSpec(changed)
	v2.healthy.Store(true)
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.countEvents(EventSwapCompleted) == 2 },
		"the spec change did not follow the swap: %v", func() any { return swapEventTypes(f.store) })
	started := scEvents(f.store, EventSwapStarted)
	if len(started) != 2 || !strings.HasPrefix(started[1].Message, "config 2.0.0 → 2.0.0") {
		t.Fatalf("swaps %+v", started)
	}
	rec := scRecord(t, f.store)
	if rec.Slots[rec.ActiveSlot].SpecHash != changed.SpecHash() || rec.DesiredVersion != "" {
		t.Fatalf("record after both swaps: %+v", rec)
	}
}

// A changed spec clears a give-up and starts again.
func TestScenarioSpecChangeClearsGiveUp(t *testing.T) {
	f := newFixture(t)
	f.rt.OnLocalImage = func(context.Context) error { return ErrNotFound }
	spec := testSpec()
	spec.PullPolicy = "never"
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(spec)
	scWaitState(t, f, Failed)
	fixed := spec.Clone()
	fixed.PullPolicy = "if_not_present"
	f.handle.SetSpec(fixed)
	scWaitServing(t, f)
	if ev := scWaitEvent(t, f.store, EventRestarting, 1); !strings.Contains(ev.Message, "spec changed") {
		t.Fatalf("restarting %+v", ev)
	}
	if f.rt.Count("pull", scRef) != 1 {
		t.Fatal("the fixed spec did not pull")
	}
}

// An instance of an older spec found running at start is adopted, then
// swapped to the current spec.
func TestScenarioAdoptedOlderSpecSwapped(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	v1 := newVersion(t)
	f.seed(spec, v1)
	changed := spec.Clone()
	changed.Env = map[string]string{"MODE": "fast"}
	f.start(changed)
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) },
		"no swap to the changed spec: %v", func() any { return f.store.eventTypes() })
	if f.rt.Count("start", "old01") != 0 || !f.store.hasEvent(EventAdopted) {
		t.Fatal("the old instance was not adopted first")
	}
	if rec := scRecord(t, f.store); rec.Slots[rec.ActiveSlot].SpecHash != changed.SpecHash() || rec.ActiveSlot != "b" {
		t.Fatalf("record %+v", rec)
	}
}

// Swap requests the owner refuses, and one with nothing to do.
func TestScenarioSwapRefusals(t *testing.T) {
	f := newFixture(t)
	scFakeClock(f)
	scStartSeeded(t, f, testSpec())
	for _, tc := range []struct {
		version string
		want    error
	}{
		{"not a version!", ErrBadVersion},
		{">= nope", ErrBadVersion},
	} {
		if _, err := f.handle.Swap(scCtx(t), tc.version); !errors.Is(err, tc.want) {
			t.Errorf("swap to %q: %v, want %v", tc.version, err, tc.want)
		}
	}
	if _, err := f.handle.Rollback(scCtx(t)); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("rollback without a previous version: %v", err)
	}
	// The running version: a no-op swap.
	if _, err := f.handle.Swap(scCtx(t), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	ev := scWaitEvent(t, f.store, EventSwapCompleted, 1)
	if !strings.Contains(ev.Message, "already running") || f.obs.swapCount("noop") != 1 {
		t.Fatalf("no-op swap: %+v", ev)
	}
	if f.rt.Count("create", memName("web", "b")) != 0 || f.status().ContainerID != "old01" {
		t.Fatal("a no-op swap started an instance")
	}
	if f.store.hasEvent(EventSwapStarted) && scHasPlan(f.store) {
		t.Fatal("no-op swap plan not closed")
	}
}

// A swap whose image fails its checks fails before starting anything.
func TestScenarioSwapImageFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture) // before start
		version string
		want    string
	}{
		{"digest mismatch", func(f *fixture) {}, "2.0.0", "pins"},
		{"pull never, image missing", func(f *fixture) {
			f.rt.OnLocalImage = func(ctx context.Context) error {
				return fmt.Errorf("missing: %w", ErrNotFound)
			}
		}, "2.0.0", "pull_policy is never"},
		{"no tag matches", func(f *fixture) { f.rt.SetTags("1.0.0") }, "^3", "no tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			spec := testSpec()
			switch tc.name {
			case "digest mismatch":
				spec.Digest = "sha256:" + strings.Repeat("f", 64) // adoption does not check it; the swap does
			case "pull never, image missing":
				spec.PullPolicy = "never"
			}
			tc.setup(f)
			scStartSeeded(t, f, spec)
			if _, err := f.handle.Swap(scCtx(t), tc.version); err != nil {
				t.Fatal(err)
			}
			ev := scWaitEvent(t, f.store, EventSwapFailed, 1)
			if !strings.Contains(ev.Error, tc.want) {
				t.Fatalf("swap_failed %+v, want %q", ev, tc.want)
			}
			if f.rt.Count("create", memName("web", "b")) != 0 || f.status().ContainerID != "old01" {
				t.Fatal("a failed image check started an instance")
			}
			eventually(t, 5*time.Second, func() bool { return !scHasPlan(f.store) }, "plan not closed")
		})
	}
}

// update.auto swaps to the highest tag matching the constraint, checked
// every check_interval, and skips a version that was rolled back.
func TestScenarioAutoUpdate(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Version = "^1.0.0"
	spec.Update.Auto = configs.AutoSwap
	spec.Update.CheckInterval = time.Minute
	v1, v2 := newVersion(t), newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.rt.SetAddress("1.1.0", v2.srv.URL)
	f.rt.SetTags("0.9.0", "1.0.0", "2.0.0")
	f.start(spec)
	if st := scWaitServing(t, f); st.Version != "1.0.0" {
		t.Fatalf("constraint resolved to %s", st.Version)
	}
	// Nothing newer yet: the check changes nothing.
	clk.Advance(time.Minute)
	scNoChange(t, 30*time.Millisecond, "swaps without a newer tag", func() bool { return f.store.hasEvent(EventSwapStarted) }, false)
	f.rt.SetTags("0.9.0", "1.0.0", "1.1.0", "2.0.0")
	scAdvanceUntil(t, clk, 5*time.Second, func() bool { return f.store.hasEvent(EventSwapCompleted) },
		"no automatic update: %v", func() any { return swapEventTypes(f.store) })
	st := f.status()
	if st.Version != "1.1.0" || st.PreviousVersion != "1.0.0" {
		t.Fatalf("after the automatic update: %+v", st)
	}
	if ev := scWaitEvent(t, f.store, EventSwapStarted, 1); !strings.HasPrefix(ev.Message, "auto 1.0.0 → ^1.0.0") {
		t.Fatalf("swap_started %q", ev.Message)
	}
	if rec := scRecord(t, f.store); rec.DesiredVersion != "" {
		t.Fatalf("an automatic update pinned %q", rec.DesiredVersion)
	}
	// 1.1.0 turns unhealthy: rolled back, and not tried again.
	v2.healthy.Store(false)
	scAdvanceUntil(t, clk, 200*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapRolledBack) }, "no rollback")
	scAdvanceUntil(t, clk, 30*time.Second, func() bool { return f.status().Version == "1.0.0" && f.store.countEvents(EventSwapCompleted) >= 1 },
		"not back on 1.0.0")
	clk.Advance(2 * time.Minute)
	scNoChange(t, 50*time.Millisecond, "swaps to the rolled-back version", func() int { return f.store.countEvents(EventSwapStarted) }, 2)
}

// State is handed from the old version to the new within a major version,
// and not across one unless the challenge allows it.
func TestScenarioStateHandOff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		to       string
		across   bool
		handsOff bool
	}{
		{"minor", "1.1.0", false, true},
		{"major", "2.0.0", false, false},
		{"major allowed", "2.0.0", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			clk := scFakeClock(f)
			spec := testSpec()
			spec.State.Export, spec.State.Import, spec.State.AcrossMajor = "/state", "/state", tc.across
			v1 := scStartSeeded(t, f, spec)
			v1.state.Store([]byte("scores"))
			v2 := newVersion(t)
			f.rt.SetAddress(tc.to, v2.srv.URL)
			if _, err := f.handle.Swap(scCtx(t), tc.to); err != nil {
				t.Fatal(err)
			}
			scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) },
				"swap never completed: %v", func() any { return swapEventTypes(f.store) })
			phases := scPhases(f.store)
			got := string(v2.state.Load().([]byte))
			if !tc.handsOff {
				// A swap is a planned stop: the old version's state is stored,
				// but not handed to another major version.
				if got != "" || slices.Contains(phases, PhaseImporting) || !slices.Equal(f.store.snapshotData(), []string{"scores"}) {
					t.Fatalf("state handed across a major: %q, phases %v, snapshots %q", got, phases, f.store.snapshotData())
				}
				// Rolling back to the old major version restores its snapshot
				// into the restarted old instance.
				v1.state.Store([]byte(nil))
				if _, err := f.handle.Rollback(scCtx(t)); err != nil {
					t.Fatal(err)
				}
				scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapRolledBack) },
					"rollback never completed: %v", func() any { return swapEventTypes(f.store) })
				if got := string(v1.state.Load().([]byte)); got != "scores" {
					t.Fatalf("old version's state after the rollback %q, want its snapshot", got)
				}
				return
			}
			if got != "scores" {
				t.Fatalf("new version's state %q, want scores", got)
			}
			want := []string{PhasePulling, PhaseExporting, PhaseStarting, PhaseWaitingHealthy, PhaseImporting, PhaseCuttingOver, PhaseDraining}
			if !slices.Equal(phases, want) {
				t.Fatalf("phases %v, want %v", phases, want)
			}
			f.store.mu.Lock()
			defer f.store.mu.Unlock()
			if len(f.store.snaps) != 1 || f.store.snaps[0].Version != "1.0.0" || string(f.store.snaps[0].Data) != "scores" {
				t.Fatalf("snapshots %+v", f.store.snaps)
			}
		})
	}
}

// A failed export rolls the swap back before anything starts.
func TestScenarioStateExportFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	spec := testSpec()
	spec.State.Export, spec.State.Import = "/export", "/state"
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/export" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(old.Close)
	f.seed(spec, &version{srv: old})
	f.start(spec)
	scWaitServing(t, f)
	v2 := newVersion(t)
	f.rt.SetAddress("1.1.0", v2.srv.URL)
	if _, err := f.handle.Swap(scCtx(t), "1.1.0"); err != nil {
		t.Fatal(err)
	}
	ev := scWaitEvent(t, f.store, EventSwapFailed, 1)
	if !strings.Contains(ev.Error, "export state") || !strings.Contains(ev.Error, "500") {
		t.Fatalf("swap_failed %+v", ev)
	}
	if f.rt.Count("create", memName("web", "b")) != 0 || f.status().ContainerID != "old01" {
		t.Fatal("an instance was started after a failed export")
	}
}
