package agent

import (
	"net/http"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"berth/agent/alerts"
	"berth/agent/challenge"
)

// metrics are berth's Prometheus series (SPEC §5.10). Counters and
// histograms are fed where things happen; per-challenge state is read from
// the directory at scrape time, so it never drifts.
type metrics struct {
	reg                *prometheus.Registry
	restarts           *prometheus.CounterVec
	probeDuration      *prometheus.HistogramVec
	probes             *prometheus.CounterVec
	swaps              *prometheus.CounterVec
	swapDuration       *prometheus.HistogramVec
	pullDuration       *prometheus.HistogramVec
	checkpointDuration prometheus.Histogram
	dockerRequests     *prometheus.CounterVec
	proxyRequests      *prometheus.CounterVec
	proxyDuration      *prometheus.HistogramVec
	checkpointLast     prometheus.Gauge
	alerts             *prometheus.CounterVec // berth_alerts_total{result}
}

func newMetrics(dir *challenge.Directory, dockerUp func() bool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_restarts_total",
			Help: "Container restarts by cause (exited, oom_killed, unhealthy, start_failed, operator)."}, []string{"challenge", "cause"}),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_health_probe_duration_seconds",
			Help: "Health probe response time.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"challenge"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_health_probes_total",
			Help: "Health probes by result (pass, fail)."}, []string{"challenge", "result"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_swaps_total",
			Help: "Version swaps by result (completed, failed, rolled_back, noop)."}, []string{"challenge", "result"}),
		swapDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_swap_duration_seconds",
			Help: "Time from swap start to its end.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}, []string{"challenge"}),
		pullDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_image_pull_duration_seconds",
			Help: "Image pull time.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 12)}, []string{"challenge"}),
		checkpointDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_checkpoint_duration_seconds",
			Help: "Time to write a checkpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		dockerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_docker_api_requests_total",
			Help: "Docker Engine API requests by operation: the cost of supervision."}, []string{"op"}),
		proxyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_proxy_requests_total",
			Help: "Stable-endpoint requests by status code."}, []string{"challenge", "code"}),
		proxyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_proxy_request_duration_seconds",
			Help: "Stable-endpoint request time, to the end of the handler.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}, []string{"challenge"}),
		checkpointLast: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_checkpoint_last_success_timestamp_seconds",
			Help: "Unix time of the newest checkpoint written (or found at start)."}),
	}
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_alerts_total",
		Help: "Alerts by result (delivered, failed, dropped)."}, []string{"result"})
	for _, r := range []string{alerts.ResultDelivered, alerts.ResultFailed, alerts.ResultDropped} {
		m.alerts.WithLabelValues(r) // every result exists from the start, at zero
	}
	m.reg.MustRegister(m.alerts)
	m.reg.MustRegister(m.restarts, m.probeDuration, m.probes, m.swaps, m.swapDuration, m.pullDuration,
		m.checkpointDuration, m.dockerRequests, m.proxyRequests,
		&stateCollector{dir: dir},
		m.proxyDuration, m.checkpointLast, &infoCollector{dir: dir},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_docker_connected", Help: "1 while the Docker Engine answers."},
			func() float64 { return boolFloat(dockerUp()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addAgentSeries registers the series that need the agent's wiring:
// berth_build_info from berth's version and the binary's VCS revision, and
// berth_proxy_inflight_requests read from inFlight at scrape time.
func (m *metrics) addAgentSeries(version string, inFlight func() int64) {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_build_info",
		Help: "Always 1; labelled with berth's version, Go version and VCS revision."}, []string{"version", "goversion", "revision"})
	build.WithLabelValues(version, runtime.Version(), vcsRevision()).Set(1)
	m.reg.MustRegister(build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_proxy_inflight_requests",
			Help: "Requests the stable endpoint is proxying now, all challenges together."},
			func() float64 { return float64(inFlight()) }))
}

// vcsRevision is the commit the binary was built from, or "unknown".
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Label values every challenge has from its registration, so its counters
// read zero before the first event rather than being absent.
var (
	restartCauses = []string{challenge.EventExited, challenge.EventOOMKilled, challenge.EventUnhealthy, challenge.EventStartFailed, "operator"}
	probeResults  = []string{"pass", "fail"}
	swapResults   = []string{"completed", "failed", "rolled_back", "noop"}
)

// challengeAdded creates the challenge's labelled counters at zero.
// berth_proxy_requests_total is by code, so it appears with the first request.
func (m *metrics) challengeAdded(name string) {
	for _, cause := range restartCauses {
		m.restarts.WithLabelValues(name, cause)
	}
	for _, result := range probeResults {
		m.probes.WithLabelValues(name, result)
	}
	for _, result := range swapResults {
		m.swaps.WithLabelValues(name, result)
	}
}

// challengeRemoved drops every series labelled with the challenge, so
// removed challenges do not linger in scrapes.
func (m *metrics) challengeRemoved(name string) {
	l := prometheus.Labels{"challenge": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.restarts, m.probes, m.swaps, m.proxyRequests,
		m.probeDuration, m.swapDuration, m.pullDuration, m.proxyDuration,
	} {
		v.DeletePartialMatch(l)
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	descUp     = prometheus.NewDesc("berth_challenge_up", "1 while the challenge has a serving container.", []string{"challenge"}, nil)
	descHealth = prometheus.NewDesc("berth_challenge_health", "1 for the challenge's current health status.",
		[]string{"challenge", "status"}, nil)
)

// stateCollector reports each challenge's published status at scrape time.
type stateCollector struct{ dir *challenge.Directory }

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	ch <- descHealth
}

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range s.dir.List() {
		st := h.Status()
		up := st.State == challenge.Running && st.Health.Serving() && st.Upstream != ""
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, boolFloat(up), st.Name)
		for _, status := range []challenge.Health{challenge.HealthUnknown, challenge.HealthHealthy, challenge.HealthDegraded, challenge.HealthUnhealthy} {
			ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, boolFloat(st.Health == status), st.Name, string(status))
		}
	}
}

var descInfo = prometheus.NewDesc("berth_challenge_info", "Always 1; labelled with the challenge's running version and image.",
	[]string{"challenge", "version", "image"}, nil)

// infoCollector reports each challenge's version and image at scrape time.
type infoCollector struct{ dir *challenge.Directory }

func (c *infoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descInfo }

func (c *infoCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.dir.List() {
		st := h.Status()
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, st.Name, st.Version, st.Image)
	}
}
