package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

func TestDockerOutageThroughSocketProxy(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	sock := testenv.StartSocketProxy(t)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	cfg = rewriteConfig(t, cfg, "  network:", "  docker_host: "+sock.Host()+"\n  network:")
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "echo", 60*time.Second, nil)

	sock.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testenv.WaitFor(t, 30*time.Second, "readyz 503 while the engine is cut off", func() (bool, error) {
		var body map[string]any
		status, err := testenv.GetJSON(ctx, ra.api+"/readyz", &body)
		return status == http.StatusServiceUnavailable, fmt.Errorf("status %d %v %v", status, body, err)
	})
	var health struct {
		Status     string
		Components map[string]struct{ Status string }
	}
	if _, err := testenv.GetJSON(ctx, ra.api+"/v1/health", &health); err != nil || health.Components["docker"].Status != "unhealthy" {
		t.Errorf("/v1/health during outage: %+v %v; docker should be unhealthy", health, err)
	}
	// The stable endpoint and probes do not need the engine.
	if status, body := getBody(t, ra.proxy+"/echo/version"); status != http.StatusOK {
		t.Errorf("proxy during outage: %d %s", status, body)
	}
	// Something dies while berth cannot see it.
	testenv.DockerKill(t, before.ContainerID)
	testenv.WaitFor(t, 10*time.Second, "probes to notice the dead container", func() (bool, error) {
		v, err := challengeStatus(t, ra.api, "echo")
		return err == nil && v.Health != "healthy", fmt.Errorf("health %s", v.Health)
	})
	if v, _ := challengeStatus(t, ra.api, "echo"); v.State == "failed" {
		t.Errorf("challenge marked failed because the engine was unreachable")
	}

	sock.Restore()
	after := waitServing(t, ra.api, "echo", 60*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	if after.State != "running" {
		t.Errorf("after the outage: %+v", after)
	}
	evs := events(t, ra.api, "")
	for _, typ := range []string{"docker_disconnected", "docker_reconnected"} {
		if _, ok := findEvent(evs, typ); !ok {
			t.Errorf("no %s event", typ)
		}
	}
	for _, ev := range evs {
		if ev.Type == "gave_up" {
			t.Errorf("gave up during a docker outage: %+v", ev)
		}
	}
}

func TestKill9RestartAdoptsWithStateIntact(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))

	p := startBerthProcess(t, cfg)
	before := waitServing(t, p.api, "echo", 60*time.Second, nil)
	if status := testenv.HTTPPost(t, p.proxy+"/echo/state", "in-memory-42"); status != http.StatusOK {
		t.Fatalf("POST /state: %d", status)
	}
	startedAt := testenv.DockerInspect(t, before.ContainerID)["State"].(map[string]any)["StartedAt"]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	p2 := startBerthProcess(t, cfg)
	// Adopted state is visible at once: never "unknown" for a healthy container.
	testenv.WaitFor(t, 20*time.Second, "challenge listed after restart", func() (bool, error) {
		v, err := challengeStatus(t, p2.api, "echo")
		if err != nil {
			return false, err
		}
		if v.State == "running" && v.Health == "unknown" {
			t.Errorf("adopted healthy container shown as unknown")
		}
		return v.State == "running", fmt.Errorf("state %s", v.State)
	})
	after := waitServing(t, p2.api, "echo", 30*time.Second, nil)
	if after.ContainerID != before.ContainerID || after.Restarts != before.Restarts {
		t.Errorf("kill -9 then restart: container %s restarts %d, want %s and %d", after.ContainerID, after.Restarts, before.ContainerID, before.Restarts)
	}
	if now := testenv.DockerInspect(t, before.ContainerID)["State"].(map[string]any)["StartedAt"]; now != startedAt {
		t.Errorf("container was restarted: StartedAt %v → %v", startedAt, now)
	}
	if _, body := getBody(t, p2.proxy+"/echo/state"); !strings.Contains(body, "in-memory-42") {
		t.Errorf("challenge state lost: %q", body)
	}
}

func TestContainerDeadWhileBerthDownIsRestarted(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	ra := startAgent(t, cfg)
	before := waitServing(t, ra.api, "echo", 60*time.Second, nil)
	ra.stop(t)
	testenv.DockerKill(t, before.ContainerID)

	ra2 := startAgent(t, cfg)
	after := waitServing(t, ra2.api, "echo", 60*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	if after.LastExitCode == nil || *after.LastExitCode != 137 {
		t.Errorf("exit while down: last_exit_code %v, want 137", after.LastExitCode)
	}
}

func TestRemovedChallengeAndOrphansAreCleanedForeignUntouched(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	ref, _ := reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	dropYAML := challengeYAML("drop", reg.Host+"/berth-it/echo", "1.0.0", "")
	cfg := berthConfig(t, id, challengeYAML("keep", reg.Host+"/berth-it/echo", "1.0.0", "")+dropYAML)
	cfg = rewriteConfig(t, cfg, "  network:", "  orphan_grace: 2s\n  network:")
	ra := startAgent(t, cfg)
	waitServing(t, ra.api, "keep", 60*time.Second, nil)
	dropped := waitServing(t, ra.api, "drop", 60*time.Second, nil)
	ra.stop(t)

	// An orphan of this agent, and a container of another agent id.
	foreignID := testenv.AgentID(t)
	orphan := testenv.Docker(t, "run", "-d", "--label", "io.berth.managed=true", "--label", "io.berth.agent="+id,
		"--label", "io.berth.challenge=ghost", ref)
	foreign := testenv.Docker(t, "run", "-d", "--label", "io.berth.managed=true", "--label", "io.berth.agent="+foreignID,
		"--label", "io.berth.challenge=keep", ref)

	cfg = rewriteConfig(t, cfg, dropYAML, "")
	ra2 := startAgent(t, cfg)
	waitServing(t, ra2.api, "keep", 60*time.Second, nil)
	testenv.WaitFor(t, 30*time.Second, "dropped challenge's container removed", func() (bool, error) {
		return !testenv.ContainerExists(t, dropped.ContainerID), nil
	})
	if status, _ := getBody(t, ra2.api+"/v1/challenges/drop"); status != http.StatusNotFound {
		t.Errorf("removed challenge still listed: %d", status)
	}
	testenv.WaitFor(t, 30*time.Second, "orphan removed after grace", func() (bool, error) {
		return !testenv.ContainerExists(t, orphan), nil
	})
	if !testenv.ContainerExists(t, foreign) {
		t.Error("a container of another agent id was removed")
	}
	if _, ok := findEvent(events(t, ra2.api, "ghost"), "orphan_removed"); !ok {
		t.Error("no orphan_removed event")
	}
	if _, ok := findEvent(events(t, ra2.api, "drop"), "removed"); !ok {
		t.Error("no removed event for the dropped challenge")
	}
}
