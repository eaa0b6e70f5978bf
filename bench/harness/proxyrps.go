package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxySpeed is the proxy_rps and proxy_p99_added_ms rows: requests per
// second through berth's stable endpoint and through nginx against the
// same container served directly, measured with wrk in turns.
type proxySpeed struct {
	RPS        map[string]float64   `json:"proxy_rps"`          // berth, nginx, nginx_one_worker, direct: median of the rounds
	P99MS      map[string]float64   `json:"p99_ms"`             // the same targets: median of the rounds
	P99AddedMS map[string]float64   `json:"proxy_p99_added_ms"` // the proxies: p99 minus direct's p99, median of the rounds
	Samples    map[string][]wrkStat `json:"samples"`
	Method     string               `json:"method"`
}

// wrkStat is what one wrk run reports.
type wrkStat struct {
	RPS   float64 `json:"rps"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// Errors counts socket errors and non-2xx/3xx answers; a run with any
	// is not a fair figure and fails the phase.
	Errors int `json:"errors"`
}

// Load shape: the same for every target, one after the other per round, so
// a slow spell of the machine hits all three alike.
const (
	wrkConns   = 16
	wrkThreads = 2
	wrkWarmup  = 3 * time.Second
)

// proxyBench measures berth's stable endpoint, nginx as a reverse proxy with
// a keepalive upstream, and the container directly.
func proxyBench(ctx context.Context, e *env, r *results, quick bool, fail func(string, error)) {
	rounds, dur := 5, 15*time.Second
	if quick {
		rounds, dur = 3, 10*time.Second
	}
	installed, err := ensureTools(ctx)
	if err != nil {
		fail("proxy: installing nginx and wrk", err)
		return
	}
	if installed != "" {
		r.Notes = append(r.Notes, "the proxy phase installed "+installed+" from Debian (apt-get install -y, non-interactive)")
	}
	defaults := `  health: {path: /health, interval: 1s, timeout: 1s, failure_threshold: 3}`
	challenges := fmt.Sprintf("  - {name: rps, image: %s, version: \"1.0.0\", pull_policy: never, port: 8080}\n", e.repo)
	inst, err := newBerthInstance(e, "p", defaults, challenges)
	if err != nil {
		fail("proxy config", err)
		return
	}
	defer cleanupAgent(e, inst)
	p, err := inst.start(ctx, 1)
	if err != nil {
		fail("proxy: start berth", err)
		return
	}
	defer func() { _ = p.stop(30 * time.Second) }()
	berthURL := p.proxy + "/rps/version"
	if err := waitOK(ctx, berthURL, 60*time.Second); err != nil {
		fail("proxy: challenge serving", err)
		return
	}
	var st struct {
		Upstream string `json:"upstream"`
	}
	if err := getJSON(ctx, p.api+"/v1/challenges/rps", &st); err != nil || st.Upstream == "" {
		fail("proxy: the challenge's upstream", fmt.Errorf("%v (upstream %q)", err, st.Upstream))
		return
	}
	ng, err := startNginx(ctx, e, "auto", strings.TrimPrefix(st.Upstream, "http://"))
	if err != nil {
		fail("proxy: start nginx", err)
		return
	}
	defer ng.stop()
	// berth runs on half the CPUs (one thread here); nginx with one worker
	// is the like-for-like figure beside Debian's default.
	ng1, err := startNginx(ctx, e, "1", strings.TrimPrefix(st.Upstream, "http://"))
	if err != nil {
		fail("proxy: start nginx with one worker", err)
		return
	}
	defer ng1.stop()
	targets := []struct{ key, url string }{
		{"direct", st.Upstream + "/version"},
		{"nginx", ng.base + "/rps/version"},
		{"berth", berthURL},
		{"nginx_one_worker", ng1.base + "/rps/version"},
	}
	for _, t := range targets {
		if err := waitOK(ctx, t.url, 10*time.Second); err != nil {
			fail("proxy: "+t.key+" not answering", err)
			return
		}
	}
	res := &proxySpeed{RPS: map[string]float64{}, P99MS: map[string]float64{}, P99AddedMS: map[string]float64{}, Samples: map[string][]wrkStat{}}
	added := map[string][]float64{}
	for i := range rounds {
		turn := map[string]wrkStat{}
		// Each round in another order, so a busy spell of the machine does
		// not always fall on the same target.
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			if ctx.Err() != nil {
				return
			}
			if _, err := runWrk(ctx, t.url, wrkWarmup); err != nil {
				fail("proxy: wrk warm-up of "+t.key, err)
				return
			}
			s, err := runWrk(ctx, t.url, dur)
			if err == nil && s.Errors > 0 {
				err = fmt.Errorf("%d socket errors or non-2xx answers", s.Errors)
			}
			if err != nil {
				fail("proxy: wrk "+t.key, err)
				return
			}
			res.Samples[t.key] = append(res.Samples[t.key], s)
			turn[t.key] = s
		}
		for _, k := range []string{"berth", "nginx", "nginx_one_worker"} {
			added[k] = append(added[k], round(turn[k].P99MS-turn["direct"].P99MS, 2))
		}
		logf("proxy round %d: %+v", i+1, res.Samples)
	}
	for k, ss := range res.Samples {
		var rps, p99 []float64
		for _, s := range ss {
			rps, p99 = append(rps, s.RPS), append(p99, s.P99MS)
		}
		res.RPS[k], res.P99MS[k] = round(median(rps), 0), round(median(p99), 2)
	}
	for k, v := range added {
		res.P99AddedMS[k] = round(median(v), 2)
	}
	res.Method = fmt.Sprintf("wrk --latency -c %d -t %d -d %s GET /version of the test challenge, %d rounds, each round direct, nginx, berth and nginx with one worker in turn (the order rotated each round), each after a %s warm-up run; figures are medians of the rounds; "+
		"direct: the container's published loopback port (berth's upstream for it); nginx: Debian's nginx (installed by the harness when missing), worker_processes auto (Debian's default; nginx_one_worker: 1), an upstream block with keepalive 64, proxy_http_version 1.1, "+
		"the Connection header cleared, Host and X-Forwarded-For/-Proto set, /rps/ stripped like berth's /<challenge>/ prefix, access_log off (berth writes no access log either); "+
		"berth: its stable endpoint /rps/version, on its default of half the CPUs' threads (GOMAXPROCS %d here); p99 added = p99 of the proxy minus p99 of direct in the same round",
		wrkConns, wrkThreads, dur, rounds, wrkWarmup, max(1, runtime.NumCPU()/2))
	r.Proxy = res
}

// ensureTools installs nginx and wrk from Debian when they are missing, and
// says what it installed.
func ensureTools(ctx context.Context) (string, error) {
	var missing []string
	for bin, pkg := range map[string]string{"nginx": "nginx-light", "wrk": "wrk"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	install := func(pkgs ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(pkgs, " "), err, lastLines(string(out), 5))
		}
		return nil
	}
	err := install(missing...)
	if err != nil {
		// A fresh machine may have no package lists yet.
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %v: %s", uerr, lastLines(string(out), 5))
		}
		err = install(missing...)
	}
	if err != nil {
		// nginx-light is gone from newer Debian releases; nginx is the same server.
		for i, m := range missing {
			if m == "nginx-light" {
				missing[i] = "nginx"
			}
		}
		if err2 := install(missing...); err2 != nil {
			return "", errors.Join(err, err2)
		}
	}
	return strings.Join(missing, " and "), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// nginxProc is nginx in the foreground on its own config in the scratch dir.
type nginxProc struct {
	cmd  *exec.Cmd
	done chan error
	base string
}

// startNginx runs nginx as a reverse proxy to upstream (host:port) on a free
// loopback port, with the configuration an operator would write for it.
func startNginx(ctx context.Context, e *env, workers, upstream string) (*nginxProc, error) {
	dir := filepath.Join(e.workDir, "nginx-"+workers)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes %[4]s;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream challenge {
    server %[2]s;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:%[3]d;
    location /rps/ {
      proxy_pass http://challenge/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, upstream, port, workers)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	n := &nginxProc{cmd: cmd, done: make(chan error, 1), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	go func() { n.done <- cmd.Wait(); out.Close() }()
	if pf, err := os.OpenFile(e.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(pf, cmd.Process.Pid)
		pf.Close()
	}
	err = waitUntil(ctx, 10*time.Second, 20*time.Millisecond, "nginx listening", func() (bool, error) {
		select {
		case err := <-n.done:
			n.done <- err
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return false, fmt.Errorf("nginx exited: %v: %s", err, lastLines(string(b), 5))
		default:
		}
		_, _, err := get(ctx, http.DefaultClient, n.base+"/", time.Second)
		return err == nil, err
	})
	if err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// stop asks nginx to quit (SIGQUIT: graceful) and kills it after 5 s.
func (n *nginxProc) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

var (
	wrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkSocket  = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)`)
	wrkToMilli = map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}
)

// runWrk loads url for d and parses wrk's summary.
func runWrk(ctx context.Context, url string, d time.Duration) (wrkStat, error) {
	cmd := exec.CommandContext(ctx, "wrk", "--latency", "-c", strconv.Itoa(wrkConns), "-t", strconv.Itoa(wrkThreads),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--timeout", "10s", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkStat{}, fmt.Errorf("wrk: %v: %s", err, lastLines(string(out), 5))
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkStat, error) {
	var s wrkStat
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return s, fmt.Errorf("no Requests/sec in wrk's output: %s", lastLines(out, 5))
	}
	s.RPS, _ = strconv.ParseFloat(m[1], 64)
	s.RPS = round(s.RPS, 0)
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		v = round(v*wrkToMilli[p[3]], 3)
		if p[1] == "50" {
			s.P50MS = v
		} else {
			s.P99MS = v
		}
	}
	if s.P99MS == 0 {
		return s, fmt.Errorf("no 99%% latency in wrk's output (is --latency passed?): %s", lastLines(out, 8))
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, f := range m[1:] {
			n, _ := strconv.Atoi(f)
			s.Errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		s.Errors += n
	}
	return s, nil
}
