package api

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

// guardAPI serves an admin API with a metrics handler and an engine, as Run wires it.
func guardAPI(tb testing.TB, token string, runtime challenge.Runtime) (*httptest.Server, *challenge.Directory) {
	tb.Helper()
	events := newMemLog()
	tb.Cleanup(events.Close)
	dir := &challenge.Directory{}
	h := New(Options{Directory: dir, Events: events, Token: token, Runtime: runtime, Log: zerolog.Nop(),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "berth_up 1\n") }),
		Ready:   func() (bool, map[string]string) { return true, map[string]string{"docker": "ok"} },
		Health:  func() HealthReport { return HealthReport{Status: "healthy"} },
	})
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv, dir
}

// rawRequest sends req over a plain connection so Host and Origin are exactly
// what a browser would send, not what Go's client derives from the URL.
func rawRequest(tb testing.TB, srv *httptest.Server, method, path, host string, header http.Header, body string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestAPIRefusesForeignHost(t *testing.T) {
	srv, _ := guardAPI(t, "", nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1", "localhost:1", "127.0.0.1.nip.io:" + port} {
		for _, path := range []string{"/v1/challenges", "/readyz", "/metrics"} {
			resp, body := rawRequest(t, srv, http.MethodGet, path, host, nil, "")
			testkit.JSONError(t, resp, body, http.StatusForbidden, "forbidden_host")
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port, "[::1]:" + port} {
		resp, body := rawRequest(t, srv, http.MethodGet, "/v1/challenges", host, nil, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s: status %d: %s", host, resp.StatusCode, body)
		}
	}
}

func TestAPIRefusesCrossSiteOrigin(t *testing.T) {
	srv, _ := guardAPI(t, "", nil)
	host := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(host)
	for _, origin := range []string{"http://evil.example", "null", "http://127.0.0.1:1", "https://evil.example:" + port, "file://"} {
		resp, body := rawRequest(t, srv, http.MethodPost, "/v1/reload", host, http.Header{"Origin": {origin}}, "")
		testkit.JSONError(t, resp, body, http.StatusForbidden, "forbidden_origin")
		resp, body = rawRequest(t, srv, http.MethodGet, "/v1/challenges", host, http.Header{"Origin": {origin}}, "")
		testkit.JSONError(t, resp, body, http.StatusForbidden, "forbidden_origin")
	}
	for _, origin := range []string{"http://" + host, "http://localhost:" + port} {
		resp, body := rawRequest(t, srv, http.MethodGet, "/v1/challenges", host, http.Header{"Origin": {origin}}, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Origin %s: status %d: %s", origin, resp.StatusCode, body)
		}
	}
}

func TestAPIBodiesMustBeJSON(t *testing.T) {
	srv, dir := guardAPI(t, "", nil)
	putChallenge(dir, "a", "", challenge.HealthUnknown)
	host := srv.Listener.Addr().String()
	// A page can send text/plain, form and multipart bodies without a CORS preflight.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		var hdr http.Header
		if ct != "" {
			hdr = http.Header{"Content-Type": {ct}}
		}
		resp, body := rawRequest(t, srv, http.MethodPost, "/v1/challenges/a/swap", host, hdr, `{"version":"1.2.3"}`)
		testkit.JSONError(t, resp, body, http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	// application/json with parameters gets past the check (to the busy
	// challenge that nobody serves in this fixture: anything but 415).
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		resp, body := rawRequest(t, srv, http.MethodPost, "/v1/challenges/nope/swap", host, http.Header{"Content-Type": {ct}}, `{"version":"1.2.3"}`)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("Content-Type %q: status %d, want 404 (past the media type check): %s", ct, resp.StatusCode, body)
		}
	}
}

func TestAPIMetricsNeedTheToken(t *testing.T) {
	srv, _ := guardAPI(t, "s3cret", nil)
	resp, body := testkit.Do(t, http.MethodGet, srv.URL+"/metrics", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	resp, body = testkit.Do(t, http.MethodGet, srv.URL+"/metrics", nil, http.Header{"Authorization": {"Bearer s3cret"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "berth_up") {
		t.Fatalf("/metrics with the token: %d %s", resp.StatusCode, body)
	}
	// Without a configured token (loopback only) metrics stay open.
	open, _ := guardAPI(t, "", nil)
	if resp, body := testkit.Do(t, http.MethodGet, open.URL+"/metrics", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics without a configured token: %d %s", resp.StatusCode, body)
	}
}

// With a token the API may be published through a port mapping: any port and
// IP address pass, host names other than localhost still do not.
func TestAPIHostWithTokenAllowsMappedPorts(t *testing.T) {
	srv, _ := guardAPI(t, "s3cret", nil)
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	for _, host := range []string{"127.0.0.1:17070", "localhost:1", "192.0.2.7:7070", "[2001:db8::1]:7070"} {
		if resp, body := rawRequest(t, srv, http.MethodGet, "/v1/challenges", host, auth, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s: status %d: %s", host, resp.StatusCode, body)
		}
	}
	for _, host := range []string{"evil.example:7070", "berth.internal"} {
		resp, body := rawRequest(t, srv, http.MethodGet, "/v1/challenges", host, auth, "")
		testkit.JSONError(t, resp, body, http.StatusForbidden, "forbidden_host")
	}
}
