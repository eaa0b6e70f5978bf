package integration_test

import (
	"net/http"
	"strings"
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
