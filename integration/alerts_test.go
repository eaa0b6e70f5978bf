package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/integration/testenv"
	"berth/statestore"
)

// webhookAlert is what berth POSTs to agent.alerts.webhook_url.
type webhookAlert struct {
	Agent      string           `json:"agent"`
	Type       string           `json:"type"`
	Challenge  string           `json:"challenge"`
	Message    string           `json:"message"`
	Error      string           `json:"error"`
	Seq        uint64           `json:"seq"`
	Time       time.Time        `json:"time"`
	Suppressed int              `json:"suppressed"`
	Event      statestore.Event `json:"event"`
}

// alertSink is a local webhook receiver that records every alert.
type alertSink struct {
	mu     sync.Mutex
	alerts []webhookAlert
	raw    []string
}

func startAlertSink(t testing.TB) (*alertSink, string) {
	t.Helper()
	s := &alertSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var a webhookAlert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("alert body %s: %v", body, err)
		}
		s.mu.Lock()
		s.alerts = append(s.alerts, a)
		s.raw = append(s.raw, string(body))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL + "/alerts"
}

func (s *alertSink) ofType(typ string) []webhookAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []webhookAlert
	for _, a := range s.alerts {
		if a.Type == typ {
			out = append(out, a)
		}
	}
	return out
}

func TestAlertWebhookReceivesGaveUp(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/crashy", "1.0.0", map[string]string{"CRASH_AFTER_MS": "100"})
	sink, hookURL := startAlertSink(t)
	yaml := fmt.Sprintf(`  - name: doomed
    image: %s/berth-it/crashy
    version: "1.0.0"
    health: {path: /health, start_interval: 100ms}
    restart: {initial_backoff: 100ms, max_backoff: 200ms, max_restarts: 1, window: 1m, stop_timeout: 1s}
`, reg.Host)
	cfg := berthConfig(t, id, yaml)
	rewriteConfig(t, cfg, "  network:", fmt.Sprintf("  alerts: {webhook_url: %q, min_interval: 1m}\n  network:", hookURL))
	ra := startAgent(t, cfg)

	testenv.WaitFor(t, 60*time.Second, "a gave_up alert", func() (bool, error) {
		return len(sink.ofType("gave_up")) > 0, nil
	})
	gaveUp, ok := findEvent(events(t, ra.api, "doomed"), "gave_up")
	if !ok {
		t.Fatal("alert arrived but the event log has no gave_up")
	}
	// Stopping berth flushes nothing new: whatever the webhook has now is final.
	ra.stop(t)
	alerts := sink.ofType("gave_up")
	if len(alerts) != 1 {
		t.Fatalf("webhook got %d gave_up alerts, want exactly 1: %+v", len(alerts), alerts)
	}
	a := alerts[0]
	sink.mu.Lock()
	t.Logf("webhook body: %s", sink.raw[0])
	sink.mu.Unlock()
	if a.Agent != id || a.Challenge != "doomed" || a.Seq != gaveUp.Seq || a.Suppressed != 0 ||
		a.Message == "" || a.Event.Type != "gave_up" || a.Event.Challenge != "doomed" || a.Time.IsZero() {
		t.Errorf("gave_up alert %+v does not describe event %+v of agent %s", a, gaveUp, id)
	}
	if !strings.Contains(a.Message, "giving up") {
		t.Errorf("alert message %q should say why", a.Message)
	}
	// Only alert types reach the webhook, never the crash loop's other events.
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, a := range sink.alerts {
		switch a.Type {
		case "gave_up", "swap_failed", "swap_rolled_back", "docker_disconnected":
		default:
			t.Errorf("webhook got a %s alert", a.Type)
		}
	}
}
