package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/configs"
	"berth/internal/testkit"
	"berth/statestore"
	"berth/supervisor"
)

// wiredAPI is the admin API as Run wires it, over a real store, checkpointer
// and reconciler. The reconciler's supervisor is never served, so the
// challenges it starts stay registered services that run nothing.
type wiredAPI struct {
	a      *Agent
	srv    *httptest.Server
	config string // the config file
}

const wiredConfig = `agent: {data_dir: %DIR%/data}
challenges:
  - {name: cfgd, image: example/cfgd, version: "1.0.0"}
`

func newWiredAPI(t *testing.T, reconciled bool) *wiredAPI {
	t.Helper()
	dir := t.TempDir()
	w := &wiredAPI{config: filepath.Join(dir, "berth.yaml")}
	w.writeConfig(t, wiredConfig)
	cfg, err := configs.LoadAll(w.config, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	store := openTestStore(t)
	t.Cleanup(func() { _ = store.Close() })
	a := &Agent{cfg: cfg, opts: Options{Getenv: noEnv}, store: store, log: zerolog.Nop(), clock: supervisor.RealClock(), dir: &challenge.Directory{},
		watcher: &watcher{}, requests: make(chan request), started: time.Now()}
	a.metrics = newMetrics(a.dir, func() bool { return false })
	a.setConfig(cfg)
	a.checkpoints = newCheckpointer(store, dir, 3, time.Hour, a.clock, zerolog.Nop())
	w.a = a
	if reconciled {
		r := &reconciler{a: a, root: supervisor.New(supervisor.Spec{Name: "test"}), running: map[string]configs.Challenge{}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-a.requests:
					r.serve(ctx, req)
				}
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
		a.reconciled.Store(true)
	}
	w.srv = testkit.Server(t, a.apiHandler())
	return w
}

func (w *wiredAPI) writeConfig(t *testing.T, s string) {
	t.Helper()
	s = strings.ReplaceAll(s, "%DIR%", filepath.Dir(w.config))
	if err := os.WriteFile(w.config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *wiredAPI) do(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	var hdr http.Header
	var rd io.Reader
	if body != "" {
		hdr = http.Header{"Content-Type": {"application/json"}}
		rd = strings.NewReader(body)
	}
	return testkit.Do(t, method, w.srv.URL+path, rd, hdr)
}

// Desired-state changes reach the reconciler, and its refusals come back
// with the API's codes.
func TestAPIWiringReachesTheReconciler(t *testing.T) {
	w := newWiredAPI(t, true)

	resp, body := w.do(t, http.MethodPut, "/v1/challenges/app", `{`+baseSpec+`}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT app: %d %s, want 201", resp.StatusCode, body)
	}
	if rec, ok, err := w.a.store.GetSpec("app"); err != nil || !ok || rec.Source != "api" {
		t.Fatalf("stored spec of app: %+v %v %v, want one from the api", rec, ok, err)
	}
	if w.a.dir.Get("app") == nil {
		t.Fatal("app is not in the directory after PUT")
	}
	resp, body = w.do(t, http.MethodPut, "/v1/challenges/app", `{"image":"example/app","version":"1.1.0"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT app again: %d %s, want 200", resp.StatusCode, body)
	}

	resp, body = w.do(t, http.MethodPut, "/v1/challenges/cfgd", `{`+baseSpec+`}`)
	if e := testkit.JSONError(t, resp, body, http.StatusConflict, "config_managed"); e.Error != "cfgd is "+errConfigManaged.Error() {
		t.Errorf("config_managed message %q", e.Error)
	}
	resp, body = w.do(t, http.MethodDelete, "/v1/challenges/cfgd", "")
	testkit.JSONError(t, resp, body, http.StatusConflict, "config_managed")
	resp, body = w.do(t, http.MethodDelete, "/v1/challenges/nope", "")
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")

	w.writeConfig(t, wiredConfig+"  - {name: more, image: example/more, version: \"2.0.0\"}\n")
	resp, body = w.do(t, http.MethodPost, "/v1/reload", "")
	var res map[string][]string
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if strings.Join(res["added"], ",") != "more" || len(res["removed"]) != 0 {
		t.Errorf("reload answer %s, want more added", body)
	}
	w.writeConfig(t, "agent: {data_dir: 7}\nchallenges: nope\n")
	resp, body = w.do(t, http.MethodPost, "/v1/reload", "")
	testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_config")
}

// Before the first reconcile no change is taken.
func TestAPIWiringNotReady(t *testing.T) {
	w := newWiredAPI(t, false)
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/challenges/app", `{` + baseSpec + `}`},
		{http.MethodDelete, "/v1/challenges/app", ""},
		{http.MethodPost, "/v1/reload", ""},
	} {
		resp, body := w.do(t, req.method, req.path, req.body)
		if e := testkit.JSONError(t, resp, body, http.StatusServiceUnavailable, "not_ready"); e.Error != errNotReady.Error() {
			t.Errorf("%s %s: message %q", req.method, req.path, e.Error)
		}
	}
}

// The event log, checkpoints, readiness and health reach the API from the
// store, the checkpointer and the agent.
func TestAPIWiringReadsTheAgent(t *testing.T) {
	w := newWiredAPI(t, false)
	code := 3
	ev := appendTestEvent(t, w.a.store, statestore.Event{Type: challenge.EventExited, Challenge: "web", ExitCode: &code, Message: "m"})
	appendTestEvent(t, w.a.store, statestore.Event{Type: challenge.EventStarted, Challenge: "other"})
	resp, body := w.do(t, http.MethodGet, "/v1/events?challenge=web", "")
	var got challenge.Event
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil {
		t.Fatalf("events: %d %s", resp.StatusCode, body)
	}
	if got.Seq != ev.Seq || got.Type != challenge.EventExited || got.ExitCode == nil || *got.ExitCode != 3 {
		t.Errorf("event %s, want %+v", body, ev)
	}

	resp, body = w.do(t, http.MethodPost, "/v1/checkpoints", "")
	var info map[string]any
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &info) != nil || info["sequence"] != float64(1) {
		t.Fatalf("create checkpoint: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(t, http.MethodGet, "/v1/checkpoints", "")
	var list []map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0]["valid"] != true {
		t.Fatalf("list checkpoints: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(t, http.MethodGet, "/v1/events?since="+strconv.FormatUint(ev.Seq+1, 10), "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), challenge.EventCheckpointCreated) {
		t.Errorf("no checkpoint_created event: %s", body)
	}

	// The engine watcher never ran: not ready, docker unhealthy.
	resp, body = w.do(t, http.MethodGet, "/readyz", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unreachable"`) {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(t, http.MethodGet, "/v1/health", "")
	var health struct {
		Status             string                       `json:"status"`
		Components         map[string]map[string]string `json:"components"`
		CheckpointSequence uint64                       `json:"checkpoint_sequence"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &health) != nil {
		t.Fatalf("/v1/health: %d %s", resp.StatusCode, body)
	}
	if health.Status != "unhealthy" || health.Components["docker"]["status"] != "unhealthy" || health.CheckpointSequence != 1 {
		t.Errorf("/v1/health %s", body)
	}
}

// A follow stream gets the store's events through the shared subscription,
// and ends when the store closes.
func TestAPIWiringFollowsTheStore(t *testing.T) {
	w := newWiredAPI(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.srv.URL+"/v1/events?follow=true&challenge=web", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %v %v", resp, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	appendTestEvent(t, w.a.store, statestore.Event{Type: challenge.EventStarted, Challenge: "other"})
	ev := appendTestEvent(t, w.a.store, statestore.Event{Type: challenge.EventStarted, Challenge: "web"})
	line, err := br.ReadBytes('\n')
	var got challenge.Event
	if err != nil || json.Unmarshal(line, &got) != nil || got.Seq != ev.Seq || got.Challenge != "web" {
		t.Fatalf("followed %q (%v), want seq %d of web", line, err, ev.Seq)
	}
	if err := w.a.store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadBytes('\n'); err != io.EOF {
		t.Fatalf("stream after the store closed: %v, want EOF", err)
	}
}
