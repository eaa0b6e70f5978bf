package docker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine is an httptest Docker Engine API speaking version 1.41.
type fakeEngine struct {
	srv  *httptest.Server
	host string // 127.0.0.1:port
	mux  *http.ServeMux

	mu   sync.Mutex
	reqs []fakeRequest
}

type fakeRequest struct {
	Method, Path string // Path without the /vX.Y prefix
	Query        url.Values
	Auth         string // X-Registry-Auth
	HasAuth      bool
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// newFakeEngine starts a fake engine and isolates the DOCKER_* environment
// (an empty Docker config, no TLS, no pinned API version).
func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	for _, k := range []string{"DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_HOST"} {
		t.Setenv(k, "")
	}
	writeDockerConfig(t, `{"auths":{}}`)
	f := &fakeEngine{mux: http.NewServeMux()}
	f.mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("API-Version", "1.41")
		w.Header().Set("OSType", "linux")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "OK")
	})
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.host = strings.TrimPrefix(f.srv.URL, "http://")
	return f
}

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	if loc := apiVersionPrefix.FindStringIndex(r.URL.Path); loc != nil {
		r.URL.Path = r.URL.Path[loc[1]-1:]
		r.URL.RawPath = ""
	}
	auth, hasAuth := r.Header[http.CanonicalHeaderKey("X-Registry-Auth")]
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
		Auth: strings.Join(auth, ""), HasAuth: hasAuth})
	f.mu.Unlock()
	f.mux.ServeHTTP(w, r)
}

// on registers a handler for a ServeMux pattern over unversioned paths.
func (f *fakeEngine) on(pattern string, h http.HandlerFunc) { f.mux.HandleFunc(pattern, h) }

// requests returns the recorded requests whose path is p.
func (f *fakeEngine) requests(p string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.reqs {
		if r.Path == p {
			out = append(out, r)
		}
	}
	return out
}

// client builds a Client on the fake engine; opts.Host and opts.OnRequest are set here.
func (f *fakeEngine) client(t *testing.T, opts Options) (*Client, *opCounter) {
	t.Helper()
	ops := &opCounter{n: map[string]int{}}
	opts.Host = "tcp://" + f.host
	opts.OnRequest = ops.add
	if opts.PullStallTimeout == 0 {
		opts.PullStallTimeout = 300 * time.Millisecond
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, ops
}

type opCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *opCounter) add(op string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[op]++
}

func (o *opCounter) get(op string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[op]
}

// writeDockerConfig points DOCKER_CONFIG at a fresh directory holding config.
func writeDockerConfig(t *testing.T, config string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}

// writeLines sends JSON lines and flushes them to the client.
func writeLines(w http.ResponseWriter, lines ...string) {
	for _, l := range lines {
		_, _ = io.WriteString(w, l+"\n")
	}
	w.(http.Flusher).Flush()
}

// engineError answers like the engine does on failure.
func engineError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// writeFrame writes one frame of the engine's multiplexed log stream.
func writeFrame(w io.Writer, stream byte, payload string) {
	var hdr [8]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	_, _ = w.Write(hdr[:])
	_, _ = io.WriteString(w, payload)
}

// testCtx is a context bounded generously for one test step.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the bound passes.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		case <-tick.C:
		}
	}
}

// recv takes one value from ch within a generous bound.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
