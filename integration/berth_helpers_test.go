package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/agent"
	"berth/configs"
	"berth/integration/testenv"
	"berth/statestore"
)

// berthConfig writes a config for agentID with the given challenges YAML and
// returns its path. Listeners use port 0.
func berthConfig(t testing.TB, agentID, challengesYAML string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`agent:
  id: %s
  data_dir: %s
  network: %s
  api: {listen: "127.0.0.1:0"}
  proxy: {listen: "127.0.0.1:0"}
  log: {level: debug}
challenges:
%s`, agentID, filepath.Join(dir, "data"), testenv.NetworkName(agentID), challengesYAML)
	path := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runningAgent is berth running in this test process.
type runningAgent struct {
	agent  *agent.Agent
	api    string // http://host:port
	proxy  string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	once   sync.Once
}

// startAgent runs berth in-process on configPath until the test ends.
func startAgent(t testing.TB, configPath string) *runningAgent {
	t.Helper()
	cfg, err := configs.Load(configPath)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	logs := &syncBuffer{}
	log, err := agent.NewLogger(logs, "debug", "json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{Logger: log, Version: "test"})
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{agent: a, api: "http://" + a.APIAddr(), proxy: "http://" + a.ProxyAddr(), cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		ra.stop(t)
		if t.Failed() {
			t.Logf("berth log:\n%s", logs.String())
		}
	})
	return ra
}

// stop shuts the agent down and waits for Run to return.
func (ra *runningAgent) stop(t testing.TB) {
	t.Helper()
	ra.once.Do(func() {
		ra.cancel()
		select {
		case err := <-ra.done:
			if err != nil {
				t.Errorf("agent.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30s")
		}
	})
}

type challengeView struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	Digest        string `json:"digest"`
	State         string `json:"state"`
	Health        string `json:"health"`
	ContainerID   string `json:"container_id"`
	ContainerName string `json:"container_name"`
	Restarts      int    `json:"restarts"`
	LastExitCode  *int   `json:"last_exit_code"`
	Endpoint      string `json:"endpoint"`
	Upstream      string `json:"upstream"`
}

func challengeStatus(t testing.TB, api, name string) (challengeView, error) {
	t.Helper()
	var v challengeView
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, err := testenv.GetJSON(ctx, api+"/v1/challenges/"+name, &v)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	return v, err
}

// waitServing waits until the challenge is running and healthy and returns its view.
func waitServing(t testing.TB, api, name string, timeout time.Duration, extra func(challengeView) bool) challengeView {
	t.Helper()
	var last challengeView
	testenv.WaitFor(t, timeout, name+" running and healthy", func() (bool, error) {
		v, err := challengeStatus(t, api, name)
		if err != nil {
			return false, err
		}
		last = v
		ok := v.State == "running" && v.Health == "healthy" && (extra == nil || extra(v))
		if !ok {
			return false, fmt.Errorf("state %s health %s restarts %d", v.State, v.Health, v.Restarts)
		}
		return true, nil
	})
	return last
}

func events(t testing.TB, api, challenge string) []statestore.Event {
	t.Helper()
	resp, err := http.Get(api + "/v1/events?challenge=" + challenge)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	defer resp.Body.Close()
	var out []statestore.Event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev statestore.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

func findEvent(evs []statestore.Event, typ string) (statestore.Event, bool) {
	for _, ev := range evs {
		if ev.Type == typ {
			return ev, true
		}
	}
	return statestore.Event{}, false
}

// getBody GETs url and returns status and body.
func getBody(t testing.TB, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var berthBinary struct {
	once sync.Once
	path string
	err  error
}

// buildBerth builds cmd/berth once per test process.
func buildBerth(t testing.TB) string {
	t.Helper()
	berthBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			berthBinary.err = err
			return
		}
		berthBinary.path = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBinary.path, "berth/cmd/berth")
		out, err := cmd.CombinedOutput()
		if err != nil {
			berthBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if berthBinary.err != nil {
		t.Fatal(berthBinary.err)
	}
	return berthBinary.path
}

// berthProcess is berth running as its own process.
type berthProcess struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	api    string
	proxy  string
	exited chan struct{}
}

// startBerthProcess runs `berth run --config path` and waits for its listeners.
func startBerthProcess(t testing.TB, configPath string) *berthProcess {
	t.Helper()
	cmd := exec.Command(buildBerth(t), "run", "--config", configPath)
	p := &berthProcess{cmd: cmd, stdout: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("berth output:\n%s", p.stdout.String())
		}
	})
	testenv.WaitFor(t, 20*time.Second, "berth to log its listen addresses", func() (bool, error) {
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			var l struct{ Message, API, Proxy string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Message == "berth starting" {
				p.api, p.proxy = "http://"+l.API, "http://"+l.Proxy
				return true, nil
			}
		}
		select {
		case <-p.exited:
			return false, fmt.Errorf("berth exited: %s", p.stdout.String())
		default:
		}
		return false, nil
	})
	return p
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rewriteConfig replaces old with new once in the config file at path.
func rewriteConfig(t testing.TB, path, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("config %s lacks %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
