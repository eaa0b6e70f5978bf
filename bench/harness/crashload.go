package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"berth/internal/loadgen"
)

// crashUnderLoad is the crash_failed_requests and crash_outage_ms rows:
// what clients under a steady GET load saw of one crash of the serving
// container, for berth with a warm standby, berth alone and Docker's
// restart policy.
type crashUnderLoad struct {
	Rounds   int                  `json:"rounds"`
	Failed   map[string]float64   `json:"crash_failed_requests_median"`
	Outage   map[string]float64   `json:"crash_outage_ms_median"`
	Requests map[string]float64   `json:"requests_per_round_median"`
	Samples  map[string][]loadHit `json:"samples"`
	Method   string               `json:"method"`
}

type loadHit struct {
	Requests int64   `json:"requests"`
	Failed   int64   `json:"failed"`
	OutageMS float64 `json:"outage_ms"`
}

// crashLoadBench crashes each subject rounds times under load.
func crashLoadBench(ctx context.Context, e *env, r *results, rounds int, fail func(string, error)) {
	defaults := `  health: {path: /health, interval: 1s, timeout: 1s, failure_threshold: 3}
  restart: {initial_backoff: 100ms, max_backoff: 1m, reset_after: 10s}`
	challenges := fmt.Sprintf("  - {name: plain, image: %[1]s, version: \"1.0.0\", pull_policy: never, port: 8080}\n"+
		"  - {name: standby, image: %[1]s, version: \"1.0.0\", pull_policy: never, port: 8080, standby: true}\n", e.repo)
	inst, err := newBerthInstance(e, "l", defaults, challenges)
	if err != nil {
		fail("crash-load config", err)
		return
	}
	defer cleanupAgent(e, inst)
	p, err := inst.start(ctx, 1)
	if err != nil {
		fail("crash-load: start berth", err)
		return
	}
	defer func() { _ = p.stop(30 * time.Second) }()
	port, err := freePort()
	if err != nil {
		fail("crash-load: docker baseline port", err)
		return
	}
	_, dockerBase, err := dockerRunBaseline(ctx, e, "bb"+e.runID+"-crashload", e.repo+":1.0.0",
		"--restart", "on-failure", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port))
	if err != nil {
		fail("crash-load: docker baseline", err)
		return
	}
	standbyReady := func(ctx context.Context) error {
		return waitUntil(ctx, 60*time.Second, 100*time.Millisecond, "a ready standby", func() (bool, error) {
			var st struct {
				Health  string `json:"health"`
				Standby string `json:"standby_container_id"`
			}
			err := getJSON(ctx, p.api+"/v1/challenges/standby", &st)
			return err == nil && st.Standby != "" && st.Health == "healthy", err
		})
	}
	subjects := []struct {
		key, base string
		ready     func(context.Context) error
	}{
		{"berth_standby", p.proxy + "/standby", standbyReady},
		{"berth", p.proxy + "/plain", nil},
		{"docker_restart_policy", dockerBase, nil},
	}
	res := &crashUnderLoad{Rounds: rounds, Failed: map[string]float64{}, Outage: map[string]float64{}, Requests: map[string]float64{},
		Samples: map[string][]loadHit{}}
	for i := range rounds {
		for _, s := range subjects {
			if ctx.Err() != nil {
				return
			}
			if s.ready != nil {
				if err := s.ready(ctx); err != nil {
					fail("crash-load "+s.key, err)
					continue
				}
				// One more probe interval: the standby is fed and counted ready.
				_ = sleepCtx(ctx, time.Second)
			}
			hit, err := crashLoadRound(ctx, s.base)
			if err != nil {
				fail("crash-load "+s.key, err)
				continue
			}
			res.Samples[s.key] = append(res.Samples[s.key], hit)
		}
		logf("crash under load %d: %v", i+1, res.Samples)
		// Past both restart policies' 10 s reset, so each crash restarts after the first delay.
		_ = sleepCtx(ctx, 8*time.Second)
	}
	for k, hs := range res.Samples {
		var failed, outage, reqs []float64
		for _, h := range hs {
			failed = append(failed, float64(h.Failed))
			outage = append(outage, h.OutageMS)
			reqs = append(reqs, float64(h.Requests))
		}
		res.Failed[k], res.Outage[k], res.Requests[k] = median(failed), median(outage), median(reqs)
	}
	res.Method = "per round: 6 clients looping GET /version (no pause between requests) for 1 s, then POST /admin/crash?code=1 (the serving process exits 1), load kept 4 s more; " +
		"failed = requests answered other than 200 or not at all; outage = a separate 5 ms poller's first failed GET → first 200 after it (0 when none failed); " +
		"berth_standby: standby: true, each round once its standby is ready; berth: the same challenge without one; docker_restart_policy: `docker run --restart on-failure` on a published port"
	r.CrashLoad = res
}

// crashLoadRound runs the load, crashes the service and reports.
func crashLoadRound(ctx context.Context, base string) (loadHit, error) {
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return loadHit{}, err
	}
	load := loadgen.StartLoad(base, 6, 0)
	defer load.Finish()
	if err := sleepCtx(ctx, time.Second); err != nil {
		return loadHit{}, err
	}
	type polled struct {
		o   outage
		err error
	}
	poll := make(chan polled, 1)
	go func() {
		failedAt, okAt, err := recoveryAfter(ctx, base+"/version", 250*time.Millisecond, 4*time.Second)
		poll <- polled{outage{failedAt, okAt}, err}
	}()
	status, b, err := post(ctx, base+"/admin/crash?code=1", "")
	if err != nil || status != http.StatusOK {
		return loadHit{}, fmt.Errorf("POST /admin/crash: %d %s %v", status, b, err)
	}
	pr := <-poll
	res := load.Finish()
	hit := loadHit{Requests: res.Requests, Failed: res.Failed}
	switch {
	case pr.err == nil:
		hit.OutageMS = ms(pr.o.length())
	case pr.o.Failed.IsZero():
		// No poll failed within the window: no outage.
	default:
		return hit, pr.err
	}
	return hit, nil
}
