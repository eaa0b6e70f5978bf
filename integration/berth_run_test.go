package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// challengeYAML is one challenge entry pulling from the test registry.
func challengeYAML(name, image, version, extra string) string {
	return fmt.Sprintf(`  - name: %s
    image: %s
    version: %q
    pull_policy: always
    port: 8080
    health: {path: /health, interval: 500ms, timeout: 1s, start_period: 20s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, max_backoff: 2s, stop_timeout: 2s}
    resources: {cpus: 0.5, memory: 64m, pids: 64}
%s`, name, image, version, extra)
}

func TestRunPullsStartsAndServesThroughProxy(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	_, digest := reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	ra := startAgent(t, cfg)

	v := waitServing(t, ra.api, "echo", 60*time.Second, nil)
	if v.Version != "1.0.0" || v.Digest != digest {
		t.Errorf("version %q digest %q, want 1.0.0 and the pushed digest %s", v.Version, v.Digest, digest)
	}
	if want := ra.proxy + "/echo/"; v.Endpoint != want {
		t.Errorf("endpoint %q, want %q", v.Endpoint, want)
	}
	if !strings.HasPrefix(v.Upstream, "http://127.0.0.1:") {
		t.Errorf("upstream %q is not a loopback published port", v.Upstream)
	}

	status, body := getBody(t, ra.proxy+"/echo/version")
	if status != http.StatusOK || !strings.Contains(body, `"1.0.0"`) {
		t.Errorf("proxy GET /echo/version = %d %s", status, body)
	}
	status, body = getBody(t, ra.proxy+"/nope/version")
	if status != http.StatusNotFound || !strings.Contains(body, `"code"`) {
		t.Errorf("unknown challenge = %d %s, want 404 JSON", status, body)
	}

	// Labels and hardening (SPEC §5.9) on the real container.
	info := testenv.DockerInspect(t, v.ContainerID)
	labels := info["Config"].(map[string]any)["Labels"].(map[string]any)
	for k, want := range map[string]string{
		"io.berth.managed": "true", "io.berth.agent": id, "io.berth.challenge": "echo",
		"io.berth.version": "1.0.0", "io.berth.slot": "a",
	} {
		if labels[k] != want {
			t.Errorf("label %s = %v, want %s", k, labels[k], want)
		}
	}
	if labels["io.berth.spec-hash"] == "" {
		t.Error("label io.berth.spec-hash missing")
	}
	host := info["HostConfig"].(map[string]any)
	checks := map[string]bool{
		"read-only rootfs":  host["ReadonlyRootfs"] == true,
		"cap_drop ALL":      fmt.Sprint(host["CapDrop"]) == "[ALL]",
		"no-new-privileges": strings.Contains(fmt.Sprint(host["SecurityOpt"]), "no-new-privileges"),
		"init":              host["Init"] == true,
		"not privileged":    host["Privileged"] == false,
		"memory 64m":        host["Memory"] == float64(64<<20),
		"pids 64":           host["PidsLimit"] == float64(64),
		"cpus 0.5":          host["NanoCpus"] == float64(5e8),
		"tmpfs /tmp":        strings.Contains(fmt.Sprint(host["Tmpfs"]), "/tmp"),
		"no host network":   host["NetworkMode"] == testenv.NetworkName(id),
		"no restart policy": fmt.Sprint(host["RestartPolicy"].(map[string]any)["Name"]) == "no",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("hardening: %s not applied", what)
		}
	}
	if name := info["Name"]; name != "/berth-"+id+"-echo-a" {
		t.Errorf("container name %v is not deterministic", name)
	}

	evs := events(t, ra.api, "echo")
	for _, typ := range []string{"registered", "pulling", "pulled", "started", "health_changed"} {
		if _, ok := findEvent(evs, typ); !ok {
			t.Errorf("no %s event in %v", typ, evs)
		}
	}
}

func TestKilledContainerIsRunningAgain(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", "")))
	before := waitServing(t, ra.api, "echo", 60*time.Second, nil)

	testenv.DockerKill(t, before.ContainerID)
	after := waitServing(t, ra.api, "echo", 30*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	if after.LastExitCode == nil || *after.LastExitCode != 137 {
		t.Errorf("last_exit_code %v, want 137 (SIGKILL)", after.LastExitCode)
	}
	if status, _ := getBody(t, ra.proxy+"/echo/health"); status != http.StatusOK {
		t.Errorf("proxy after restart: status %d", status)
	}
	evs := events(t, ra.api, "echo")
	exited, ok := findEvent(evs, "exited")
	if !ok || exited.ExitCode == nil || *exited.ExitCode != 137 {
		t.Errorf("exited event %+v, want exit_code 137", exited)
	}
	if r, ok := findEvent(evs, "restarting"); !ok || r.Attempt != 1 {
		t.Errorf("restarting event %+v, want attempt 1", r)
	}
}

func TestCrashExitCodeRecordedAndRestarted(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", "")))
	waitServing(t, ra.api, "echo", 60*time.Second, nil)

	if status := testenv.HTTPPost(t, ra.proxy+"/echo/admin/crash?code=3", ""); status != http.StatusOK {
		t.Fatalf("crash request through proxy: status %d", status)
	}
	after := waitServing(t, ra.api, "echo", 30*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	if after.LastExitCode == nil || *after.LastExitCode != 3 {
		t.Errorf("last_exit_code %v, want 3", after.LastExitCode)
	}
}

func TestVersionConstraintResolvesHighestTag(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	for _, tag := range []string{"1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0", "latest"} {
		reg.PushChallenge(t, "berth-it/echo", tag, nil)
	}
	ra := startAgent(t, berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "^1.0", "")))
	v := waitServing(t, ra.api, "echo", 60*time.Second, nil)
	if v.Version != "1.2.0" {
		t.Errorf("resolved version %q, want 1.2.0", v.Version)
	}
	if _, body := getBody(t, ra.proxy+"/echo/version"); !strings.Contains(body, "1.2.0") {
		t.Errorf("served version %s, want 1.2.0", body)
	}
}

func TestPullPolicyNeverUsesLocalImage(t *testing.T) {
	testenv.RequireDocker(t)
	id := testenv.AgentID(t)
	ref := "berth-it-local/" + id + ":1.0.0"
	testenv.BuildLocalImage(t, ref, nil)
	yaml := strings.Replace(challengeYAML("local", "berth-it-local/"+id, "1.0.0", ""), "pull_policy: always", "pull_policy: never", 1)
	missing := strings.Replace(challengeYAML("missing", "berth-it-local/"+id+"-absent", "1.0.0", ""), "pull_policy: always", "pull_policy: never", 1)
	ra := startAgent(t, berthConfig(t, id, yaml+missing))
	waitServing(t, ra.api, "local", 60*time.Second, nil)
	testenv.WaitFor(t, 30*time.Second, "missing image to be refused", func() (bool, error) {
		v, err := challengeStatus(t, ra.api, "missing")
		if err != nil {
			return false, err
		}
		return v.State == "failed", fmt.Errorf("state %s", v.State)
	})
	if ev, ok := findEvent(events(t, ra.api, "missing"), "start_failed"); !ok || !strings.Contains(ev.Error, "pull_policy is never") {
		t.Errorf("start_failed event %+v should say the image is missing and pull_policy is never", ev)
	}
}

func TestSIGTERMLeavesContainersRunningAndRestartAdopts(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))

	p := startBerthProcess(t, cfg)
	before := waitServing(t, p.api, "echo", 60*time.Second, nil)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not exit within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	state := testenv.DockerInspect(t, before.ContainerID)["State"].(map[string]any)
	if state["Running"] != true {
		t.Fatalf("container not running after berth exited: %v", state)
	}

	// A new berth adopts the running container without restarting it.
	p2 := startBerthProcess(t, cfg)
	after := waitServing(t, p2.api, "echo", 30*time.Second, nil)
	if after.ContainerID != before.ContainerID || after.Restarts != before.Restarts {
		t.Errorf("after restart of berth: container %s restarts %d, want %s and %d (adopted, not restarted)",
			after.ContainerID, after.Restarts, before.ContainerID, before.Restarts)
	}
	if _, ok := findEvent(events(t, p2.api, "echo"), "adopted"); !ok {
		t.Error("no adopted event after berth restarted")
	}
	startedAt := testenv.DockerInspect(t, before.ContainerID)["State"].(map[string]any)["StartedAt"]
	if startedAt != state["StartedAt"] {
		t.Errorf("container restarted by adoption: StartedAt %v → %v", state["StartedAt"], startedAt)
	}
}

func TestConfigValidateExitCodes(t *testing.T) {
	bin := buildBerth(t)
	good := berthConfig(t, "validate-ok", challengeYAML("echo", "127.0.0.1:5000/echo", "1.0.0", ""))
	out, err := exec.Command(bin, "config", "validate", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("valid config: %v %s", err, out)
	}
	bad := berthConfig(t, "validate-bad", challengeYAML("Bad_Name", "127.0.0.1:5000/echo", "1.0.0", "    bogus: 1\n"))
	cmd := exec.Command(bin, "config", "validate", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("invalid config: exit %d, want 2; output %s", cmd.ProcessState.ExitCode(), out)
	}
	for _, want := range []string{bad + ":", "challenges[0].name", "bogus"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output %q lacks %q", out, want)
		}
	}
	// berth run refuses the same file with exit 2 before touching anything.
	cmd = exec.Command(bin, "run", "--config", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), bad+":") {
		t.Errorf("run with invalid config: exit %d output %s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestUnreachableDockerIsReportedNotFatal(t *testing.T) {
	id := testenv.AgentID(t)
	cfg := berthConfig(t, id, challengeYAML("echo", "127.0.0.1:5000/echo", "1.0.0", ""))
	cfg = rewriteConfig(t, cfg, "  network:", "  docker_host: unix:///nonexistent/docker.sock\n  network:")
	ra := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var body map[string]any
	testenv.WaitFor(t, 10*time.Second, "readyz to answer", func() (bool, error) {
		status, err := testenv.GetJSON(ctx, ra.api+"/readyz", &body)
		return err == nil && status == http.StatusServiceUnavailable, fmt.Errorf("status %d err %v", status, err)
	})
	if c := body["components"].(map[string]any); c["docker"] != "unreachable" {
		t.Errorf("readyz components %v: docker should be unreachable", c)
	}
	testenv.WaitFor(t, 10*time.Second, "a log line naming the unreachable engine", func() (bool, error) {
		return strings.Contains(ra.logs.String(), "docker engine unreachable"), nil
	})
	// An engine down from the start is an outage like any other: one event
	// (which alerts), however many times berth retries.
	time.Sleep(time.Second)
	n := 0
	for _, ev := range events(t, ra.api, "") {
		if ev.Type == "docker_disconnected" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d docker_disconnected events for an engine down since start, want 1", n)
	}
}

func TestDigestPinIsVerifiedAfterPull(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	_, digest := reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	wrong := "sha256:" + strings.Repeat("0", 64)
	pinned := challengeYAML("pinned", reg.Host+"/berth-it/echo", "1.0.0", "    digest: "+digest+"\n")
	mismatch := challengeYAML("mismatch", reg.Host+"/berth-it/echo", "1.0.0", "    digest: "+wrong+"\n")
	ra := startAgent(t, berthConfig(t, id, pinned+mismatch))
	waitServing(t, ra.api, "pinned", 60*time.Second, nil)
	testenv.WaitFor(t, 30*time.Second, "the mismatching pin to be refused", func() (bool, error) {
		v, err := challengeStatus(t, ra.api, "mismatch")
		return err == nil && v.State == "failed", fmt.Errorf("state %s %v", v.State, err)
	})
	ev, ok := findEvent(events(t, ra.api, "mismatch"), "digest_mismatch")
	if !ok || !strings.Contains(ev.Error, wrong) || !strings.Contains(ev.Error, digest) {
		t.Errorf("digest_mismatch event %+v should name both digests", ev)
	}
	for _, cid := range testenv.DockerPS(t, id) {
		if testenv.DockerInspect(t, cid)["Config"].(map[string]any)["Labels"].(map[string]any)["io.berth.challenge"] == "mismatch" {
			t.Errorf("a container was created for the mismatching pin: %s", cid)
		}
	}
}
