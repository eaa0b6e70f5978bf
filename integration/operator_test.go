package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// runCLI runs the berth binary and returns its exit code and output.
func runCLI(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(buildBerth(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestCLIAgainstRunningBerth(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = rewriteConfig(t, cfg, `api: {listen: "127.0.0.1:0"}`, `api: {listen: "127.0.0.1:0", token_file: `+tokenFile+`}`)
	ra := startAgent(t, cfg)
	env := []string{"BERTH_ADDR=" + ra.api, "BERTH_TOKEN=s3cret-token"}
	waitCLIHealthy := func(minRestarts int) {
		testenv.WaitFor(t, 60*time.Second, "echo healthy (through the CLI)", func() (bool, error) {
			code, out := runCLI(t, env, "status", "-o", "json")
			var list []challengeView
			if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
				return false, fmt.Errorf("exit %d: %s", code, out)
			}
			v := list[0]
			return v.State == "running" && v.Health == "healthy" && v.Restarts >= minRestarts, fmt.Errorf("%+v", v)
		})
	}
	waitCLIHealthy(0)
	if status, _ := getBody(t, ra.api+"/v1/challenges"); status != 401 {
		t.Errorf("API without token: %d, want 401", status)
	}

	code, out := runCLI(t, env, "status")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "echo") || !strings.Contains(out, "healthy") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "ps", "-o", "json")
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0]["name"] != "echo" {
		t.Errorf("ps -o json: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "status", "echo", "-o", "wide")
	if code != 0 || !strings.Contains(out, "UPSTREAM") || !strings.Contains(out, "echo") {
		t.Errorf("status echo -o wide: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "inspect", "echo")
	var obj map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &obj) != nil || obj["name"] != "echo" || obj["image"] == "" {
		t.Errorf("inspect echo: exit %d\n%s", code, out)
	}
	if code, out = runCLI(t, env, "inspect", "nope"); code != 1 || !strings.Contains(out, "nope") {
		t.Errorf("inspect nope: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "reload")
	if code != 0 || !strings.Contains(out, "added:") || !strings.Contains(out, "removed:") {
		t.Errorf("reload: exit %d\n%s", code, out)
	}
	// echo is declared in the config file: the API refuses to remove it.
	if code, out = runCLI(t, env, "rm", "echo"); code != 1 || !strings.Contains(out, "config") {
		t.Errorf("rm of a config-managed challenge: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "events", "--challenge", "echo")
	if code != 0 || !strings.Contains(out, "started") {
		t.Errorf("events: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "logs", "echo", "--tail", "5")
	if code != 0 || !strings.Contains(out, "listening") {
		t.Errorf("logs: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "restart", "echo")
	if code != 0 || !strings.Contains(out, "restarting") {
		t.Errorf("restart: exit %d\n%s", code, out)
	}
	waitCLIHealthy(1)

	// swap --wait --drain follows the phases to the end (plain lines off a terminal).
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	code, out = runCLI(t, env, "swap", "echo", "1.1.0", "--wait", "--drain", "--timeout", "2m")
	if code != 0 || !strings.Contains(out, "echo: completed") || !strings.Contains(out, "1.0.0 → 1.1.0") {
		t.Errorf("swap --wait: exit %d\n%s", code, out)
	}
	// events -f keeps streaming until interrupted.
	cmd := exec.Command(buildBerth(t), "events", "-f", "--challenge", "echo", "-o", "json")
	cmd.Env = append(os.Environ(), env...)
	stdout := &syncBuffer{}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "events -f to print history", func() (bool, error) {
		return strings.Contains(stdout.String(), "swap_completed"), nil
	})
	seen := strings.Count(stdout.String(), "\n")
	if code, out = runCLI(t, env, "restart", "echo"); code != 0 {
		t.Errorf("restart during events -f: %d %s", code, out)
	}
	testenv.WaitFor(t, 10*time.Second, "events -f to stream a new event", func() (bool, error) {
		return strings.Count(stdout.String(), "\n") > seen, nil
	})
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("events -f after SIGINT: %v", err)
	}

	// Errors: wrong token, unknown challenge, berth not running, usage.
	code, out = runCLI(t, []string{"BERTH_ADDR=" + ra.api, "BERTH_TOKEN=wrong"}, "status")
	if code != 1 || !strings.Contains(out, "token") {
		t.Errorf("wrong token: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "restart", "nope")
	if code != 1 || !strings.Contains(out, "nope") {
		t.Errorf("unknown challenge: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, []string{"BERTH_ADDR=http://127.0.0.1:1"}, "status")
	if code != 1 || !strings.Contains(out, "not running") {
		t.Errorf("berth not running: exit %d\n%s", code, out)
	}
	if code, out = runCLI(t, env, "restart"); code != 2 {
		t.Errorf("restart without a name: exit %d\n%s", code, out)
	}
	// The token never appears in berth's own log.
	if strings.Contains(ra.logs.String(), "s3cret-token") {
		t.Error("the API token appears in berth's log")
	}
}

func TestCheckpointsAndStoreLoss(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "echo", 60*time.Second, nil)
	env := []string{"BERTH_ADDR=" + ra.api}

	code, out := runCLI(t, env, "checkpoint", "create")
	if code != 0 || !strings.Contains(out, "checkpoint 1 written") {
		t.Fatalf("checkpoint create: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, env, "checkpoint", "list")
	if code != 0 || !strings.Contains(out, "yes") {
		t.Errorf("checkpoint list: exit %d\n%s", code, out)
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "checkpoints", "*.ckpt"))
	if len(files) != 1 {
		t.Fatalf("checkpoint files: %v", files)
	}
	if code, out = runCLI(t, nil, "checkpoint", "verify", files[0]); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("verify good file: exit %d\n%s", code, out)
	}
	// A flipped byte is refused with a reason.
	b, _ := os.ReadFile(files[0])
	b[len(b)-10] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.ckpt")
	os.WriteFile(bad, b, 0o600)
	if code, out = runCLI(t, nil, "checkpoint", "verify", bad); code != 1 || !strings.Contains(out, "invalid") {
		t.Errorf("verify flipped file: exit %d\n%s", code, out)
	}
	ra.stop(t) // writes the final checkpoint

	// Store lost: berth restores the newest valid checkpoint and adopts.
	if err := os.RemoveAll(filepath.Join(dataDir, "state")); err != nil {
		t.Fatal(err)
	}
	ra2 := startAgent(t, cfg)
	after := waitServing(t, ra2.api, "echo", 30*time.Second, nil)
	if after.ContainerID != before.ContainerID || after.Restarts != before.Restarts {
		t.Errorf("after restore: container %s restarts %d, want %s and %d", after.ContainerID, after.Restarts, before.ContainerID, before.Restarts)
	}
	if !strings.Contains(ra2.logs.String(), "state restored from checkpoint") {
		t.Error("no log line about restoring the checkpoint")
	}
	if _, ok := findEvent(events(t, ra2.api, "echo"), "registered"); !ok {
		t.Error("event history not restored")
	}
	ra2.stop(t)

	// Store and checkpoints lost: start from the config and adopt by labels.
	os.RemoveAll(filepath.Join(dataDir, "state"))
	os.RemoveAll(filepath.Join(dataDir, "checkpoints"))
	ra3 := startAgent(t, cfg)
	again := waitServing(t, ra3.api, "echo", 30*time.Second, nil)
	if again.ContainerID != before.ContainerID {
		t.Errorf("without any state: container %s, want the running %s adopted", again.ContainerID, before.ContainerID)
	}
}
