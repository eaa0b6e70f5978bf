package agent

import (
	"io"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/supervisor"
)

// scrape is what GET /metrics answers now.
func scrape(tb testing.TB, m *metrics) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func wantLines(tb testing.TB, body string, lines ...string) {
	tb.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			tb.Errorf("scrape lacks %q", l)
		}
	}
}

// A challenge's labelled counters exist at zero from the moment the
// reconciler starts it, before any event, next to the agent-wide series.
func TestMetricsZeroFromRegistration(t *testing.T) {
	rig := newConfigRig(t, "agent: {id: rig}\n"+
		"challenges:\n  - {name: web, image: trusted/web, version: '1'}\n")
	m := rig.a.metrics
	m.addAgentSeries("1.2.3", func() int64 { return 2 })
	body := scrape(t, m)
	var want []string
	for _, cause := range restartCauses {
		want = append(want, `berth_restarts_total{cause="`+cause+`",challenge="web"} 0`)
	}
	for _, result := range probeResults {
		want = append(want, `berth_health_probes_total{challenge="web",result="`+result+`"} 0`)
	}
	for _, result := range swapResults {
		want = append(want, `berth_swaps_total{challenge="web",result="`+result+`"} 0`)
	}
	want = append(want, `berth_proxy_inflight_requests 2`, `berth_checkpoint_last_success_timestamp_seconds 0`)
	wantLines(t, body, want...)
	for _, prefix := range []string{`berth_build_info{goversion="go`, `berth_challenge_info{challenge="web",`} {
		if !strings.Contains(body, "\n"+prefix) {
			t.Errorf("scrape lacks a %s... series", prefix)
		}
	}
	if !strings.Contains(body, `,version="1.2.3"} 1`) {
		t.Errorf("berth_build_info does not carry version 1.2.3:\n%s", grepLines(body, "berth_build_info"))
	}
	if strings.Contains(body, "berth_proxy_requests_total{") {
		t.Error("berth_proxy_requests_total has a series before any request")
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Removing a challenge drops every series labelled with it; others stay.
func TestMetricsChallengeRemoved(t *testing.T) {
	m := newMetrics(&challenge.Directory{}, func() bool { return true })
	m.challengeAdded("gone")
	m.challengeAdded("kept")
	m.restarts.WithLabelValues("gone", "exited").Inc()
	m.probeDuration.WithLabelValues("gone").Observe(0.01)
	m.proxyRequests.WithLabelValues("gone", "200").Inc()
	m.proxyDuration.WithLabelValues("gone").Observe(0.01)
	m.challengeRemoved("gone")
	body := scrape(t, m)
	if strings.Contains(body, `challenge="gone"`) {
		t.Errorf("series of a removed challenge linger:\n%s", grepLines(body, "berth_"))
	}
	wantLines(t, body, `berth_restarts_total{cause="exited",challenge="kept"} 0`)
}

// berth_challenge_info follows the published status at scrape time.
func TestMetricsChallengeInfo(t *testing.T) {
	dir := &challenge.Directory{}
	h := challenge.NewHandle("web")
	dir.Put(h)
	m := newMetrics(dir, func() bool { return true })
	h.SetStatus(&challenge.Status{Name: "web", State: challenge.Running, Version: "1.0.0", Image: "reg/web:1.0.0"})
	wantLines(t, scrape(t, m), `berth_challenge_info{challenge="web",image="reg/web:1.0.0",version="1.0.0"} 1`)
	h.SetStatus(&challenge.Status{Name: "web", State: challenge.Running, Version: "1.1.0", Image: "reg/web:1.1.0"})
	body := scrape(t, m)
	wantLines(t, body, `berth_challenge_info{challenge="web",image="reg/web:1.1.0",version="1.1.0"} 1`)
	if strings.Contains(body, `version="1.0.0"`) {
		t.Error("berth_challenge_info still reports the replaced version")
	}
}

// lastCheckpoint is the scraped berth_checkpoint_last_success_timestamp_seconds.
func lastCheckpoint(tb testing.TB, m *metrics) float64 {
	tb.Helper()
	const name = "berth_checkpoint_last_success_timestamp_seconds "
	line := grepLines(scrape(tb, m), name)
	v, err := strconv.ParseFloat(strings.TrimPrefix(line, name), 64)
	if err != nil {
		tb.Fatalf("scraped %q: %v", line, err)
	}
	return v
}

// The last-checkpoint gauge starts from the newest checkpoint found and
// moves with every checkpoint written.
func TestCheckpointLastSuccessGauge(t *testing.T) {
	store := openTestStore(t)
	t.Cleanup(func() { _ = store.Close() })
	dataDir := t.TempDir()
	m := newMetrics(&challenge.Directory{}, func() bool { return true })

	cp := newCheckpointer(store, dataDir, 3, time.Hour, supervisor.RealClock(), zerolog.Nop())
	cp.reportLastSuccess(m.checkpointLast)
	if v := lastCheckpoint(t, m); v != 0 {
		t.Fatalf("gauge = %v with no checkpoint yet, want 0", v)
	}
	before := time.Now()
	info, err := cp.write("test")
	if err != nil {
		t.Fatal(err)
	}
	v := lastCheckpoint(t, m)
	if want := float64(info.Created.UnixNano()) / 1e9; v != want || v < float64(before.Unix()) {
		t.Fatalf("gauge = %v after a checkpoint created %s, want %v", v, info.Created, want)
	}

	// A later start finds it.
	if filepath.Dir(info.Path) != filepath.Join(dataDir, "checkpoints") {
		t.Fatalf("checkpoint written to %s", info.Path)
	}
	restarted := newMetrics(&challenge.Directory{}, func() bool { return true })
	cp2 := newCheckpointer(store, dataDir, 3, time.Hour, supervisor.RealClock(), zerolog.Nop())
	cp2.reportLastSuccess(restarted.checkpointLast)
	if got := lastCheckpoint(t, restarted); got != v {
		t.Fatalf("gauge at start = %v, want the newest checkpoint's %v", got, v)
	}
}
