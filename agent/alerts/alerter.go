package alerts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/configs"
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

// alertTypes are the events worth waking an operator for as they are.
var alertTypes = map[string]bool{
	challenge.EventGaveUp:             true,
	challenge.EventSwapFailed:         true,
	challenge.EventSwapRolledBack:     true,
	challenge.EventDockerDisconnected: true,
	challenge.EventOOMKilled:          true,
	challenge.EventUpdateAvailable:    true,
	challenge.EventStateRestoreFailed: true,
}

// Alert types the alerter derives from several events; no event has them.
const (
	// AlertCrashLoop: restart.alert_after restarting events of one
	// challenge within restart.window.
	AlertCrashLoop = "crash_loop"
	// AlertRecovered: the first health_changed to healthy after a
	// crash_loop or gave_up alert of that challenge.
	AlertRecovered = "recovered"
)

// Delivery results, as Options.OnDelivery receives them.
const (
	ResultDelivered = "delivered" // the webhook answered 2xx
	ResultFailed    = "failed"    // every attempt failed
	ResultDropped   = "dropped"   // the queue was full; never attempted
)

// Options are the alerter's links to the rest of berth; all may be nil.
type Options struct {
	// Config returns the config in force. The alerter reads a challenge's
	// restart.alert_after and restart.window from it, else its defaults;
	// without it (or for a nil config) the built-in defaults apply.
	Config func() *configs.Config
	// OnDelivery is called once per alert with one of the Result values,
	// from the intake or the delivery goroutine; it must not block.
	OnDelivery func(result string)
}

// Log field names of the alerter's own lines; challenge.Field* name the rest.
const (
	fieldWebhookHost = "webhook_host"
	fieldDropped     = "dropped"
	fieldAttempts    = "attempts"
	fieldSuppressed  = "suppressed"
	fieldSince       = "since"
	fieldMinInterval = "min_interval"
	fieldFormat      = "format"
)

// Feed is the event log the alerter follows: berth's state store, seen
// through an adapter in package agent.
type Feed interface {
	// LastSeq is the seq of the newest committed event, 0 if none ever was.
	LastSeq() uint64
	// Subscribe follows events committed after it returns. It never blocks
	// the feed's writers: an event that finds the buffer full is skipped,
	// and the alerter notices the gap from Seq and fills it with EventsSince.
	Subscribe(buffer int) Subscription
	// EventsSince returns events with Seq > seq in ascending order, up to
	// one page; an empty page means there are none.
	EventsSince(seq uint64) ([]challenge.Event, error)
}

// Subscription is a live feed of events in seq order.
type Subscription interface {
	// C is closed by Close or when the feed closes.
	C() <-chan challenge.Event
	// Close stops the subscription; it is idempotent and returns once C is
	// closed.
	Close()
}

// alertPayload is the JSON body POSTed to the webhook. It carries only what
// the event carries (events never hold secrets) plus the agent id.
type alertPayload struct {
	Agent      string          `json:"agent"`
	Type       string          `json:"type"`
	Challenge  string          `json:"challenge"`
	Message    string          `json:"message"`
	Error      string          `json:"error"`
	Seq        uint64          `json:"seq"`
	Time       time.Time       `json:"time"`
	Suppressed int             `json:"suppressed"` // alerts of this challenge and type held back since the last one sent
	Event      challenge.Event `json:"event"`
}

// Alerter posts alert-worthy events to agent.alerts.webhook_url. It is a
// supervised service: Serve reads the feed's live events in its own
// goroutine (which owns the rate limiter) and hands alerts through a bounded
// queue to one delivery goroutine, so a slow or hung webhook costs dropped
// alerts, never a blocked writer.
type Alerter struct {
	agentID  string
	url      string
	feed     Feed
	clock    supervisor.Clock
	client   *http.Client
	log      zerolog.Logger
	interval time.Duration // min_interval per challenge and type
	format   string        // body shape: configs.AlertFormat*
	opts     Options

	// Tunables; tests shrink them.
	attempts     int
	retryBackoff time.Duration
	queueSize    int

	// Owned by the running Serve; runs never overlap, so a restart keeps
	// the rate limits and resumes after the last event it read.
	last uint64 // seq of the last event judged
	lim  *alertLimiter
	// restarts holds, per challenge, the times of its last alert_after
	// restarting events; unrecovered the challenges with a crash_loop or
	// gave_up alert and no healthy turn since.
	restarts    map[string][]time.Time
	unrecovered map[string]bool

	dropped   atomic.Uint64 // alerts lost to a full queue
	delivered atomic.Uint64
	failed    atomic.Uint64 // alerts given up on after every attempt
}

// New builds the alerter for cfg.Alerts. A zero
// min_interval means the default, 10m; an empty format means json. The
// webhook URL is never logged: it often carries a token (Slack, Discord),
// so only its host is.
func New(cfg configs.Agent, feed Feed, clock supervisor.Clock, log zerolog.Logger, opts Options) *Alerter {
	interval := cfg.Alerts.MinInterval
	if interval <= 0 {
		interval = defaultAlertInterval
	}
	format := cfg.Alerts.Format
	if format == "" {
		format = configs.AlertFormatJSON
	}
	if clock == nil {
		clock = supervisor.RealClock()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 1
	return &Alerter{
		agentID:  cfg.ID,
		url:      cfg.Alerts.WebhookURL,
		feed:     feed,
		clock:    clock,
		interval: interval,
		format:   format,
		opts:     opts,
		log:      log.With().Str(challenge.FieldComponent, "alerts").Str(fieldWebhookHost, webhookHost(cfg.Alerts.WebhookURL)).Logger(),
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
		last:        feed.LastSeq(),
		lim:         newAlertLimiter(interval),
		restarts:    map[string][]time.Time{},
		unrecovered: map[string]bool{},
	}
}

// count records one alert's fate.
func (a *Alerter) count(result string) {
	switch result {
	case ResultDelivered:
		a.delivered.Add(1)
	case ResultFailed:
		a.failed.Add(1)
	case ResultDropped:
		a.dropped.Add(1)
	}
	if a.opts.OnDelivery != nil {
		a.opts.OnDelivery(result)
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
func (a *Alerter) Serve(ctx context.Context) error {
	if a.url == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.client.CloseIdleConnections()

	sub := a.feed.Subscribe(alertSubBuffer)
	defer sub.Close()
	a.log.Info().Dur(fieldMinInterval, a.interval).Str(fieldFormat, a.format).Msg("alert webhook enabled")

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
func (a *Alerter) intake(ctx context.Context, sub Subscription, queue chan<- alertPayload) error {
	a.replay(queue)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C():
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
func (a *Alerter) replay(queue chan<- alertPayload) bool {
	for {
		page, err := a.feed.EventsSince(a.last)
		if err != nil {
			a.log.Warn().Err(err).Uint64(fieldSince, a.last).Msg("alerts: cannot re-read events; some alerts may be missing")
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

// admit turns one event into its alerts, if any, and queues them.
func (a *Alerter) admit(ev challenge.Event, queue chan<- alertPayload) {
	if alertTypes[ev.Type] {
		if ev.Type == challenge.EventGaveUp {
			a.unrecovered[ev.Challenge] = true
		}
		a.queueAlert(ev.Type, ev, ev.Message, ev.Error, queue)
	}
	switch ev.Type {
	case challenge.EventRestarting:
		if n, window, ok := a.crashLoop(ev); ok {
			a.unrecovered[ev.Challenge] = true
			msg := fmt.Sprintf("%d restarts within %s", n, window)
			if ev.Message != "" {
				msg += "; last: " + ev.Message
			}
			a.queueAlert(AlertCrashLoop, ev, msg, ev.Error, queue)
		}
	case challenge.EventHealthChanged:
		healthy := string(challenge.HealthHealthy)
		if (ev.Health == healthy || ev.To == healthy) && a.unrecovered[ev.Challenge] {
			delete(a.unrecovered, ev.Challenge)
			a.queueAlert(AlertRecovered, ev, "healthy again", "", queue)
		}
	case challenge.EventRemoved:
		delete(a.restarts, ev.Challenge)
		delete(a.unrecovered, ev.Challenge)
	}
}

// crashLoop records a restart and reports whether it makes alert_after
// restarts within window. Only the last alert_after times are kept.
func (a *Alerter) crashLoop(ev challenge.Event) (n int, window time.Duration, ok bool) {
	policy := a.restartPolicy(ev.Challenge)
	n, window = policy.AlertAfter, policy.Window
	if n <= 0 {
		delete(a.restarts, ev.Challenge)
		return n, window, false
	}
	if window <= 0 {
		window = configs.BuiltinDefaults().Restart.Window
	}
	at := ev.Time
	if at.IsZero() {
		at = a.clock.Now()
	}
	times := append(a.restarts[ev.Challenge], at)
	if len(times) > n {
		times = append(times[:0], times[len(times)-n:]...)
	}
	a.restarts[ev.Challenge] = times
	return n, window, len(times) == n && at.Sub(times[0]) < window
}

// restartPolicy is the restart section in force for name: its own, else
// the config's defaults, else the built-in ones.
func (a *Alerter) restartPolicy(name string) configs.Restart {
	if a.opts.Config != nil {
		if cfg := a.opts.Config(); cfg != nil {
			if ch, ok := cfg.Challenge(name); ok {
				return ch.Restart
			}
			return cfg.Defaults.Restart
		}
	}
	return configs.BuiltinDefaults().Restart
}

// queueAlert applies the rate limit and queues the alert without blocking.
func (a *Alerter) queueAlert(typ string, ev challenge.Event, msg, errText string, queue chan<- alertPayload) {
	lim := a.lim
	k := alertKey{challenge: ev.Challenge, typ: typ}
	now := a.clock.Now()
	if !lim.due(k, now) {
		lim.suppress(k, now)
		return
	}
	// Only this goroutine sends, so a free slot stays free until the send.
	if len(queue) == cap(queue) {
		lim.suppress(k, now) // the next alert of this kind reports it
		a.count(ResultDropped)
		a.log.Warn().Str(challenge.FieldEvent, typ).Str(challenge.FieldChallenge, ev.Challenge).Uint64(challenge.FieldSeq, ev.Seq).
			Uint64(fieldDropped, a.dropped.Load()).Msg("alert queue full (webhook slow or down); alert dropped")
		return
	}
	// Messages may quote container output; chat clients render what they get.
	ev.Message, ev.Error = challenge.Printable(ev.Message, true), challenge.Printable(ev.Error, true)
	p := alertPayload{
		Agent: a.agentID, Type: typ, Challenge: ev.Challenge,
		Message: challenge.Printable(msg, true), Error: challenge.Printable(errText, true),
		Seq: ev.Seq, Time: ev.Time, Suppressed: lim.take(k, now), Event: ev,
	}
	select {
	case queue <- p:
	default: // unreachable while intake is the only sender; never block regardless
		a.count(ResultDropped)
	}
}
