package statestore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func sampleSpec(name string) SpecRecord {
	return SpecRecord{
		Name:      name,
		Source:    "api",
		Spec:      []byte(`{"image":"ghcr.io/x/` + name + `","version":"1.0.0"}`),
		SpecHash:  "sha256:" + name,
		Applied:   []byte(`{"version":"1.0.0"}`),
		UpdatedAt: t0,
	}
}

func sampleRuntime(name string) RuntimeRecord {
	code := 137
	return RuntimeRecord{
		Name:       name,
		Lifecycle:  "running",
		Health:     "healthy",
		ActiveSlot: "b",
		Slots: map[string]SlotRecord{
			"a": {ContainerID: "c-a", ContainerName: "berth-x-" + name + "-a", Image: "img", Version: "1.0.0", Digest: "sha256:aa", SpecHash: "h1", CreatedAt: t0},
			"b": {ContainerID: "c-b", ContainerName: "berth-x-" + name + "-b", Image: "img", Version: "1.1.0", Digest: "sha256:bb", SpecHash: "h2", CreatedAt: t0.Add(time.Minute)},
		},
		Version:         "1.1.0",
		Digest:          "sha256:bb",
		PreviousVersion: "1.0.0",
		Restarts:        7,
		RestartAttempt:  2,
		RestartTimes:    []time.Time{t0, t0.Add(time.Second)},
		LastExitCode:    &code,
		StartedAt:       t0.Add(2 * time.Minute),
		HealthySince:    t0.Add(3 * time.Minute),
		UpdatedAt:       t0.Add(4 * time.Minute),
	}
}

func TestSpecRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	want := sampleSpec("web")
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutSpec(want) })

	got, ok, err := s.GetSpec("web")
	if err != nil || !ok {
		t.Fatalf("GetSpec: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetSpec = %+v, want %+v", got, want)
	}

	// Survives a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	got, ok, err = s.GetSpec("web")
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen GetSpec = %+v ok=%v err=%v", got, ok, err)
	}

	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteSpec("web") })
	if _, ok, err := s.GetSpec("web"); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
}

func TestRuntimeRoundTrip(t *testing.T) {
	s := openStore(t, "", Options{})
	want := sampleRuntime("web")
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutRuntime(want) })

	got, ok, err := s.GetRuntime("web")
	if err != nil || !ok {
		t.Fatalf("GetRuntime: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetRuntime = %+v, want %+v", got, want)
	}
	if got.LastExitCode == nil || *got.LastExitCode != 137 {
		t.Fatalf("LastExitCode = %v", got.LastExitCode)
	}

	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteRuntime("web") })
	if _, ok, err := s.GetRuntime("web"); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
}

func TestPutRuntimeBoundsRestartTimes(t *testing.T) {
	s := openStore(t, "", Options{})
	r := sampleRuntime("web")
	r.RestartTimes = nil
	for i := range MaxRestartTimes + 50 {
		r.RestartTimes = append(r.RestartTimes, t0.Add(time.Duration(i)*time.Second))
	}
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutRuntime(r) })
	got, _, err := s.GetRuntime("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RestartTimes) != MaxRestartTimes {
		t.Fatalf("len(RestartTimes) = %d, want %d", len(got.RestartTimes), MaxRestartTimes)
	}
	if !got.RestartTimes[0].Equal(t0.Add(50 * time.Second)) {
		t.Fatalf("oldest kept = %v, want the newest %d", got.RestartTimes[0], MaxRestartTimes)
	}
}

func TestListSortedByName(t *testing.T) {
	s := openStore(t, "", Options{})
	names := []string{"zeta", "alpha", "mid", "alpha-2"}
	mustUpdate(t, s, func(tx *Tx) error {
		for _, n := range names {
			if err := tx.PutSpec(sampleSpec(n)); err != nil {
				return err
			}
			if err := tx.PutRuntime(sampleRuntime(n)); err != nil {
				return err
			}
		}
		return nil
	})
	want := []string{"alpha", "alpha-2", "mid", "zeta"}

	specs, err := s.ListSpecs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range specs {
		got = append(got, r.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListSpecs names = %v, want %v", got, want)
	}

	rts, err := s.ListRuntime()
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range rts {
		got = append(got, r.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListRuntime names = %v, want %v", got, want)
	}
}

func TestListEmptyIsNonNil(t *testing.T) {
	s := openStore(t, "", Options{})
	specs, err := s.ListSpecs()
	if err != nil || specs == nil || len(specs) != 0 {
		t.Fatalf("ListSpecs = %#v, %v; want empty non-nil", specs, err)
	}
	evs, err := s.Events(EventQuery{})
	if err != nil || evs == nil || len(evs) != 0 {
		t.Fatalf("Events = %#v, %v; want empty non-nil", evs, err)
	}
}

func TestPutRejectsEmptyName(t *testing.T) {
	s := openStore(t, "", Options{})
	if err := s.Update(func(tx *Tx) error { return tx.PutSpec(SpecRecord{}) }); err == nil {
		t.Fatal("PutSpec with empty name succeeded")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutRuntime(RuntimeRecord{}) }); err == nil {
		t.Fatal("PutRuntime with empty name succeeded")
	}
}

func TestTxReadsOwnWrites(t *testing.T) {
	s := openStore(t, "", Options{})
	mustUpdate(t, s, func(tx *Tx) error {
		if err := tx.PutSpec(sampleSpec("a")); err != nil {
			return err
		}
		if _, ok, err := tx.GetSpec("a"); !ok || err != nil {
			t.Errorf("tx.GetSpec inside tx: ok=%v err=%v", ok, err)
		}
		if err := tx.PutRuntime(sampleRuntime("a")); err != nil {
			return err
		}
		if _, ok, err := tx.GetRuntime("a"); !ok || err != nil {
			t.Errorf("tx.GetRuntime inside tx: ok=%v err=%v", ok, err)
		}
		return nil
	})
}

func TestUpdateAtomicOnError(t *testing.T) {
	s := openStore(t, "", Options{})
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutSpec(sampleSpec("keep")) })
	sub := s.Subscribe(16)
	defer sub.Close()

	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutSpec(sampleSpec("new")); err != nil {
			return err
		}
		if err := tx.DeleteSpec("keep"); err != nil {
			return err
		}
		if err := tx.PutRuntime(sampleRuntime("new")); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(Event{Type: "registered", Challenge: "new"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want %v", err, boom)
	}
	if _, ok, _ := s.GetSpec("new"); ok {
		t.Error("spec from failed Update was written")
	}
	if _, ok, _ := s.GetSpec("keep"); !ok {
		t.Error("delete from failed Update was applied")
	}
	if _, ok, _ := s.GetRuntime("new"); ok {
		t.Error("runtime from failed Update was written")
	}
	if evs, _ := s.Events(EventQuery{}); len(evs) != 0 {
		t.Errorf("events after failed Update = %v", evs)
	}
	if got := s.LastSeq(); got != 0 {
		t.Errorf("LastSeq = %d, want 0", got)
	}
	select {
	case e := <-sub.C:
		t.Fatalf("event from failed Update was published: %+v", e)
	default:
	}

	e := mustAppend(t, s, Event{Type: "registered"})
	if e.Seq != 1 {
		t.Fatalf("seq after failed Update = %d, want 1", e.Seq)
	}
}

func TestUpdatePanicReleasesLock(t *testing.T) {
	s := openStore(t, "", Options{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic did not propagate")
			}
		}()
		_ = s.Update(func(tx *Tx) error {
			_, _ = tx.AppendEvent(Event{Type: "x"})
			panic("in fn")
		})
	}()
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendEvent(Event{Type: "y"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Update after a panicking Update blocked")
	}
	if s.LastSeq() != 1 {
		t.Fatalf("LastSeq = %d, want 1", s.LastSeq())
	}
}

func TestTxUnusableAfterUpdate(t *testing.T) {
	s := openStore(t, "", Options{})
	var leaked *Tx
	mustUpdate(t, s, func(tx *Tx) error { leaked = tx; return nil })
	if err := leaked.PutSpec(sampleSpec("a")); !errors.Is(err, ErrTxDone) {
		t.Errorf("PutSpec after Update: %v, want ErrTxDone", err)
	}
	if _, err := leaked.AppendEvent(Event{Type: "x"}); !errors.Is(err, ErrTxDone) {
		t.Errorf("AppendEvent after Update: %v, want ErrTxDone", err)
	}
	if _, _, err := leaked.GetSpec("a"); !errors.Is(err, ErrTxDone) {
		t.Errorf("GetSpec after Update: %v, want ErrTxDone", err)
	}
}

func TestCheckAndClose(t *testing.T) {
	s := openStore(t, "", Options{})
	if err := s.Check(); err != nil {
		t.Fatalf("Check on open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.GetSpec("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSpec after Close = %v", err)
	}
	if _, err := s.AppendEvent(Event{Type: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("AppendEvent after Close = %v", err)
	}
	if _, err := s.Events(EventQuery{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Events after Close = %v", err)
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir, Options{})
	s2, err := Open(dir, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same dir succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "open state store at "+dir) {
		t.Fatalf("err %q does not name the dir", err)
	}
}

func TestOpenBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(file, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "open state store at "+file+": ") {
		t.Fatalf("Open(file) err = %v", err)
	}
}

func TestInMemory(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutSpec(sampleSpec("m")) })
	if _, ok, err := s.GetSpec("m"); !ok || err != nil {
		t.Fatalf("GetSpec: ok=%v err=%v", ok, err)
	}
	if e := mustAppend(t, s, Event{Type: "x"}); e.Seq != 1 {
		t.Fatalf("seq = %d", e.Seq)
	}
}

func TestCorruptRecord(t *testing.T) {
	s := openStore(t, "", Options{})
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutSpec(sampleSpec("good")) })
	mustAppend(t, s, Event{Type: "ok"})
	// Bypass the typed API to plant undecodable values.
	for _, kv := range []struct{ k, v []byte }{
		{specKey("bad"), []byte("{not json")},
		{runtimeKey("bad"), []byte(`{"slots": 5}`)},
		{eventKey(2), []byte("\x00\x01")},
	} {
		txn := s.db.NewTransaction(true)
		if err := txn.Set(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	check := func(what string, err error, key string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error for corrupt record", what)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v is not ErrCorrupt", what, err)
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s: err %q does not name key %q", what, err, key)
		}
	}
	_, _, err := s.GetSpec("bad")
	check("GetSpec", err, "spec/bad")
	_, err = s.ListSpecs()
	check("ListSpecs", err, "spec/bad")
	_, _, err = s.GetRuntime("bad")
	check("GetRuntime", err, "rt/bad")
	_, err = s.ListRuntime()
	check("ListRuntime", err, "rt/bad")
	_, err = s.Events(EventQuery{})
	check("Events", err, "ev/")

	// Good records stay readable.
	if _, ok, err := s.GetSpec("good"); !ok || err != nil {
		t.Fatalf("GetSpec(good): ok=%v err=%v", ok, err)
	}
}

// Badger retries a failing memtable flush for ever; with the data dir gone
// under berth, Close still returns, with an error that says so.
func TestCloseReturnsWhenTheDataDirIsGone(t *testing.T) {
	defer func(d time.Duration) { closeTimeout = d }(closeTimeout)
	closeTimeout = 2 * time.Second
	dir := filepath.Join(t.TempDir(), "data")
	s := openStore(t, dir, Options{})
	if _, err := s.AppendEvent(Event{Challenge: "web", Type: "started"}); err != nil {
		t.Fatal(err)
	}
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "not closed after") {
		t.Fatalf("Close with the data dir gone: %v", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("Close took %s", took)
	}
	// Put back, Badger's next flush succeeds and its goroutines end.
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	if err := <-s.dbClosed; err != nil {
		t.Errorf("Badger's close, once the dir was back: %v", err)
	}
}
