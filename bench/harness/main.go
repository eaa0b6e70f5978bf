package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// results is bench/results.json.
type results struct {
	Date          string            `json:"date"`
	Quick         bool              `json:"quick"`
	DurationS     float64           `json:"duration_s"`
	Machine       map[string]string `json:"machine"`
	CrashOutageMS map[string]any    `json:"crash_outage_ms"`
	HangRecovery  map[string]any    `json:"hang_recovery_ms"`
	SwapFailed    map[string]any    `json:"swap_failed_requests"`
	StateLost     *stateLoss        `json:"state_lost_on_crash,omitempty"`
	CrashLoad     *crashUnderLoad   `json:"crash_under_load,omitempty"`
	Proxy         *proxySpeed       `json:"proxy,omitempty"`
	Scale         []scalePoint      `json:"scale"`
	Checkpoint    map[string]any    `json:"checkpoint"`
	CheckpointAPI *liveCheckpoint   `json:"checkpoint_live,omitempty"`
	Targets       []target          `json:"targets"`
	Config        map[string]string `json:"config"`
	Notes         []string          `json:"notes"`
	Errors        []string          `json:"errors,omitempty"`

	// WebSocketDrops is the websocket phase (websocket.go).
	WebSocketDrops *wsDrops `json:"websocket_drops_during_swap,omitempty"`
}

type target struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Met    *bool  `json:"met"` // null: not measured
	Detail string `json:"detail"`
}

func main() {
	var (
		e         env
		out       = flag.String("out", "bench/results.json", "results file")
		md        = flag.String("md", "BENCHMARKS.md", "report file")
		quick     = flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "quick mode")
		scalesArg = flag.String("scales", os.Getenv("BENCH_SCALES"), "comma-separated challenge counts")
		clk       = flag.Float64("clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
		render    = flag.Bool("render", false, "only write -md again from the figures in -out (no measuring)")
	)
	flag.StringVar(&e.berthBin, "berth", "", "berth binary")
	flag.StringVar(&e.repo, "repo", "", "challenge image repository (tags 1.0.0, 1.1.0)")
	flag.StringVar(&e.hcImage, "hc-image", "", "challenge image with a HEALTHCHECK")
	flag.StringVar(&e.runID, "run-id", "", "run id (lowercase alnum)")
	flag.StringVar(&e.workDir, "work", "", "scratch directory")
	flag.Parse()
	if *render {
		if err := rerender(*out, *md); err != nil {
			logf("render: %v", err)
			os.Exit(1)
		}
		logf("wrote %s from %s", *md, *out)
		return
	}
	e.clkTck = *clk
	e.label = "io.berth.bench=" + e.runID
	e.pidFile = e.workDir + "/pids"
	if e.berthBin == "" || e.repo == "" || e.hcImage == "" || e.runID == "" || e.workDir == "" {
		fmt.Fprintln(os.Stderr, "harness: -berth, -repo, -hc-image, -run-id and -work are required (run scripts/bench.sh)")
		os.Exit(2)
	}
	scales := []int{10, 50, 100}
	if !*quick {
		scales = []int{10, 50, 100, 200}
	}
	if *scalesArg != "" {
		scales = nil
		for _, f := range strings.Split(*scalesArg, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "harness: bad BENCH_SCALES entry %q\n", f)
				os.Exit(2)
			}
			scales = append(scales, n)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r := run(ctx, &e, *quick, scales)
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		logf("writing %s: %v", *out, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*md, []byte(report(r)), 0o644); err != nil {
		logf("writing %s: %v", *md, err)
		os.Exit(1)
	}
	logf("wrote %s and %s", *out, *md)
	if ctx.Err() != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, e *env, quick bool, scales []int) *results {
	begin := time.Now()
	r := &results{Date: begin.UTC().Format(time.RFC3339), Quick: quick, Machine: machine(ctx)}
	crashes, hangs, steady := 10, 5, 60*time.Second
	if quick {
		crashes, hangs, steady = 5, 3, 30*time.Second
	}
	// Overrides for trying the harness out; a run using them says so.
	if n, err := strconv.Atoi(os.Getenv("BENCH_REPEATS")); err == nil && n > 0 {
		crashes, hangs = n, n
		r.Notes = append(r.Notes, fmt.Sprintf("BENCH_REPEATS=%d overrides the number of crashes and hangs", n))
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_STEADY_S")); err == nil && n > 0 {
		steady = time.Duration(n) * time.Second
		r.Notes = append(r.Notes, fmt.Sprintf("BENCH_STEADY_S=%d overrides the steady-state window", n))
	}
	fail := func(what string, err error) {
		logf("%s: %v", what, err)
		r.Errors = append(r.Errors, what+": "+err.Error())
	}
	r.Config = map[string]string{
		"berth_functional": "health {interval 1s, timeout 1s, failure_threshold 3, start_interval 250ms (default)}, restart {initial_backoff 100ms, max_backoff 1m, reset_after 10s: the policy of Docker's restart manager (100ms doubling to 1m, reset after 10s running), with berth's default jitter 0.2}, update {min_healthy_time 2s, drain_timeout 60s}",
		"docker_restart":   "docker run -d --restart on-failure -p 127.0.0.1:<fixed free port>:8080 (no HEALTHCHECK); a fixed host port because Docker 20.10 gives an ephemeral published port (127.0.0.1::8080) a new host port on every restart, which no client could follow",
		"autoheal_like":    "image HEALTHCHECK CMD [\"/probe\",\"http://127.0.0.1:8080/health\"] with Docker defaults (interval 30s, timeout 30s, retries 3, start period 0) + harness loop: every 5s `docker ps --filter health=unhealthy` → `docker restart -t 10`",
		"stop_first":       "docker stop (10s) → docker rm → docker run, same fixed 127.0.0.1:<port>:8080",
		"load":             "6 clients looping GET /version + 2 clients looping GET /work?ms=3000, 60s client timeout; 3s of load before the change, 3s after it completes",
		"scale":            "per challenge: resources {cpus 0.05, memory 16m, pids 32}, restart stop_timeout 2s, health defaults (interval 5s, timeout 2s, start_interval 250ms), pull_policy never (locally built image)",
		"steady_window":    steady.String() + " after all healthy + 5s settle",
	}
	if quick {
		r.Notes = append(r.Notes, fmt.Sprintf("quick mode: %d crashes, %d berth hangs, 1 autoheal-like hang (Docker default timings are not shortened), steady-state window %s instead of 60s, scales %v", crashes, hangs, steady, scales))
	}

	phases := os.Getenv("BENCH_PHASES") // for trying the harness out
	want := func(p string) bool { return phases == "" || strings.Contains(","+phases+",", ","+p+",") }
	if phases != "" {
		r.Notes = append(r.Notes, "BENCH_PHASES="+phases+" limits this run to those phases")
	}
	// "functional" names the crash, hang and swap phases together.
	wantF := func(p string) bool { return want("functional") || want(p) }
	if wantF("crash") || wantF("hang") || wantF("swap") {
		runFunctional(ctx, e, r, crashes, hangs, wantF, fail)
	}
	if want("websocket") && ctx.Err() == nil {
		wsBench(ctx, e, r, fail)
	}
	if want("crashload") && ctx.Err() == nil {
		crashLoadBench(ctx, e, r, crashes, fail)
	}
	if want("state") && ctx.Err() == nil {
		stateBench(ctx, e, r, hangs, fail)
	}
	if want("proxy") && ctx.Err() == nil {
		proxyBench(ctx, e, r, quick, fail)
	}
	if want("scale") {
		runScales(ctx, e, r, scales, steady, fail)
	}
	if want("checkpoint") && ctx.Err() == nil {
		ck, err := checkpointBench(ctx)
		if err != nil {
			fail("checkpoint benchmark", err)
		}
		r.Checkpoint = ck
	}
	r.Targets = evaluate(r)
	r.DurationS = round(time.Since(begin).Seconds(), 1)
	return r
}

func runFunctional(ctx context.Context, e *env, r *results, crashes, hangs int, want func(string) bool, fail func(string, error)) {
	// The autoheal-like baseline waits on Docker's 30 s timers for minutes;
	// it runs alongside berth's functional figures and is timer-bound, not CPU-bound.
	type autoRes struct {
		d   time.Duration
		err error
	}
	autoCh := make(chan autoRes, 1)
	if want("hang") {
		go func() {
			d, err := autohealHang(ctx, e)
			autoCh <- autoRes{d, err}
		}()
		r.Notes = append(r.Notes, "the autoheal-like hang baseline ran concurrently with the crash, hang and swap measurements (its figure is dominated by Docker's 30s timers)")
	}

	functional(ctx, e, r, crashes, hangs, want, fail)

	if !want("hang") {
		return
	}
	ar := <-autoCh
	if ar.err != nil {
		fail("autoheal-like hang", ar.err)
	} else {
		r.HangRecovery["autoheal_like"] = ms(ar.d)
		r.HangRecovery["autoheal_like_samples"] = 1
	}
}

func runScales(ctx context.Context, e *env, r *results, scales []int, steady time.Duration, fail func(string, error)) {

	var biggest *liveCheckpoint
	for i, n := range scales {
		if ctx.Err() != nil {
			break
		}
		logf("scale %d challenges", n)
		pt, ck, err := runScale(ctx, e, n, steady, i == len(scales)-1)
		if err != nil {
			pt.Error = err.Error()
			fail(fmt.Sprintf("scale %d", n), err)
		}
		r.Scale = append(r.Scale, pt)
		if ck != nil {
			biggest = ck
		}
	}
	r.CheckpointAPI = biggest
}

// functional measures crash outage, hang recovery and swaps with one berth.
func functional(ctx context.Context, e *env, r *results, crashes, hangs int, want func(string) bool, fail func(string, error)) {
	r.CrashOutageMS = map[string]any{}
	r.HangRecovery = map[string]any{}
	r.SwapFailed = map[string]any{}
	defaults := `  health: {path: /health, interval: 1s, timeout: 1s, failure_threshold: 3}
  restart: {initial_backoff: 100ms, max_backoff: 1m, reset_after: 10s}
  update: {min_healthy_time: 2s, healthy_deadline: 60s, drain_timeout: 60s}`
	var ch strings.Builder
	for _, name := range []string{"crash", "hang", "swap"} {
		fmt.Fprintf(&ch, "  - {name: %s, image: %s, version: \"1.0.0\", pull_policy: never, port: 8080}\n", name, e.repo)
	}
	inst, err := newBerthInstance(e, "f", defaults, ch.String())
	if err != nil {
		fail("functional config", err)
		return
	}
	defer cleanupAgent(e, inst)
	p, err := inst.start(ctx, 1)
	if err != nil {
		fail("start berth", err)
		return
	}
	defer func() { _ = p.stop(30 * time.Second) }()

	if want("crash") {
		crashOutage(ctx, e, r, p, inst.network, crashes, fail)
	}
	if want("hang") {
		hangRecovery(ctx, r, p, hangs, fail)
	}
	if want("swap") {
		swaps(ctx, e, r, p, fail)
	}
}

// crashOutage measures berth and Docker's restart policy, alternating, with
// more than 10 s between crashes so Docker's backoff resets each time. Docker
// runs the image twice: as `docker run --restart on-failure` does by default,
// and with the flags berth gives its containers, on berth's network, so the
// supervisors can be compared on the same container.
func crashOutage(ctx context.Context, e *env, r *results, p *berthProc, network string, crashes int, fail func(string, error)) {
	// The last container on a bridge takes the bridge down when it exits, and
	// bringing it up again added ~0.8 s to every restart of a lone container
	// here; an idle container keeps the default bridge up, as on any host
	// that runs more than one container.
	if _, err := docker(ctx, "run", "-d", "--name", "bb"+e.runID+"-anchor", "--label", e.label, e.repo+":1.0.0"); err != nil {
		fail("anchor container on the default bridge", err)
	}
	baselines := []struct {
		key   string
		flags []string
	}{
		{"docker_restart_policy", nil},
		{"docker_restart_policy_berth_flags", berthContainerFlags(network)},
	}
	bases := map[string]string{}
	for _, bl := range baselines {
		// A fixed host port: with an ephemeral one (127.0.0.1::8080) this
		// engine allocates a new host port on every restart, so clients
		// would lose it.
		port, err := freePort()
		if err == nil {
			flags := append([]string{"--restart", "on-failure", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port)}, bl.flags...)
			_, bases[bl.key], err = dockerRunBaseline(ctx, e, "bb"+e.runID+"-"+strings.ReplaceAll(bl.key, "_", "-"), e.repo+":1.0.0", flags...)
		}
		if err != nil {
			fail(bl.key+" baseline", err)
		}
	}
	samples := map[string][]float64{}
	var seen []outage
	for i := range crashes {
		if ctx.Err() != nil {
			return
		}
		if o, err := crashOnce(ctx, p.proxy+"/crash"); err != nil {
			fail("berth crash", err)
		} else {
			samples["berth"] = append(samples["berth"], ms(o.length()))
			seen = append(seen, o)
		}
		for _, bl := range baselines {
			if bases[bl.key] == "" {
				continue
			}
			if o, err := crashOnce(ctx, bases[bl.key]); err != nil {
				fail(bl.key+" crash", err)
			} else {
				samples[bl.key] = append(samples[bl.key], ms(o.length()))
			}
		}
		logf("crash %d: %v", i+1, samples)
		if i < crashes-1 {
			_ = sleepCtx(ctx, 11*time.Second)
		}
	}
	for k, v := range samples {
		if len(v) > 0 {
			r.CrashOutageMS[k] = median(v)
		}
	}
	if bd := crashBreakdown(p.logPath, "crash", seen); bd != nil {
		r.CrashOutageMS["berth_breakdown_ms"] = bd
	}
	r.CrashOutageMS["samples"] = samples
	r.CrashOutageMS["method"] = "median; GET /version every 5ms (250ms timeout, no keep-alive); outage = first failed poll after POST /admin/crash?code=1 → first 200; berth polled through its stable endpoint, Docker through the published port; docker_restart_policy: plain `docker run --restart on-failure` on the default bridge (kept up by an idle container); docker_restart_policy_berth_flags: the same with berth's container flags on berth's network"
}

// berthContainerFlags are the docker run flags for the container berth
// creates with the benchmark's config (see docker.createRequest).
func berthContainerFlags(network string) []string {
	return []string{"--network", network, "--init", "--ipc", "private", "--read-only",
		"--tmpfs", "/tmp:rw,noexec,nosuid,size=64m", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
		"--cpus", "1", "--memory", "1g", "--memory-swap", "1g", "--pids-limit", "512",
		"--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"}
}

// hangRecovery measures berth's recovery from a hung health endpoint.
func hangRecovery(ctx context.Context, r *results, p *berthProc, hangs int, fail func(string, error)) {
	var hs []float64
	for i := range hangs {
		if ctx.Err() != nil {
			return
		}
		if d, err := hangOnce(ctx, p.proxy+"/hang", 2*time.Minute); err != nil {
			fail("berth hang", err)
		} else {
			hs = append(hs, ms(d))
		}
		logf("hang %d: berth %v", i+1, hs)
		if i < hangs-1 {
			_ = sleepCtx(ctx, 11*time.Second)
		}
	}
	if len(hs) > 0 {
		r.HangRecovery["berth"] = median(hs)
	}
	r.HangRecovery["berth_samples"] = hs
	r.HangRecovery["method"] = "median for berth; POST /admin/hang (only /health stops answering) → first 200 from GET /health polled every 5ms (250ms timeout)"

}

// swaps changes the version under load: berth's swap and stop-first.
func swaps(ctx context.Context, e *env, r *results, p *berthProc, fail func(string, error)) {
	if br, err := berthSwap(ctx, p, "swap"); err != nil {
		fail("berth swap", err)
		r.SwapFailed["berth_blue_green_detail"] = br
	} else {
		r.SwapFailed["berth_blue_green"] = br.Failed
		r.SwapFailed["berth_blue_green_detail"] = br
	}
	logf("berth swap: %+v", r.SwapFailed["berth_blue_green_detail"])
	if sr, err := stopFirstSwap(ctx, e); err != nil {
		fail("stop-first swap", err)
		r.SwapFailed["stop_first_recreate_detail"] = sr
	} else {
		r.SwapFailed["stop_first_recreate"] = sr.Failed
		r.SwapFailed["stop_first_recreate_detail"] = sr
	}
	logf("stop-first: %+v", r.SwapFailed["stop_first_recreate_detail"])
}

var benchLine = regexp.MustCompile(`^Benchmark(Write|Verify)Checkpoint(/keep=1)?-\d+\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) MB/s`)

// checkpointBench runs statestore's checkpoint benchmarks (a store with 200
// challenges and 100000 events).
func checkpointBench(ctx context.Context) (map[string]any, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "XXX", "-bench", "Checkpoint", "-benchtime", "5x", "./statestore/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench: %v\n%s", err, out)
	}
	res := map[string]any{"challenges": 200, "events": 100000,
		"method": "go test -run XXX -bench Checkpoint -benchtime 5x ./statestore/ (BenchmarkWriteCheckpoint/keep=1, BenchmarkVerifyCheckpoint; store filled with 200 challenges and 100000 events by the benchmark); bytes derived from the reported MB/s × ns/op"}
	for _, line := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		mbps, _ := strconv.ParseFloat(m[4], 64)
		switch m[1] {
		case "Write":
			res["write_ms"] = round(ns/1e6, 2)
			res["bytes"] = int64(mbps * 1e6 * ns / 1e9)
		case "Verify":
			res["verify_ms"] = round(ns/1e6, 2)
		}
	}
	if res["write_ms"] == nil || res["verify_ms"] == nil {
		return res, fmt.Errorf("could not parse the benchmark output:\n%s", out)
	}
	return res, nil
}

func machine(ctx context.Context) map[string]string {
	m := map[string]string{"nproc": strconv.Itoa(runtime.NumCPU()), "goos_goarch": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m["memory"] = fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if v, err := docker(ctx, "version", "--format", "server {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}"); err == nil {
		m["docker"] = v
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m["go"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "uname", "-sr").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	return m
}
