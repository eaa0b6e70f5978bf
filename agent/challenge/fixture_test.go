package challenge

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// memStore is a Store in memory: one mutex makes each Commit atomic.
type memStore struct {
	mu       sync.Mutex
	runtime  map[string]Record
	swaps    map[string]SwapPlan
	events   []Event
	snaps    []Snapshot
	failNext int // Commits still to fail
	// failSnapshots is how many PutSnapshot calls still fail; corrupt
	// marks snapshots whose bytes fail their checksum.
	failSnapshots int
	corrupt       map[uint64]bool
}

func newMemStore() *memStore {
	return &memStore{runtime: map[string]Record{}, swaps: map[string]SwapPlan{}, corrupt: map[uint64]bool{}}
}

var errStoreFailure = io.ErrClosedPipe

func (s *memStore) Runtime(name string) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runtime[name]
	return cloneRecord(r), ok, nil
}

func (s *memStore) Swap(name string) (SwapPlan, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.swaps[name]
	return p, ok, nil
}

func (s *memStore) Commit(w Write) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return nil, errStoreFailure
	}
	if w.Runtime != nil {
		s.runtime[w.Challenge] = cloneRecord(*w.Runtime)
	}
	if w.Swap != nil {
		s.swaps[w.Challenge] = *w.Swap
	}
	if w.DeleteSwap {
		delete(s.swaps, w.Challenge)
	}
	saved := make([]Event, 0, len(w.Events))
	for _, ev := range w.Events {
		ev.Seq = uint64(len(s.events) + 1)
		ev.Time = time.Now()
		s.events = append(s.events, ev)
		saved = append(saved, ev)
	}
	return saved, nil
}

func (s *memStore) PutSnapshot(snap Snapshot, keep int) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSnapshots > 0 {
		s.failSnapshots--
		return Snapshot{}, errStoreFailure
	}
	snap.Seq = 1
	if n := len(s.snaps); n > 0 {
		snap.Seq = s.snaps[n-1].Seq + 1
	}
	snap.Bytes = len(snap.Data)
	snap.SHA256 = fmt.Sprintf("%x", sha256.Sum256(snap.Data))
	s.snaps = append(s.snaps, snap)
	if len(s.snaps) > keep {
		s.snaps = s.snaps[len(s.snaps)-keep:]
	}
	return snap, nil
}

func (s *memStore) Snapshots(name string) ([]Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Snapshot
	for i := len(s.snaps) - 1; i >= 0; i-- {
		if snap := s.snaps[i]; snap.Challenge == name {
			snap.Data = nil
			out = append(out, snap)
		}
	}
	return out, nil
}

func (s *memStore) SnapshotBySeq(name string, seq uint64) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, snap := range s.snaps {
		if snap.Challenge == name && snap.Seq == seq {
			if s.corrupt[seq] {
				return Snapshot{}, ErrSnapshotCorrupt
			}
			return snap, nil
		}
	}
	return Snapshot{}, ErrNotFound
}

func (s *memStore) NewestSnapshot(name string, usable func(Snapshot) bool) (Snapshot, []uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var corrupt []uint64
	for i := len(s.snaps) - 1; i >= 0; i-- {
		snap := s.snaps[i]
		if snap.Challenge != name || (usable != nil && !usable(snap)) {
			continue
		}
		if s.corrupt[snap.Seq] {
			corrupt = append(corrupt, snap.Seq)
			continue
		}
		return snap, corrupt, true, nil
	}
	return Snapshot{}, corrupt, false, nil
}

// snapshotData lists the stored snapshots' bytes, oldest first.
func (s *memStore) snapshotData() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, snap := range s.snaps {
		out = append(out, string(snap.Data))
	}
	return out
}

// put stores a record as a berth that ran earlier would have.
func (s *memStore) put(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runtime[rec.Name] = cloneRecord(rec)
}

func (s *memStore) putSwap(p SwapPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.swaps[p.Challenge] = p
}

// eventTypes lists the types of the events stored so far.
func (s *memStore) eventTypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.events))
	for i, ev := range s.events {
		out[i] = ev.Type
	}
	return out
}

// hasEvent reports whether an event of type typ was stored.
func (s *memStore) hasEvent(typ string) bool {
	for _, t := range s.eventTypes() {
		if t == typ {
			return true
		}
	}
	return false
}

func (s *memStore) countEvents(typ string) int {
	n := 0
	for _, t := range s.eventTypes() {
		if t == typ {
			n++
		}
	}
	return n
}

func cloneRecord(r Record) Record {
	if r.Slots != nil {
		slots := make(map[string]Slot, len(r.Slots))
		for k, v := range r.Slots {
			slots[k] = v
		}
		r.Slots = slots
	}
	r.RestartTimes = append([]time.Time(nil), r.RestartTimes...)
	if r.Kept != nil {
		k := *r.Kept
		r.Kept = &k
	}
	return r
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	logs     []string
	restarts map[string]int // cause → count
	swaps    map[string]int // result → count
	probes   int
	pulls    int
}

func newRecorder() *recorder {
	return &recorder{restarts: map[string]int{}, swaps: map[string]int{}}
}

func (r *recorder) Event(Event) {}
func (r *recorder) Log(_ Level, _ string, msg string, _ error, _ ...Field) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, msg)
}
func (r *recorder) Restarted(_, cause string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts[cause]++
}
func (r *recorder) Probed(string, bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probes++
}
func (r *recorder) SwapEnded(_, result string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.swaps[result]++
}
func (r *recorder) Pulled(string, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pulls++
}

func (r *recorder) swapCount(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.swaps[result]
}

func (r *recorder) restartCount(cause string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts[cause]
}

// traffic is a Traffic whose in-flight count the test sets.
type traffic struct {
	inflight atomic.Int64
	closed   atomic.Int64
}

func (t *traffic) InFlight(string) int64 { return t.inflight.Load() }
func (t *traffic) CloseIdle()            { t.closed.Add(1) }

// version is a test challenge version: an HTTP server whose health can be
// switched off.
type version struct {
	srv     *httptest.Server
	healthy atomic.Bool
	hits    atomic.Int64
	state   atomic.Value // []byte answered at /state, set by POST /state
	// importFails is how many imports still answer 500; exportStatus,
	// when set, is what every export answers instead of the state.
	importFails  atomic.Int32
	exportStatus atomic.Int32
	imports      atomic.Int32
}

func newVersion(tb testing.TB) *version {
	tb.Helper()
	v := &version{}
	v.healthy.Store(true)
	v.state.Store([]byte(nil))
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		switch {
		case r.URL.Path == "/health" && !v.healthy.Load():
			http.Error(w, "sick", http.StatusInternalServerError)
		case r.URL.Path == "/state" && r.Method == http.MethodPost:
			v.imports.Add(1)
			if v.importFails.Add(-1) >= 0 {
				http.Error(w, "not now", http.StatusInternalServerError)
				return
			}
			b, _ := io.ReadAll(r.Body)
			v.state.Store(b)
		case r.URL.Path == "/state" && v.exportStatus.Load() == http.StatusFound:
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case r.URL.Path == "/state" && v.exportStatus.Load() != 0:
			http.Error(w, "broken", int(v.exportStatus.Load()))
		case r.URL.Path == "/state":
			_, _ = w.Write(v.state.Load().([]byte))
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	tb.Cleanup(v.srv.Close)
	return v
}

// fixture runs one challenge owner over an in-memory runtime and store.
type fixture struct {
	t       *testing.T
	rt      *MemRuntime
	store   *memStore
	obs     *recorder
	traffic *traffic
	deps    *Deps
	handle  *Handle
	c       *Owner

	cancel context.CancelFunc
	done   chan any // Serve's result or its panic
}

func testSpec() configs.Challenge {
	return configs.Challenge{
		Name: "web", Image: "registry.test/web", Version: "1.0.0", PullPolicy: "if_not_present", Port: 8080,
		Health: configs.Health{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second,
			FailureThreshold: 1, SuccessThreshold: 1, StartInterval: 20 * time.Millisecond},
		Restart: configs.Restart{InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2,
			ResetAfter: time.Minute, Window: time.Minute, StopTimeout: time.Second, OnUnhealthy: true},
		Update: configs.Update{HealthyDeadline: 5 * time.Second, DrainTimeout: time.Hour, AutoRollback: true,
			RollbackWindow: time.Minute, KeepPrevious: time.Hour},
	}
}

// newFixture prepares an owner on the real clock; set f.deps.Clock before
// start for a fake one.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, rt: NewMemRuntime(), store: newMemStore(), obs: newRecorder(), traffic: &traffic{}}
	f.deps = &Deps{Runtime: f.rt, Store: f.store, Observer: f.obs, Traffic: f.traffic, Prober: NewProber(),
		Clock: supervisor.RealClock(), Rand: func() float64 { return 0.5 }, Endpoint: "http://proxy.test"}
	return f
}

// seed records a running instance of spec at ver in slot a, as a berth that
// started it earlier would have.
func (f *fixture) seed(spec configs.Challenge, ver *version) Instance {
	f.t.Helper()
	in := Instance{ID: "old01", Name: memName(spec.Name, slotA), Challenge: spec.Name, Slot: slotA, Version: spec.Version,
		SpecHash: spec.SpecHash(), Image: spec.Image + ":" + spec.Version, Running: true, StartedAt: time.Now()}
	f.rt.Add(in)
	f.rt.SetAddress(spec.Version, ver.srv.URL)
	f.store.put(Record{Name: spec.Name, Lifecycle: string(Running), Health: string(HealthHealthy), ActiveSlot: slotA,
		Version: spec.Version, Slots: map[string]Slot{slotA: {ContainerID: in.ID, ContainerName: in.Name,
			Image: in.Image, Version: spec.Version, SpecHash: spec.SpecHash()}}})
	return in
}

// start runs the owner until the test ends.
func (f *fixture) start(spec configs.Challenge) {
	f.t.Helper()
	if f.handle == nil {
		f.handle = NewHandle(spec.Name)
	}
	f.c = New(f.deps, f.handle, spec, false)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.done = make(chan any, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				f.done <- r
			}
		}()
		f.done <- f.c.Serve(ctx)
	}()
	f.t.Cleanup(func() { f.stop() })
}

// stop ends the owner and waits for it; it returns Serve's result or panic.
func (f *fixture) stop() any {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	f.cancel = nil
	select {
	case r := <-f.done:
		return r
	case <-time.After(10 * time.Second):
		f.t.Fatal("owner did not return within 10s of its context ending")
		return nil
	}
}

func (f *fixture) status() *Status { return f.handle.Status() }

// swap asks the owner for a swap of kind to ver and returns its reply.
func (f *fixture) swap(kind, ver string) swapReply {
	f.t.Helper()
	reply := make(chan swapReply, 1)
	f.handle.inbox <- msgSwap{version: ver, kind: kind, reply: reply}
	select {
	case r := <-reply:
		return r
	case <-time.After(5 * time.Second):
		f.t.Fatalf("no answer to %s %s within 5s", kind, ver)
		return swapReply{}
	}
}

// exit crashes instance id with code and tells the owner, as the watcher would.
func (f *fixture) exit(id string, code int, oom bool) {
	f.handle.Notify(f.rt.Exit(id, code, oom))
}

// eventually waits up to d for cond. Arguments of type func() any are
// evaluated when the failure is reported.
func eventually(tb testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if fn, ok := a.(func() any); ok {
					args[i] = fn()
				}
			}
			tb.Fatalf("after %s: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSwapPhase waits for the API view of the last swap to reach phase.
func (f *fixture) waitSwapPhase(phase string, d time.Duration) {
	f.t.Helper()
	eventually(f.t, d, func() bool {
		st := f.status()
		return st.Swap != nil && st.Swap.Phase == phase
	}, "swap is %+v, want phase %s", func() any { return f.status().Swap }, phase)
}

// A first start pulls nothing present, creates, starts and probes.
func TestFirstStartRunsAndTurnsHealthy(t *testing.T) {
	f := newFixture(t)
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.start(testSpec())
	eventually(t, 5*time.Second, func() bool { st := f.status(); return st.State == Running && st.Health == HealthHealthy },
		"not healthy: %+v", func() any { return f.status() })
	st := f.status()
	if st.Upstream != v1.srv.URL || st.Version != "1.0.0" || st.Slot != slotA || st.ContainerName != memName("web", slotA) {
		t.Fatalf("status %+v", st)
	}
	// The record names the instance as the runtime named it, from its creation on.
	if rec, _, _ := f.store.Runtime("web"); rec.Slots[slotA].ContainerName != memName("web", slotA) {
		t.Fatalf("recorded slot %+v", rec.Slots[slotA])
	}
	for _, typ := range []string{EventStarted, EventHealthChanged} {
		if !f.store.hasEvent(typ) {
			t.Errorf("no %s event in %v", typ, f.store.eventTypes())
		}
	}
}
