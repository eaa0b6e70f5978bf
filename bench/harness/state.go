package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// stateLoss is the state_lost_on_crash row: work items a counter challenge
// held in memory, lost to a crash, and the time until it serves again with
// what it kept.
type stateLoss struct {
	Rounds    int                      `json:"rounds"`
	Lost      map[string]float64       `json:"items_lost_median"`
	Before    map[string]float64       `json:"items_before_median"`
	ServingMS map[string]float64       `json:"crash_to_serving_ms_median"`
	Samples   map[string][]stateSample `json:"samples"`
	Method    string                   `json:"method"`
}

type stateSample struct {
	Before    int     `json:"before"`
	After     int     `json:"after"`
	ServingMS float64 `json:"serving_ms"`
}

// Items added before each crash, and the pace: a challenge doing 100 work
// items a second.
const (
	stateItems     = 300
	stateItemEvery = 10 * time.Millisecond
)

// stateBench crashes a counter challenge under berth (snapshots every
// second) and under Docker's restart policy, rounds times each.
func stateBench(ctx context.Context, e *env, r *results, rounds int, fail func(string, error)) {
	defaults := `  health: {path: /health, interval: 1s, timeout: 1s, failure_threshold: 3}
  restart: {initial_backoff: 100ms, max_backoff: 1m, reset_after: 10s}`
	challenges := fmt.Sprintf("  - {name: state, image: %s, version: \"1.0.0\", pull_policy: never, port: 8080, state: {export: /items/state, import: /items/state, snapshot_interval: 1s}}\n", e.repo)
	inst, err := newBerthInstance(e, "s", defaults, challenges)
	if err != nil {
		fail("state config", err)
		return
	}
	defer cleanupAgent(e, inst)
	p, err := inst.start(ctx, 1)
	if err != nil {
		fail("state: start berth", err)
		return
	}
	defer func() { _ = p.stop(30 * time.Second) }()
	port, err := freePort()
	if err != nil {
		fail("state: docker baseline port", err)
		return
	}
	_, dockerBase, err := dockerRunBaseline(ctx, e, "bb"+e.runID+"-state", e.repo+":1.0.0",
		"--restart", "on-failure", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port))
	if err != nil {
		fail("state: docker baseline", err)
		return
	}
	berthBase := p.proxy + "/state"
	kill := func(ctx context.Context) error {
		var st challengeStatus
		if err := getJSON(ctx, p.api+"/v1/challenges/state", &st); err != nil {
			return err
		}
		_, err := docker(ctx, "kill", st.ContainerID)
		return err
	}
	crash := func(base string) func(context.Context) error {
		return func(ctx context.Context) error {
			status, b, err := post(ctx, base+"/admin/crash?code=1", "")
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("POST /admin/crash: %d %s", status, b)
			}
			return err
		}
	}
	subjects := []struct {
		key, base string
		crash     func(context.Context) error
	}{
		{"berth", berthBase, crash(berthBase)},
		{"berth_docker_kill", berthBase, kill},
		{"docker_restart_policy", dockerBase, crash(dockerBase)},
	}
	res := &stateLoss{Rounds: rounds, Lost: map[string]float64{}, Before: map[string]float64{}, ServingMS: map[string]float64{}, Samples: map[string][]stateSample{}}
	for i := range rounds {
		for _, s := range subjects {
			if ctx.Err() != nil {
				return
			}
			sample, err := stateRound(ctx, s.base, s.crash)
			if err != nil {
				fail("state "+s.key, err)
				continue
			}
			res.Samples[s.key] = append(res.Samples[s.key], sample)
		}
		logf("state round %d: %v", i+1, res.Samples)
		// Past Docker's 10 s reset, so every crash restarts after its first delay.
		_ = sleepCtx(ctx, 11*time.Second)
	}
	for k, ss := range res.Samples {
		var lost, before, serving []float64
		for _, s := range ss {
			lost = append(lost, float64(s.Before-s.After))
			before = append(before, float64(s.Before))
			serving = append(serving, s.ServingMS)
		}
		res.Lost[k], res.Before[k], res.ServingMS[k] = median(lost), median(before), median(serving)
	}
	res.Method = fmt.Sprintf("per round: %d POST /items at one every %s (a challenge doing %d work items a second), GET /items as the count before, then at once the crash: "+
		"POST /admin/crash?code=1 (the process exits 1) or, for berth_docker_kill, `docker kill` of berth's container; then GET /items every 5ms until a 200, whose count is the count after; "+
		"lost = before - after; serving = crash → that 200. berth: state {snapshot_interval 1s} through its stable endpoint (503 while the new container imports); "+
		"docker_restart_policy: `docker run --restart on-failure` on a published port (Docker does not restart a container stopped by `docker kill` at all, so it gets the in-process crash)",
		stateItems, stateItemEvery, int(time.Second/stateItemEvery))
	r.StateLost = res
}

// stateRound adds items, crashes the service and measures what came back.
func stateRound(ctx context.Context, base string, crash func(context.Context) error) (stateSample, error) {
	if err := waitOK(ctx, base+"/items", 60*time.Second); err != nil {
		return stateSample{}, err
	}
	for range stateItems {
		if status, b, err := post(ctx, base+"/items", ""); err != nil || status != http.StatusOK {
			return stateSample{}, fmt.Errorf("POST /items: %d %s %v", status, b, err)
		}
		if err := sleepCtx(ctx, stateItemEvery); err != nil {
			return stateSample{}, err
		}
	}
	before, err := itemCount(ctx, base)
	if err != nil {
		return stateSample{}, err
	}
	crashedAt := time.Now()
	if err := crash(ctx); err != nil {
		return stateSample{}, err
	}
	// The crash takes a moment to land; wait for the first failure first.
	if _, _, err := recoveryAfter(ctx, base+"/items", 250*time.Millisecond, 60*time.Second); err != nil {
		return stateSample{}, err
	}
	servingMS := ms(time.Since(crashedAt))
	after, err := itemCount(ctx, base)
	if err != nil {
		return stateSample{}, err
	}
	return stateSample{Before: before, After: after, ServingMS: servingMS}, nil
}

func itemCount(ctx context.Context, base string) (int, error) {
	status, b, err := get(ctx, pollClient, base+"/items", 5*time.Second)
	if err != nil || status != http.StatusOK {
		return 0, fmt.Errorf("GET /items: %d %s %v", status, strings.TrimSpace(string(b)), err)
	}
	var v struct{ Items int }
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("GET /items: %w", err)
	}
	return v.Items, nil
}
