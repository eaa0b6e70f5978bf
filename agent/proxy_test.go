package agent

import (
	"berth/agent/challenge"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// putChallenge registers a handle whose status routes to upstream.
func putChallenge(dir *challenge.Directory, name, upstream string, health challenge.Health) *challenge.Handle {
	h := challenge.NewHandle(name)
	h.SetStatus(&challenge.Status{Name: name, State: challenge.Running, Health: health, Upstream: upstream})
	dir.Put(h)
	return h
}

func newProxyServer(tb testing.TB, dir *challenge.Directory, log zerolog.Logger) *httptest.Server {
	tb.Helper()
	return newTestServer(tb, newProxy(dir, log))
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

func TestProxyUnknownChallenge(t *testing.T) {
	var dir directory
	up := echoUpstream(t)
	putChallenge(&dir, "known", up.URL, challenge.HealthHealthy)
	srv := newProxyServer(t, &dir, zerolog.Nop())

	for _, path := range []string{"/nope/x", "/nope", "/", "/known-not/x", "//x"} {
		t.Run(path, func(t *testing.T) {
			resp, body := doRequest(t, http.MethodGet, srv.URL+path, nil, nil)
			checkJSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
		})
	}
}

func TestProxyUnavailable(t *testing.T) {
	var hits sync.Mutex
	hit := 0
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Lock()
		hit++
		hits.Unlock()
	}))
	tests := []struct {
		name     string
		health   Health
		upstream string
	}{
		{"unknown", challenge.HealthUnknown, up.URL},
		{"unhealthy", challenge.HealthUnhealthy, up.URL},
		{"healthy without upstream", challenge.HealthHealthy, ""},
		{"degraded without upstream", challenge.HealthDegraded, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dir directory
			putChallenge(&dir, "svc", tt.upstream, tt.health)
			srv := newProxyServer(t, &dir, zerolog.Nop())
			resp, body := doRequest(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
			checkJSONError(t, resp, body, http.StatusServiceUnavailable, "")
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
	hits.Lock()
	defer hits.Unlock()
	if hit != 0 {
		t.Fatalf("upstream got %d requests while not serving", hit)
	}
}

func TestProxyForwards(t *testing.T) {
	up := echoUpstream(t)
	upURL, _ := url.Parse(up.URL)
	var dir directory
	putChallenge(&dir, "svc", up.URL, challenge.HealthHealthy)
	putChallenge(&dir, "deg", up.URL, challenge.HealthDegraded)
	srv := newProxyServer(t, &dir, zerolog.Nop())
	srvURL, _ := url.Parse(srv.URL)

	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		wantURI string
	}{
		{"nested path and query", http.MethodGet, "/svc/a/b?x=1", "", "/a/b?x=1"},
		{"repeated and escaped query", http.MethodGet, "/svc/q?x=1&x=2&y=%2F&z=a+b", "", "/q?x=1&x=2&y=%2F&z=a+b"},
		{"no trailing slash", http.MethodGet, "/svc", "", "/"},
		{"trailing slash only", http.MethodGet, "/svc/", "", "/"},
		{"no trailing slash with query", http.MethodGet, "/svc?x=1", "", "/?x=1"},
		{"space in path", http.MethodGet, "/svc/a%20b", "", "/a%20b"},
		{"escaped slash kept", http.MethodGet, "/svc/a%2Fb", "", "/a%2Fb"},
		{"escaped slash deeper", http.MethodGet, "/svc/files/x%2Fy/z", "", "/files/x%2Fy/z"},
		{"post body", http.MethodPost, "/svc/evaluate", `{"task":42}`, "/evaluate"},
		{"put body", http.MethodPut, "/svc/state", "state-bytes", "/state"},
		{"delete", http.MethodDelete, "/svc/item/7", "", "/item/7"},
		{"degraded still served", http.MethodGet, "/deg/ping", "", "/ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			hdr := http.Header{
				"X-Custom":        {"one", "two"},
				"Authorization":   {"Bearer abc"},
				"X-Forwarded-For": {"6.6.6.6"},
			}
			resp, raw := doRequest(t, tt.method, srv.URL+tt.path, body, hdr)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, want the upstream's 201; body %s", resp.StatusCode, raw)
			}
			if resp.Header.Get("X-Upstream") != "echo" {
				t.Fatal("upstream response header not passed back")
			}
			var seen seenRequest
			if err := json.Unmarshal(raw, &seen); err != nil {
				t.Fatalf("decode echo: %v: %s", err, raw)
			}
			if seen.Method != tt.method {
				t.Errorf("method %q, want %q", seen.Method, tt.method)
			}
			if seen.RequestURI != tt.wantURI {
				t.Errorf("upstream got %q, want %q", seen.RequestURI, tt.wantURI)
			}
			if seen.Body != tt.body {
				t.Errorf("body %q, want %q", seen.Body, tt.body)
			}
			if got := seen.Header.Values("X-Custom"); strings.Join(got, ",") != "one,two" {
				t.Errorf("X-Custom %v, want [one two]", got)
			}
			if got := seen.Header.Get("Authorization"); got != "Bearer abc" {
				t.Errorf("Authorization %q not preserved", got)
			}
			if seen.Host != upURL.Host {
				t.Errorf("Host %q, want the upstream %q", seen.Host, upURL.Host)
			}
			// A client's own X-Forwarded-For is not trusted.
			if got := seen.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want 127.0.0.1", got)
			}
			if got := seen.Header.Get("X-Forwarded-Host"); got != srvURL.Host {
				t.Errorf("X-Forwarded-Host %q, want %q", got, srvURL.Host)
			}
			if got := seen.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("X-Forwarded-Proto %q, want http", got)
			}
		})
	}
}

func TestProxyFollowsStatusChanges(t *testing.T) {
	blue := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "blue") }))
	green := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "green") }))
	var dir directory
	h := putChallenge(&dir, "svc", blue.URL, challenge.HealthHealthy)
	srv := newProxyServer(t, &dir, zerolog.Nop())

	if _, body := doRequest(t, http.MethodGet, srv.URL+"/svc/", nil, nil); string(body) != "blue" {
		t.Fatalf("before cut-over: %q", body)
	}
	h.SetStatus(&challenge.Status{Name: "svc", State: challenge.Running, Health: challenge.HealthHealthy, Upstream: green.URL})
	if _, body := doRequest(t, http.MethodGet, srv.URL+"/svc/", nil, nil); string(body) != "green" {
		t.Fatalf("after cut-over: %q", body)
	}
	dir.remove("svc")
	resp, body := doRequest(t, http.MethodGet, srv.URL+"/svc/", nil, nil)
	checkJSONError(t, resp, body, http.StatusNotFound, "")
}

func TestProxyStreamsResponses(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testProxyStreams(t, false) })
	// As berth runs it: the metrics recorder wraps the client writer.
	t.Run("with metrics", func(t *testing.T) { testProxyStreams(t, true) })
}

func testProxyStreams(t *testing.T, withMetrics bool) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A known length: the proxy must flush on its own, not because the body is chunked.
		w.Header().Set("Content-Length", "13")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	}))
	t.Cleanup(unblock) // before up.Close

	var dir directory
	putChallenge(&dir, "svc", up.URL, challenge.HealthHealthy)
	p := newProxy(&dir, zerolog.Nop())
	if withMetrics {
		p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_proxy_requests_total"}, []string{"challenge", "code"})
	}
	srv := newTestServer(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/svc/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("headers did not arrive while the upstream was still writing: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk before upstream finished: %q, %v", line, err)
	}
	unblock()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
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

func TestProxyUpstreamDown(t *testing.T) {
	var dir directory
	putChallenge(&dir, "svc", deadUpstream(t), challenge.HealthHealthy)
	srv := newProxyServer(t, &dir, zerolog.Nop())
	resp, body := doRequest(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	checkJSONError(t, resp, body, http.StatusBadGateway, "upstream_error")
}

func TestProxyBadUpstreamAddress(t *testing.T) {
	var dir directory
	putChallenge(&dir, "svc", "http://[::1", challenge.HealthHealthy)
	srv := newProxyServer(t, &dir, zerolog.Nop())
	resp, body := doRequest(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	checkJSONError(t, resp, body, http.StatusBadGateway, "")
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

// Every log line about a challenge carries its name (SPEC §5.10).
func TestProxyUpstreamErrorLogNamesChallenge(t *testing.T) {
	var logs lockedBuffer
	var dir directory
	putChallenge(&dir, "svc", deadUpstream(t), challenge.HealthHealthy)
	srv := newProxyServer(t, &dir, zerolog.New(&logs))
	resp, body := doRequest(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	checkJSONError(t, resp, body, http.StatusBadGateway, "upstream_error")

	var line map[string]any
	out := strings.TrimSpace(logs.String())
	if out == "" {
		t.Fatal("upstream error not logged")
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &line); err != nil {
		t.Fatalf("log line not JSON: %v: %s", err, out)
	}
	if line[fieldChallenge] != "svc" {
		t.Fatalf("log line %s: %q = %v, want \"svc\"", out, fieldChallenge, line[fieldChallenge])
	}
}
