package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/internal/testkit"
	"berth/supervisor"
)

// noEnv is an environment without BERTH_* variables.
func noEnv(string) string { return "" }

// configRig is an agent whose reconciler serves API requests over an owner
// fixture (engine reported down, so challenges never call it), with its
// config in a file that a test rewrites before reloading.
type configRig struct {
	a    *Agent
	path string
	srv  *httptest.Server

	mu  sync.Mutex
	env map[string]string // what Options.Getenv answers
}

func newConfigRig(t *testing.T, config string) *configRig {
	t.Helper()
	rig := &configRig{path: filepath.Join(t.TempDir(), "berth.yaml"), env: map[string]string{}}
	rig.write(t, config)
	getenv := func(k string) string {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		return rig.env[k]
	}
	cfg, err := configs.LoadAll(rig.path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	f := newOwnerFixture(t)
	a := &Agent{cfg: cfg, store: f.store, dir: f.dir, clock: f.clock, log: zerolog.Nop(), deps: f.deps, metrics: f.metrics,
		opts: Options{Getenv: getenv}, requests: make(chan request)}
	a.setConfig(cfg)
	rig.a = a

	ctx, cancel := context.WithCancel(context.Background())
	root := supervisor.New(supervisor.Spec{Name: "config-test"})
	rootDone, loopDone := make(chan error, 1), make(chan struct{})
	go func() { rootDone <- root.Serve(ctx) }()
	r := &reconciler{a: a, root: root, running: map[string]configs.Challenge{}}
	if _, err := r.apply(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	a.reconciled.Store(true)
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-a.requests:
				r.serve(ctx, req)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-loopDone
		select {
		case <-rootDone:
		case <-time.After(10 * time.Second):
			t.Error("challenge services did not stop")
		}
	})

	rig.srv = httptest.NewServer(a.apiHandler())
	t.Cleanup(rig.srv.Close)
	return rig
}

func (rig *configRig) write(tb testing.TB, config string) {
	tb.Helper()
	if err := os.WriteFile(rig.path, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func (rig *configRig) setEnv(k, v string) {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	rig.env[k] = v
}

// reload asks the API to reload, as berth reload and SIGHUP do.
func (rig *configRig) reload(tb testing.TB) (*http.Response, []byte) {
	tb.Helper()
	return testkit.Do(tb, http.MethodPost, rig.srv.URL+"/v1/reload", nil, nil)
}

// storedSpec is the spec the reconciler stored for name.
func (rig *configRig) storedSpec(tb testing.TB, name string) configs.Challenge {
	tb.Helper()
	rec, ok, err := rig.a.store.GetSpec(name)
	if err != nil || !ok {
		tb.Fatalf("stored spec %s: found %v, %v", name, ok, err)
	}
	var c configs.Challenge
	if err := json.Unmarshal(rec.Spec, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestReloadedConfigGovernsAPIAndReconciler: after a reload that changes
// agent.policy, the defaults and the declared challenges, the API parses
// and checks a PUT with the new config, and the reconciler's put, delete and
// desired set read that same config; no part keeps the one berth started with.
func TestReloadedConfigGovernsAPIAndReconciler(t *testing.T) {
	rig := newConfigRig(t, "agent: {id: rig}\n")
	started := rig.a.config()
	rig.write(t, "agent:\n  id: renamed\n  policy: {allowed_images: [trusted/], max_pids: 100}\n"+
		"defaults: {resources: {pids: 50}, health: {path: /ready}}\n"+
		"challenges:\n  - {name: declared, image: trusted/declared, version: '1'}\n")
	resp, body := rig.reload(t)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	cfg := rig.a.config()
	if cfg == started || cfg.Agent.Policy.MaxPids != 100 {
		t.Fatalf("config in force after reload has max_pids %d; the reload was not published", cfg.Agent.Policy.MaxPids)
	}
	if cfg.Agent.ID != "rig" {
		t.Errorf("agent.id = %q after reload; it needs a restart and must stay rig", cfg.Agent.ID)
	}

	// The API checks the image against the reloaded policy...
	resp, body = putSpec(t, rig.srv, "app", `{"image":"example/app","version":"1.0.0"}`)
	testkit.JSONError(t, resp, body, http.StatusForbidden, "policy")
	// ...and fills unset keys from the reloaded defaults: the startup ones
	// (512 pids) exceed max_pids 100 and would be refused.
	resp, body = putSpec(t, rig.srv, "app", `{"image":"trusted/app","version":"1.0.0"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT app: %d %s; want 201", resp.StatusCode, body)
	}
	if got := rig.storedSpec(t, "app"); got.Resources.Pids != 50 || got.Health.Path != "/ready" {
		t.Errorf("stored spec has pids %d, health.path %q; want the reloaded defaults 50, /ready", got.Resources.Pids, got.Health.Path)
	}

	// The reconciler refuses a spec the API parsed with the startup config
	// and that reached it only after the reload.
	stale := started.Defaults.NewChallenge()
	stale.Name, stale.Image, stale.Version = "stale", "trusted/stale", "1.0.0"
	reply := make(chan error, 1)
	if err := rig.a.ask(context.Background(), reqPut{spec: stale, reply: reply}); err != nil {
		t.Fatal(err)
	}
	var refused *specRefusedError
	if err := <-reply; !errors.As(err, &refused) || !strings.Contains(err.Error(), "resources.pids") {
		t.Errorf("put of a spec with the startup defaults after the reload: %v; want it refused for resources.pids", err)
	}

	// The declared challenges are the reloaded ones: desired runs it, and
	// put and delete leave it to the file.
	if rig.a.dir.Get("declared") == nil {
		t.Errorf("the challenge declared by the reload is not running")
	}
	resp, body = putSpec(t, rig.srv, "declared", `{"image":"trusted/other","version":"1.0.0"}`)
	testkit.JSONError(t, resp, body, http.StatusConflict, "config_managed")
	resp, body = testkit.Do(t, http.MethodDelete, rig.srv.URL+"/v1/challenges/declared", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusConflict, "config_managed")
}

// TestReloadReadsOptionsGetenv: a reload takes the BERTH_* overrides from
// Options.Getenv, not from the process environment, and an invalid one is
// refused whole, keeping the config in force.
func TestReloadReadsOptionsGetenv(t *testing.T) {
	t.Setenv("BERTH_REACH", "nowhere") // invalid, and must not be read
	rig := newConfigRig(t, "agent: {id: rig}\n")
	rig.write(t, "agent: {id: rig, policy: {max_pids: 100}}\ndefaults: {resources: {pids: 50}}\n")
	if resp, body := rig.reload(t); resp.StatusCode != http.StatusOK {
		t.Fatalf("reload with the process environment invalid: %d %s; want 200", resp.StatusCode, body)
	}
	inForce := rig.a.config()

	rig.setEnv("BERTH_REACH", "anywhere")
	rig.write(t, "agent: {id: rig, policy: {max_pids: 200}}\ndefaults: {resources: {pids: 50}}\n")
	resp, body := rig.reload(t)
	e := testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_config")
	if !strings.Contains(e.Error, "(from BERTH_REACH)") {
		t.Errorf("reload error does not name the variable: %s", e.Error)
	}
	if rig.a.config() != inForce {
		t.Errorf("a refused reload replaced the config in force")
	}
}
