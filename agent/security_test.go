package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/internal/testkit"
	"berth/statestore"
)

// TestNewRefusesOpenAPIWithoutToken: an admin API beyond loopback without a
// token is refused before anything is opened or bound, even when the
// environment moved the listener after the config was validated.
func TestNewRefusesOpenAPIWithoutToken(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:7070"} {
		cfg := configs.Default()
		cfg.Agent.DataDir = filepath.Join(t.TempDir(), "data")
		cfg.Agent.API.Listen = listen
		a, panicked, err := newRecovering(cfg)
		if panicked != nil {
			t.Fatalf("agent.New panicked on an early error instead of returning it: %v", panicked)
		}
		if err == nil || a != nil || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("api.listen %s without a token: %v", listen, err)
		}
		if _, err := os.Stat(cfg.Agent.DataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("api.listen %s: data_dir was created before the refusal", listen)
		}
	}
}

func newRecovering(cfg *configs.Config) (a *Agent, panicked any, err error) {
	defer func() { panicked = recover() }()
	a, err = New(cfg, Options{Logger: zerolog.Nop(), Getenv: func(string) string { return "" }})
	return a, nil, err
}

// startHTTPService runs berth's own server wrapper on a loopback port.
func startHTTPService(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	svc := &httpService{name: "test api", listener: ln, handler: h, log: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestHTTPServiceRefusesHugeHeaders: headers beyond 64 KiB are refused
// before any handler runs.
func TestHTTPServiceRefusesHugeHeaders(t *testing.T) {
	var called sync.WaitGroup
	addr := startHTTPService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called.Add(1) }))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/health", nil)
	req.Header.Set("X-Filler", strings.Repeat("a", 128<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("128 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// TestHTTPServiceSlowloris: a client that trickles its headers one byte a
// second is cut off after ReadHeaderTimeout (10 s), while other clients are
// served meanwhile.
func TestHTTPServiceSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 10 s")
	}
	addr := startHTTPService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn)) // returns when the server hangs up
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	served := false
	for {
		select {
		case took := <-closed:
			if took < 8*time.Second {
				t.Errorf("connection closed after %s, before the header timeout", took)
			}
			if !served {
				t.Error("no other request was served while the slow client trickled")
			}
			return
		case <-tick.C:
			if _, err := conn.Write([]byte("a")); err != nil {
				continue // the server hung up; the reader reports when
			}
			if !served {
				resp, b := testkit.Do(t, http.MethodGet, "http://"+addr+"/healthz", nil, nil)
				served = resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte("ok"))
			}
		case <-deadline:
			t.Fatalf("a client sending one header byte a second still holds its connection after %s", time.Since(start).Round(time.Second))
		}
	}
}

func TestReadinessHidesStoreErrors(t *testing.T) {
	store, err := statestore.Open(t.TempDir(), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	a := &Agent{store: store, watcher: &watcher{}, log: zerolog.Nop()}
	ok, components := a.readiness()
	if ok {
		t.Fatal("ready with a closed store")
	}
	if got := components["statestore"]; got != "error" {
		t.Fatalf("statestore component %q, want \"error\" (details go to the log only)", got)
	}
}
