package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// scalePoint is one entry of results.json "scale".
type scalePoint struct {
	Challenges              int                `json:"challenges"`
	AgentCPUPercent         float64            `json:"agent_cpu_percent"`
	AgentRSSMB              float64            `json:"agent_rss_mb"`
	DockerAPIRequestsPerMin float64            `json:"docker_api_requests_per_min"`
	ColdStartToAllHealthyS  float64            `json:"cold_start_to_all_healthy_s"`
	ReadoptS                float64            `json:"readopt_s"`
	ReadoptRestarts         int                `json:"readopt_restarts"`
	ReadoptChangedIDs       int                `json:"readopt_changed_container_ids"`
	SteadyWindowS           float64            `json:"steady_window_s"`
	DockerAPIByOp           map[string]float64 `json:"docker_api_requests_in_window_by_label,omitempty"`
	Error                   string             `json:"error,omitempty"`
}

// liveCheckpoint is a checkpoint taken through berth's API on a scale run.
type liveCheckpoint struct {
	Challenges int     `json:"challenges"`
	Events     int     `json:"events"`
	WriteMS    float64 `json:"write_ms"`
	VerifyMS   float64 `json:"verify_ms"`
	Bytes      int64   `json:"bytes"`
	Method     string  `json:"method"`
}

const scaleDefaults = `  resources: {cpus: 0.05, memory: 16m, pids: 32}
  restart: {stop_timeout: 2s}`

func scaleChallenges(e *env, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - {name: c%03d, image: %s, version: \"1.0.0\", pull_policy: never, port: 8080}\n", i, e.repo)
	}
	return b.String()
}

// allServing reports whether n challenges are running and healthy.
func allServing(ctx context.Context, api string, n int) (bool, []challengeStatus, error) {
	list, err := listChallenges(ctx, api)
	if err != nil {
		return false, nil, err
	}
	ok := 0
	for _, c := range list {
		if c.serving() {
			ok++
		}
	}
	if len(list) != n || ok != n {
		return false, list, fmt.Errorf("%d/%d serving", ok, len(list))
	}
	return true, list, nil
}

// runScale measures one scale point; ckpt is filled when withCheckpoint.
func runScale(ctx context.Context, e *env, n int, steady time.Duration, withCheckpoint bool) (pt scalePoint, ckpt *liveCheckpoint, err error) {
	pt = scalePoint{Challenges: n, SteadyWindowS: steady.Seconds()}
	inst, err := newBerthInstance(e, fmt.Sprintf("s%d", n), scaleDefaults, scaleChallenges(e, n))
	if err != nil {
		return pt, nil, err
	}
	defer cleanupAgent(e, inst)

	start := time.Now()
	p, err := inst.start(ctx, 1)
	if err != nil {
		return pt, nil, err
	}
	defer func() { _ = p.stop(30 * time.Second) }()
	var before []challengeStatus
	err = waitUntil(ctx, 15*time.Minute, 200*time.Millisecond, fmt.Sprintf("%d challenges healthy", n), func() (bool, error) {
		ok, list, err := allServing(ctx, p.api, n)
		before = list
		return ok, err
	})
	if err != nil {
		return pt, nil, err
	}
	pt.ColdStartToAllHealthyS = round(time.Since(start).Seconds(), 2)
	logf("scale %d: all healthy after %.1fs", n, pt.ColdStartToAllHealthyS)

	// Steady state: let the start-up probes settle, then measure a window.
	_ = sleepCtx(ctx, 5*time.Second)
	pid := p.cmd.Process.Pid
	cpu0, err := procCPU(pid, e.clkTck)
	if err != nil {
		return pt, nil, err
	}
	req0, by0, err := metricSum(ctx, p.api, "berth_docker_api_requests_total")
	if err != nil {
		return pt, nil, err
	}
	t0 := time.Now()
	var maxRSS float64
	for time.Since(t0) < steady {
		if rss, err := procRSSMB(pid); err == nil && rss > maxRSS {
			maxRSS = rss
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return pt, nil, err
		}
	}
	cpu1, err := procCPU(pid, e.clkTck)
	if err != nil {
		return pt, nil, err
	}
	wall := time.Since(t0).Seconds()
	req1, by1, err := metricSum(ctx, p.api, "berth_docker_api_requests_total")
	if err != nil {
		return pt, nil, err
	}
	pt.AgentCPUPercent = round((cpu1-cpu0)/wall*100, 3)
	pt.AgentRSSMB = round(maxRSS, 1)
	pt.DockerAPIRequestsPerMin = round((req1-req0)/wall*60, 1)
	pt.DockerAPIByOp = map[string]float64{}
	for k, v := range by1 {
		if d := v - by0[k]; d > 0 {
			pt.DockerAPIByOp[k] = d
		}
	}
	logf("scale %d: cpu %.3f%% rss %.1fMB docker api %.1f/min", n, pt.AgentCPUPercent, pt.AgentRSSMB, pt.DockerAPIRequestsPerMin)

	if withCheckpoint {
		ckpt, err = takeCheckpoint(ctx, e, p, n)
		if err != nil {
			logf("scale %d: checkpoint: %v", n, err)
		}
	}

	// Re-adoption: SIGTERM, start again, time to ready and all serving.
	ids := map[string]string{}
	restarts := map[string]int{}
	for _, c := range before {
		ids[c.Name], restarts[c.Name] = c.ContainerID, c.Restarts
	}
	startedBefore, err := startedAt(ctx, before)
	if err != nil {
		return pt, ckpt, err
	}
	if err := p.stop(60 * time.Second); err != nil {
		return pt, ckpt, fmt.Errorf("stopping berth: %w", err)
	}
	t1 := time.Now()
	p, err = inst.start(ctx, 2)
	if err != nil {
		return pt, ckpt, err
	}
	err = waitUntil(ctx, 5*time.Minute, 10*time.Millisecond, "readyz", func() (bool, error) {
		status, _, err := get(ctx, http.DefaultClient, p.api+"/readyz", time.Second)
		return err == nil && status == http.StatusOK, err
	})
	if err != nil {
		return pt, ckpt, err
	}
	var after []challengeStatus
	err = waitUntil(ctx, 5*time.Minute, 10*time.Millisecond, "all serving after restart", func() (bool, error) {
		ok, list, err := allServing(ctx, p.api, n)
		after = list
		return ok, err
	})
	if err != nil {
		return pt, ckpt, err
	}
	pt.ReadoptS = round(time.Since(t1).Seconds(), 3)
	startedAfter, err := startedAt(ctx, after)
	if err != nil {
		return pt, ckpt, err
	}
	for _, c := range after {
		if ids[c.Name] != c.ContainerID {
			pt.ReadoptChangedIDs++
		}
		if c.Restarts != restarts[c.Name] || startedAfter[c.ContainerID] != startedBefore[c.ContainerID] {
			pt.ReadoptRestarts++
		}
	}
	logf("scale %d: readopt %.3fs, %d changed ids, %d restarts", n, pt.ReadoptS, pt.ReadoptChangedIDs, pt.ReadoptRestarts)
	return pt, ckpt, nil
}

// startedAt maps container id to State.StartedAt, in one docker inspect.
func startedAt(ctx context.Context, list []challengeStatus) (map[string]string, error) {
	args := []string{"inspect", "-f", "{{.Id}} {{.State.StartedAt}}"}
	for _, c := range list {
		args = append(args, c.ContainerID)
	}
	out, err := docker(ctx, args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		id, at, _ := strings.Cut(line, " ")
		m[id] = at
	}
	return m, nil
}

// takeCheckpoint writes a checkpoint through POST /v1/checkpoints and
// verifies it with `berth checkpoint verify`.
func takeCheckpoint(ctx context.Context, e *env, p *berthProc, n int) (*liveCheckpoint, error) {
	status, body, err := get(ctx, http.DefaultClient, p.api+"/v1/events", 30*time.Second)
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/events: %d %v", status, err)
	}
	events := strings.Count(string(body), "\n") // NDJSON: one event a line
	t := time.Now()
	status, b, err := post(ctx, p.api+"/v1/checkpoints", "")
	write := time.Since(t)
	if err != nil || status != http.StatusCreated {
		return nil, fmt.Errorf("POST /v1/checkpoints: %d %s %v", status, b, err)
	}
	var info struct {
		Path  string `json:"path"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	t = time.Now()
	out, err := exec.CommandContext(ctx, e.berthBin, "checkpoint", "verify", info.Path).CombinedOutput()
	verify := time.Since(t)
	if err != nil {
		return nil, fmt.Errorf("berth checkpoint verify: %v: %s", err, out)
	}
	return &liveCheckpoint{Challenges: n, Events: events, WriteMS: ms(write), VerifyMS: ms(verify), Bytes: info.Bytes,
		Method: "POST /v1/checkpoints on the live scale run (HTTP round trip included); verify = `berth checkpoint verify` process run time"}, nil
}

// cleanupAgent removes the containers and network of a berth instance.
func cleanupAgent(e *env, inst *berthInstance) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, _ := docker(ctx, "ps", "-aq", "--filter", "label=io.berth.agent="+inst.agentID)
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			logf("cleanup %s: %v", inst.agentID, err)
		}
	}
	_, _ = docker(ctx, "network", "rm", inst.network)
}
