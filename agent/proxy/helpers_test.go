package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
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
	return testkit.Server(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

func newProxyServer(tb testing.TB, routes Routes, log zerolog.Logger) *liveProxy {
	tb.Helper()
	return startProxy(tb, New(routes, Options{Log: log}))
}

// liveProxy is a Proxy served as berth serves it: the fast loop on a real
// listener, the http.Server behind it.
type liveProxy struct {
	URL string
	srv *Server
}

func startProxy(tb testing.TB, p *Proxy) *liveProxy {
	tb.Helper()
	return startProxyWith(tb, p, &http.Server{ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: 64 << 10})
}

func startProxyWith(tb testing.TB, p *Proxy, hs *http.Server) *liveProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := p.NewServer(hs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("proxy server: %v", err)
		}
	})
	return &liveProxy{URL: "http://" + ln.Addr().String(), srv: srv}
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
