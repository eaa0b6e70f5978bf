package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is what the script hands the harness.
type env struct {
	berthBin string
	repo     string // challenge image repository (tags 1.0.0 and 1.1.0)
	hcImage  string // the same program with a HEALTHCHECK using /probe
	runID    string
	label    string // io.berth.bench=<runID>
	workDir  string
	pidFile  string
	clkTck   float64
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// docker runs the docker CLI and returns its trimmed stdout.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(x float64, digits int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', digits, 64), 64)
	return f
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// get returns the status and body of GET url under timeout.
func get(ctx context.Context, c *http.Client, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func post(ctx context.Context, url, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func getJSON(ctx context.Context, url string, v any) error {
	status, b, err := get(ctx, http.DefaultClient, url, 10*time.Second)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, status, b)
	}
	return json.Unmarshal(b, v)
}

// waitUntil polls cond every interval until it is true, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s (last: %v)", what, timeout, last)
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return err
		}
	}
}

// berthProc is one `berth run` process.
type berthProc struct {
	cmd     *exec.Cmd
	api     string
	proxy   string
	done    chan error
	logPath string
}

// berthInstance is a generated config plus the ports it listens on.
type berthInstance struct {
	env     *env
	agentID string
	network string
	dir     string
	config  string
	api     string
	proxy   string
}

func newBerthInstance(e *env, suffix, defaults, challenges string) (*berthInstance, error) {
	b := &berthInstance{env: e, agentID: "bb" + e.runID + "-" + suffix, network: "bb-" + e.runID + "-" + suffix}
	b.dir = filepath.Join(e.workDir, suffix)
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	proxyPort, err := freePort()
	if err != nil {
		return nil, err
	}
	b.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	b.proxy = fmt.Sprintf("http://127.0.0.1:%d", proxyPort)
	cfg := fmt.Sprintf(`agent:
  id: %s
  data_dir: %s
  network: %s
  api: {listen: "127.0.0.1:%d"}
  proxy: {listen: "127.0.0.1:%d"}
  log: {level: info, format: json}
defaults:
%s
challenges:
%s`, b.agentID, filepath.Join(b.dir, "data"), b.network, apiPort, proxyPort, defaults, challenges)
	b.config = filepath.Join(b.dir, "berth.yaml")
	return b, os.WriteFile(b.config, []byte(cfg), 0o600)
}

// start runs berth on the instance's config and waits for /healthz.
func (b *berthInstance) start(ctx context.Context, n int) (*berthProc, error) {
	logPath := filepath.Join(b.dir, fmt.Sprintf("berth-%d.log", n))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.env.berthBin, "run", "--config", b.config)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &berthProc{cmd: cmd, api: b.api, proxy: b.proxy, done: make(chan error, 1), logPath: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	if pf, err := os.OpenFile(b.env.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(pf, cmd.Process.Pid)
		pf.Close()
	}
	err = waitUntil(ctx, 60*time.Second, 20*time.Millisecond, "berth /healthz", func() (bool, error) {
		select {
		case err := <-p.done:
			p.done <- err
			return false, fmt.Errorf("berth exited: %v (log %s)", err, logPath)
		default:
		}
		status, _, err := get(ctx, http.DefaultClient, b.api+"/healthz", time.Second)
		return err == nil && status == http.StatusOK, err
	})
	if err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// stop sends SIGTERM and waits up to timeout for berth to exit.
func (p *berthProc) stop(timeout time.Duration) error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		p.kill()
		return errors.New("berth did not exit after SIGTERM; killed")
	}
}

func (p *berthProc) kill() {
	_ = p.cmd.Process.Kill()
}

// challengeStatus is the part of berth's challenge view the harness reads.
type challengeStatus struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	State       string `json:"state"`
	Health      string `json:"health"`
	ContainerID string `json:"container_id"`
	Restarts    int    `json:"restarts"`
	Swap        *struct {
		Phase string `json:"phase"`
		Error string `json:"error"`
	} `json:"swap"`
}

func (c challengeStatus) serving() bool { return c.State == "running" && c.Health == "healthy" }

func listChallenges(ctx context.Context, api string) ([]challengeStatus, error) {
	var out []challengeStatus
	err := getJSON(ctx, api+"/v1/challenges", &out)
	return out, err
}

// metricSum sums every sample of metric in berth's /metrics, and returns the
// per-label-set values too.
func metricSum(ctx context.Context, api, metric string) (float64, map[string]float64, error) {
	status, b, err := get(ctx, http.DefaultClient, api+"/metrics", 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	if status != http.StatusOK {
		return 0, nil, fmt.Errorf("/metrics: status %d", status)
	}
	var sum float64
	by := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		sum += v
		by[strings.TrimSpace(line[len(metric):i])] = v
	}
	return sum, by, sc.Err()
}

// procCPU returns utime+stime of pid in seconds.
func procCPU(pid int, clkTck float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	fields := strings.Fields(s[i+2:])
	// fields[0] is field 3 (state); utime is field 14, stime 15.
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / clkTck, nil
}

// procRSSMB returns VmRSS of pid in MiB.
func procRSSMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
