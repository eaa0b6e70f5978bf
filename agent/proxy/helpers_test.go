package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// seenRequest is what the echo upstream reports about the request it got.
type seenRequest struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"request_uri"`
	Path       string      `json:"path"`
	RawQuery   string      `json:"raw_query"`
	Host       string      `json:"host"`
	Header     http.Header `json:"header"`
	Body       string      `json:"body"`
}

func echoUpstream(tb testing.TB) *httptest.Server {
	tb.Helper()
	return newTestServer(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "echo")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(seenRequest{
			Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Host: r.Host, Header: r.Header, Body: string(body),
		})
	}))
}

// routeTable is the Routes of a test: what the agent's directory would say.
type routeTable struct {
	mu sync.Mutex
	m  map[string]Route
}

func (t *routeTable) Route(name string) (Route, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.m[name]
	return r, ok
}

// put routes name to upstream; health serves for "healthy" and "degraded",
// as berth's does.
func (t *routeTable) put(name, upstream, health string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]Route{}
	}
	t.m[name] = Route{Name: name, Upstream: upstream, State: "running", Health: health,
		Serving: health == "healthy" || health == "degraded"}
}

func (t *routeTable) remove(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, name)
}

// newTestServer starts an httptest server closed at the end of the test.
func newTestServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func newProxyServer(tb testing.TB, routes Routes, log zerolog.Logger) *httptest.Server {
	tb.Helper()
	return newTestServer(tb, New(routes, Options{Log: log}))
}

func doRequest(tb testing.TB, method, target string, body io.Reader, header http.Header) (*http.Response, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp, b
}

// checkJSONError asserts an {"error","code"} body with the given status.
func checkJSONError(tb testing.TB, resp *http.Response, body []byte, status int, code string) errorBody {
	tb.Helper()
	if resp.StatusCode != status {
		tb.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("Content-Type %q, want application/json", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		tb.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	msg, _ := raw["error"].(string)
	got, _ := raw["code"].(string)
	if msg == "" || got == "" {
		tb.Fatalf("error body lacks error or code: %s", body)
	}
	if code != "" && got != code {
		tb.Fatalf("code %q, want %q", got, code)
	}
	return errorBody{Error: msg, Code: got}
}

func deadUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// lockedBuffer is an io.Writer safe to share with server goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
