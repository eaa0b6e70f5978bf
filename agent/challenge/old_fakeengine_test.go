//go:build ignore

package challenge

import (
	"berth/agent/challenge"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// fakeEngine is an in-memory Engine: containers are records, and a
// container's "port" is the httptest server the test registered for its
// version, so probes and the proxy reach real HTTP servers.
type fakeEngine struct {
	mu      sync.Mutex
	cts     map[string]*docker.Container
	next    int
	ports   map[string]string // version label → host port
	calls   []string
	failOps map[string]int // op → failures still to return
	// imageInfo, when set, runs in ImageInfo (to block or fail a swap).
	imageInfo func(ctx context.Context) error
	// inspect, when set, runs first in Inspect (to panic the caller).
	inspect func()
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{cts: map[string]*docker.Container{}, ports: map[string]string{}, failOps: map[string]int{}}
}

var errFake = errors.New("fake engine failure")

func (f *fakeEngine) record(op, id string) error {
	f.calls = append(f.calls, op+" "+id)
	if f.failOps[op] > 0 {
		f.failOps[op]--
		return fmt.Errorf("%s %s: %w", op, id, errFake)
	}
	return nil
}

// count is how often op was called for id.
func (f *fakeEngine) count(op, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op+" "+id {
			n++
		}
	}
	return n
}

func (f *fakeEngine) failNext(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOps[op] = n
}

func (f *fakeEngine) setPort(version, port string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports[version] = port
}

// add puts a container in the engine as if created earlier.
func (f *fakeEngine) add(ct docker.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := ct
	f.cts[ct.ID] = &c
}

// get returns a copy of a container and whether it exists.
func (f *fakeEngine) get(id string) (docker.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ct, ok := f.cts[id]
	if !ok {
		return docker.Container{}, false
	}
	return *ct, true
}

func (f *fakeEngine) lookup(idOrName string) *docker.Container {
	if ct, ok := f.cts[idOrName]; ok {
		return ct
	}
	for _, ct := range f.cts {
		if ct.Name == idOrName {
			return ct
		}
	}
	return nil
}

func (f *fakeEngine) Ping(context.Context) (docker.EngineInfo, error) {
	return docker.EngineInfo{}, nil
}

func (f *fakeEngine) Pull(_ context.Context, ref string, _ func(docker.PullProgress)) (string, error) {
	return "sha256:" + strings.Repeat("0", 64), nil
}

func (f *fakeEngine) ImageInfo(ctx context.Context, ref string) (docker.ImageDetails, error) {
	f.mu.Lock()
	hook := f.imageInfo
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return docker.ImageDetails{}, err
		}
	}
	return docker.ImageDetails{ID: "sha256:img"}, nil
}

func (f *fakeEngine) Tags(context.Context, string) ([]string, error) { return nil, nil }

func (f *fakeEngine) EnsureNetwork(context.Context, string, map[string]string) error { return nil }

func (f *fakeEngine) Create(_ context.Context, spec docker.ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create", spec.Name); err != nil {
		return "", err
	}
	if f.lookup(spec.Name) != nil {
		return "", fmt.Errorf("create %s: %w", spec.Name, docker.ErrConflict)
	}
	f.next++
	id := fmt.Sprintf("ct%02d", f.next)
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	f.cts[id] = &docker.Container{ID: id, Name: spec.Name, Image: spec.Image, Labels: labels, State: "created",
		HostPort: f.ports[labels[docker.LabelVersion]], NetworkIPs: map[string]string{"net": "127.0.0.1"}}
	return id, nil
}

func (f *fakeEngine) Start(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("start", id); err != nil {
		return err
	}
	ct := f.lookup(id)
	if ct == nil {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	ct.Running, ct.State, ct.StartedAt = true, "running", time.Now()
	return nil
}

func (f *fakeEngine) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("stop", id); err != nil {
		return err
	}
	if ct := f.lookup(id); ct != nil {
		ct.Running, ct.State = false, "exited"
	}
	return nil
}

func (f *fakeEngine) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove", id); err != nil {
		return err
	}
	if ct := f.lookup(id); ct != nil {
		delete(f.cts, ct.ID)
	}
	return nil
}

func (f *fakeEngine) Inspect(_ context.Context, idOrName string) (docker.Container, error) {
	f.mu.Lock()
	hook := f.inspect
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ct := f.lookup(idOrName)
	if ct == nil {
		return docker.Container{}, fmt.Errorf("inspect %s: %w", idOrName, docker.ErrNotFound)
	}
	return *ct, nil
}

func (f *fakeEngine) List(_ context.Context, labels map[string]string) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Container
next:
	for _, ct := range f.cts {
		for k, v := range labels {
			if ct.Labels[k] != v {
				continue next
			}
		}
		out = append(out, *ct)
	}
	return out, nil
}

func (f *fakeEngine) Events(ctx context.Context, _ map[string]string) (<-chan docker.Event, <-chan error) {
	return make(chan docker.Event), make(chan error)
}

func (f *fakeEngine) Logs(context.Context, string, docker.LogOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

var _ Engine = (*fakeEngine)(nil)

// version is a test challenge version: an HTTP server whose health can be
// switched off.
type version struct {
	srv     *httptest.Server
	healthy atomic.Bool
	hits    atomic.Int64
}

func newVersion(tb testing.TB) *version {
	tb.Helper()
	v := &version{}
	v.healthy.Store(true)
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		if r.URL.Path == "/health" && !v.healthy.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	tb.Cleanup(v.srv.Close)
	return v
}

func (v *version) port() string {
	u, _ := url.Parse(v.srv.URL)
	return u.Port()
}

// challengeFixture runs one challenge goroutine over a fake engine and a
// real store.
type challengeFixture struct {
	t        *testing.T
	engine   *fakeEngine
	store    *statestore.Store
	sh       *shared
	handle   *challengeHandle
	c        *challenge
	inflight atomic.Int64
	agentID  string

	cancel context.CancelFunc
	done   chan any // Serve's result or its panic
}

func testSpec() configs.Challenge {
	return configs.Challenge{
		Name: "web", Image: "registry.test/web", Version: "1.0.0", PullPolicy: "if_not_present", Port: 8080,
		Health: configs.Health{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second,
			FailureThreshold: 1, SuccessThreshold: 1, StartInterval: 20 * time.Millisecond},
		Restart: configs.Restart{InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2,
			ResetAfter: time.Minute, Window: time.Minute, StopTimeout: time.Second},
		Update: configs.Update{HealthyDeadline: 5 * time.Second, DrainTimeout: time.Hour, AutoRollback: true,
			RollbackWindow: time.Minute, KeepPrevious: time.Hour},
	}
}

func newChallengeFixture(t *testing.T, store *statestore.Store, engine *fakeEngine) *challengeFixture {
	t.Helper()
	if store == nil {
		var err error
		store, err = statestore.Open(t.TempDir(), statestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
	}
	if engine == nil {
		engine = newFakeEngine()
	}
	f := &challengeFixture{t: t, engine: engine, store: store, agentID: "test"}
	f.sh = &shared{
		agentID: f.agentID, agent: configs.Agent{ID: f.agentID}, engine: engine, store: store, prober: NewProber(),
		clock: supervisor.RealClock(), rand: func() float64 { return 0.5 }, log: zerolog.Nop(),
		metrics:   newMetrics(&challenge.Directory{}, func() bool { return true }),
		inflight:  func(string) int64 { return f.inflight.Load() },
		closeIdle: func() {},
	}
	return f
}

// seed records a running container of spec at ver in slot a, as a berth that
// started it earlier would have.
func (f *challengeFixture) seed(spec configs.Challenge, ver *version) docker.Container {
	f.t.Helper()
	name := docker.ContainerName(f.agentID, spec.Name, slotA)
	labels := docker.OwnerLabels(f.agentID)
	labels[docker.LabelChallenge], labels[docker.LabelVersion] = spec.Name, spec.Version
	labels[docker.LabelSlot], labels[docker.LabelSpecHash] = slotA, spec.SpecHash()
	ct := docker.Container{ID: "old01", Name: name, Image: spec.Image + ":" + spec.Version, Labels: labels, State: "running",
		Running: true, StartedAt: time.Now(), HostPort: ver.port(), NetworkIPs: map[string]string{"net": "127.0.0.1"}}
	f.engine.add(ct)
	f.engine.setPort(spec.Version, ver.port())
	rec := statestore.RuntimeRecord{Name: spec.Name, Lifecycle: string(Running), Health: string(challenge.HealthHealthy), ActiveSlot: slotA,
		Version: spec.Version, Slots: map[string]statestore.SlotRecord{slotA: {ContainerID: ct.ID, ContainerName: name,
			Image: ct.Image, Version: spec.Version, SpecHash: spec.SpecHash()}}}
	if err := f.store.Update(func(tx *statestore.Tx) error { return tx.PutRuntime(rec) }); err != nil {
		f.t.Fatal(err)
	}
	return ct
}

// start runs the challenge goroutine until the test ends.
func (f *challengeFixture) start(spec configs.Challenge) {
	f.t.Helper()
	f.handle = challenge.NewHandle(spec.Name)
	f.c = newChallenge(f.sh, f.handle, spec, false)
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

// stop ends the challenge goroutine and waits for it.
func (f *challengeFixture) stop() any {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	f.cancel = nil
	select {
	case r := <-f.done:
		return r
	case <-time.After(10 * time.Second):
		f.t.Fatal("challenge goroutine did not return within 10s of its context ending")
		return nil
	}
}

func (f *challengeFixture) status() *challenge.Status { return f.handle.status.Load() }

// request sends msg to the challenge and returns the swap reply.
func (f *challengeFixture) swap(kind, ver string) swapReply {
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
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSwapPhase waits for the API view of the last swap to reach phase.
func (f *challengeFixture) waitSwapPhase(phase string, d time.Duration) {
	f.t.Helper()
	eventually(f.t, d, func() bool {
		st := f.status()
		return st.Swap != nil && st.Swap.Phase == phase
	}, "swap is %+v, want phase %s", func() any { return f.status().Swap }, phase)
}
