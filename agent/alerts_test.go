package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"berth/configs"
	"berth/statestore"
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
	release  chan struct{}     // closed to free handlers that hang
	once     sync.Once
}

func newAlertReceiver(tb testing.TB, respond func(n int64, w http.ResponseWriter, r *http.Request) int) *alertReceiver {
	tb.Helper()
	rc := &alertReceiver{got: make(chan alertPayload, 1000), release: make(chan struct{})}
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

// alertHarness runs one alerter against a real store and a local receiver.
type alertHarness struct {
	t       *testing.T
	store   *statestore.Store
	clock   *supervisor.FakeClock
	al      *alerter
	rc      *alertReceiver
	log     *alertLog
	cancel  context.CancelFunc
	done    chan error
	closed  bool
	serving bool
}

// newAlertHarness opens a store and a receiver for one alerter; build and
// serve it next. Stop it with close, deferred before goleak's check (which
// runs ahead of t.Cleanup).
func newAlertHarness(t *testing.T, rc *alertReceiver) *alertHarness {
	t.Helper()
	store, err := statestore.Open(t.TempDir(), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &alertHarness{t: t, store: store, clock: supervisor.NewFakeClock(alertT0), rc: rc, log: &alertLog{}, done: make(chan error, 1), cancel: func() {}}
}

// build creates the alerter; tune adjusts it before Serve.
func (h *alertHarness) build(interval time.Duration, tune func(*alerter)) {
	cfg := configs.Agent{ID: "agent-alerts", Alerts: configs.AlertsConfig{WebhookURL: h.rc.srv.URL + "/hook/s3cr3t-token", MinInterval: interval}}
	h.al = newAlerter(cfg, h.store, h.clock, zerolog.New(h.log))
	if tune != nil {
		tune(h.al)
	}
}

func (h *alertHarness) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.serving = cancel, true
	go func() { h.done <- h.al.Serve(ctx) }()
}

// startAlerter runs an alerter against a real store and rc.
func startAlerter(t *testing.T, rc *alertReceiver, interval time.Duration, tune func(*alerter)) *alertHarness {
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
	if err := h.store.Close(); err != nil {
		h.t.Errorf("close store: %v", err)
	}
	if h.t.Failed() {
		h.t.Logf("alerter log:\n%s", h.log.String())
	}
}

func (h *alertHarness) append(typ, challenge string) statestore.Event {
	h.t.Helper()
	ev, err := h.store.AppendEvent(statestore.Event{Type: typ, Challenge: challenge, Message: typ + " of " + challenge, Error: "boom"})
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
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

func TestAlertsOnlyAlertTypesAreSent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startAlerter(t, newAlertReceiver(t, nil), time.Minute, nil)
	defer h.close()

	for _, typ := range []string{"registered", "pulling", "started", "health_changed", "exited", "restarting"} {
		h.append(typ, "web")
	}
	gave := h.append("gave_up", "web")
	h.append("swap_started", "web")
	h.append("swap_failed", "web")
	h.append("swap_rolled_back", "web")
	h.append("swap_completed", "web")
	h.append("docker_disconnected", "")
	h.append("docker_reconnected", "")
	sentinel := h.append("gave_up", "sentinel")

	p := h.rc.next(t)
	wantAlert(t, p, "gave_up", "web", 0)
	if p.Agent != "agent-alerts" || p.Message != "gave_up of web" || p.Error != "boom" || p.Seq != gave.Seq ||
		!p.Time.Equal(gave.Time) || p.Event.Seq != gave.Seq || p.Event.Type != "gave_up" {
		t.Errorf("payload %+v does not carry the event %+v", p, gave)
	}
	wantAlert(t, h.rc.next(t), "swap_failed", "web", 0)
	wantAlert(t, h.rc.next(t), "swap_rolled_back", "web", 0)
	wantAlert(t, h.rc.next(t), "docker_disconnected", "", 0)
	// Delivery is in order, so the sentinel coming next proves nothing else was sent.
	if p := h.rc.next(t); p.Seq != sentinel.Seq {
		t.Fatalf("got %s/%s seq %d, want the sentinel", p.Type, p.Challenge, p.Seq)
	}
	if n := h.rc.requests.Load(); n != 5 {
		t.Errorf("webhook requests = %d, want 5", n)
	}
	h.stop()
	if strings.Contains(h.log.String(), "s3cr3t-token") {
		t.Errorf("the webhook URL path (a token) reached the log:\n%s", h.log.String())
	}
}

func TestAlertsDedupePerChallengeAndType(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startAlerter(t, newAlertReceiver(t, nil), 10*time.Minute, nil)
	defer h.close()

	h.append("gave_up", "a")
	h.append("gave_up", "a") // suppressed
	h.append("gave_up", "a") // suppressed
	h.append("gave_up", "b") // another challenge: sent
	h.append("swap_failed", "a")
	wantAlert(t, h.rc.next(t), "gave_up", "a", 0)
	wantAlert(t, h.rc.next(t), "gave_up", "b", 0)
	// Intake is in seq order: this delivery means the duplicates were judged.
	wantAlert(t, h.rc.next(t), "swap_failed", "a", 0)

	h.clock.Advance(9 * time.Minute)
	h.append("gave_up", "a") // still within min_interval: suppressed
	h.append("gave_up", "c")
	wantAlert(t, h.rc.next(t), "gave_up", "c", 0)

	h.clock.Advance(time.Minute)
	h.append("gave_up", "a")
	wantAlert(t, h.rc.next(t), "gave_up", "a", 3)
	h.append("gave_up", "a") // the interval restarts from the last one sent
	h.append("swap_failed", "a")
	wantAlert(t, h.rc.next(t), "swap_failed", "a", 0)
	if n := h.rc.requests.Load(); n != 6 {
		t.Errorf("webhook requests = %d, want 6", n)
	}
}

func TestAlertsRetryServerErrors(t *testing.T) {
	cases := []struct {
		name      string
		statuses  []int // answers in order; the last repeats
		requests  int64
		delivered bool
	}{
		{"500 then 200 is retried and delivered once", []int{500, 200}, 2, true},
		{"503 every time gives up after 3 attempts", []int{503}, 3, false},
		{"400 is not retried", []int{400}, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			rc := newAlertReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) int {
				return tc.statuses[min(int(n), len(tc.statuses))-1]
			})
			h := startAlerter(t, rc, time.Minute, nil)
			defer h.close()
			h.append("gave_up", "web")

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			backoff := alertRetryBackoff
			for i := int64(1); i < tc.requests; i++ {
				// The retry waits on the injected clock: no real sleep.
				if err := h.clock.WaitTimers(ctx, 1); err != nil {
					t.Fatalf("retry %d never armed its backoff", i)
				}
				h.clock.Advance(backoff)
				backoff *= 2
			}
			waitUntil(t, "the alert to settle", func() bool { return h.al.delivered.Load()+h.al.failed.Load() == 1 })
			if tc.delivered {
				wantAlert(t, h.rc.next(t), "gave_up", "web", 0)
			}
			h.stop()
			if n := rc.requests.Load(); n != tc.requests {
				t.Errorf("webhook requests = %d, want %d", n, tc.requests)
			}
			if got := h.al.delivered.Load() == 1; got != tc.delivered {
				t.Errorf("delivered = %v, want %v", got, tc.delivered)
			}
			failures := strings.Count(h.log.String(), "alert not delivered")
			if want := map[bool]int{true: 0, false: 1}[tc.delivered]; failures != want {
				t.Errorf("logged %d delivery failures, want %d (one line per alert, not per attempt):\n%s", failures, want, h.log.String())
			}
		})
	}
}

func TestAlertsHungWebhookNeverBlocksSupervision(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var hung atomic.Int64
	var rc *alertReceiver
	rc = newAlertReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) int {
		rc.hang(r)
		if r.Context().Err() != nil {
			hung.Add(1) // the client gave up on us
		}
		return http.StatusOK
	})
	h := startAlerter(t, rc, time.Minute, func(a *alerter) {
		a.client.Timeout = 100 * time.Millisecond
		a.attempts = 1
		a.queueSize = 4
	})
	defer h.close()

	// Supervision writes events at full speed while the webhook hangs.
	const n = 200
	start := time.Now()
	for i := range n {
		h.append("gave_up", fmt.Sprintf("c%d", i))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("%d appends took %s with a hung webhook", n, took)
	}
	waitUntil(t, "a full queue to drop alerts", func() bool { return h.al.dropped.Load() > 0 })
	waitUntil(t, "a delivery to time out", func() bool { return h.al.failed.Load() > 0 && hung.Load() > 0 })
	if !strings.Contains(h.log.String(), "Client.Timeout") {
		t.Errorf("delivery failure should name the timeout:\n%s", h.log.String())
	}
	// A POST is in flight (the handler hangs again): cancel must not wait for it.
	waitUntil(t, "another POST in flight", func() bool { return uint64(rc.requests.Load()) > h.al.failed.Load() })
	stopped := time.Now()
	h.stop()
	if took := time.Since(stopped); took > time.Second {
		t.Errorf("Serve took %s to return with a POST in flight", took)
	}
	if h.al.delivered.Load() != 0 {
		t.Errorf("delivered %d alerts to a webhook that never answers", h.al.delivered.Load())
	}
	if strings.Contains(h.log.String(), "s3cr3t-token") {
		t.Errorf("the webhook URL path (a token) reached the log:\n%s", h.log.String())
	}
}

func TestAlertsQueueDropsAreReportedAsSuppressed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gate := make(chan struct{})
	rc := newAlertReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) int {
		if n == 1 {
			<-gate // hold the first delivery until the queue has overflowed
		}
		return http.StatusOK
	})
	h := startAlerter(t, rc, time.Hour, func(a *alerter) { a.queueSize = 1 })
	defer h.close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()

	h.append("gave_up", "first") // in flight, held by the receiver
	waitUntil(t, "the first POST", func() bool { return rc.requests.Load() == 1 })
	h.append("gave_up", "queued") // fills the queue of one
	h.append("gave_up", "lost")   // dropped
	waitUntil(t, "the drop", func() bool { return h.al.dropped.Load() == 1 })
	close(gate)
	wantAlert(t, h.rc.next(t), "gave_up", "first", 0)
	wantAlert(t, h.rc.next(t), "gave_up", "queued", 0)
	// The dropped alert did not start an interval: the next one goes out and reports it.
	h.append("gave_up", "lost")
	wantAlert(t, h.rc.next(t), "gave_up", "lost", 1)
}

func TestAlertsCatchUpAfterSubscriptionGap(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newAlertHarness(t, newAlertReceiver(t, nil))
	defer h.close()
	h.build(time.Minute, nil)

	// Drive intake with a subscription that skips events, as a slow one does.
	c := make(chan statestore.Event)
	queue := make(chan alertPayload, 10)
	errc := make(chan error, 1)
	go func() { errc <- h.al.intake(context.Background(), &statestore.Subscription{C: c}, queue) }()
	first := h.append("gave_up", "one")
	c <- first // received once intake follows the subscription
	h.append("started", "two")
	h.append("swap_failed", "two")
	last := h.append("docker_disconnected", "")
	c <- last // seq jumps: intake re-reads the log
	close(c)
	if err := <-errc; err == nil || !errors.Is(err, supervisor.ErrDoNotRestart) {
		t.Errorf("intake on a closed subscription returned %v, want ErrDoNotRestart", err)
	}
	var got []string
	for len(queue) > 0 {
		p := <-queue
		got = append(got, p.Type+"/"+p.Challenge)
	}
	if want := "gave_up/one swap_failed/two docker_disconnected/"; strings.Join(got, " ") != want {
		t.Errorf("alerts across a gap = %q, want %q (each once, in order)", strings.Join(got, " "), want)
	}
}

func TestAlertsStartupBacklogButNotHistory(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newAlertHarness(t, newAlertReceiver(t, nil))
	defer h.close()
	h.append("gave_up", "history") // before berth started: not news
	h.build(time.Minute, nil)
	h.append("gave_up", "early") // after Run began, before the alerter subscribed
	h.serve()
	wantAlert(t, h.rc.next(t), "gave_up", "early", 0)
	h.append("gave_up", "live")
	wantAlert(t, h.rc.next(t), "gave_up", "live", 0)
	if n := h.rc.requests.Load(); n != 2 {
		t.Errorf("webhook requests = %d, want 2", n)
	}
}

func TestAlertsDisabledWithoutURL(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, err := statestore.Open(t.TempDir(), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	al := newAlerter(configs.Agent{ID: "x"}, store, nil, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// nil while ctx is live: the supervisor drops the service.
	if err := al.Serve(ctx); err != nil {
		t.Errorf("Serve without a webhook URL = %v, want nil", err)
	}
}

func TestAlertsServeReturnsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startAlerter(t, newAlertReceiver(t, nil), time.Minute, nil)
	defer h.close()
	h.append("gave_up", "web")
	wantAlert(t, h.rc.next(t), "gave_up", "web", 0)
	h.stop() // fails the test unless Serve returns nil within 2s
}

func TestAlertLimiter(t *testing.T) {
	l := newAlertLimiter(10 * time.Minute)
	a, b := alertKey{"a", "gave_up"}, alertKey{"b", "gave_up"}
	steps := []struct {
		key        alertKey
		at         time.Duration
		due        bool
		suppressed int // reported by take when due
	}{
		{a, 0, true, 0},
		{a, time.Minute, false, 0},
		{b, time.Minute, true, 0},
		{a, 9*time.Minute + 59*time.Second, false, 0},
		{a, 10 * time.Minute, true, 2},
		{a, 15 * time.Minute, false, 0},
		{a, 20 * time.Minute, true, 1},
	}
	for i, s := range steps {
		now := alertT0.Add(s.at)
		if got := l.due(s.key, now); got != s.due {
			t.Fatalf("step %d: due(%v, +%s) = %v, want %v", i, s.key, s.at, got, s.due)
		}
		if !s.due {
			l.suppress(s.key, now)
			continue
		}
		if n := l.take(s.key, now); n != s.suppressed {
			t.Fatalf("step %d: take reported %d suppressed, want %d", i, n, s.suppressed)
		}
	}
}
