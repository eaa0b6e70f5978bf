package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

func TestProxyUnknownChallenge(t *testing.T) {
	var routes routeTable
	up := echoUpstream(t)
	routes.put("known", up.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())

	for _, path := range []string{"/nope/x", "/nope", "/", "/known-not/x", "//x"} {
		t.Run(path, func(t *testing.T) {
			resp, body := testkit.Do(t, http.MethodGet, srv.URL+path, nil, nil)
			testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
		})
	}
}

func TestProxyUnavailable(t *testing.T) {
	var hits sync.Mutex
	hit := 0
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Lock()
		hit++
		hits.Unlock()
	}))
	tests := []struct {
		name     string
		health   string
		upstream string
	}{
		{"unknown", "unknown", up.URL},
		{"unhealthy", "unhealthy", up.URL},
		{"healthy without upstream", "healthy", ""},
		{"degraded without upstream", "degraded", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var routes routeTable
			routes.put("svc", tt.upstream, tt.health)
			srv := newProxyServer(t, &routes, zerolog.Nop())
			resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
			testkit.JSONError(t, resp, body, http.StatusServiceUnavailable, "")
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
	var routes routeTable
	routes.put("svc", up.URL, "healthy")
	routes.put("deg", up.URL, "degraded")
	srv := newProxyServer(t, &routes, zerolog.Nop())
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
			resp, raw := testkit.Do(t, tt.method, srv.URL+tt.path, body, hdr)
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
	blue := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "blue") }))
	green := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "green") }))
	var routes routeTable
	routes.put("svc", blue.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())

	if _, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/", nil, nil); string(body) != "blue" {
		t.Fatalf("before cut-over: %q", body)
	}
	routes.put("svc", green.URL, "healthy")
	if _, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/", nil, nil); string(body) != "green" {
		t.Fatalf("after cut-over: %q", body)
	}
	routes.remove("svc")
	resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "")
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
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

	var routes routeTable
	routes.put("svc", up.URL, "healthy")
	opts := Options{Log: zerolog.Nop()}
	if withMetrics {
		opts.OnRequest = func(string, int, time.Duration) {}
	}
	srv := startProxy(t, New(&routes, opts))

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

func TestProxyUpstreamDown(t *testing.T) {
	var routes routeTable
	routes.put("svc", deadUpstream(t), "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusBadGateway, "upstream_error")
}

func TestProxyBadUpstreamAddress(t *testing.T) {
	var routes routeTable
	routes.put("svc", "http://[::1", "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusBadGateway, "")
}

// Every log line about a challenge carries its name (SPEC §5.10).
func TestProxyUpstreamErrorLogNamesChallenge(t *testing.T) {
	var logs lockedBuffer
	var routes routeTable
	routes.put("svc", deadUpstream(t), "healthy")
	srv := newProxyServer(t, &routes, zerolog.New(&logs))
	resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/svc/x", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusBadGateway, "upstream_error")

	var line map[string]any
	out := strings.TrimSpace(logs.String())
	if out == "" {
		t.Fatal("upstream error not logged")
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &line); err != nil {
		t.Fatalf("log line not JSON: %v: %s", err, out)
	}
	if line[challenge.FieldChallenge] != "svc" {
		t.Fatalf("log line %s: %q = %v, want \"svc\"", out, challenge.FieldChallenge, line[challenge.FieldChallenge])
	}
}

// OnRequest sees every request once, with its code; names without a route
// are reported as "" so they cannot grow a metric's series set.
func TestProxyOnRequest(t *testing.T) {
	var routes routeTable
	routes.put("svc", echoUpstream(t).URL, "healthy")
	routes.put("down", "", "unhealthy")
	var mu sync.Mutex
	var got []string
	srv := startProxy(t, New(&routes, Options{Log: zerolog.Nop(), OnRequest: func(challenge string, code int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s=%d", challenge, code))
	}}))
	for _, path := range []string{"/svc/x", "/down/x", "/nope/x", "/"} {
		testkit.Do(t, http.MethodGet, srv.URL+path, nil, nil)
	}
	// The handler reports just after the client has the whole answer, so
	// reports may come in any order.
	want := "=404 =404 down=503 svc=201"
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		s := strings.Join(slices.Sorted(slices.Values(got)), " ")
		mu.Unlock()
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnRequest saw %q, want %q", s, want)
		}
		time.Sleep(time.Millisecond)
	}
}
