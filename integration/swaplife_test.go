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

// While the old version drains a long request, a rollback routes straight
// back to it: quick, the long request completes, and the version rolled
// back from is drained and stopped, not the one rolled back to.
func TestRollbackWhileOldVersionDrains(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0",
		"min_healthy_time: 200ms, drain_timeout: 2m, rollback_window: 5m, keep_previous: 10m")))
	before := waitServing(t, ra.api, "svc", 60*time.Second, nil)
	long := make(chan int, 1)
	go func() {
		client := &http.Client{Timeout: time.Minute}
		resp, err := client.Get(ra.proxy + "/svc/work?ms=8000")
		if err != nil {
			t.Errorf("long request: %v", err)
			long <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		long <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond) // the long request reaches 1.0.0
	postSwap(t, ra.api, "svc", "1.1.0")
	waitServing(t, ra.api, "svc", time.Minute, func(v challengeView) bool { return v.Version == "1.1.0" })

	start := time.Now()
	resp, err := http.Post(ra.api+"/v1/challenges/svc/rollback", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("rollback while 1.0.0 drains: %d %s", resp.StatusCode, body)
	}
	back := waitServing(t, ra.api, "svc", 5*time.Second, func(v challengeView) bool { return v.Version == "1.0.0" })
	if back.ContainerID != before.ContainerID {
		t.Errorf("rolled back to container %s, want the draining %s", back.ContainerID, before.ContainerID)
	}
	t.Logf("routed back in %s", time.Since(start))
	if status, body := getBody(t, ra.proxy+"/svc/version"); status != http.StatusOK || !strings.Contains(body, "1.0.0") {
		t.Errorf("stable endpoint after the rollback: %d %s", status, body)
	}
	select {
	case status := <-long:
		if status != http.StatusOK {
			t.Errorf("long request across the swap and rollback: %d", status)
		}
	case <-time.After(30 * time.Second):
		t.Error("long request did not finish")
	}
	testenv.WaitFor(t, 30*time.Second, "swap_rolled_back", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "svc"), "swap_rolled_back")
		return ok, nil
	})
	if running := strings.TrimSpace(testenv.Docker(t, "inspect", "-f", "{{.State.Running}}", before.ContainerID)); running != "true" {
		t.Errorf("the container rolled back to is not running: %s", running)
	}
	if ids := testenv.DockerPS(t, id); len(ids) != 2 {
		t.Errorf("containers after the rollback: %v, want 1.0.0 serving and 1.1.0 kept", ids)
	}
}
