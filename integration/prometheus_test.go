package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"berth/integration/testenv"
)

// promServer is a real Prometheus the test started, scraping berth.
type promServer struct {
	url string
	out *syncBuffer
}

// startPrometheus runs Prometheus scraping target (host:port) as job
// "berth" every second and evaluating ruleFile every second, until the test
// ends.
func startPrometheus(t testing.TB, target, ruleFile string) *promServer {
	t.Helper()
	bin := requireTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: berth
    static_configs: [{targets: [%q]}]
`, ruleFile, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.WaitDelay = 5 * time.Second
	p := &promServer{url: "http://" + addr, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	testenv.WaitFor(t, 30*time.Second, "prometheus to be ready", func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("prometheus exited: %s", p.out.String())
		default:
		}
		status, err := testenv.GetJSON(context.Background(), p.url+"/-/ready", nil)
		return status == http.StatusOK, err
	})
	return p
}

// promSample is one element of an instant query's vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr now; a PromQL error is returned, not fatal.
func (p *promServer) query(expr string) ([]promSample, error) {
	var out struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := testenv.GetJSON(ctx, p.url+"/api/v1/query?query="+url.QueryEscape(expr), &out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", expr, out.ErrorType, out.Error)
	}
	if out.Data.ResultType == "scalar" {
		return []promSample{{}}, nil
	}
	return out.Data.Result, nil
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
