package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

// internalsRE matches what an error answer must never show: stack traces,
// Go source positions and absolute file paths.
var internalsRE = regexp.MustCompile(`goroutine \d|\.go:\d|panic|(^|[\s"'(=])/(root|home|tmp|work|var|usr|etc|run|proc|srv|opt)/`)

func checkNoInternals(tb testing.TB, what string, body []byte) {
	tb.Helper()
	if m := internalsRE.Find(body); m != nil {
		tb.Errorf("%s: answer shows internals (%q):\n%.500s", what, m, body)
	}
}

// TestAPIHostileRequests sends malformed, oversized and probing requests to
// the real admin routes: each gets a JSON 4xx, never a 5xx, and no answer
// shows internals.
func TestAPIHostileRequests(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	putChallenge(f.dir, "a", "", challenge.HealthUnknown)
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	big := strings.Repeat("x", 2<<20)
	long := strings.Repeat("n", 5000)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
	}{
		{"2 MiB swap body", "POST", "/v1/challenges/a/swap", `{"version":"` + big + `"}`, auth, 413},
		{"2 MiB POST to no route", "POST", "/v1/challenges/a/restart/x", big, auth, 404},
		{"2 MiB POST unknown challenge", "POST", "/v1/challenges/nope/restart", big, auth, 404},
		{"2 MiB POST without a token", "POST", "/v1/checkpoints", big, nil, 401},
		{"2 MiB PUT spec", "PUT", "/v1/challenges/a", big, auth, 404},
		{"since not a number", "GET", "/v1/events?since=abc", "", auth, 400},
		{"since negative", "GET", "/v1/events?since=-1", "", auth, 400},
		{"since overflow", "GET", "/v1/events?since=99999999999999999999999", "", auth, 400},
		{"follow not a bool", "GET", "/v1/events?follow=maybe", "", auth, 400},
		{"tail negative", "GET", "/v1/challenges/a/logs?tail=-1", "", auth, 400},
		{"tail huge", "GET", "/v1/challenges/a/logs?tail=99999999999", "", auth, 400},
		{"tail not a number", "GET", "/v1/challenges/a/logs?tail=" + long, "", auth, 400},
		{"long name", "GET", "/v1/challenges/" + long, "", auth, 400},
		{"encoded traversal", "GET", "/v1/challenges/..%2f..%2fetc%2fpasswd", "", auth, 400},
		{"NUL in name", "GET", "/v1/challenges/a%00b", "", auth, 400},
		{"restart encoded traversal", "POST", "/v1/challenges/..%2fa/restart", "", auth, 400},
		{"unknown endpoint", "GET", "/v1/secrets", "", auth, 404},
		{"wrong token", "GET", "/v1/challenges", "", http.Header{"Authorization": {"Bearer s3cret" + long}}, 401},
		{"token in lower-case scheme", "GET", "/v1/challenges", "", http.Header{"Authorization": {"bearer nope"}}, 401},
		{"dot segments do not skip auth", "GET", "/healthz/../v1/challenges", "", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			header := tt.header.Clone()
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if header == nil {
					header = http.Header{}
				}
				header.Set("Content-Type", "application/json")
			}
			resp, b := testkit.Do(t, tt.method, f.srv.URL+tt.path, body, header)
			testkit.JSONError(t, resp, b, tt.status, "")
			checkNoInternals(t, tt.name, b)
		})
	}
}

// TestAPIUnknownPathsAnswer404 covers paths outside /v1: nothing is served
// there but the probes and metrics.
func TestAPIUnknownPathsAnswer404(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for _, path := range []string{"/", "/admin", "/debug/pprof/", "/.env", "/v2/challenges"} {
		resp, b := f.get(t, path, true)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		checkNoInternals(t, path, b)
	}
}

// bodyAPI serves one route that decodes a JSON body the way admin handlers do.
func bodyAPI(tb testing.TB, log zerolog.Logger) *httptest.Server {
	a := newServer(Options{Log: log})
	h := a.handle(func(w http.ResponseWriter, r *http.Request) error {
		var b swapBody
		if e := decodeJSONBody(r, &b, maxJSONBody); e != nil {
			return e
		}
		if e := validateVersion(b.Version); e != nil {
			return e
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"to": b.Version})
		return nil
	})
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// TestAPIBodyLimit: admin routes that read a body answer 413 past the limit,
// whether the client declares the length or streams it.
func TestAPIBodyLimit(t *testing.T) {
	srv := bodyAPI(t, zerolog.Nop())
	huge := `{"version":"` + strings.Repeat("1", 2<<20) + `"}`
	resp, b := testkit.Do(t, http.MethodPost, srv.URL, strings.NewReader(huge), nil)
	testkit.JSONError(t, resp, b, http.StatusRequestEntityTooLarge, "too_large")

	// No Content-Length: the body is cut while streaming.
	resp, b = testkit.Do(t, http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(huge)), nil)
	testkit.JSONError(t, resp, b, http.StatusRequestEntityTooLarge, "too_large")

	resp, b = testkit.Do(t, http.MethodPost, srv.URL, strings.NewReader(`{"version":"1.2.0"}`), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("valid body: %d %s", resp.StatusCode, b)
	}
	for _, bad := range []string{`{"version":"1.2.0","force":true}`, `{"version":">>1"}`, `{"version":"1"} {}`, `nope`} {
		resp, b = testkit.Do(t, http.MethodPost, srv.URL, strings.NewReader(bad), nil)
		testkit.JSONError(t, resp, b, http.StatusBadRequest, "bad_request")
		checkNoInternals(t, bad, b)
	}
}

// TestAPIInternalErrorsStayInternal: an unexpected error is logged in full
// for the operator and answered with a generic 500.
func TestAPIInternalErrorsStayInternal(t *testing.T) {
	var logs bytes.Buffer
	a := newServer(Options{Log: zerolog.New(&logs)})
	detail := "open /var/lib/berth/state/000001.vlog: permission denied (statestore/store.go:88)"
	srv := httptest.NewServer(a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("read store: %w", errors.New(detail))
	}))
	defer srv.Close()
	resp, b := testkit.Do(t, http.MethodGet, srv.URL+"/v1/x", nil, nil)
	e := testkit.JSONError(t, resp, b, http.StatusInternalServerError, "internal")
	if strings.Contains(string(b), "vlog") {
		t.Errorf("500 answer carries the cause: %s", e.Error)
	}
	checkNoInternals(t, "500 answer", b)
	if !strings.Contains(logs.String(), "000001.vlog") {
		t.Errorf("the cause is not in berth's log: %s", logs.String())
	}
}

// TestAPIPanicShowsNoStack: a panicking handler costs the client its
// connection, never a stack trace, and the server keeps serving.
func TestAPIPanicShowsNoStack(t *testing.T) {
	a := newServer(Options{Log: zerolog.Nop()})
	mux := http.NewServeMux()
	mux.Handle("/boom", a.handle(func(w http.ResponseWriter, r *http.Request) error { panic("secret internal state") }))
	mux.Handle("/ok", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boom")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte("secret internal state")) {
			t.Fatalf("panic value reached the client: %s", b)
		}
		checkNoInternals(t, "panic", b)
	}
	resp, b := testkit.Do(t, http.MethodGet, srv.URL+"/ok", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("server stopped serving after a panic: %d %s", resp.StatusCode, b)
	}
}
