package alerts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"berth/agent/challenge"
	"berth/configs"
	"berth/supervisor"
)

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
	h := startAlerter(t, rc, time.Minute, func(a *Alerter) {
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
	h := startAlerter(t, rc, time.Hour, func(a *Alerter) { a.queueSize = 1 })
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
	c := make(chan challenge.Event)
	queue := make(chan alertPayload, 10)
	errc := make(chan error, 1)
	go func() { errc <- h.al.intake(context.Background(), chanSub(c), queue) }()
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
	al := New(configs.Agent{ID: "x"}, newFakeFeed(), nil, zerolog.Nop(), Options{})
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
