package agent

import (
	"berth/agent/challenge"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/statestore"
	"berth/supervisor"
)

// Alert tuning. Delivery is best effort: an alert that cannot be delivered
// within alertAttempts is logged once and dropped.
const (
	defaultAlertInterval = 10 * time.Minute
	alertTimeout         = 10 * time.Second // one POST, headers and body
	alertAttempts        = 3                // per alert, only for network errors and 5xx
	alertRetryBackoff    = time.Second      // doubled after each failed attempt
	alertQueueSize       = 64               // alerts waiting for delivery; beyond it they drop
	alertSubBuffer       = 256              // store subscription buffer; gaps are re-read
	alertLimiterPrune    = 1024             // prune idle limiter slots beyond this many
	alertBodyLimit       = 64 << 10         // response bytes read before closing
	alertUserAgent       = "berth-alerter"
)

// alertTypes are the events worth waking an operator for.
var alertTypes = map[string]bool{
	"gave_up":             true,
	"swap_failed":         true,
	"swap_rolled_back":    true,
	"docker_disconnected": true,
}

// alertSource is the part of the store the alerter reads.
type alertSource interface {
	LastSeq() uint64
	Subscribe(buffer int) *statestore.Subscription
	Events(q statestore.EventQuery) ([]statestore.Event, error)
}

// alertPayload is the JSON body POSTed to the webhook. It carries only what
// the event carries (events never hold secrets) plus the agent id.
type alertPayload struct {
	Agent      string           `json:"agent"`
	Type       string           `json:"type"`
	Challenge  string           `json:"challenge"`
	Message    string           `json:"message"`
	Error      string           `json:"error"`
	Seq        uint64           `json:"seq"`
	Time       time.Time        `json:"time"`
	Suppressed int              `json:"suppressed"` // alerts of this challenge and type held back since the last one sent
	Event      statestore.Event `json:"event"`
}

// alerter posts alert-worthy events to agent.alerts.webhook_url. It is a
// supervised service: Serve reads the store's live events in its own
// goroutine (which owns the rate limiter) and hands alerts through a bounded
// queue to one delivery goroutine, so a slow or hung webhook costs dropped
// alerts, never a blocked writer.
type alerter struct {
	agentID  string
	url      string
	store    alertSource
	clock    supervisor.Clock
	client   *http.Client
	log      zerolog.Logger
	interval time.Duration // min_interval per challenge and type

	// Tunables; tests shrink them.
	attempts     int
	retryBackoff time.Duration
	queueSize    int

	// Owned by the running Serve; runs never overlap, so a restart keeps
	// the rate limits and resumes after the last event it read.
	last uint64 // seq of the last event judged
	lim  *alertLimiter

	dropped   atomic.Uint64 // alerts lost to a full queue
	delivered atomic.Uint64
	failed    atomic.Uint64 // alerts given up on after every attempt
}

// newAlerter builds the alerter for cfg.Alerts. A zero
// min_interval means the default, 10m. The webhook URL is never logged: it
// often carries a token (Slack, Discord), so only its host is.
func newAlerter(cfg configs.Agent, store alertSource, clock supervisor.Clock, log zerolog.Logger) *alerter {
	interval := cfg.Alerts.MinInterval
	if interval <= 0 {
		interval = defaultAlertInterval
	}
	if clock == nil {
		clock = supervisor.RealClock()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 1
	return &alerter{
		agentID:  cfg.ID,
		url:      cfg.Alerts.WebhookURL,
		store:    store,
		clock:    clock,
		interval: interval,
		log:      log.With().Str(fieldComponent, "alerts").Str("webhook_host", webhookHost(cfg.Alerts.WebhookURL)).Logger(),
		client: &http.Client{
			Timeout:   alertTimeout,
			Transport: transport,
			// A webhook that redirects is misconfigured, and following it
			// could carry the alert to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		attempts:     alertAttempts,
		retryBackoff: alertRetryBackoff,
		queueSize:    alertQueueSize,
		// Events from before this process are history, not news.
		last: store.LastSeq(),
		lim:  newAlertLimiter(interval),
	}
}

func webhookHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid"
	}
	return u.Host
}

// Serve delivers alerts until ctx ends. It returns only once its delivery
// goroutine has stopped; an in-flight POST is cancelled with ctx. Without a
// webhook URL it returns nil at once, so the supervisor drops it.
func (a *alerter) Serve(ctx context.Context) error {
	if a.url == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.client.CloseIdleConnections()

	sub := a.store.Subscribe(alertSubBuffer)
	defer sub.Close()
	a.log.Info().Dur("min_interval", a.interval).Msg("alert webhook enabled")

	queue := make(chan alertPayload, max(a.queueSize, 1))
	done := make(chan error, 1)
	go func() {
		defer cancel() // a delivery panic stops intake too
		done <- a.deliverAll(ctx, queue)
	}()
	err := a.intake(ctx, sub, queue)
	cancel()
	if derr := <-done; derr != nil {
		err = errors.Join(err, derr)
	}
	return err
}

// intake turns committed events into queued alerts. It first reads what was
// committed since a.last (before this run subscribed), then follows the
// subscription, re-reading from the log whenever it skipped events.
func (a *alerter) intake(ctx context.Context, sub *statestore.Subscription, queue chan<- alertPayload) error {
	a.replay(queue)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("alerts: event subscription closed (state store closed): %w", supervisor.ErrDoNotRestart)
			}
			if ev.Seq <= a.last {
				continue
			}
			if ev.Seq > a.last+1 {
				// The subscription skipped events; the log has them, and ev.
				if a.replay(queue) && ev.Seq <= a.last {
					continue
				}
			}
			a.admit(ev, queue)
			a.last = ev.Seq
		}
	}
}

// replay admits every event committed after a.last, up to the end of the
// log. Events trimmed from the log meanwhile are lost. It reports false when
// the log could not be read; the caller then goes on from the live event.
func (a *alerter) replay(queue chan<- alertPayload) bool {
	for {
		page, err := a.store.Events(statestore.EventQuery{Since: a.last})
		if err != nil {
			a.log.Warn().Err(err).Uint64("since", a.last).Msg("alerts: cannot re-read events; some alerts may be missing")
			return false
		}
		if len(page) == 0 {
			return true
		}
		for _, e := range page {
			a.admit(e, queue)
			a.last = e.Seq
		}
	}
}

// admit applies the rate limit and queues the alert without blocking.
func (a *alerter) admit(ev statestore.Event, queue chan<- alertPayload) {
	if !alertTypes[ev.Type] {
		return
	}
	lim := a.lim
	k := alertKey{challenge: ev.Challenge, typ: ev.Type}
	now := a.clock.Now()
	if !lim.due(k, now) {
		lim.suppress(k, now)
		return
	}
	// Only this goroutine sends, so a free slot stays free until the send.
	if len(queue) == cap(queue) {
		lim.suppress(k, now) // the next alert of this kind reports it
		a.dropped.Add(1)
		a.log.Warn().Str(challenge.FieldEvent, ev.Type).Str(fieldChallenge, ev.Challenge).Uint64("seq", ev.Seq).
			Uint64("dropped", a.dropped.Load()).Msg("alert queue full (webhook slow or down); alert dropped")
		return
	}
	// Messages may quote container output; chat clients render what they get.
	ev.Message, ev.Error = challenge.Printable(ev.Message, true), challenge.Printable(ev.Error, true)
	p := alertPayload{
		Agent: a.agentID, Type: ev.Type, Challenge: ev.Challenge, Message: ev.Message, Error: ev.Error,
		Seq: ev.Seq, Time: ev.Time, Suppressed: lim.take(k, now), Event: ev,
	}
	select {
	case queue <- p:
	default: // unreachable while intake is the only sender; never block regardless
		a.dropped.Add(1)
	}
}

// deliverAll posts queued alerts one at a time until ctx ends.
func (a *alerter) deliverAll(ctx context.Context, queue <-chan alertPayload) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("alerts: delivery panicked: %v", v)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-queue:
			a.deliver(ctx, p)
		}
	}
}

// deliver tries one alert up to a.attempts times and logs one line if every
// attempt failed.
func (a *alerter) deliver(ctx context.Context, p alertPayload) {
	body, err := json.Marshal(p)
	if err != nil {
		a.failed.Add(1)
		a.log.Error().Err(err).Str(challenge.FieldEvent, p.Type).Uint64("seq", p.Seq).Msg("alert not delivered: cannot encode")
		return
	}
	backoff := a.retryBackoff
	attempt := 0
	for {
		attempt++
		retry, perr := a.post(ctx, body, p.Seq)
		if perr == nil {
			a.delivered.Add(1)
			a.log.Debug().Str(challenge.FieldEvent, p.Type).Str(fieldChallenge, p.Challenge).Uint64("seq", p.Seq).
				Int("attempts", attempt).Int("suppressed", p.Suppressed).Msg("alert delivered")
			return
		}
		err = perr
		if !retry || attempt >= a.attempts || ctx.Err() != nil {
			break
		}
		if !a.sleep(ctx, backoff) {
			break
		}
		backoff *= 2
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("berth is stopping: %w", err)
	}
	a.failed.Add(1)
	a.log.Warn().Err(err).Str(challenge.FieldEvent, p.Type).Str(fieldChallenge, p.Challenge).Uint64("seq", p.Seq).
		Int("attempts", attempt).Msg("alert not delivered")
}

// post sends one attempt. retry reports whether another attempt may help:
// network errors (timeouts included) and 5xx answers.
func (a *alerter) post(ctx context.Context, body []byte, seq uint64) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("alerts: cannot build the webhook request; check agent.alerts.webhook_url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", alertUserAgent)
	// Retries may repeat an alert the receiver did take; the seq lets it dedupe.
	req.Header.Set("X-Berth-Event-Seq", fmt.Sprint(seq))
	resp, err := a.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token; keep the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("post to webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, alertBodyLimit))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s; not retried", resp.Status)
	}
}

// sleep waits d on the alerter's clock; false if ctx ended first.
func (a *alerter) sleep(ctx context.Context, d time.Duration) bool {
	return sleepCtx(ctx, a.clock, d)
}

// alertKey is the unit of dedupe: one challenge (empty for agent-wide
// events such as docker_disconnected) and one event type.
type alertKey struct {
	challenge string
	typ       string
}

type alertSlot struct {
	last       time.Time // when the last alert of this key was queued
	sent       bool      // last is set
	suppressed int       // held back since last
}

// alertLimiter allows one alert per key per interval and counts the rest.
// It is owned by the intake goroutine.
type alertLimiter struct {
	interval time.Duration
	slots    map[alertKey]*alertSlot
}

func newAlertLimiter(interval time.Duration) *alertLimiter {
	return &alertLimiter{interval: interval, slots: map[alertKey]*alertSlot{}}
}

// due reports whether an alert for k may go out at now.
func (l *alertLimiter) due(k alertKey, now time.Time) bool {
	s := l.slots[k]
	return s == nil || !s.sent || now.Sub(s.last) >= l.interval
}

// suppress counts an alert for k that was not sent.
func (l *alertLimiter) suppress(k alertKey, now time.Time) {
	s := l.slot(k, now)
	s.suppressed++
}

// take records an alert for k going out at now and returns how many were
// suppressed before it.
func (l *alertLimiter) take(k alertKey, now time.Time) int {
	s := l.slot(k, now)
	n := s.suppressed
	s.last, s.sent, s.suppressed = now, true, 0
	return n
}

func (l *alertLimiter) slot(k alertKey, now time.Time) *alertSlot {
	s := l.slots[k]
	if s == nil {
		if len(l.slots) >= alertLimiterPrune {
			l.prune(now)
		}
		s = &alertSlot{}
		l.slots[k] = s
	}
	return s
}

// prune forgets keys whose interval has passed with nothing suppressed:
// they would alert at once anyway, so the map stays bounded by recent keys.
func (l *alertLimiter) prune(now time.Time) {
	for k, s := range l.slots {
		if s.suppressed == 0 && (!s.sent || now.Sub(s.last) >= l.interval) {
			delete(l.slots, k)
		}
	}
}
