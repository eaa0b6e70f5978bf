package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/alerts"
	domain "berth/agent/challenge"
	"berth/configs"
	"berth/internal/testkit"
	"berth/statestore"
)

func openTestStore(tb testing.TB) *statestore.Store {
	tb.Helper()
	store, err := statestore.Open(tb.TempDir(), statestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return store
}

func appendTestEvent(tb testing.TB, store *statestore.Store, e statestore.Event) statestore.Event {
	tb.Helper()
	ev, err := store.AppendEvent(e)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

func nextFeedEvent(tb testing.TB, sub alerts.Subscription) (domain.Event, bool) {
	tb.Helper()
	select {
	case ev, ok := <-sub.C():
		return ev, ok
	case <-time.After(10 * time.Second):
		tb.Fatal("no event from the subscription within 10s")
		return domain.Event{}, false
	}
}

func TestAlertFeedReadsTheStore(t *testing.T) {
	store := openTestStore(t)
	defer store.Close()
	feed := alertFeed{store}
	code := 3
	first := appendTestEvent(t, store, statestore.Event{Type: domain.EventExited, Challenge: "web", ExitCode: &code, Message: "m"})
	appendTestEvent(t, store, statestore.Event{Type: domain.EventGaveUp, Challenge: "web", Error: "e"})
	if got := feed.LastSeq(); got != store.LastSeq() || got == 0 {
		t.Fatalf("LastSeq = %d, store says %d", got, store.LastSeq())
	}
	page, err := feed.EventsSince(0)
	if err != nil || len(page) != 2 {
		t.Fatalf("EventsSince(0) = %d events, %v; want 2", len(page), err)
	}
	if page[0].Seq != first.Seq || page[0].Type != domain.EventExited || *page[0].ExitCode != 3 || !page[0].Time.Equal(first.Time) {
		t.Errorf("first event %+v, want %+v", page[0], first)
	}
	if page, err := feed.EventsSince(page[1].Seq); err != nil || len(page) != 0 {
		t.Errorf("EventsSince(last) = %v, %v; want none", page, err)
	}
}

func TestAlertFeedSubscription(t *testing.T) {
	store := openTestStore(t)
	defer store.Close()
	feed := alertFeed{store}

	sub := feed.Subscribe(4)
	ev := appendTestEvent(t, store, statestore.Event{Type: domain.EventSwapFailed, Challenge: "web"})
	if got, ok := nextFeedEvent(t, sub); !ok || got != domain.Event(ev) {
		t.Fatalf("subscription gave %+v (open %v), want %+v", got, ok, ev)
	}
	sub.Close()
	sub.Close() // idempotent
	if _, ok := <-sub.C(); ok {
		t.Fatal("C still open after Close")
	}

	// A reader that never reads does not keep Close waiting.
	idle := feed.Subscribe(1)
	for range 5 {
		appendTestEvent(t, store, statestore.Event{Type: domain.EventStarted, Challenge: "web"})
	}
	done := make(chan struct{})
	go func() { idle.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked behind an unread event")
	}

	// Closing the store ends the subscription.
	live := feed.Subscribe(4)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := nextFeedEvent(t, live); ok {
		t.Fatal("C still open after the store closed")
	}
	live.Close()
}

// The alerter runs on the store through the adapter as berth wires it.
func TestAlertsOverTheStore(t *testing.T) {
	store := openTestStore(t)
	defer store.Close()
	got := make(chan map[string]any, 10)
	hook := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		got <- p
	}))
	cfg := configs.Agent{ID: "agent-x", Alerts: configs.AlertsConfig{WebhookURL: hook.URL, MinInterval: time.Minute}}
	al := alerts.New(cfg, alertFeed{store}, nil, zerolog.Nop(), alerts.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- al.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v after cancel", err)
		}
	}()

	appendTestEvent(t, store, statestore.Event{Type: domain.EventStarted, Challenge: "web"})
	ev := appendTestEvent(t, store, statestore.Event{Type: domain.EventGaveUp, Challenge: "web", Message: "gave up"})
	select {
	case p := <-got:
		if p["type"] != domain.EventGaveUp || p["challenge"] != "web" || p["agent"] != "agent-x" || p["seq"] != float64(ev.Seq) {
			t.Errorf("alert %v, want gave_up of web seq %d", p, ev.Seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert within 10s")
	}
}
