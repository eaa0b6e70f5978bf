package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/configs"
	"berth/internal/testkit"
	"berth/statestore"
)

func putSpec(tb testing.TB, srv *httptest.Server, name, body string) (*http.Response, []byte) {
	tb.Helper()
	return testkit.Do(tb, http.MethodPut, srv.URL+"/v1/challenges/"+name, strings.NewReader(body),
		http.Header{"Content-Type": {"application/json"}})
}

const baseSpec = `"image":"example/app","version":"1.0.0"`

// TestStoredAPISpecsAreRevalidated: a spec stored by an older berth, restored
// from a checkpoint or admitted before a tighter reload is refused, not run.
func TestStoredAPISpecsAreRevalidated(t *testing.T) {
	store, err := statestore.Open(t.TempDir(), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cfg := configs.Default()
	cfg.Agent.Policy.AllowedImages = []string{"example/"}
	good := cfg.Defaults.NewChallenge()
	good.Name, good.Image, good.Version = "good", "example/app", "1.0.0"
	bad := map[string]func(*configs.Challenge){
		"secret":   func(c *configs.Challenge) { c.SecretEnvFiles = map[string]string{"K": "/proc/self/environ"} },
		"caps":     func(c *configs.Challenge) { c.Security.CapDrop = nil },
		"image":    func(c *configs.Challenge) { c.Image = "other/app" },
		"pids":     func(c *configs.Challenge) { c.Resources.Pids = 1 << 40 },
		"invalid":  func(c *configs.Challenge) { c.Port = 0 },
		"writable": func(c *configs.Challenge) { c.Security.ReadOnly = false },
	}
	put := func(c configs.Challenge) {
		raw, _ := json.Marshal(c)
		if err := store.Update(func(tx *statestore.Tx) error {
			return tx.PutSpec(statestore.SpecRecord{Name: c.Name, Source: "api", Spec: raw})
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(good)
	for name, spoil := range bad {
		c := good.Clone()
		c.Name = name
		spoil(&c)
		put(c)
	}
	a := &Agent{cfg: cfg, opts: Options{Getenv: noEnv}, store: store, log: zerolog.Nop(), dir: &challenge.Directory{}, clock: nil}
	a.setConfig(cfg)
	r := &reconciler{a: a, running: map[string]configs.Challenge{}}
	specs, _, err := r.desired()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := specs["good"]; !ok || len(specs) != 1 {
		names := []string{}
		for n := range specs {
			names = append(names, n)
		}
		t.Fatalf("desired = %v, want only good", names)
	}
	evs, err := store.Events(statestore.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == "refused" {
			refused[ev.Challenge] = true
		}
	}
	for name := range bad {
		if !refused[name] {
			t.Errorf("no refused event for %s", name)
		}
	}
}

// TestPutUsesReloadedConfig: after a reload, the API parses specs with the
// reloaded defaults and policy, not the ones berth started with.
func TestPutUsesReloadedConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("agent: {data_dir: " + dir + "/data}\n")
	cfg, err := configs.LoadAll(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	store, err := statestore.Open(t.TempDir(), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	a := &Agent{cfg: cfg, opts: Options{Getenv: noEnv}, store: store, log: zerolog.Nop(), dir: &challenge.Directory{}}
	a.setConfig(cfg)
	r := &reconciler{a: a, running: map[string]configs.Challenge{}}
	write("agent: {data_dir: " + dir + "/data, policy: {allowed_images: [trusted/], max_pids: 100}}\ndefaults: {resources: {pids: 50}}\n")
	if res := r.reload(context.Background()); res.err != nil {
		t.Fatal(res.err)
	}
	if got := a.config().Agent.Policy.AllowedImages; len(got) != 1 || got[0] != "trusted/" {
		t.Fatalf("policy in force after reload: %v", got)
	}
	srv := httptest.NewServer(a.apiHandler())
	t.Cleanup(srv.Close)
	resp, body := putSpec(t, srv, "app", `{`+baseSpec+`}`)
	testkit.JSONError(t, resp, body, http.StatusForbidden, "policy")
	resp, body = putSpec(t, srv, "app", `{"image":"trusted/app","version":"1.0.0","resources":{"pids":200}}`)
	testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_spec")
	// The reloaded defaults (pids 50) apply; the startup ones (512) would exceed max_pids.
	resp, body = putSpec(t, srv, "app", `{"image":"trusted/app","version":"1.0.0"}`)
	testkit.JSONError(t, resp, body, http.StatusServiceUnavailable, "not_ready")
}
