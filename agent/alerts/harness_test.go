package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/configs"
	"berth/supervisor"
)

var alertT0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// alertLog is a goroutine-safe log sink for one alerter.
type alertLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *alertLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *alertLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// alertReceiver is a local webhook. respond decides each answer from the
// 1-based request number; nil answers 200.
type alertReceiver struct {
	srv      *httptest.Server
	requests atomic.Int64
	got      chan alertPayload // payloads answered 2xx, in order
	raw      chan []byte       // their bodies as sent
	release  chan struct{}     // closed to free handlers that hang
	once     sync.Once
}

func newAlertReceiver(tb testing.TB, respond func(n int64, w http.ResponseWriter, r *http.Request) int) *alertReceiver {
	tb.Helper()
	rc := &alertReceiver{got: make(chan alertPayload, 1000), raw: make(chan []byte, 1000), release: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.requests.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			tb.Errorf("webhook got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		status := http.StatusOK
		if respond != nil {
			status = respond(n, w, r)
		}
		if status >= 200 && status < 300 {
			var p alertPayload
			if err := json.Unmarshal(body, &p); err != nil {
				tb.Errorf("webhook body %s: %v", body, err)
			}
			rc.got <- p
			rc.raw <- body
		}
		w.WriteHeader(status)
	}))
	return rc
}

// hang blocks a handler until the client gives up or the test releases it.
func (rc *alertReceiver) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-rc.release:
	}
}

func (rc *alertReceiver) close() {
	rc.once.Do(func() { close(rc.release) })
	rc.srv.Close()
}

// next waits for the next delivered alert.
func (rc *alertReceiver) next(tb testing.TB) alertPayload {
	tb.Helper()
	select {
	case p := <-rc.got:
		return p
	case <-time.After(10 * time.Second):
		tb.Fatal("no alert delivered within 10s")
		return alertPayload{}
	}
}

// nextRaw waits for the next delivered body as the webhook received it.
func (rc *alertReceiver) nextRaw(tb testing.TB) []byte {
	tb.Helper()
	select {
	case b := <-rc.raw:
		<-rc.got // keep got in step
		return b
	case <-time.After(10 * time.Second):
		tb.Fatal("no alert delivered within 10s")
		return nil
	}
}

// alertHarness runs one alerter against a feed and a local receiver.
type alertHarness struct {
	t       *testing.T
	feed    *fakeFeed
	clock   *supervisor.FakeClock
	al      *Alerter
	rc      *alertReceiver
	log     *alertLog
	cancel  context.CancelFunc
	done    chan error
	closed  bool
	serving bool
	opts    Options // set before build
	format  string  // agent.alerts.format; set before build
}

// newAlertHarness makes a feed and a receiver for one alerter; build and
// serve it next. Stop it with close, deferred before goleak's check (which
// runs ahead of t.Cleanup).
func newAlertHarness(t *testing.T, rc *alertReceiver) *alertHarness {
	t.Helper()
	return &alertHarness{t: t, feed: newFakeFeed(), clock: supervisor.NewFakeClock(alertT0), rc: rc, log: &alertLog{}, done: make(chan error, 1), cancel: func() {}}
}

// build creates the alerter; tune adjusts it before Serve.
func (h *alertHarness) build(interval time.Duration, tune func(*Alerter)) {
	cfg := configs.Agent{ID: "agent-alerts", Alerts: configs.AlertsConfig{WebhookURL: h.rc.srv.URL + "/hook/s3cr3t-token", MinInterval: interval, Format: h.format}}
	h.al = New(cfg, h.feed, h.clock, zerolog.New(h.log), h.opts)
	if tune != nil {
		tune(h.al)
	}
}

func (h *alertHarness) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.serving = cancel, true
	go func() { h.done <- h.al.Serve(ctx) }()
}

// startAlerter runs an alerter against a feed and rc.
func startAlerter(t *testing.T, rc *alertReceiver, interval time.Duration, tune func(*Alerter)) *alertHarness {
	t.Helper()
	h := newAlertHarness(t, rc)
	h.build(interval, tune)
	h.serve()
	return h
}

// stop cancels Serve and checks it returns promptly and cleanly.
func (h *alertHarness) stop() {
	h.t.Helper()
	if h.closed {
		return
	}
	h.closed = true
	h.cancel()
	if !h.serving {
		return
	}
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(2 * time.Second):
		h.t.Error("Serve did not return within 2s of cancel")
		<-h.done
	}
}

func (h *alertHarness) close() {
	h.t.Helper()
	h.stop()
	h.rc.close()
	h.feed.close()
	if h.t.Failed() {
		h.t.Logf("alerter log:\n%s", h.log.String())
	}
}

func (h *alertHarness) append(typ, name string) challenge.Event {
	h.t.Helper()
	return h.feed.append(challenge.Event{Type: typ, Challenge: name, Message: typ + " of " + name, Error: "boom"})
}

func wantAlert(tb testing.TB, p alertPayload, typ, challenge string, suppressed int) {
	tb.Helper()
	if p.Type != typ || p.Challenge != challenge || p.Suppressed != suppressed {
		tb.Fatalf("alert %s/%s suppressed %d, want %s/%s suppressed %d", p.Type, p.Challenge, p.Suppressed, typ, challenge, suppressed)
	}
}

func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
