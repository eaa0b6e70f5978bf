package agent

import (
	"berth/agent/challenge"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/statestore"
)

type apiFixture struct {
	srv   *httptest.Server
	store *statestore.Store
	dir   *challenge.Directory
	token string

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

// newAPIFixture serves a real admin API over a fresh store and directory.
func newAPIFixture(tb testing.TB, token string) *apiFixture {
	tb.Helper()
	store, err := statestore.Open(tb.TempDir(), statestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	f := &apiFixture{
		store: store, dir: &challenge.Directory{}, token: token,
		ready: true, components: map[string]string{"docker": "ok", "statestore": "ok"},
		followDone: make(chan struct{}, 16),
	}
	api := &adminAPI{
		dir: f.dir, store: store, token: token, log: zerolog.Nop(), started: time.Now(),
		ready: func() (bool, map[string]string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.ready, f.components
		},
		health: func() healthReport {
			return healthReport{Status: "healthy", Ready: true, Version: "test-1", UptimeSecs: 7,
				Components: map[string]componentHealth{
					"docker": {Status: "healthy"}, "statestore": {Status: "healthy"}, "challenges": {Status: "healthy"},
				}, ActiveChallenges: 2, CheckpointSequence: 3}
		},
	}
	routes := api.routes()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(w, r)
		if r.URL.Query().Get("follow") == "true" {
			f.followDone <- struct{}{}
		}
	}))
	tb.Cleanup(f.srv.Close)
	// Runs first: closing the store ends any follow handler still streaming.
	tb.Cleanup(func() { _ = store.Close() })
	return f
}

// get requests path with the fixture's token (when auth is true).
func (f *apiFixture) get(tb testing.TB, path string, auth bool) (*http.Response, []byte) {
	tb.Helper()
	var hdr http.Header
	if auth && f.token != "" {
		hdr = http.Header{"Authorization": {"Bearer " + f.token}}
	}
	return doRequest(tb, http.MethodGet, f.srv.URL+path, nil, hdr)
}

func (f *apiFixture) appendEvent(tb testing.TB, e statestore.Event) statestore.Event {
	tb.Helper()
	out, err := f.store.AppendEvent(e)
	if err != nil {
		tb.Fatal(err)
	}
	return out
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
				resp, body := doRequest(t, http.MethodGet, f.srv.URL+path, nil, hdr)
				checkJSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
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
	resp, body = doRequest(t, http.MethodGet, f.srv.URL+"/v1/challenges", nil, http.Header{"Authorization": {"Bearer whatever"}})
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
	checkJSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
}

func TestAPIUnknownEndpoint(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for _, path := range []string{"/v1/x", "/v1/challenges/a/b/c", "/v1/"} {
		t.Run(path, func(t *testing.T) {
			resp, body := f.get(t, path, true)
			checkJSONError(t, resp, body, http.StatusNotFound, "not_found")
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		resp, body := doRequest(t, http.MethodPatch, f.srv.URL+"/v1/challenges",
			strings.NewReader("{}"), http.Header{"Authorization": {"Bearer s3cret"}, "Content-Type": {"application/json"}})
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PATCH /v1/challenges: %d", resp.StatusCode)
		}
		checkJSONError(t, resp, body, resp.StatusCode, "")
	})
}

// readEvents decodes an NDJSON body.
func readEvents(tb testing.TB, body []byte) []statestore.Event {
	tb.Helper()
	var out []statestore.Event
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if line == "" {
			continue
		}
		var e statestore.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			tb.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func eventSeqs(evs []statestore.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = fmt.Sprintf("%d:%s", e.Seq, e.Challenge)
	}
	return strings.Join(s, ",")
}

func TestAPIEvents(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for i, ch := range []string{"a", "b", "a", "c", "a"} {
		f.appendEvent(t, statestore.Event{Type: "started", Challenge: ch, ContainerID: fmt.Sprintf("cid-%d", i),
			Version: "1.0.0", Message: "started"})
	}

	tests := []struct {
		query string
		want  string
	}{
		{"", "1:a,2:b,3:a,4:c,5:a"},
		{"?since=0", "1:a,2:b,3:a,4:c,5:a"},
		{"?since=2", "3:a,4:c,5:a"},
		{"?since=5", ""},
		{"?since=99", ""},
		{"?challenge=a", "1:a,3:a,5:a"},
		{"?challenge=b", "2:b"},
		{"?challenge=nope", ""},
		{"?challenge=a&since=3", "5:a"},
		{"?follow=false&since=4", "5:a"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := f.get(t, "/v1/events"+tt.query, true)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("Content-Type %q, want application/x-ndjson", ct)
			}
			if got := eventSeqs(readEvents(t, body)); got != tt.want {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		_, body := f.get(t, "/v1/events?since=3&challenge=c", true)
		var line map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(body))), &line); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		for _, k := range []string{"seq", "time", "type", "challenge", "container_id", "version", "message"} {
			if _, ok := line[k]; !ok {
				t.Errorf("event lacks %q: %s", k, body)
			}
		}
		if line["type"] != "started" || line["container_id"] != "cid-3" {
			t.Errorf("event %s", body)
		}
	})

	for _, q := range []string{"?since=abc", "?since=-1", "?since=1.5", "?follow=maybe"} {
		t.Run("bad "+q, func(t *testing.T) {
			resp, body := f.get(t, "/v1/events"+q, true)
			checkJSONError(t, resp, body, http.StatusBadRequest, "bad_request")
		})
	}
}

// followStream opens a follow request; lines are read until ctx ends.
func followStream(tb testing.TB, f *apiFixture, ctx context.Context, query string) (*bufio.Reader, func()) {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/v1/events?follow=true"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tb.Fatalf("follow: status %d: %s", resp.StatusCode, b)
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

func nextEvent(tb testing.TB, br *bufio.Reader) statestore.Event {
	tb.Helper()
	line, err := br.ReadBytes('\n')
	if err != nil {
		tb.Fatalf("reading the follow stream: %v (got %q)", err, line)
	}
	var e statestore.Event
	if err := json.Unmarshal(line, &e); err != nil {
		tb.Fatalf("line %q: %v", line, err)
	}
	return e
}

func waitFollowDone(tb testing.TB, f *apiFixture) {
	tb.Helper()
	select {
	case <-f.followDone:
	case <-time.After(10 * time.Second):
		tb.Fatal("follow handler kept running after the client left")
	}
}

func TestAPIEventsFollow(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	f.appendEvent(t, statestore.Event{Type: "registered", Challenge: "a"})
	f.appendEvent(t, statestore.Event{Type: "registered", Challenge: "b"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "")
	defer closeBody()

	for _, want := range []uint64{1, 2} {
		if e := nextEvent(t, br); e.Seq != want {
			t.Fatalf("history: seq %d, want %d", e.Seq, want)
		}
	}
	// Headers arrived, so the handler has subscribed: these come live.
	for i, ch := range []string{"a", "c", "b"} {
		appended := f.appendEvent(t, statestore.Event{Type: "started", Challenge: ch, Message: fmt.Sprint("live ", i)})
		e := nextEvent(t, br)
		if e.Seq != appended.Seq || e.Challenge != ch || e.Type != "started" {
			t.Fatalf("live event %+v, want seq %d for %s", e, appended.Seq, ch)
		}
	}

	cancel()
	waitFollowDone(t, f)
}

func TestAPIEventsFollowFilters(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	f.appendEvent(t, statestore.Event{Type: "registered", Challenge: "a"}) // 1
	f.appendEvent(t, statestore.Event{Type: "registered", Challenge: "b"}) // 2
	f.appendEvent(t, statestore.Event{Type: "pulling", Challenge: "a"})    // 3

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "&challenge=a&since=1")
	defer closeBody()

	if e := nextEvent(t, br); e.Seq != 3 || e.Challenge != "a" {
		t.Fatalf("history after since=1 for a: %+v, want seq 3", e)
	}
	f.appendEvent(t, statestore.Event{Type: "started", Challenge: "b"}) // 4, filtered
	f.appendEvent(t, statestore.Event{Type: "started", Challenge: "c"}) // 5, filtered
	f.appendEvent(t, statestore.Event{Type: "started", Challenge: "a"}) // 6
	if e := nextEvent(t, br); e.Seq != 6 || e.Challenge != "a" {
		t.Fatalf("live event for a: %+v, want seq 6", e)
	}

	cancel()
	waitFollowDone(t, f)
}

// A follow request whose filter matches nothing still ends with the client.
func TestAPIEventsFollowEndsOnCancel(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "&challenge=none")
	defer closeBody()

	done := make(chan error, 1)
	go func() {
		_, err := br.ReadBytes('\n')
		done <- err
	}()
	f.appendEvent(t, statestore.Event{Type: "registered", Challenge: "other"})
	cancel()
	waitFollowDone(t, f)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a filtered-out event reached the client")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client read did not end after cancel")
	}
}

func TestAPIRestartChallenge(t *testing.T) {
	tests := []struct {
		name   string
		reply  error
		status int
		code   string
	}{
		{"accepted", nil, http.StatusAccepted, ""},
		{"refused by owner", fmt.Errorf("challenge is stopping"), http.StatusConflict, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAPIFixture(t, "s3cret")
			h := putChallenge(f.dir, "svc", "", challenge.HealthUnknown)
			got := make(chan string, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() {
				kind, _ := challenge.StandIn(ctx, h, tt.reply, challenge.SwapResult{}, nil)
				got <- kind
			}()
			resp, body := doRequest(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/restart", nil,
				http.Header{"Authorization": {"Bearer s3cret"}})
			select {
			case kind := <-got:
				if kind != challenge.RequestRestart {
					t.Fatalf("owner got %q, want a restart", kind)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("restart never reached the challenge's inbox")
			}
			if tt.code != "" {
				checkJSONError(t, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
		})
	}

	t.Run("unknown challenge", func(t *testing.T) {
		f := newAPIFixture(t, "s3cret")
		resp, body := doRequest(t, http.MethodPost, f.srv.URL+"/v1/challenges/nope/restart", nil,
			http.Header{"Authorization": {"Bearer s3cret"}})
		checkJSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
	})

	t.Run("needs token", func(t *testing.T) {
		f := newAPIFixture(t, "s3cret")
		h := putChallenge(f.dir, "svc", "", challenge.HealthUnknown)
		resp, body := doRequest(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/restart", nil, nil)
		checkJSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		if n := h.Pending(); n != 0 {
			t.Fatalf("unauthorized request queued %d messages", n)
		}
	})
}

// newTestServer serves h until the test ends.
func newTestServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}
