package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// swarmBench holds the Swarm backend's benchmark figures.
type swarmBench struct {
	Method             string    `json:"method"`
	SwapRequests       int64     `json:"swap_requests"`
	SwapFailed         int64     `json:"swap_failed_requests"`
	Swaps              int       `json:"swaps"`
	CrashOutageMS      []float64 `json:"crash_outage_ms_samples"`
	CrashOutageMedian  float64   `json:"crash_outage_ms_median"`
	WorkerLossOutageMS float64   `json:"worker_loss_outage_ms"`
	WorkerLossTotalMS  float64   `json:"worker_loss_recovery_ms"`
}

// The Swarm rows of scripts/bench.sh (BENCH_SWARM=only): swaps under load,
// crash outages through the stable endpoint, and a lost worker, on a
// two-node swarm. Figures go to BERTH_SWARM_BENCH_OUT as JSON.
func TestSwarmBenchmark(t *testing.T) {
	if os.Getenv("BERTH_SWARM_BENCH") != "1" {
		t.Skip("set BERTH_SWARM_BENCH=1 (scripts/bench.sh does) to measure the swarm backend")
	}
	testenv.RequireDocker(t)
	worker := startSecondEngine(t)
	workerID := twoNodeSwarm(t, worker)
	managerID := strings.TrimSpace(testenv.Docker(t, "info", "--format", "{{.Swarm.NodeID}}"))
	testenv.Docker(t, "node", "update", "--label-add", "pool=apps", workerID)

	id := testenv.AgentID(t)
	repo := "berth-it-" + id + "/echo"
	for _, v := range []string{"1.0.0", "1.1.0"} {
		testenv.BuildLocalImage(t, repo+":"+v, nil)
		copyImage(t, worker, repo+":"+v)
	}
	// The restart and health settings of the single-host benchmark's berth
	// (bench/harness): Docker's restart-manager policy.
	policy := func(name, constraint string) string {
		return fmt.Sprintf(`  - name: %s
    image: %s
    version: "1.0.0"
    pull_policy: never
    health: {interval: 1s, timeout: 1s, failure_threshold: 3}
    restart: {initial_backoff: 100ms, max_backoff: 1m, reset_after: 10s, stop_timeout: 2s}
    update: {min_healthy_time: 2s, drain_timeout: 60s}
    resources: {cpus: 0.5, memory: 64m, pids: 64}
    placement: ['%s']
`, name, repo, constraint)
	}
	cfg := swarmConfig(t, id, policy("svc", "node.role==manager")+policy("roam", "node.labels.pool==apps"))
	ra := startAgent(t, cfg)
	waitServing(t, ra.api, "svc", 2*time.Minute, nil)
	waitServing(t, ra.api, "roam", 2*time.Minute, nil)
	res := swarmBench{Method: "two-node swarm (second dockerd in a network namespace); stable endpoint polled with GET /version every 5ms (250ms timeout, no keep-alive); " +
		"crash outage = first failed poll after POST /admin/crash?code=1 → first 200 (challenge on the manager, 11s healthy before each crash so the backoff is reset); " +
		"berth's settings as in the single-host benchmark (restart initial_backoff 100ms, reset_after 10s; health interval 1s, start_interval 250ms); swaps under loadgen load (4 short, 2 long clients); " +
		"worker loss = SIGTERM of the worker's dockerd with the challenge on it → first 200 from the manager (outage: first failed poll → first 200)"}

	// Swaps under load.
	for i, v := range []string{"1.1.0", "1.0.0", "1.1.0"} {
		l := startLoad(t, ra.proxy+"/svc", 4, 2)
		time.Sleep(time.Second)
		postSwap(t, ra.api, "svc", v)
		swap := waitSwapEnd(t, ra.api, "svc", 2*time.Minute)
		time.Sleep(500 * time.Millisecond)
		r := l.Finish()
		if swap["phase"] != "completed" {
			t.Fatalf("swap %d ended in %v: %v", i, swap["phase"], swap["error"])
		}
		res.Swaps++
		res.SwapRequests += r.Requests
		res.SwapFailed += r.Failed
	}

	// Crash outages.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for range 5 {
		waitServing(t, ra.api, "svc", time.Minute, nil)
		time.Sleep(11 * time.Second) // past reset_after, so each crash gets the first backoff
		if status := testenv.HTTPPost(t, ra.proxy+"/svc/admin/crash?code=1", ""); status != http.StatusOK {
			t.Fatalf("crash: %d", status)
		}
		failed, ok, err := outageAfter(ctx, ra.proxy+"/svc/version", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		res.CrashOutageMS = append(res.CrashOutageMS, ms(ok.Sub(failed)))
	}
	sorted := slices.Clone(res.CrashOutageMS)
	slices.Sort(sorted)
	res.CrashOutageMedian = sorted[len(sorted)/2]

	// A lost worker.
	if v, _ := challengeStatus(t, ra.api, "roam"); !strings.HasPrefix(v.Upstream, "http://"+workerAddr+":") {
		t.Fatalf("roam runs at %q, not on the worker", v.Upstream)
	}
	testenv.Docker(t, "node", "update", "--label-add", "pool=apps", managerID)
	start := time.Now()
	worker.stop()
	failed, ok, err := outageAfter(ctx, ra.proxy+"/roam/version", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res.WorkerLossOutageMS, res.WorkerLossTotalMS = ms(ok.Sub(failed)), ms(ok.Sub(start))

	b, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("swarm benchmark:\n%s", b)
	if out := os.Getenv("BERTH_SWARM_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := os.Getenv("BERTH_SWARM_BENCH_MD"); out != "" {
		if err := os.WriteFile(out, []byte(res.markdown()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// markdown is the benchmark's table for BENCHMARKS.md.
func (r swarmBench) markdown() string {
	samples := make([]string, len(r.CrashOutageMS))
	for i, s := range r.CrashOutageMS {
		samples[i] = fmt.Sprintf("%.0f", s)
	}
	return fmt.Sprintf(`## Swarm backend (two nodes)

| row | berth on Swarm |
|---|---|
| swap failed requests | %d of %d over %d swaps |
| crash outage, median ms | %.1f (samples %s) |
| worker loss: outage, ms (first failed request → first 200) | %.0f |
| worker loss: worker engine stopped → first 200, ms | %.0f |

Method: %s.
`, r.SwapFailed, r.SwapRequests, r.Swaps, r.CrashOutageMedian, strings.Join(samples, ", "), r.WorkerLossOutageMS, r.WorkerLossTotalMS, r.Method)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// outageAfter polls url every 5ms until a poll fails, then until one
// answers 200: the client's outage.
func outageAfter(ctx context.Context, url string, limit time.Duration) (failed, ok time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 250 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	poll := func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for {
		at := time.Now()
		if !poll() {
			if failed.IsZero() {
				failed = at
			}
		} else if !failed.IsZero() {
			return failed, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return failed, ok, fmt.Errorf("%s: no outage and recovery within %s (failed at %v)", url, limit, failed)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
