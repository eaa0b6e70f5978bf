package challenge

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/configs"
)

// stateSpec declares state paths and periodic snapshots every second.
func stateSpec() configs.Challenge {
	spec := testSpec()
	spec.State = configs.State{Export: "/state", Import: "/state", SnapshotInterval: time.Second, Keep: 3}
	return spec
}

// waitSnapshots advances the fake clock until n snapshots are stored.
func waitSnapshots(t *testing.T, f *fixture, clk interface{ Advance(time.Duration) }, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.store.snapshotData()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots stored, want %d", len(f.store.snapshotData()), n)
		}
		clk.Advance(100 * time.Millisecond)
		time.Sleep(2 * time.Millisecond)
	}
}

// A serving challenge is snapshotted every interval; a crash loses the
// memory, and the new container gets the newest snapshot before it serves.
func TestScenarioStateSurvivesCrash(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(stateSpec())
	id := scWaitServing(t, f).ContainerID
	v1.state.Store([]byte("items=5"))
	waitSnapshots(t, f, clk, 1)
	if got := f.store.snapshotData(); got[len(got)-1] != "items=5" {
		t.Fatalf("snapshots %q", got)
	}
	eventually(t, 2*time.Second, func() bool { s := f.status().Snapshot; return s != nil && s.Seq >= 1 && s.Bytes == 7 },
		"status snapshot %+v", func() any { return f.status().Snapshot })
	if f.store.hasEvent(EventStateSaved) {
		t.Error("a periodic snapshot wrote an event")
	}

	// The crash: the process's memory is gone; two imports fail first.
	f.exit(id, 1, false)
	v1.state.Store([]byte(nil))
	v1.importFails.Store(2)
	scAdvanceUntil(t, clk, 20*time.Millisecond, func() bool { return f.status().State == Migrating }, "not migrating after the restart")
	if st := f.status(); st.Serving() {
		t.Fatalf("a migrating instance is served: %+v", st)
	}
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventStateRestored) }, "not restored")
	if got := string(v1.state.Load().([]byte)); got != "items=5" {
		t.Fatalf("state after the restore %q", got)
	}
	if n := v1.imports.Load(); n != 3 {
		t.Errorf("%d imports, want 2 failures and a success", n)
	}
	ev := scWaitEvent(t, f.store, EventStateRestored, 1)
	if !strings.Contains(ev.Message, "restored (7 bytes)") {
		t.Errorf("state_restored %q", ev.Message)
	}
	if st := scWaitServing(t, f); st.State != Running {
		t.Fatalf("after the restore: %+v", st)
	}
}

// An import that never succeeds gives up at healthy_deadline: the challenge
// serves without state and says why.
func TestScenarioStateRestoreGivesUpAtDeadline(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.store.PutSnapshot(Snapshot{Challenge: "web", Version: "1.0.0", Data: []byte("old")}, 5)
	v1.importFails.Store(1 << 20)
	f.start(stateSpec())
	scAdvanceUntil(t, clk, 20*time.Millisecond, func() bool { return f.status().State == Migrating }, "not migrating")
	scAdvanceUntil(t, clk, 500*time.Millisecond, func() bool { return f.store.hasEvent(EventStateRestoreFailed) }, "never gave up")
	ev := scWaitEvent(t, f.store, EventStateRestoreFailed, 1)
	if !strings.Contains(ev.Message, "healthy_deadline") || !strings.Contains(ev.Error, "answered 500") || strings.Contains(ev.Error, "old") {
		t.Errorf("state_restore_failed %+v", ev)
	}
	if st := scWaitServing(t, f); st.State != Running || f.status().Snapshot == nil {
		t.Fatalf("after giving up: %+v", st)
	}
}

// A snapshot of another major version is used only with across_major, and
// a corrupt one is passed over for the next older.
func TestScenarioStateRestoreVersionRulesAndCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		across  bool
		corrupt bool
		want    string
	}{
		{"other major refused", false, false, ""},
		{"other major allowed", true, false, "from 0.9"},
		{"corrupt skipped", true, true, "older"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			clk := scFakeClock(f)
			v1 := newVersion(t)
			f.rt.SetAddress("1.0.0", v1.srv.URL)
			f.store.PutSnapshot(Snapshot{Challenge: "web", Version: "0.8.0", Data: []byte("older")}, 5)
			f.store.PutSnapshot(Snapshot{Challenge: "web", Version: "0.9.0", Data: []byte("from 0.9")}, 5)
			if tc.corrupt {
				f.store.corrupt[2] = true
			}
			spec := stateSpec()
			spec.State.AcrossMajor = tc.across
			f.start(spec)
			if tc.want == "" {
				ev := scWaitEvent(t, f.store, EventStateRestoreFailed, 1)
				if !strings.Contains(ev.Error, "across_major") {
					t.Errorf("refusal %+v", ev)
				}
				scWaitServing(t, f)
				if v1.imports.Load() != 0 {
					t.Error("imported a snapshot of another major version")
				}
				return
			}
			scAdvanceUntil(t, clk, 20*time.Millisecond, func() bool { return f.store.hasEvent(EventStateRestored) }, "not restored")
			if got := string(v1.state.Load().([]byte)); got != tc.want {
				t.Errorf("restored %q, want %q", got, tc.want)
			}
			if ev := scWaitEvent(t, f.store, EventStateRestored, 1); tc.corrupt != strings.Contains(ev.Message, "checksum") {
				t.Errorf("state_restored %q", ev.Message)
			}
		})
	}
}

// Refused exports (an error status, a redirect) are events once per reason,
// and the snapshots stored before stay.
func TestScenarioSnapshotRefusalsKeepPreviousSnapshots(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(stateSpec())
	scWaitServing(t, f)
	v1.state.Store([]byte("good"))
	waitSnapshots(t, f, clk, 1)
	for _, tc := range []struct {
		status int
		want   string
	}{{http.StatusInternalServerError, "answered 500, not 200"}, {http.StatusFound, "a redirect"}} {
		v1.exportStatus.Store(int32(tc.status))
		before := f.store.countEvents(EventStateSaveFailed)
		scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.countEvents(EventStateSaveFailed) > before }, "no refusal for %d", tc.status)
		if ev := scEvents(f.store, EventStateSaveFailed)[before]; !strings.Contains(ev.Error, tc.want) {
			t.Errorf("refusal of %d: %q", tc.status, ev.Error)
		}
		clk.Advance(3 * time.Second)
		scNoChange(t, 30*time.Millisecond, "refusal events", func() int { return f.store.countEvents(EventStateSaveFailed) }, before+1)
	}
	for _, d := range f.store.snapshotData() {
		if d != "good" {
			t.Fatalf("snapshots %q after refusals", f.store.snapshotData())
		}
	}
	v1.exportStatus.Store(0)
	v1.state.Store([]byte("better"))
	n := len(f.store.snapshotData())
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { d := f.store.snapshotData(); return d[len(d)-1] == "better" }, "no snapshot after recovery")
	if n > 3 {
		t.Errorf("%d snapshots kept, want at most keep=3", n)
	}
}

// An operator restart is a planned stop: the state is exported first and
// imported into the restarted container, so nothing is lost.
func TestScenarioOperatorRestartKeepsState(t *testing.T) {
	f := newFixture(t)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	spec := stateSpec()
	spec.State.SnapshotInterval = time.Hour // only the planned stop exports
	f.start(spec)
	scWaitServing(t, f)
	v1.state.Store([]byte("items=41"))
	// The stopped process loses its memory.
	f.rt.OnStop = func(context.Context) { v1.state.Store([]byte(nil)) }
	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	ev := scWaitEvent(t, f.store, EventStateSaved, 1)
	if !strings.Contains(ev.Message, "planned stop") {
		t.Errorf("state_saved %q", ev.Message)
	}
	scWaitEvent(t, f.store, EventStateRestored, 1)
	if got := string(v1.state.Load().([]byte)); got != "items=41" {
		t.Fatalf("state after the operator restart %q", got)
	}
}

// The admin API's save and restore go through the handle.
func TestScenarioStateSaveAndRestoreOnRequest(t *testing.T) {
	f := newFixture(t)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	spec := stateSpec()
	spec.State.SnapshotInterval = 0
	f.start(spec)
	scWaitServing(t, f)
	v1.state.Store([]byte("one"))
	first, err := f.handle.SaveState(scCtx(t))
	if err != nil || first.Seq != 1 || first.Bytes != 3 || first.Data != nil {
		t.Fatalf("save: %+v, %v", first, err)
	}
	v1.state.Store([]byte("two"))
	if _, err := f.handle.SaveState(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.handle.RestoreState(scCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if got := string(v1.state.Load().([]byte)); got != "one" {
		t.Fatalf("restored %q, want one", got)
	}
	if err := f.handle.RestoreState(scCtx(t), 9); err == nil || !strings.Contains(err.Error(), ErrNotFound.Error()) {
		t.Errorf("restore of a missing snapshot: %v", err)
	}
	if st := scWaitServing(t, f); st.State != Running {
		t.Fatalf("after the restores: %+v", st)
	}
	noState := testSpec()
	g := newFixture(t)
	g.rt.SetAddress("1.0.0", v1.srv.URL)
	g.start(noState)
	scWaitServing(t, g)
	if _, err := g.handle.SaveState(scCtx(t)); err != ErrNoState {
		t.Errorf("save without state.export: %v", err)
	}
}

// berth stopped while a container was migrating: after it starts again the
// adopted container gets its state before it is served.
func TestScenarioAdoptedMigratingInstanceIsRestored(t *testing.T) {
	f := newFixture(t)
	spec := stateSpec()
	v1 := newVersion(t)
	f.seed(spec, v1)
	rec := scRecord(t, f.store)
	rec.Lifecycle = string(Migrating)
	f.store.put(rec)
	f.store.PutSnapshot(Snapshot{Challenge: "web", Version: "1.0.0", Data: []byte("kept")}, 5)
	f.start(spec)
	scWaitEvent(t, f.store, EventStateRestored, 1)
	if got := string(v1.state.Load().([]byte)); got != "kept" {
		t.Fatalf("state %q", got)
	}
	if st := scWaitServing(t, f); st.ContainerID != "old01" {
		t.Fatalf("not the adopted instance: %+v", st)
	}
}

// shutdown: stop is a planned stop: the state is exported before the stop.
func TestScenarioStopOnShutdownSavesState(t *testing.T) {
	f := newFixture(t)
	f.deps.StopOnShutdown = true
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	spec := stateSpec()
	spec.State.SnapshotInterval = time.Hour
	f.start(spec)
	id := scWaitServing(t, f).ContainerID
	v1.state.Store([]byte("at shutdown"))
	if r := f.stop(); r != nil {
		t.Fatalf("Serve: %v", r)
	}
	if got := f.store.snapshotData(); len(got) != 1 || got[0] != "at shutdown" {
		t.Fatalf("snapshots %q", got)
	}
	if !f.store.hasEvent(EventStateSaved) || f.rt.Count("stop", id) != 1 {
		t.Fatalf("events %v, stops %d", f.store.eventTypes(), f.rt.Count("stop", id))
	}
}
