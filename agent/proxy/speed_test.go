package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// connCounts are the connections an upstream saw opened and closed.
type connCounts struct{ opened, closed atomic.Int64 }

// connCountingUpstream answers every request with a small body and counts the
// connections the proxy opens to it.
func connCountingUpstream(tb testing.TB) (*httptest.Server, *connCounts) {
	tb.Helper()
	var n connCounts
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "1.0.0\n")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n.opened.Add(1)
		case http.StateClosed:
			n.closed.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, &n
}

// keepAliveClient holds one idle connection per concurrent caller, as a
// load generator does.
func keepAliveClient(tb testing.TB, conns int) *http.Client {
	tb.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func getOK(tb testing.TB, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		tb.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Errorf("GET %s: %d", url, resp.StatusCode)
	}
}

// Concurrent clients on keep-alive connections must not make the proxy dial
// the challenge per request: with Go's default of 2 idle connections per
// host, 16 concurrent clients made it dial for most requests, paying a TCP
// handshake (and a TIME_WAIT socket) each time.
func TestProxyReusesUpstreamConnections(t *testing.T) {
	const clients, perClient = 16, 100
	up, conns := connCountingUpstream(t)
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	p := New(&routes, Options{Log: zerolog.Nop()})
	srv := startProxy(t, p)
	c := keepAliveClient(t, clients)

	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				getOK(t, c, srv.URL+"/c/version")
			}
		}()
	}
	wg.Wait()
	// At most one connection per concurrent request; a few more would
	// mean a lost race in the pool, hundreds that idle ones are dropped.
	if n := conns.opened.Load(); n > clients {
		t.Fatalf("%d upstream connections for %d requests from %d clients, want at most %d", n, clients*perClient, clients, clients)
	}

	// Kept connections still go with CloseIdle. A connection can come back
	// to the pool just after the call (its response reached the client
	// before the proxy read the body's end), so call it until all are shut.
	deadline := time.Now().Add(5 * time.Second)
	for conns.closed.Load() < conns.opened.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d upstream connections closed after CloseIdle", conns.closed.Load(), conns.opened.Load())
		}
		p.CloseIdle()
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkProxyGet is the stable endpoint's hot path: small GETs on
// keep-alive connections from parallel clients. dials/op shows connection
// reuse (≈0 when the pool works). cpu-ns/op is the process's CPU time (client,
// proxy and upstream together) per request, steadier than ns/op on a
// machine shared with other work.
func BenchmarkProxyGet(b *testing.B) {
	up, conns := connCountingUpstream(b)
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	p := New(&routes, Options{Log: zerolog.Nop(), OnRequest: func(string, int, time.Duration) {}})
	srv := startProxy(b, p)
	c := keepAliveClient(b, 64)
	url := srv.URL + "/c/version"
	b.ReportAllocs()
	b.SetParallelism(16 / runtime.GOMAXPROCS(0)) // about wrk's 16 connections
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			getOK(b, c, url)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(conns.opened.Load())/float64(b.N), "dials/op")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The proxy passes Accept-Encoding and compressed bodies as they are: it
// neither asks the challenge for gzip on a client's behalf nor unpacks it.
func TestProxyLeavesContentEncodingAlone(t *testing.T) {
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = io.WriteString(w, "not really gzip")
			return
		}
		_, _ = io.WriteString(w, "plain")
	}))
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	// A transport that neither adds Accept-Encoding nor unpacks, like curl.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, tt := range []struct{ accept, wantSeen, wantEncoding, wantBody string }{
		{"", "", "", "plain"},
		{"gzip", "gzip", "gzip", "not really gzip"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/c/", nil)
		if tt.accept != "" {
			req.Header.Set("Accept-Encoding", tt.accept)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Seen-Accept-Encoding"); got != tt.wantSeen {
			t.Errorf("client Accept-Encoding %q: challenge saw %q", tt.accept, got)
		}
		if got := resp.Header.Get("Content-Encoding"); got != tt.wantEncoding || string(body) != tt.wantBody {
			t.Errorf("client Accept-Encoding %q: got encoding %q body %q, want %q %q", tt.accept, got, body, tt.wantEncoding, tt.wantBody)
		}
	}
}
