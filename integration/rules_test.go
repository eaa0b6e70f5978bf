package integration_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"berth/integration/testenv"
)

// The alert rules and the Grafana dashboard shipped in deploy/ (SPEC §9).
const (
	rulesFile     = "../deploy/prometheus/berth-rules.yml"
	rulesTestFile = "../deploy/prometheus/berth-rules.test.yml"
	dashboardFile = "../deploy/grafana/berth-dashboard.json"
)

// TestRulesPassPromtool: the rules are valid and their unit tests (series
// named and labelled as berth exports them) pass.
func TestRulesPassPromtool(t *testing.T) {
	promtool := requireTool(t, "prometheus", "promtool")
	for _, args := range [][]string{{"check", "rules", filepath.Base(rulesFile)}, {"test", "rules", filepath.Base(rulesTestFile)}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(rulesFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

type dashboard struct {
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t testing.TB) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars stands in for the dashboard's variables as Grafana would
// expand them with "All" selected.
var grafanaVars = strings.NewReplacer("$challenge", ".*", "$instance", ".*", "$__rate_interval", "30s")

// TestRulesAgainstRunningBerth runs a real Prometheus against a running
// berth whose challenges crash, fail their probes and fail a swap, then cuts
// its Docker Engine off and stops it: each alert's expression must pick out
// exactly the challenge (or berth) in trouble, every rule must evaluate
// without error, and every dashboard query must run and the main ones show
// data. Metric names used by the rules and the dashboard must all be in the
// real scrape.
func TestRulesAgainstRunningBerth(t *testing.T) {
	testenv.RequireDocker(t)
	requireTool(t, "prometheus", "prometheus")
	rulesPath, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rules := loadRules(t)
	dash := loadDashboard(t)

	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "2.0.0", map[string]string{"HEALTH_FAIL": "1"})
	reg.PushChallenge(t, "berth-it/crashy", "1.0.0", map[string]string{"CRASH_AFTER_MS": "300"})
	reg.PushChallenge(t, "berth-it/sick", "1.0.0", map[string]string{"HEALTH_FAIL": "1"})
	sock := testenv.StartSocketProxy(t)
	entry := func(name, repo, restart string) string {
		return fmt.Sprintf(`  - name: %s
    image: %s/%s
    version: "1.0.0"
    pull_policy: always
    port: 8080
    health: {path: /health, interval: 500ms, timeout: 1s, start_period: 1s, start_interval: 100ms, failure_threshold: 1}
    restart: {initial_backoff: 100ms, max_backoff: 1s, stop_timeout: 2s, max_restarts: 0, %s}
    update: {healthy_deadline: 4s, min_healthy_time: 1s}
    resources: {cpus: 0.5, memory: 64m, pids: 64}
`, name, reg.Host, repo, restart)
	}
	cfg := berthConfig(t, id, entry("steady", "berth-it/echo", "on_unhealthy: true")+
		entry("crashy", "berth-it/crashy", "on_unhealthy: true")+entry("sick", "berth-it/sick", "on_unhealthy: false"))
	cfg = rewriteConfig(t, cfg, "  network:", "  docker_host: "+sock.Host()+"\n  network:")
	ra := startAgent(t, cfg)
	api, _ := url.Parse(ra.api)
	prom := startPrometheus(t, api.Host, rulesPath)

	waitServing(t, ra.api, "steady", 60*time.Second, nil)
	for range 5 {
		getBody(t, ra.proxy+"/steady/version")
	}
	// increase() needs a sample from before the swap fails: wait until
	// Prometheus has scraped the counter at zero.
	testenv.WaitFor(t, 30*time.Second, "Prometheus to scrape berth_swaps_total before the swap", func() (bool, error) {
		res, err := prom.query(`berth_swaps_total{challenge="steady",result="failed"} == 0`)
		return err == nil && len(res) == 1, err
	})
	if status := testenv.HTTPPost(t, ra.api+"/v1/challenges/steady/swap", `{"version":"2.0.0"}`); status != 202 {
		t.Fatalf("swap: %d", status)
	}
	testenv.WaitFor(t, 60*time.Second, "the swap to the unhealthy 2.0.0 to fail", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "steady"), "swap_failed")
		return ok, nil
	})

	// Scraped names: every berth_ series the rules and dashboard use exists.
	_, scrape := getBody(t, ra.api+"/metrics")
	var used []string
	for _, e := range rules {
		used = append(used, e)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			used = append(used, tg.Expr)
		}
	}
	for _, name := range regexp.MustCompile(`berth_[a-z_]+`).FindAllString(strings.Join(used, "\n"), -1) {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !strings.Contains(scrape, "# TYPE "+family+" ") {
			t.Errorf("%s is used by the rules or the dashboard but berth does not export it", name)
		}
	}

	challengesOf := func(alert string) ([]string, error) {
		res, err := prom.query(rules[alert])
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range res {
			out = append(out, s.Metric["challenge"])
		}
		slices.Sort(out)
		return out, nil
	}
	expect := func(alert string, want ...string) func() (bool, error) {
		return func() (bool, error) {
			got, err := challengesOf(alert)
			if err != nil {
				return false, err
			}
			return slices.Equal(got, want), fmt.Errorf("%s matches %q, want %q", alert, got, want)
		}
	}
	testenv.WaitFor(t, 60*time.Second, "the crash loop to show", expect("BerthChallengeCrashLooping", "crashy"))
	for alert, want := range map[string][]string{
		"BerthSwapFailed":         {"steady"},
		"BerthSwapRolledBack":     nil,
		"BerthCheckpointTooOld":   nil,
		"BerthDockerDisconnected": nil,
		"BerthDown":               nil,
	} {
		testenv.WaitFor(t, 30*time.Second, alert, expect(alert, want...))
	}
	// crashy may be between two crashes; sick never serves, steady always does.
	for _, alert := range []string{"BerthChallengeDown", "BerthChallengeUnhealthy"} {
		testenv.WaitFor(t, 30*time.Second, alert, func() (bool, error) {
			got, err := challengesOf(alert)
			return err == nil && slices.Contains(got, "sick") && !slices.Contains(got, "steady"), fmt.Errorf("%s: %q %v", alert, got, err)
		})
	}

	// Prometheus itself evaluates every rule without error, and holds the
	// alert for sick (pending until its for: passes).
	testenv.WaitFor(t, 30*time.Second, "the rules to evaluate cleanly", func() (bool, error) {
		var out struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
						Alerts                  []struct {
							Labels map[string]string
							State  string
						}
					}
				}
			}
		}
		if _, err := testenv.GetJSON(t.Context(), prom.url+"/api/v1/rules", &out); err != nil {
			return false, err
		}
		n, sickHeld := 0, false
		for _, g := range out.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					return false, fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
				for _, a := range r.Alerts {
					sickHeld = sickHeld || (r.Name == "BerthChallengeDown" && a.Labels["challenge"] == "sick")
				}
			}
		}
		return n == len(rules) && sickHeld, fmt.Errorf("%d of %d rules loaded; sick's alert held: %v", n, len(rules), sickHeld)
	})

	// Every dashboard query runs; the main panels show data.
	withData := []string{"Challenges up", "Unhealthy", "Docker Engine", "Checkpoint age", "berth", "Challenge up",
		"Challenges by health", "Restarts by cause", "Health probe latency (p50, p99)", "Failed health probes",
		"Versions", "Swaps by result", "Requests by code", "Latency (p50, p99)", "In-flight requests",
		"Docker Engine connected", "Docker API requests", "Image pull time"}
	testenv.WaitFor(t, 30*time.Second, "the dashboard's panels to show data", func() (bool, error) {
		for _, p := range dash.Panels {
			empty := true
			for _, tg := range p.Targets {
				res, err := prom.query(grafanaVars.Replace(tg.Expr))
				if err != nil {
					t.Fatalf("panel %q: %v", p.Title, err)
				}
				empty = empty && len(res) == 0
			}
			if empty && slices.Contains(withData, p.Title) {
				return false, fmt.Errorf("panel %q shows no data", p.Title)
			}
		}
		return true, nil
	})
	if !slices.ContainsFunc(dash.Templating.List, func(v struct {
		Name string `json:"name"`
	}) bool {
		return v.Name == "challenge"
	}) {
		t.Error("the dashboard has no challenge variable")
	}

	sock.Cut()
	testenv.WaitFor(t, 60*time.Second, "BerthDockerDisconnected", func() (bool, error) {
		res, err := prom.query(rules["BerthDockerDisconnected"])
		return len(res) == 1, err
	})
	sock.Restore()
	ra.stop(t)
	testenv.WaitFor(t, 30*time.Second, "BerthDown", func() (bool, error) {
		res, err := prom.query(rules["BerthDown"])
		return len(res) == 1 && res[0].Metric["job"] == "berth", err
	})
}
