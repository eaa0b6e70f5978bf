package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

type apiFixture struct {
	srv    *httptest.Server
	events *memLog
	dir    *challenge.Directory
	token  string

	mu         sync.Mutex
	ready      bool
	components map[string]string

	followDone chan struct{} // one value each time a follow request's handler returns
}

func (f *apiFixture) setReady(ok bool, components map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready, f.components = ok, components
}

// newAPIFixture serves a real admin API over a fresh event log and
// directory; edits adjust its options before it starts.
func newAPIFixture(tb testing.TB, token string, edits ...func(*Options)) *apiFixture {
	tb.Helper()
	f := &apiFixture{
		events: newMemLog(), dir: &challenge.Directory{}, token: token,
		ready: true, components: map[string]string{"docker": "ok", "statestore": "ok"},
		followDone: make(chan struct{}, 16),
	}
	opts := Options{
		Directory: f.dir, Events: f.events, Token: token, Log: zerolog.Nop(),
		Ready: func() (bool, map[string]string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.ready, f.components
		},
		Health: func() HealthReport {
			return HealthReport{Status: "healthy", Ready: true, Version: "test-1", UptimeSecs: 7,
				Components: map[string]ComponentHealth{
					"docker": {Status: "healthy"}, "statestore": {Status: "healthy"}, "challenges": {Status: "healthy"},
				}, ActiveChallenges: 2, CheckpointSequence: 3}
		},
	}
	for _, edit := range edits {
		edit(&opts)
	}
	routes := New(opts)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(w, r)
		if r.URL.Query().Get("follow") == "true" {
			f.followDone <- struct{}{}
		}
	}))
	tb.Cleanup(f.srv.Close)
	// Runs first: closing the log ends any follow handler still streaming.
	tb.Cleanup(f.events.Close)
	return f
}

// get requests path with the fixture's token (when auth is true).
func (f *apiFixture) get(tb testing.TB, path string, auth bool) (*http.Response, []byte) {
	tb.Helper()
	var hdr http.Header
	if auth && f.token != "" {
		hdr = http.Header{"Authorization": {"Bearer " + f.token}}
	}
	return testkit.Do(tb, http.MethodGet, f.srv.URL+path, nil, hdr)
}

func (f *apiFixture) appendEvent(tb testing.TB, e challenge.Event) challenge.Event {
	tb.Helper()
	return f.events.Append(e)
}

func TestAPIHealthz(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	resp, body := f.get(t, "/healthz", false)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d: %s", resp.StatusCode, body)
	}
	f.setReady(false, map[string]string{"docker": "unreachable"})
	if resp, _ := f.get(t, "/healthz", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz follows readiness: %d", resp.StatusCode)
	}
}

func TestAPIReadyz(t *testing.T) {
	tests := []struct {
		name       string
		ok         bool
		components map[string]string
		code       int
		status     string
	}{
		{"ready", true, map[string]string{"docker": "ok", "statestore": "ok", "reconcile": "done"}, 200, "ready"},
		{"docker down", false, map[string]string{"docker": "unreachable", "statestore": "ok"}, 503, "not_ready"},
		{"draining", false, map[string]string{"docker": "ok", "agent": "draining"}, 503, "draining"},
	}
	f := newAPIFixture(t, "s3cret")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setReady(tt.ok, tt.components)
			resp, body := f.get(t, "/readyz", false) // no token needed
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.code, body)
			}
			var got struct {
				Status     string            `json:"status"`
				Components map[string]string `json:"components"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body not JSON: %v: %s", err, body)
			}
			if got.Status != tt.status {
				t.Errorf("status %q, want %q", got.Status, tt.status)
			}
			if fmt.Sprint(got.Components) != fmt.Sprint(tt.components) {
				t.Errorf("components %v, want %v", got.Components, tt.components)
			}
		})
	}
}

func TestAPIAuth(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	putChallenge(f.dir, "a", "", challenge.HealthUnknown)
	paths := []string{"/v1/challenges", "/v1/challenges/a", "/v1/health", "/v1/events", "/v1/x"}
	bad := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer s3cre"},
		{"token suffix", "Bearer s3cret2"},
		{"no scheme", "s3cret"},
		{"basic scheme", "Basic s3cret"},
		{"empty bearer", "Bearer "},
	}
	for _, path := range paths {
		for _, b := range bad {
			t.Run(path+"/"+b.name, func(t *testing.T) {
				var hdr http.Header
				if b.header != "" {
					hdr = http.Header{"Authorization": {b.header}}
				}
				resp, body := testkit.Do(t, http.MethodGet, f.srv.URL+path, nil, hdr)
				testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
			})
		}
	}
	for _, path := range []string{"/v1/challenges", "/v1/challenges/a", "/v1/health", "/v1/events"} {
		t.Run(path+"/right token", func(t *testing.T) {
			resp, body := f.get(t, path, true)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d with the right token: %s", resp.StatusCode, body)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path+"/open", func(t *testing.T) {
			resp, body := f.get(t, path, false)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d without a token: %s", resp.StatusCode, body)
			}
		})
	}
}

func TestAPINoTokenConfigured(t *testing.T) {
	f := newAPIFixture(t, "")
	resp, body := f.get(t, "/v1/challenges", false)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("auth off: status %d: %s", resp.StatusCode, body)
	}
	resp, body = testkit.Do(t, http.MethodGet, f.srv.URL+"/v1/challenges", nil, http.Header{"Authorization": {"Bearer whatever"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("auth off with a token sent: status %d: %s", resp.StatusCode, body)
	}
}

func TestAPIHealth(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	resp, body := f.get(t, "/v1/health", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "ready", "version", "uptime_secs", "components", "active_challenges", "checkpoint_sequence"} {
		if _, ok := got[k]; !ok {
			t.Errorf("field %q missing: %s", k, body)
		}
	}
	if got["version"] != "test-1" || got["active_challenges"] != float64(2) {
		t.Errorf("report not passed through: %s", body)
	}
	comps, _ := got["components"].(map[string]any)
	for _, k := range []string{"docker", "statestore", "challenges"} {
		if _, ok := comps[k]; !ok {
			t.Errorf("component %q missing: %s", k, body)
		}
	}
}

var challengeFields = []string{
	"name", "image", "version", "digest", "state", "health", "container_id", "container_name",
	"restarts", "last_exit_code", "endpoint", "upstream", "started_at", "previous_version", "swap",
}

func TestAPIListChallenges(t *testing.T) {
	f := newAPIFixture(t, "s3cret")

	resp, body := f.get(t, "/v1/challenges", true)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("empty list: %d %s, want 200 []", resp.StatusCode, body)
	}

	started := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	exit := 137
	for _, name := range []string{"zeta", "alpha", "mid"} {
		h := challenge.NewHandle(name)
		st := &challenge.Status{Name: name, Image: "ghcr.io/x/" + name, Version: "1.2.3", State: challenge.Running, Health: challenge.HealthHealthy}
		if name == "alpha" {
			st.Digest = "sha256:abc"
			st.ContainerID = "cid-alpha"
			st.ContainerName = "berth-test-alpha-a"
			st.Restarts = 4
			st.LastExitCode = &exit
			st.Endpoint = "http://127.0.0.1:7080/alpha"
			st.Upstream = "http://127.0.0.1:32768"
			st.StartedAt = &started
			st.PreviousVersion = "1.2.2"
			st.Swap = &challenge.SwapStatus{ID: "sw-1", Phase: "draining", From: "1.2.2", To: "1.2.3", StartedAt: started}
		}
		h.SetStatus(st)
		f.dir.Put(h)
	}

	resp, body = f.get(t, "/v1/challenges", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("not a JSON list: %v: %s", err, body)
	}
	var names []string
	for _, obj := range list {
		names = append(names, fmt.Sprint(obj["name"]))
		for _, k := range challengeFields {
			if _, ok := obj[k]; !ok {
				t.Errorf("challenge %v lacks field %q", obj["name"], k)
			}
		}
	}
	if strings.Join(names, ",") != "alpha,mid,zeta" {
		t.Fatalf("names %v, want sorted alpha,mid,zeta", names)
	}

	alpha := list[0]
	wantAlpha := map[string]any{
		"image": "ghcr.io/x/alpha", "version": "1.2.3", "digest": "sha256:abc", "state": "running",
		"health": "healthy", "container_id": "cid-alpha", "container_name": "berth-test-alpha-a",
		"restarts": float64(4), "last_exit_code": float64(137), "endpoint": "http://127.0.0.1:7080/alpha",
		"upstream": "http://127.0.0.1:32768", "started_at": "2025-03-04T05:06:07Z", "previous_version": "1.2.2",
	}
	for k, v := range wantAlpha {
		if alpha[k] != v {
			t.Errorf("alpha.%s = %v, want %v", k, alpha[k], v)
		}
	}
	swap, ok := alpha["swap"].(map[string]any)
	if !ok {
		t.Fatalf("alpha.swap = %v, want an object", alpha["swap"])
	}
	for _, k := range []string{"id", "phase", "from", "to", "started_at", "error"} {
		if _, ok := swap[k]; !ok {
			t.Errorf("swap lacks %q: %v", k, swap)
		}
	}
	if swap["id"] != "sw-1" || swap["phase"] != "draining" || swap["from"] != "1.2.2" || swap["to"] != "1.2.3" {
		t.Errorf("swap = %v", swap)
	}
	mid := list[1]
	for _, k := range []string{"swap", "last_exit_code", "started_at"} {
		if mid[k] != nil {
			t.Errorf("mid.%s = %v, want null", k, mid[k])
		}
	}
}

func TestAPIGetChallenge(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	putChallenge(f.dir, "term", "http://127.0.0.1:1", challenge.HealthDegraded)

	resp, body := f.get(t, "/v1/challenges/term", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	if obj["name"] != "term" || obj["health"] != "degraded" || obj["upstream"] != "http://127.0.0.1:1" {
		t.Fatalf("object %s", body)
	}
	for _, k := range challengeFields {
		if _, ok := obj[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}

	resp, body = f.get(t, "/v1/challenges/nope", true)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
}

func TestAPIUnknownEndpoint(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for _, path := range []string{"/v1/x", "/v1/challenges/a/b/c", "/v1/"} {
		t.Run(path, func(t *testing.T) {
			resp, body := f.get(t, path, true)
			testkit.JSONError(t, resp, body, http.StatusNotFound, "not_found")
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		resp, body := testkit.Do(t, http.MethodPatch, f.srv.URL+"/v1/challenges",
			strings.NewReader("{}"), http.Header{"Authorization": {"Bearer s3cret"}, "Content-Type": {"application/json"}})
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PATCH /v1/challenges: %d", resp.StatusCode)
		}
		testkit.JSONError(t, resp, body, resp.StatusCode, "")
	})
}
