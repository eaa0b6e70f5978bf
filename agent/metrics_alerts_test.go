package agent

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"berth/agent/alerts"
	"berth/agent/challenge"
)

// berth_alerts_total has every result from the start and counts what the
// alerter reports through its OnDelivery callback.
func TestMetricsAlertsTotal(t *testing.T) {
	m := newMetrics(&challenge.Directory{}, func() bool { return true })
	scrape := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	body := scrape()
	for _, r := range []string{alerts.ResultDelivered, alerts.ResultFailed, alerts.ResultDropped} {
		if want := `berth_alerts_total{result="` + r + `"} 0`; !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	onDelivery := func(result string) { m.alerts.WithLabelValues(result).Inc() } // as Run wires it
	onDelivery(alerts.ResultDelivered)
	onDelivery(alerts.ResultDelivered)
	onDelivery(alerts.ResultDropped)
	body = scrape()
	for _, want := range []string{`berth_alerts_total{result="delivered"} 2`, `berth_alerts_total{result="dropped"} 1`, `berth_alerts_total{result="failed"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
