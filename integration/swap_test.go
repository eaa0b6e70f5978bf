package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
	"berth/internal/loadgen"
)

// swapYAML is a challenge tuned for swap tests.
func swapYAML(name, image, version, update string) string {
	return fmt.Sprintf(`  - name: %s
    image: %s
    version: %q
    port: 8080
    state: {export: /state, import: /state}
    health: {path: /health, interval: 300ms, timeout: 1s, failure_threshold: 2, start_period: 10s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, stop_timeout: 2s}
    update: {%s}
`, name, image, version, update)
}

// startLoad runs loadgen.StartLoad until the test ends.
func startLoad(t testing.TB, base string, short, long int) *loadgen.Load {
	t.Helper()
	l := loadgen.StartLoad(base, short, long)
	t.Cleanup(func() { l.Finish() })
	return l
}

func waitSwapEnd(t testing.TB, api, name string, timeout time.Duration) map[string]any {
	t.Helper()
	var swap map[string]any
	testenv.WaitFor(t, timeout, name+" swap to finish", func() (bool, error) {
		var v map[string]any
		if status := testenv.HTTPGetJSON(t, api+"/v1/challenges/"+name, &v); status != http.StatusOK {
			return false, fmt.Errorf("status %d", status)
		}
		s, _ := v["swap"].(map[string]any)
		swap = s
		if s == nil {
			return false, fmt.Errorf("no swap")
		}
		phase := s["phase"]
		return phase == "completed" || phase == "rolled_back" || phase == "failed", fmt.Errorf("phase %v", phase)
	})
	return swap
}

func postSwap(t testing.TB, api, name, version string) map[string]any {
	t.Helper()
	resp, err := http.Post(api+"/v1/challenges/"+name+"/swap", "application/json", strings.NewReader(`{"version":"`+version+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST swap %s: %d %s", version, resp.StatusCode, b)
	}
	var out map[string]any
	_ = jsonUnmarshal(b, &out)
	return out
}

func TestSwapUnderLoadHasZeroFailedRequestsAndCarriesState(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "healthy_deadline: 30s, min_healthy_time: 1s, drain_timeout: 60s, keep_previous: 10m"))
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	if status := testenv.HTTPPost(t, ra.proxy+"/svc/state", "carry-me"); status != http.StatusOK {
		t.Fatalf("POST /state: %d", status)
	}

	l := startLoad(t, ra.proxy+"/svc", 6, 3)
	time.Sleep(2 * time.Second) // steady load before the swap; not a timing assertion
	ans := postSwap(t, ra.api, "svc", "1.1.0")
	if ans["from"] != "1.0.0" || ans["to"] != "1.1.0" || ans["swap_id"] == "" {
		t.Errorf("swap answer %v", ans)
	}
	swap := waitSwapEnd(t, ra.api, "svc", 2*time.Minute)
	time.Sleep(time.Second)
	res := l.Finish()
	if swap["phase"] != "completed" {
		t.Fatalf("swap ended in %v: %v", swap["phase"], swap["error"])
	}
	t.Logf("%d requests during the swap, %d failed", res.Requests, res.Failed)
	if res.Failed != 0 {
		t.Errorf("%d failed requests during the swap: %v", res.Failed, res.Errors)
	}
	if first, last := res.FirstVersion, res.LastVersion; first != "1.0.0" || last != "1.1.0" {
		t.Errorf("responses moved from %s to %s, want 1.0.0 → 1.1.0", first, last)
	}
	after, _ := challengeStatus(t, ra.api, "svc")
	if after.Version != "1.1.0" || after.ContainerID == before.ContainerID {
		t.Errorf("after swap: %+v", after)
	}
	var full map[string]any
	testenv.HTTPGetJSON(t, ra.api+"/v1/challenges/svc", &full)
	if full["previous_version"] != "1.0.0" {
		t.Errorf("previous_version %v, want 1.0.0", full["previous_version"])
	}
	if _, body := getBody(t, ra.proxy+"/svc/state"); body != "carry-me" {
		t.Errorf("state after swap %q, want carry-me", body)
	}
	// The previous container is kept, stopped, for a fast rollback.
	old := testenv.DockerInspect(t, before.ContainerID)["State"].(map[string]any)
	if old["Running"] != false {
		t.Errorf("previous container still running after the drain")
	}
	for _, typ := range []string{"swap_started", "swap_phase", "swap_completed"} {
		if _, ok := findEvent(events(t, ra.api, "svc"), typ); !ok {
			t.Errorf("no %s event", typ)
		}
	}

	// A swap to the running version is a no-op; a second swap while none runs is fine.
	postSwap(t, ra.api, "svc", "1.1.0")
	if s := waitSwapEnd(t, ra.api, "svc", 30*time.Second); s["phase"] != "completed" {
		t.Errorf("no-op swap ended in %v", s["phase"])
	}
	if v, _ := challengeStatus(t, ra.api, "svc"); v.ContainerID != after.ContainerID {
		t.Error("no-op swap replaced the container")
	}

	// The API-set version stands across a berth restart, and the stable
	// endpoint points at the new container from the first moment.
	swapped, _ := challengeStatus(t, ra.api, "svc")
	ra.stop(t)
	ra2 := startAgent(t, cfg)
	var initial challengeView
	testenv.WaitFor(t, 10*time.Second, "the API after restart", func() (bool, error) {
		v, err := challengeStatus(t, ra2.api, "svc")
		initial = v
		return err == nil, err
	})
	if initial.Upstream != swapped.Upstream {
		t.Errorf("right after restart the proxy routes to %q, want the swapped-in %q", initial.Upstream, swapped.Upstream)
	}
	again := waitServing(t, ra2.api, "svc", 30*time.Second, nil)
	if again.Version != "1.1.0" || again.ContainerID != after.ContainerID {
		t.Errorf("after restart: version %s container %s, want 1.1.0 on %s", again.Version, again.ContainerID, after.ContainerID)
	}

	// Rollback through the CLI returns to 1.0.0 by restarting the kept container;
	// --drain waits until the swap has ended, when swap_rolled_back is recorded.
	code, out := runCLI(t, []string{"BERTH_ADDR=" + ra2.api}, "rollback", "svc", "--wait", "--drain")
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	back, _ := challengeStatus(t, ra2.api, "svc")
	if back.Version != "1.0.0" || back.ContainerID != before.ContainerID {
		t.Errorf("after rollback: version %s container %s, want 1.0.0 on the kept %s", back.Version, back.ContainerID, before.ContainerID)
	}
	if _, ok := findEvent(events(t, ra2.api, "svc"), "swap_rolled_back"); !ok {
		t.Error("no swap_rolled_back event")
	}
}

func TestSwapToNeverHealthyVersionRollsBackWithoutFailures(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "2.0.0", map[string]string{"HEALTH_FAIL": "1"})
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "healthy_deadline: 4s, min_healthy_time: 500ms")))
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	l := startLoad(t, ra.proxy+"/svc", 4, 1)
	postSwap(t, ra.api, "svc", "2.0.0")
	swap := waitSwapEnd(t, ra.api, "svc", time.Minute)
	res := l.Finish()
	if swap["phase"] != "rolled_back" || !strings.Contains(fmt.Sprint(swap["error"]), "healthy_deadline") {
		t.Errorf("swap %v, want rolled_back with a healthy_deadline error", swap)
	}
	if res.Failed != 0 {
		t.Errorf("%d failed requests: %v", res.Failed, res.Errors)
	}
	v, _ := challengeStatus(t, ra.api, "svc")
	if v.Version != "1.0.0" || v.ContainerID != before.ContainerID {
		t.Errorf("after failed swap: %+v", v)
	}
	if ids := testenv.DockerPS(t, id); len(ids) != 1 {
		t.Errorf("containers after failed swap: %v, want only the serving one", ids)
	}
	if _, ok := findEvent(events(t, ra.api, "svc"), "swap_failed"); !ok {
		t.Error("no swap_failed event")
	}
	// A failed swap never becomes "previous".
	var full map[string]any
	testenv.HTTPGetJSON(t, ra.api+"/v1/challenges/svc", &full)
	if full["previous_version"] == "2.0.0" {
		t.Error("failed version recorded as previous")
	}
}

func TestUnhealthyAfterCutOverRollsBackAutomatically(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.2.0", map[string]string{"HANG_AFTER_MS": "3000"})
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "healthy_deadline: 20s, min_healthy_time: 500ms, rollback_window: 1m, keep_previous: 10m")))
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	postSwap(t, ra.api, "svc", "1.2.0")
	testenv.WaitFor(t, time.Minute, "automatic rollback", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "svc"), "swap_rolled_back")
		return ok, nil
	})
	v := waitServing(t, ra.api, "svc", 30*time.Second, nil)
	if v.Version != "1.0.0" || v.ContainerID != before.ContainerID {
		t.Errorf("after automatic rollback: version %s container %s, want 1.0.0 on %s", v.Version, v.ContainerID, before.ContainerID)
	}
}

func TestSwapResolvesConstraint(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	for _, tag := range []string{"1.0.0", "1.1.0", "1.2.0-rc1", "2.0.0"} {
		reg.PushChallenge(t, "berth-it/echo", tag, nil)
	}
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "min_healthy_time: 200ms")))
	waitServing(t, ra.api, "svc", 60*time.Second, nil)
	postSwap(t, ra.api, "svc", "^1.0")
	if s := waitSwapEnd(t, ra.api, "svc", time.Minute); s["phase"] != "completed" || s["to"] != "1.1.0" {
		t.Errorf("constraint swap: %v, want completed to 1.1.0", s)
	}
	// Bad version, unknown challenge, swap while one runs.
	resp, _ := http.Post(ra.api+"/v1/challenges/svc/swap", "application/json", strings.NewReader(`{"version":">>1"}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad version: %d, want 400", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = http.Post(ra.api+"/v1/challenges/nope/swap", "application/json", strings.NewReader(`{"version":"1.0.0"}`))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown challenge: %d, want 404", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestBerthKilledMidSwapIsConsistentOnRestart(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", map[string]string{"START_DELAY_MS": "20000"})
	cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "healthy_deadline: 1m"))
	p := startBerthProcess(t, cfg)
	before := waitServing(t, p.api, "svc", 60*time.Second, nil)
	postSwap(t, p.api, "svc", "1.1.0")
	testenv.WaitFor(t, 30*time.Second, "swap waiting for the new version", func() (bool, error) {
		var v map[string]any
		testenv.HTTPGetJSON(t, p.api+"/v1/challenges/svc", &v)
		s, _ := v["swap"].(map[string]any)
		return s != nil && s["phase"] == "waiting_healthy", fmt.Errorf("%v", s)
	})
	if len(testenv.DockerPS(t, id)) != 2 {
		t.Fatalf("expected old and new containers mid-swap")
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited

	p2 := startBerthProcess(t, cfg)
	after := waitServing(t, p2.api, "svc", 30*time.Second, nil)
	if after.Version != "1.0.0" || after.ContainerID != before.ContainerID {
		t.Errorf("after restart mid-swap: version %s container %s", after.Version, after.ContainerID)
	}
	testenv.WaitFor(t, 30*time.Second, "only the serving container left", func() (bool, error) {
		ids := testenv.DockerPS(t, id)
		return len(ids) == 1, fmt.Errorf("containers %v", ids)
	})
	if ev, ok := findEvent(events(t, p2.api, "svc"), "swap_failed"); !ok || !strings.Contains(ev.Error, "restarted") {
		t.Errorf("swap_failed event after restart: %+v", ev)
	}
}

func TestConfigVersionChangeSwapsBlueGreenAtRestart(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "min_healthy_time: 200ms"))
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	ra.stop(t)

	cfg = rewriteConfig(t, cfg, `version: "1.0.0"`, `version: "1.1.0"`)
	ra2 := startAgent(t, cfg)
	// The old container is adopted and serves while the new version comes up.
	l := startLoad(t, ra2.proxy+"/svc", 3, 0)
	swap := waitSwapEnd(t, ra2.api, "svc", time.Minute)
	res := l.Finish()
	if swap["phase"] != "completed" || swap["to"] != "1.1.0" {
		t.Fatalf("config change swap: %v", swap)
	}
	if res.Failed != 0 {
		t.Errorf("%d failed requests during the config swap: %v", res.Failed, res.Errors)
	}
	v, _ := challengeStatus(t, ra2.api, "svc")
	if v.Version != "1.1.0" || v.ContainerID == before.ContainerID {
		t.Errorf("after config change: %+v", v)
	}
}

func TestAutoUpdateSwapsToNewTag(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "^1.0", "auto: true, check_interval: 1s, min_healthy_time: 200ms")))
	waitServing(t, ra.api, "svc", 60*time.Second, nil)
	reg.PushChallenge(t, "berth-it/echo", "1.3.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "2.0.0", nil) // outside the constraint
	waitServing(t, ra.api, "svc", time.Minute, func(v challengeView) bool { return v.Version == "1.3.0" })
}

func TestSpecChangeWhileStoppedIsSwappedIn(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "min_healthy_time: 200ms")+"    env: {MODE: one}\n")
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	ra.stop(t)
	cfg = rewriteConfig(t, cfg, "MODE: one", "MODE: two")
	ra2 := startAgent(t, cfg)
	after := waitServing(t, ra2.api, "svc", time.Minute, func(v challengeView) bool { return v.ContainerID != before.ContainerID })
	env := fmt.Sprint(testenv.DockerInspect(t, after.ContainerID)["Config"].(map[string]any)["Env"])
	if !strings.Contains(env, "MODE=two") {
		t.Errorf("new container env %s lacks MODE=two", env)
	}
}
