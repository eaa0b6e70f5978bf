package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

func num(m map[string]any, k string) (float64, bool) {
	switch v := m[k].(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	}
	return 0, false
}

func verdict(ok bool) *bool { return &ok }

// evaluate compares the measured figures with the targets.
func evaluate(r *results) []target {
	var ts []target
	add := func(name, goal string, met *bool, detail string) {
		ts = append(ts, target{Name: name, Target: goal, Met: met, Detail: detail})
	}
	b, okb := num(r.CrashOutageMS, "berth")
	d, okd := num(r.CrashOutageMS, "docker_restart_policy")
	if okb && okd {
		detail := fmt.Sprintf("berth %.1f ms vs docker %.1f ms (medians)", b, d)
		if h, ok := num(r.CrashOutageMS, "docker_restart_policy_berth_flags"); ok {
			detail += fmt.Sprintf("; docker with berth's container flags %.1f ms", h)
		}
		add("crash_outage", "berth ≤ Docker restart policy", verdict(b <= d), detail)
	} else {
		add("crash_outage", "berth ≤ Docker restart policy", nil, "not measured (see errors)")
	}
	b, okb = num(r.HangRecovery, "berth")
	d, okd = num(r.HangRecovery, "autoheal_like")
	if okb && okd {
		add("hang_recovery", "berth ≤ 0.1 × autoheal-like", verdict(b <= 0.1*d), fmt.Sprintf("berth %.0f ms vs autoheal-like %.0f ms (ratio %.3f)", b, d, b/d))
	} else {
		add("hang_recovery", "berth ≤ 0.1 × autoheal-like", nil, "not measured (see errors)")
	}
	b, okb = num(r.SwapFailed, "berth_blue_green")
	d, okd = num(r.SwapFailed, "stop_first_recreate")
	if okb && okd {
		add("swap", "0 failed requests for berth, > 0 for stop-first", verdict(b == 0 && d > 0), fmt.Sprintf("berth %.0f failed, stop-first %.0f failed", b, d))
	} else {
		add("swap", "0 failed requests for berth, > 0 for stop-first", nil, "not measured (see errors)")
	}
	ts = append(ts, wsTarget(r))
	var big []scalePoint
	var ok []scalePoint
	for _, p := range r.Scale {
		if p.Error != "" {
			continue
		}
		ok = append(ok, p)
		if p.Challenges >= 100 {
			big = append(big, p)
		}
	}
	if len(big) == 0 {
		add("scale_cpu", "agent CPU < 2% of a core at 100+ challenges", nil, "no successful point at 100+ challenges")
		add("scale_rss", "agent RSS < 100 MB at 100+ challenges", nil, "no successful point at 100+ challenges")
	} else {
		cpuOK, rssOK := true, true
		var cd, rd []string
		for _, p := range big {
			cpuOK = cpuOK && p.AgentCPUPercent < 2
			rssOK = rssOK && p.AgentRSSMB < 100
			cd = append(cd, fmt.Sprintf("%d: %.2f%%", p.Challenges, p.AgentCPUPercent))
			rd = append(rd, fmt.Sprintf("%d: %.1f MB", p.Challenges, p.AgentRSSMB))
		}
		add("scale_cpu", "agent CPU < 2% of a core at 100+ challenges", verdict(cpuOK), strings.Join(cd, ", "))
		add("scale_rss", "agent RSS < 100 MB at 100+ challenges", verdict(rssOK), strings.Join(rd, ", "))
	}
	if len(ok) >= 2 {
		lo, hi := ok[0], ok[len(ok)-1]
		ratio := 0.0
		if lo.DockerAPIRequestsPerMin > 0 {
			ratio = hi.DockerAPIRequestsPerMin / lo.DockerAPIRequestsPerMin
		}
		flat := lo.DockerAPIRequestsPerMin > 0 && ratio <= 1.5
		if lo.DockerAPIRequestsPerMin == 0 {
			flat = hi.DockerAPIRequestsPerMin == 0
		}
		add("docker_api_flat", "Docker API requests/min do not grow with challenges (met when the largest point is ≤ 1.5 × the smallest)", verdict(flat),
			fmt.Sprintf("%d challenges: %.1f/min, %d challenges: %.1f/min (×%.2f for ×%.0f challenges)", lo.Challenges, lo.DockerAPIRequestsPerMin, hi.Challenges, hi.DockerAPIRequestsPerMin, ratio, float64(hi.Challenges)/float64(lo.Challenges)))
	} else {
		add("docker_api_flat", "Docker API requests/min do not grow with challenges", nil, "fewer than two successful scale points")
	}
	var at200 *scalePoint
	var largest *scalePoint
	for i := range ok {
		if ok[i].Challenges >= 200 && at200 == nil {
			at200 = &ok[i]
		}
		largest = &ok[i]
	}
	switch {
	case at200 != nil:
		add("readopt_200", "re-adoption of 200 containers < 2 s with 0 restarts", verdict(at200.ReadoptS < 2 && at200.ReadoptRestarts == 0),
			fmt.Sprintf("%d: %.3f s, %d restarts, %d changed ids", at200.Challenges, at200.ReadoptS, at200.ReadoptRestarts, at200.ReadoptChangedIDs))
	case largest != nil:
		add("readopt_200", "re-adoption of 200 containers < 2 s with 0 restarts", nil,
			fmt.Sprintf("200 not measured in this run (quick mode); largest point %d: %.3f s, %d restarts, %d changed ids", largest.Challenges, largest.ReadoptS, largest.ReadoptRestarts, largest.ReadoptChangedIDs))
	default:
		add("readopt_200", "re-adoption of 200 containers < 2 s with 0 restarts", nil, "not measured")
	}
	if p := r.Proxy; p != nil && p.RPS["berth"] > 0 && p.RPS["nginx"] > 0 {
		add("proxy_rps", "berth's endpoint ≥ nginx in req/s (same run)", verdict(p.RPS["berth"] >= p.RPS["nginx"]),
			fmt.Sprintf("berth %.0f, nginx %.0f, direct %.0f req/s (medians)", p.RPS["berth"], p.RPS["nginx"], p.RPS["direct"]))
	} else {
		add("proxy_rps", "berth's endpoint ≥ nginx in req/s (same run)", nil, "not measured")
	}
	if w, okw := num(r.Checkpoint, "write_ms"); okw {
		add("checkpoint_write", "checkpoint write < 200 ms", verdict(w < 200), fmt.Sprintf("%.1f ms for 200 challenges / 100000 events (go benchmark)", w))
	} else {
		add("checkpoint_write", "checkpoint write < 200 ms", nil, "not measured (see errors)")
	}
	return ts
}

func f1(m map[string]any, k string) string {
	if v, ok := num(m, k); ok {
		return fmt.Sprintf("%.1f", v)
	}
	return "not measured"
}

func f0(m map[string]any, k string) string {
	if v, ok := num(m, k); ok {
		return fmt.Sprintf("%.0f", v)
	}
	return "not measured"
}

// report renders BENCHMARKS.md.
func report(r *results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.Quick {
		mode = "quick (`BENCH_QUICK=1`)"
	}
	w("# berth benchmarks\n\n")
	w("Generated by `scripts/bench.sh` (harness: `bench/harness`) on %s, %s run, %.0f s. ", r.Date, mode, r.DurationS)
	w("Raw figures: `bench/results.json`. Every figure below was measured in this run; nothing is hard-coded.\n\n")
	w("## Machine\n\n")
	keys := make([]string, 0, len(r.Machine))
	for k := range r.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w("- %s: %s\n", k, r.Machine[k])
	}
	w("\n## Results\n\n")
	w("| figure | berth | alternative |\n|---|---|---|\n")
	w("| crash outage, median ms | %s | %s (docker `--restart on-failure`) |\n", f1(r.CrashOutageMS, "berth"), f1(r.CrashOutageMS, "docker_restart_policy"))
	w("| crash outage, same container flags as berth's, median ms | %s | %s (docker `--restart on-failure` with berth's flags and network) |\n", f1(r.CrashOutageMS, "berth"), f1(r.CrashOutageMS, "docker_restart_policy_berth_flags"))
	w("| hang recovery, ms | %s | %s (HEALTHCHECK defaults + autoheal loop) |\n", f1(r.HangRecovery, "berth"), f1(r.HangRecovery, "autoheal_like"))
	w("| failed requests during a version change | %s (blue-green swap) | %s (stop-first recreate) |\n", f0(r.SwapFailed, "berth_blue_green"), f0(r.SwapFailed, "stop_first_recreate"))
	w("%s", wsRow(r))
	if c := r.CrashLoad; c != nil {
		w("| failed requests per crash under a steady GET load (median of %d) | %.0f with a standby; %.0f without | %.0f (docker `--restart on-failure`) |\n", c.Rounds, c.Failed["berth_standby"], c.Failed["berth"], c.Failed["docker_restart_policy"])
		w("| crash outage under that load, median ms | %.0f with a standby; %.0f without | %.0f |\n", c.Outage["berth_standby"], c.Outage["berth"], c.Outage["docker_restart_policy"])
	}
	if s := r.StateLost; s != nil {
		w("| work items lost to a crash (of %.0f, median; snapshots every 1 s) | %.0f | %.0f (docker `--restart on-failure`) |\n", s.Before["berth"], s.Lost["berth"], s.Lost["docker_restart_policy"])
		w("| work items lost to a `docker kill` (median) | %.0f | not restarted by Docker at all |\n", s.Lost["berth_docker_kill"])
		w("| crash → serving again with its state, median ms | %.0f (kill: %.0f) | %.0f (serving, state lost) |\n", s.ServingMS["berth"], s.ServingMS["berth_docker_kill"], s.ServingMS["docker_restart_policy"])
	}
	if p := r.Proxy; p != nil {
		one, oneAdded := "", ""
		if v, ok := p.RPS["nginx_one_worker"]; ok {
			one = fmt.Sprintf("; %.0f (nginx with one worker)", v)
			oneAdded = fmt.Sprintf("; %.2f (nginx, one worker)", p.P99AddedMS["nginx_one_worker"])
		}
		w("| proxy_rps, req/s through the endpoint (direct: %.0f) | %.0f | %.0f (nginx, keepalive upstream)%s |\n", p.RPS["direct"], p.RPS["berth"], p.RPS["nginx"], one)
		w("| proxy_p99_added_ms, p99 over direct's %.2f ms | %.2f | %.2f (nginx)%s |\n", p.P99MS["direct"], p.P99AddedMS["berth"], p.P99AddedMS["nginx"], oneAdded)
	}
	w("\n### Samples\n\n")
	if s, ok := r.CrashOutageMS["samples"].(map[string][]float64); ok {
		w("- crash outage ms, berth: %v; docker: %v; docker with berth's flags: %v\n", s["berth"], s["docker_restart_policy"], s["docker_restart_policy_berth_flags"])
	}
	if bd, ok := r.CrashOutageMS["berth_breakdown_ms"].(map[string]any); ok {
		w("- berth restart steps from its log against the client's outages (medians, ms): first failed request → container started again %v (exit reaching berth, backoff delay %v overlapping Docker's clean-up, Docker's start), started → first passing probe %v, first pass → client's first 200 %v\n",
			bd["first_failed_request_to_started"], bd["backoff_delay"], bd["started_to_first_pass"], bd["first_pass_to_first_200"])
	}
	w("- hang recovery ms, berth: %v; autoheal-like: 1 run\n", r.HangRecovery["berth_samples"])
	if c := r.CrashLoad; c != nil {
		w("- crashes under load (requests, failed, outage ms): berth with a standby %v; berth %v; docker %v. %s\n", c.Samples["berth_standby"], c.Samples["berth"], c.Samples["docker_restart_policy"], c.Method)
	}
	if p := r.Proxy; p != nil {
		w("- proxy req/s and p99 ms per round:")
		for _, k := range []string{"berth", "nginx", "nginx_one_worker", "direct"} {
			if len(p.Samples[k]) == 0 {
				continue // runs from before that target
			}
			w(" %s", k)
			for _, s := range p.Samples[k] {
				w(" %.0f/%.2f", s.RPS, s.P99MS)
			}
			w(";")
		}
		w("\n")
	}
	if s := r.StateLost; s != nil {
		w("- work items before → after each crash (serving ms): berth %v; berth, docker kill %v; docker %v. %s\n", s.Samples["berth"], s.Samples["berth_docker_kill"], s.Samples["docker_restart_policy"], s.Method)
	}
	if d, ok := r.SwapFailed["berth_blue_green_detail"].(loadResult); ok {
		w("- berth swap: %d requests, %d failed %v\n", d.Requests, d.Failed, d.Errors)
	}
	if d, ok := r.SwapFailed["stop_first_recreate_detail"].(loadResult); ok {
		w("- stop-first: %d requests, %d failed, e.g. %v\n", d.Requests, d.Failed, d.Errors)
	}
	w("%s", wsSamples(r))
	w("\n### Scale (berth alone)\n\n")
	w("| challenges | agent CPU %% of a core | agent RSS MB | Docker API req/min | cold start → all healthy s | re-adopt s | restarts on re-adopt | changed ids |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Scale {
		if p.Error != "" {
			w("| %d | failed: %s | | | | | | |\n", p.Challenges, strings.ReplaceAll(p.Error, "|", "/"))
			continue
		}
		w("| %d | %.3f | %.1f | %.1f | %.2f | %.3f | %d | %d |\n", p.Challenges, p.AgentCPUPercent, p.AgentRSSMB, p.DockerAPIRequestsPerMin, p.ColdStartToAllHealthyS, p.ReadoptS, p.ReadoptRestarts, p.ReadoptChangedIDs)
	}
	for _, p := range r.Scale {
		if len(p.DockerAPIByOp) > 0 {
			w("\nDocker API requests in the %.0f s window at %d challenges, by label: ", p.SteadyWindowS, p.Challenges)
			ks := make([]string, 0, len(p.DockerAPIByOp))
			for k := range p.DockerAPIByOp {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for i, k := range ks {
				if i > 0 {
					w(", ")
				}
				w("`%s` %.0f", k, p.DockerAPIByOp[k])
			}
			w("\n")
		}
	}
	w("\n### Checkpoint\n\n")
	w("| source | challenges | events | write ms | verify ms | bytes |\n|---|---|---|---|---|---|\n")
	if r.Checkpoint != nil {
		w("| go benchmark | %s | %s | %s | %s | %s |\n", plainNumber(r.Checkpoint["challenges"]), plainNumber(r.Checkpoint["events"]), f1(r.Checkpoint, "write_ms"), f1(r.Checkpoint, "verify_ms"), plainNumber(r.Checkpoint["bytes"]))
	}
	if c := r.CheckpointAPI; c != nil {
		w("| live API (largest scale run) | %d | %d | %.1f | %.1f | %d |\n", c.Challenges, c.Events, c.WriteMS, c.VerifyMS, c.Bytes)
	}
	if r.CheckpointAPI != nil {
		w("\nLive API row: %s.\n", r.CheckpointAPI.Method)
	}
	w("\n## Targets\n\n| target | met | detail |\n|---|---|---|\n")
	for _, t := range r.Targets {
		met := "not measured"
		if t.Met != nil {
			met = map[bool]string{true: "met", false: "**missed**"}[*t.Met]
		}
		w("| %s | %s | %s |\n", t.Target, met, t.Detail)
	}
	if why := missedWhy(r); len(why) > 0 {
		w("\n## Why targets were missed\n\n")
		for _, line := range why {
			w("- %s\n", line)
		}
	}
	w("\n## Method\n\n")
	w("- berth runs as a process (`berth run --config <generated>`) with its own agent id, a data dir in a temp dir and API/proxy on free loopback ports; the alternatives run on the same Docker Engine in the same run.\n")
	w("- Images are built locally with `docker build` FROM scratch from `integration/testchallenge` (tags 1.0.0 and 1.1.0, differing only in VERSION); the autoheal-like image adds `bench/probe` as its HEALTHCHECK, since a scratch image has no shell or curl.\n")
	w("- CPU is utime+stime from /proc/<pid>/stat over the steady window, as percent of one core; RSS is the largest VmRSS sampled each second in the window; Docker API requests are the delta of `berth_docker_api_requests_total` from berth's /metrics.\n")
	w("- Cold start is berth process start → every challenge running and healthy in `GET /v1/challenges`. Re-adoption is SIGTERM berth (shutdown: leave), start it again, time from the new start until `/readyz` is 200 and every challenge is running and healthy; container ids and Docker `State.StartedAt` are compared before and after (restarts must be 0).\n")
	cfgKeys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		cfgKeys = append(cfgKeys, k)
	}
	sort.Strings(cfgKeys)
	for _, k := range cfgKeys {
		w("- %s: %s\n", k, r.Config[k])
	}
	if r.Proxy != nil {
		w("- proxy_rps: %s\n", r.Proxy.Method)
	}
	for _, k := range []map[string]any{r.CrashOutageMS, r.HangRecovery} {
		if m, ok := k["method"].(string); ok {
			w("- %s\n", m)
		}
	}
	if len(r.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	if len(r.Errors) > 0 {
		w("\n## Errors in this run\n\n")
		for _, e := range r.Errors {
			w("- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

// missedWhy explains missed targets from this run's own figures.
func missedWhy(r *results) []string {
	var why []string
	for _, t := range r.Targets {
		if t.Met == nil || *t.Met {
			continue
		}
		switch t.Name {
		case "crash_outage":
			line := fmt.Sprintf("crash outage: berth %s ms vs Docker's restart policy %s ms.", f1(r.CrashOutageMS, "berth"), f1(r.CrashOutageMS, "docker_restart_policy"))
			if bd, ok := r.CrashOutageMS["berth_breakdown_ms"].(map[string]any); ok {
				line += fmt.Sprintf(" berth had the container started again %v ms after the client's first failed request: the exit reaching berth as a Docker event, a backoff of %v ms (it overlaps the engine's clean-up of the exited container, which Docker's own 100 ms restart delay overlaps too) and Docker's start of the container through its API. Its first probe passed %v ms later and the proxy answered the client %v ms after that: berth routes to a restarted container only once it has answered a health probe, which the restart policy never checks.",
					bd["first_failed_request_to_started"], bd["backoff_delay"], bd["started_to_first_pass"], bd["first_pass_to_first_200"])
			}
			if h, ok := num(r.CrashOutageMS, "docker_restart_policy_berth_flags"); ok {
				line += fmt.Sprintf(" The same container with berth's flags (init, read-only root, dropped capabilities, limits, its own network) under Docker's restart policy: %.1f ms.", h)
			}
			why = append(why, line)
		case "scale_cpu":
			why = append(why, "agent CPU: "+t.Detail+". Profile the steady state with `berth run --cpu-profile FILE` (or `bench/profile`) to see what dominates on this machine.")
		}
	}
	return why
}

// plainNumber prints a figure without an exponent: a results file read
// back for -render holds every number as a float64.
func plainNumber(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
