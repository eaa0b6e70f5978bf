package alerts

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"berth/agent/challenge"
	"berth/configs"
)

// restartConfig is a config in force with one challenge, web, whose
// alert_after and window are given, and defaults.restart.alert_after 2.
func restartConfig(alertAfter int, window time.Duration) func() *configs.Config {
	cfg := configs.Default()
	cfg.Defaults.Restart.AlertAfter = 2
	web := cfg.Defaults.NewChallenge()
	web.Name, web.Image, web.Version = "web", "ghcr.io/org/web", "1.0.0"
	web.Restart.AlertAfter, web.Restart.Window = alertAfter, window
	cfg.Challenges = []configs.Challenge{web}
	return func() *configs.Config { return cfg }
}

func startWithOptions(t *testing.T, rc *alertReceiver, opts Options) *alertHarness {
	t.Helper()
	h := newAlertHarness(t, rc)
	h.opts = opts
	h.build(time.Minute, nil)
	h.serve()
	return h
}

func (h *alertHarness) appendAt(typ, name string, at time.Time) challenge.Event {
	h.t.Helper()
	return h.feed.append(challenge.Event{Type: typ, Challenge: name, Time: at, Message: typ + " of " + name})
}

// wantSentinel appends a gave_up of a new challenge and checks it is the
// next alert: delivery is in order, so nothing was sent in between.
func (h *alertHarness) wantSentinel() {
	h.t.Helper()
	s := h.append(challenge.EventGaveUp, fmt.Sprintf("sentinel-%d", h.feed.LastSeq()+1))
	if p := h.rc.next(h.t); p.Seq != s.Seq {
		h.t.Fatalf("got %s/%s seq %d, want the sentinel", p.Type, p.Challenge, p.Seq)
	}
}

func TestAlertsCrashLoopAtThreshold(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{Config: restartConfig(3, time.Hour)})
	defer h.close()

	h.append(challenge.EventRestarting, "web")
	h.append(challenge.EventRestarting, "web")
	h.wantSentinel() // two restarts: below alert_after 3
	third := h.append(challenge.EventRestarting, "web")
	p := h.rc.next(t)
	wantAlert(t, p, AlertCrashLoop, "web", 0)
	if p.Seq != third.Seq || p.Event.Type != challenge.EventRestarting || !strings.Contains(p.Message, "3 restarts within 1h0m0s") {
		t.Errorf("crash_loop payload %+v, want the third restart's seq and its count", p)
	}
	// A challenge the config does not declare takes defaults.restart: 2.
	h.append(challenge.EventRestarting, "api-added")
	h.append(challenge.EventRestarting, "api-added")
	wantAlert(t, h.rc.next(t), AlertCrashLoop, "api-added", 0)
}

func TestAlertsCrashLoopOnlyWithinWindow(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{Config: restartConfig(3, time.Hour)})
	defer h.close()

	t0 := time.Now().UTC()
	h.appendAt(challenge.EventRestarting, "web", t0)
	h.appendAt(challenge.EventRestarting, "web", t0.Add(40*time.Minute))
	h.appendAt(challenge.EventRestarting, "web", t0.Add(80*time.Minute)) // three, but over 80m
	h.wantSentinel()
	h.appendAt(challenge.EventRestarting, "web", t0.Add(90*time.Minute)) // the last three span 50m
	wantAlert(t, h.rc.next(t), AlertCrashLoop, "web", 0)
}

func TestAlertsAlertAfterZeroDisablesCrashLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{Config: restartConfig(0, time.Hour)})
	defer h.close()

	for range 10 {
		h.append(challenge.EventRestarting, "web")
	}
	h.wantSentinel()
}

func TestAlertsBuiltinAlertAfterWithoutConfig(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{})
	defer h.close()

	h.append(challenge.EventRestarting, "web")
	h.append(challenge.EventRestarting, "web")
	h.wantSentinel()
	h.append(challenge.EventRestarting, "web")
	wantAlert(t, h.rc.next(t), AlertCrashLoop, "web", 0)
}

func TestAlertsOOMKilled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{})
	defer h.close()

	oom := h.feed.append(challenge.Event{Type: challenge.EventOOMKilled, Challenge: "web", OOM: true, Message: "container killed: out of memory"})
	p := h.rc.next(t)
	wantAlert(t, p, challenge.EventOOMKilled, "web", 0)
	if p.Seq != oom.Seq || p.Message != "container killed: out of memory" || !p.Event.OOM {
		t.Errorf("oom_killed payload %+v does not carry the event %+v", p, oom)
	}
	// Each OOM kill is an alert, rate limited per challenge like the rest.
	h.feed.append(challenge.Event{Type: challenge.EventOOMKilled, Challenge: "db", OOM: true})
	wantAlert(t, h.rc.next(t), challenge.EventOOMKilled, "db", 0)
}

func TestAlertsUpdateAvailable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{})
	defer h.close()

	ev := h.feed.append(challenge.Event{Type: challenge.EventUpdateAvailable, Challenge: "web", From: "1.0.0", To: "1.1.0",
		Message: "1.1.0 matches ^1.0.0; running 1.0.0"})
	p := h.rc.next(t)
	wantAlert(t, p, challenge.EventUpdateAvailable, "web", 0)
	if p.Seq != ev.Seq || p.Event.From != "1.0.0" || p.Event.To != "1.1.0" || !strings.Contains(p.Message, "1.1.0") {
		t.Errorf("update_available payload %+v does not carry the event %+v", p, ev)
	}
}

func TestAlertsStateRestoreFailed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{})
	defer h.close()

	ev := h.feed.append(challenge.Event{Type: challenge.EventStateRestoreFailed, Challenge: "web",
		Message: "serving without state", Error: "POST http://10.0.0.2:8080/state answered 500"})
	p := h.rc.next(t)
	wantAlert(t, p, challenge.EventStateRestoreFailed, "web", 0)
	if p.Seq != ev.Seq || p.Error != ev.Error {
		t.Errorf("state_restore_failed payload %+v does not carry the event %+v", p, ev)
	}
}

func TestAlertsRecovered(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startWithOptions(t, newAlertReceiver(t, nil), Options{Config: restartConfig(2, time.Hour)})
	defer h.close()

	healthy := func(name string) {
		h.feed.append(challenge.Event{Type: challenge.EventHealthChanged, Challenge: name, Health: "healthy", From: "unhealthy", To: "healthy"})
	}
	unhealthy := func(name string) {
		h.feed.append(challenge.Event{Type: challenge.EventHealthChanged, Challenge: name, Health: "unhealthy", From: "healthy", To: "unhealthy"})
	}

	healthy("web") // nothing was alerted: no recovery to report
	h.wantSentinel()

	h.append(challenge.EventGaveUp, "web")
	wantAlert(t, h.rc.next(t), challenge.EventGaveUp, "web", 0)
	unhealthy("web")
	healthy("other")
	healthy("web")
	p := h.rc.next(t)
	wantAlert(t, p, AlertRecovered, "web", 0)
	if p.Event.Type != challenge.EventHealthChanged {
		t.Errorf("recovered carries event %q, want health_changed", p.Event.Type)
	}
	healthy("web") // only the first healthy turn after the alert
	h.wantSentinel()

	// After a crash_loop alert too.
	h.append(challenge.EventRestarting, "web")
	h.append(challenge.EventRestarting, "web")
	wantAlert(t, h.rc.next(t), AlertCrashLoop, "web", 0)
	h.clock.Advance(time.Minute) // past min_interval for recovered
	healthy("web")
	wantAlert(t, h.rc.next(t), AlertRecovered, "web", 0)
}

// deliveries records OnDelivery calls.
type deliveries struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *deliveries) add(result string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[result]++
}

func (d *deliveries) get(result string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[result]
}

func TestAlertsOnDeliveryCountsEachResult(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gate := make(chan struct{})
	rc := newAlertReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) int {
		switch n {
		case 1:
			<-gate // hold the first delivery until the queue has overflowed
		case 2:
			return http.StatusBadRequest // not retried: failed
		}
		return http.StatusOK
	})
	var d deliveries
	h := newAlertHarness(t, rc)
	h.opts = Options{OnDelivery: d.add}
	h.build(time.Hour, func(a *Alerter) { a.queueSize = 1 })
	h.serve()
	defer h.close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()

	h.append(challenge.EventGaveUp, "first") // in flight, held
	waitUntil(t, "the first POST", func() bool { return rc.requests.Load() == 1 })
	h.append(challenge.EventGaveUp, "refused") // queued; answered 400
	h.append(challenge.EventGaveUp, "lost")    // queue full: dropped
	waitUntil(t, "the drop", func() bool { return d.get(ResultDropped) == 1 })
	close(gate)
	wantAlert(t, h.rc.next(t), challenge.EventGaveUp, "first", 0)
	waitUntil(t, "the refused alert", func() bool { return d.get(ResultFailed) == 1 })
	h.append(challenge.EventGaveUp, "third")
	wantAlert(t, h.rc.next(t), challenge.EventGaveUp, "third", 0)
	waitUntil(t, "the counts", func() bool { return d.get(ResultDelivered) == 2 && d.get(ResultFailed) == 1 })
	if got := d.get(ResultDropped); got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
	if h.al.delivered.Load() != 2 || h.al.failed.Load() != 1 || h.al.dropped.Load() != 1 {
		t.Errorf("alerter counts delivered %d failed %d dropped %d, want 2 1 1", h.al.delivered.Load(), h.al.failed.Load(), h.al.dropped.Load())
	}
}
