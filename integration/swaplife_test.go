package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// withAgentSettings adds agent settings (YAML lines indented by two spaces)
// to a config written by berthConfig.
func withAgentSettings(t testing.TB, path, id, settings string) string {
	t.Helper()
	return rewriteConfig(t, path, "  id: "+id+"\n", "  id: "+id+"\n"+settings)
}

// A new version slower to become healthy than orphan_grace is the swap's,
// not an orphan: the swap completes onto a live container.
func TestSlowSwapOutlastsOrphanGrace(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", map[string]string{"START_DELAY_MS": "5000"})
	cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "healthy_deadline: 20s, min_healthy_time: 200ms"))
	withAgentSettings(t, cfg, id, "  orphan_grace: 1s\n")
	ra := startAgent(t, cfg)
	waitServing(t, ra.api, "svc", 60*time.Second, nil)
	postSwap(t, ra.api, "svc", "1.1.0")
	swap := waitSwapEnd(t, ra.api, "svc", time.Minute)
	if swap["phase"] != "completed" {
		t.Fatalf("swap to the slow version: %v, want completed", swap)
	}
	if ev, ok := findEvent(events(t, ra.api, "svc"), "orphan_removed"); ok {
		t.Errorf("the orphan reaper removed a swap's container: %+v", ev)
	}
	v := waitServing(t, ra.api, "svc", 10*time.Second, nil)
	if v.Version != "1.1.0" {
		t.Fatalf("serving %s, want 1.1.0", v.Version)
	}
	if state := strings.TrimSpace(testenv.Docker(t, "inspect", "-f", "{{.State.Running}}", v.ContainerID)); state != "true" {
		t.Fatalf("serving container %s running=%s", v.ContainerID, state)
	}
	if status, body := getBody(t, ra.proxy+"/svc/version"); status != http.StatusOK || !strings.Contains(body, "1.1.0") {
		t.Fatalf("stable endpoint after the swap: %d %s", status, body)
	}
}

// A berth restart within keep_previous still removes the kept previous
// container: at once when its deadline passed while berth was down
// (SIGKILL), at its deadline otherwise (SIGTERM).
func TestKeptPreviousRemovedAfterBerthRestart(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	for _, tc := range []struct {
		name   string
		signal syscall.Signal
		down   time.Duration
	}{
		{"sigkill past the deadline", syscall.SIGKILL, 7 * time.Second},
		{"sigterm before the deadline", syscall.SIGTERM, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := testenv.AgentID(t)
			cfg := berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "min_healthy_time: 200ms, keep_previous: 6s"))
			p := startBerthProcess(t, cfg)
			waitServing(t, p.api, "svc", 60*time.Second, nil)
			postSwap(t, p.api, "svc", "1.1.0")
			if s := waitSwapEnd(t, p.api, "svc", time.Minute); s["phase"] != "completed" {
				t.Fatalf("swap: %v", s)
			}
			swapped := time.Now()
			if ids := testenv.DockerPS(t, id); len(ids) != 2 {
				t.Fatalf("containers after the swap: %v, want the new one and the kept previous", ids)
			}
			_ = p.cmd.Process.Signal(tc.signal)
			<-p.exited
			time.Sleep(tc.down)
			p2 := startBerthProcess(t, cfg)
			restarted := time.Now()
			waitServing(t, p2.api, "svc", 30*time.Second, func(v challengeView) bool { return v.Version == "1.1.0" })
			testenv.WaitFor(t, 20*time.Second, "the kept previous container removed", func() (bool, error) {
				ids := testenv.DockerPS(t, id)
				return len(ids) == 1, fmt.Errorf("containers %v", ids)
			})
			if tc.down > 0 && time.Since(restarted) > 8*time.Second {
				t.Errorf("kept container past its deadline removed %s after the restart", time.Since(restarted))
			}
			if tc.down == 0 && time.Since(swapped) < 5*time.Second {
				t.Errorf("kept container removed %s after the swap, before keep_previous", time.Since(swapped))
			}
		})
	}
}
