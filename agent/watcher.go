package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/statestore"
	"berth/supervisor"
)

// watcher keeps berth's view of the engine current: it pings, re-lists the
// agent's containers, streams their events to the owning challenges and
// reconnects with backoff whenever the stream breaks.
type watcher struct {
	runtime   challenge.Runtime
	store     *statestore.Store
	dir       *challenge.Directory
	clock     supervisor.Clock
	rand      func() float64
	log       zerolog.Logger
	relist    time.Duration // safety-net full re-list period
	pingEvery time.Duration // watchdog ping period while streaming
	up        atomic.Bool   // engine reachable
	known     atomic.Bool   // the engine has been found up, or reported down, once
	everDown  atomic.Bool   // reported a disconnect since the last reconnect
}

// dockerUp reports whether the engine answered recently.
func (w *watcher) dockerUp() bool { return w.up.Load() }

// Serve runs until ctx ends; it never gives up on the engine.
func (w *watcher) Serve(ctx context.Context) error {
	backoff := supervisor.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
	attempt := 0
	for {
		err := w.watchOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.setDown(err)
		attempt++
		if attempt == 1 || attempt%20 == 0 {
			w.log.Warn().Err(err).Int("attempt", attempt).Msg("docker engine unreachable; retrying")
		}
		if !supervisor.Sleep(ctx, w.clock, backoff.Delay(attempt, w.rand())) {
			return nil
		}
		if w.up.Load() {
			attempt = 0
		}
	}
}

// setDown reports the engine unreachable once per outage, including an
// engine that is already down when berth starts.
func (w *watcher) setDown(err error) {
	if wasUp := w.up.Swap(false); wasUp || !w.known.Swap(true) {
		w.everDown.Store(true)
		ev, serr := w.store.AppendEvent(statestore.Event{Type: challenge.EventDockerDisconnected, Message: "docker engine unreachable", Error: errString(err)})
		if serr != nil {
			ev = statestore.Event{Type: challenge.EventDockerDisconnected, Error: errString(err)}
		}
		logEvent(w.log, challenge.Event(ev))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// watchOnce is one connection: ping, subscribe, list, then stream events
// with a periodic re-list until something fails.
func (w *watcher) watchOnce(ctx context.Context) error {
	if err := w.runtime.Ping(ctx); err != nil {
		return err
	}
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe before listing so nothing happening in between is missed.
	events, errs := w.runtime.Events(streamCtx)
	if err := w.relistAll(ctx); err != nil {
		return err
	}
	w.known.Store(true)
	if !w.up.Swap(true) && w.everDown.Swap(false) {
		ev, err := w.store.AppendEvent(statestore.Event{Type: challenge.EventDockerReconnected, Message: "docker engine reachable again"})
		if err == nil {
			logEvent(w.log, challenge.Event(ev))
		}
	}
	ticker := w.clock.NewTimer(w.relist)
	defer func() { ticker.Stop() }()
	// The watchdog pings while the stream is quiet: a hung or vanished engine
	// can leave an event stream open and silent for ever.
	watchdog := w.clock.NewTimer(w.pingEvery)
	defer func() { watchdog.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return <-errs
			}
			if h := w.dir.Get(ev.Challenge); h != nil {
				h.Notify(ev)
			}
		case err := <-errs:
			return err
		case <-watchdog.C():
			if err := w.runtime.Ping(ctx); err != nil {
				return fmt.Errorf("watchdog: %w", err)
			}
			watchdog = w.clock.NewTimer(w.pingEvery)
		case <-ticker.C():
			if err := w.relistAll(ctx); err != nil {
				return err
			}
			ticker = w.clock.NewTimer(w.relist)
		}
	}
}

// relistAll sends every challenge the engine's current list of its containers.
func (w *watcher) relistAll(ctx context.Context) error {
	list, err := w.runtime.List(ctx)
	if err != nil {
		return err
	}
	byChallenge := map[string][]challenge.Instance{}
	for _, in := range list {
		byChallenge[in.Challenge] = append(byChallenge[in.Challenge], in)
	}
	for _, h := range w.dir.List() {
		h.NotifyList(byChallenge[h.Name()])
	}
	return nil
}
