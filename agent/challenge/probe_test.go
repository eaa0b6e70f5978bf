package challenge

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth/internal/testkit"
)

func TestProbeStatusAndBody(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		pass    bool
		errHas  string
		ctype   string
		noWrite bool
	}{
		{name: "200 empty", status: 200, pass: true},
		{name: "204", status: 204, pass: true, noWrite: true},
		{name: "399", status: 399, pass: true},
		{name: "400", status: 400, body: "bad", pass: false, errHas: "400"},
		{name: "404", status: 404, pass: false, errHas: "404"},
		{name: "500 with body", status: 500, body: "boom", pass: false, errHas: "500"},
		{name: "503 with ok json", status: 503, body: `{"status":"ok"}`, pass: false, errHas: "503"},
		{name: "json ok", status: 200, body: `{"status":"ok"}`, pass: true, ctype: "application/json"},
		{name: "json healthy", status: 200, body: `{"status":"healthy","uptime":3}`, pass: true, ctype: "application/json"},
		{name: "json degraded", status: 200, body: `{"status":"degraded"}`, pass: false, errHas: "degraded", ctype: "application/json"},
		{name: "json empty status", status: 200, body: `{"status":""}`, pass: false},
		{name: "json down with whitespace", status: 200, body: "\n  {\"status\": \"down\"}\n", pass: false, errHas: "down"},
		{name: "json without status", status: 200, body: `{"uptime":5,"version":"1.2.3"}`, pass: true, ctype: "application/json"},
		{name: "json array", status: 200, body: `[{"status":"down"}]`, pass: true},
		{name: "plain text", status: 200, body: "all good\n", pass: true, ctype: "text/plain"},
		{name: "html", status: 200, body: "<html><body>status: down</body></html>", pass: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/health" {
					t.Errorf("probe sent %s %s, want GET /health", r.Method, r.URL.Path)
				}
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(tt.status)
				if !tt.noWrite {
					_, _ = w.Write([]byte(tt.body))
				}
			}))
			res := NewProber().Probe(context.Background(), srv.URL+"/health", 5*time.Second)
			if res.Pass != tt.pass {
				t.Fatalf("Pass = %v (err %q), want %v", res.Pass, res.Err, tt.pass)
			}
			if tt.pass && res.Err != "" {
				t.Fatalf("passing probe carries error %q", res.Err)
			}
			if !tt.pass && res.Err == "" {
				t.Fatal("failing probe has no error text")
			}
			if !strings.Contains(res.Err, tt.errHas) {
				t.Fatalf("error %q does not mention %q", res.Err, tt.errHas)
			}
			if res.At.IsZero() || res.Duration <= 0 {
				t.Fatalf("result not timed: At %v Duration %v", res.At, res.Duration)
			}
		})
	}
}

func TestProbeDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		http.Error(w, "should not be reached", http.StatusInternalServerError)
	})
	srv := testkit.Server(t, mux)
	res := NewProber().Probe(context.Background(), srv.URL+"/health", 5*time.Second)
	if !res.Pass {
		t.Fatalf("302 should pass, got %q", res.Err)
	}
	if followed.Load() {
		t.Fatal("probe followed the redirect")
	}
}

func TestProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	const timeout = 100 * time.Millisecond
	start := time.Now()
	res := NewProber().Probe(context.Background(), srv.URL+"/health", timeout)
	elapsed := time.Since(start)
	if res.Pass {
		t.Fatal("a probe with no answer passed")
	}
	if !strings.Contains(res.Err, "no answer within") || !strings.Contains(res.Err, timeout.String()) {
		t.Fatalf("error %q, want \"no answer within %s\"", res.Err, timeout)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("probe took %s with a %s timeout", elapsed, timeout)
	}
	if res.Duration < timeout {
		t.Fatalf("Duration %s shorter than the timeout %s", res.Duration, timeout)
	}
}

func TestProbeParentContextCancelled(t *testing.T) {
	srv := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := NewProber().Probe(ctx, srv.URL+"/health", 5*time.Second)
	if res.Pass || res.Err == "" {
		t.Fatalf("probe with a cancelled context: %+v", res)
	}
}

func TestProbeHugeBodyIsCapped(t *testing.T) {
	const total = 50 << 20
	written := make(chan int64, 1)
	srv := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "52428800")
		chunk := []byte(strings.Repeat("a", 32<<10))
		var n int64
		flusher := w.(http.Flusher)
		for n < total {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
			flusher.Flush()
		}
		written <- n
	}))

	res := NewProber().Probe(context.Background(), srv.URL+"/health", 30*time.Second)
	if !res.Pass {
		t.Fatalf("non-JSON 200 body should pass, got %q", res.Err)
	}
	select {
	case n := <-written:
		t.Logf("server wrote %d bytes", n)
		// Socket buffers hold a few MiB; reading it all would reach 50 MiB.
		if n >= 25<<20 {
			t.Fatalf("server wrote %d bytes before the probe hung up; body read is not capped", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server kept writing: the probe did not close the connection after the capped read")
	}
}

func TestProbeConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	res := NewProber().Probe(context.Background(), "http://"+addr+"/health", 5*time.Second)
	if res.Pass {
		t.Fatal("probe of a closed port passed")
	}
	if res.Err == "" {
		t.Fatal("no error text for a refused connection")
	}
}

func TestProbeBadURL(t *testing.T) {
	res := NewProber().Probe(context.Background(), "http://[::1", time.Second)
	if res.Pass || res.Err == "" {
		t.Fatalf("malformed URL: %+v", res)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestProbeStartingPassesOnceThePortOpens(t *testing.T) {
	addr := closedPort(t)
	opened := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			close(opened)
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
		t.Cleanup(func() { _ = srv.Close() })
		close(opened)
		_ = srv.Serve(ln)
	}()
	window := 10 * time.Second
	res := NewProber().ProbeStarting(context.Background(), "http://"+addr+"/health", time.Second, window)
	<-opened
	if !res.Pass {
		t.Fatalf("probe of a port that opened during the window failed: %+v", res)
	}
	if res.Spent >= window || res.Spent < res.Duration {
		t.Fatalf("spent %s of a %s window, answer took %s", res.Spent, window, res.Duration)
	}
}

func TestProbeStartingStopsAtAnAnswer(t *testing.T) {
	var hits atomic.Int32
	srv := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	res := NewProber().ProbeStarting(context.Background(), srv.URL+"/health", time.Second, 5*time.Second)
	if res.Pass || !strings.Contains(res.Err, "503") {
		t.Fatalf("a 503 passed or lost its status: %+v", res)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("an answering server was probed %d times in one start probe, want 1", n)
	}
}

func TestProbeStartingGivesUpAfterTheWindow(t *testing.T) {
	window := 200 * time.Millisecond
	res := NewProber().ProbeStarting(context.Background(), "http://"+closedPort(t)+"/health", time.Second, window)
	if res.Pass || res.Err == "" {
		t.Fatalf("a closed port passed: %+v", res)
	}
	if res.Spent < window-notListeningRetry {
		t.Fatalf("gave up after %s, before the %s window", res.Spent, window)
	}
}
