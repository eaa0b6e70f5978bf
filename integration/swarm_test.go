package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/agent"
	"berth/agent/challenge"
	"berth/agent/swarmrt"
	"berth/configs"
	"berth/docker"
	"berth/integration/testenv"
)

// swarmYAML is swapYAML for a locally built image, with small limits.
func swarmYAML(name, repo, version string) string {
	return swapYAML(name, repo, version, "healthy_deadline: 45s, min_healthy_time: 1s, drain_timeout: 30s, keep_previous: 10m") +
		"    pull_policy: never\n    resources: {cpus: 0.5, memory: 64m, pids: 64}\n"
}

func TestSwarmBackendRefusesANodeThatIsNotAManager(t *testing.T) {
	testenv.RequireDocker(t)
	if st := swarmState(t, ""); st != "inactive" {
		t.Skipf("engine swarm state %q: this test needs an engine outside any swarm", st)
	}
	id := testenv.AgentID(t)
	cfg, err := configs.Load(swarmConfig(t, id, swarmYAML("svc", "berth-it-"+id+"/echo", "1.0.0")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{})
	if err == nil {
		t.Fatal("agent.New accepted backend swarm on an engine in no swarm")
	}
	_ = a
	if !strings.Contains(err.Error(), "not a swarm manager") || !strings.Contains(err.Error(), "docker swarm init") {
		t.Errorf("error %q does not say the node is not a swarm manager and what to do", err)
	}
}

// One swarm for the whole story, as swarm init and leave take seconds:
// hardening and labels, a crash and a hang restarted by berth, a blue-green
// swap under load, rollback, re-adoption after a berth restart and orphans.
func TestSwarmBackendLifecycle(t *testing.T) {
	requireSwarm(t)
	id := testenv.AgentID(t)
	repo := "berth-it-" + id + "/echo"
	testenv.BuildLocalImage(t, repo+":1.0.0", nil)
	testenv.BuildLocalImage(t, repo+":1.1.0", nil)
	cfg := swarmConfig(t, id, swarmYAML("svc", repo, "1.0.0")+strings.Replace(swarmYAML("pair", repo, "1.0.0"), "  - name: pair\n", "  - name: pair\n    replicas: 2\n", 1))
	rewriteConfig(t, cfg, "agent:\n", "agent:\n  orphan_grace: 2s\n")
	ra := startAgent(t, cfg)
	first := waitServing(t, ra.api, "svc", 90*time.Second, nil)

	// Replicas: two tasks of one service on this node, on ports of their own.
	pair := waitServing(t, ra.api, "pair", 90*time.Second, nil)
	testenv.WaitFor(t, 30*time.Second, "two running tasks of pair", func() (bool, error) {
		tasks := runningTasks(t, "", pair.ContainerID)
		return len(tasks) == 2, fmt.Errorf("tasks %v", serviceTasks(t, "", pair.ContainerID))
	})
	if status, _ := getBody(t, ra.proxy+"/pair/version"); status != http.StatusOK {
		t.Errorf("pair through the stable endpoint: %d", status)
	}

	// The slot is a service named like the container, hardened, with
	// Swarm's restart policy off: berth alone restarts.
	svc := inspectService(t, "", first.ContainerID)
	sp := svc.Spec
	if sp.Name != "berth-"+id+"-svc-"+sp.Labels["io.berth.slot"] || sp.Labels["io.berth.agent"] != id ||
		sp.Labels["io.berth.challenge"] != "svc" || sp.Labels["io.berth.version"] != "1.0.0" || sp.Labels["io.berth.spec-hash"] == "" {
		t.Errorf("service name %s labels %v", sp.Name, sp.Labels)
	}
	cs := sp.TaskTemplate.ContainerSpec
	if cs.Init == nil || !*cs.Init || !cs.ReadOnly || !slices.Equal(cs.CapabilityDrop, []string{"ALL"}) {
		t.Errorf("container spec not hardened: %+v", cs)
	}
	if l := sp.TaskTemplate.Resources.Limits; l.Pids != 64 || l.MemoryBytes != 64<<20 || l.NanoCPUs != 5e8 {
		t.Errorf("limits %+v", l)
	}
	if c := sp.TaskTemplate.RestartPolicy.Condition; c != "none" {
		t.Errorf("restart condition %q, want none", c)
	}
	if sp.Mode.Replicated.Replicas != 1 || len(sp.EndpointSpec.Ports) != 1 || sp.EndpointSpec.Ports[0].PublishMode != "host" {
		t.Errorf("replicas %d ports %+v", sp.Mode.Replicated.Replicas, sp.EndpointSpec.Ports)
	}
	if !strings.HasPrefix(first.Upstream, "http://127.0.0.1:") {
		t.Errorf("upstream %q, want the node address and a host-mode port", first.Upstream)
	}
	if status, body := getBody(t, ra.proxy+"/svc/version"); status != http.StatusOK || !strings.Contains(body, "1.0.0") {
		t.Errorf("stable endpoint: %d %q", status, body)
	}

	// Logs are the service's: its tasks' output.
	if status, body := getBody(t, ra.api+"/v1/challenges/svc/logs?tail=20"); status != http.StatusOK || !strings.Contains(body, "listening") {
		t.Errorf("logs: %d %q", status, body)
	}

	// A crash: berth notices, backs off and starts a new task of the same service.
	testenv.HTTPPost(t, ra.proxy+"/svc/admin/crash", "")
	crashed := waitServing(t, ra.api, "svc", 60*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	if crashed.ContainerID != first.ContainerID {
		t.Errorf("restart replaced the service %s with %s", first.ContainerID, crashed.ContainerID)
	}
	if _, ok := findEvent(events(t, ra.api, "svc"), "exited"); !ok {
		t.Error("no exited event after the crash")
	}
	if n := len(runningTasks(t, "", first.ContainerID)); n != 1 {
		t.Errorf("%d running tasks after the restart, want 1", n)
	}

	// An unhealthy task is replaced too.
	testenv.HTTPPost(t, ra.proxy+"/svc/admin/unhealthy", "")
	waitServing(t, ra.api, "svc", 60*time.Second, func(v challengeView) bool { return v.Restarts >= 2 })
	if _, ok := findEvent(events(t, ra.api, "svc"), "health_changed"); !ok {
		t.Error("no health_changed event")
	}

	// A swap under load: blue-green between two services, no failed request.
	l := startLoad(t, ra.proxy+"/svc", 4, 2)
	time.Sleep(time.Second) // steady load before the swap; not a timing assertion
	postSwap(t, ra.api, "svc", "1.1.0")
	swap := waitSwapEnd(t, ra.api, "svc", 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	res := l.Finish()
	if swap["phase"] != "completed" {
		t.Fatalf("swap ended in %v: %v", swap["phase"], swap["error"])
	}
	t.Logf("%d requests during the swap, %d failed", res.Requests, res.Failed)
	if res.Failed != 0 {
		t.Errorf("%d failed requests during the swap: %v", res.Failed, res.Errors)
	}
	if res.FirstVersion != "1.0.0" || res.LastVersion != "1.1.0" {
		t.Errorf("responses moved from %s to %s, want 1.0.0 → 1.1.0", res.FirstVersion, res.LastVersion)
	}
	swapped, _ := challengeStatus(t, ra.api, "svc")
	if swapped.ContainerID == first.ContainerID || swapped.Version != "1.1.0" {
		t.Errorf("after the swap: %+v", swapped)
	}
	// The previous service is kept with no task, for a fast rollback.
	if old := inspectService(t, "", first.ContainerID); old.Spec.Mode.Replicated.Replicas != 0 {
		t.Errorf("previous service has %d replicas after the drain, want 0", old.Spec.Mode.Replicated.Replicas)
	}

	// Rollback starts the kept service again.
	if status := testenv.HTTPPost(t, ra.api+"/v1/challenges/svc/rollback", ""); status != http.StatusAccepted && status != http.StatusOK {
		t.Fatalf("rollback: %d", status)
	}
	back := waitServing(t, ra.api, "svc", 2*time.Minute, func(v challengeView) bool { return v.Version == "1.0.0" })
	if back.ContainerID != first.ContainerID {
		t.Errorf("rollback runs %s, want the kept service %s", back.ContainerID, first.ContainerID)
	}
	waitSwapEnd(t, ra.api, "svc", time.Minute)

	// An image a kept service names is not removed, though no task runs it.
	rt := swarmRuntime(t, id)
	if err := rt.RemoveImage(context.Background(), repo+":1.1.0"); !errors.Is(err, challenge.ErrConflict) {
		t.Errorf("RemoveImage of the kept service's image: %v, want ErrConflict", err)
	}

	// A berth restart adopts the service: no update, no new task. Swarm
	// itself bumps the version while it finishes the rollback's update.
	var before serviceView
	testenv.WaitFor(t, 30*time.Second, "the rollback's service update to finish", func() (bool, error) {
		before = inspectService(t, "", back.ContainerID)
		return before.UpdateStatus == nil || before.UpdateStatus.State == "completed", nil
	})
	tasksBefore := runningTasks(t, "", back.ContainerID)
	ra.stop(t)
	ra2 := startAgent(t, cfg)
	again := waitServing(t, ra2.api, "svc", time.Minute, nil)
	time.Sleep(2 * time.Second) // a few polls and probes; not a timing assertion
	after := inspectService(t, "", again.ContainerID)
	if again.ContainerID != back.ContainerID || after.Version.Index != before.Version.Index ||
		after.Spec.TaskTemplate.ForceUpdate != before.Spec.TaskTemplate.ForceUpdate {
		t.Errorf("re-adoption changed the service: %s v%d → %s v%d", back.ContainerID, before.Version.Index, again.ContainerID, after.Version.Index)
	}
	if tasksAfter := runningTasks(t, "", again.ContainerID); !slices.Equal(tasksAfter, tasksBefore) {
		t.Errorf("re-adoption restarted tasks: %v → %v", tasksBefore, tasksAfter)
	}
	if _, ok := findEvent(events(t, ra2.api, "svc"), "adopted"); !ok {
		t.Error("no adopted event")
	}

	// Orphans: a service with this agent's labels that no record claims is
	// removed after the grace; another agent's is never touched.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mk := func(agentID, name string) {
		t.Helper()
		if _, err := testenv.DockerE(ctx, "service", "create", "-d", "--name", name, "--replicas", "0",
			"--label", "io.berth.managed=true", "--label", "io.berth.agent="+agentID, "--label", "io.berth.challenge=ghost",
			"--label", "io.berth.slot=a", repo+":1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	other := "other-" + id
	t.Cleanup(func() { removeServices(t, other) })
	mk(id, "berth-"+id+"-ghost-a")
	mk(other, "berth-"+other+"-ghost-a")
	testenv.WaitFor(t, 45*time.Second, "the orphan service to be removed", func() (bool, error) {
		out, err := testenv.DockerE(ctx, "service", "ls", "-q", "--filter", "name=berth-"+id+"-ghost-a")
		return err == nil && out == "", err
	})
	if out, _ := testenv.DockerE(ctx, "service", "ls", "-q", "--filter", "name=berth-"+other+"-ghost-a"); out == "" {
		t.Error("another agent's service was removed")
	}
	if _, ok := findEvent(events(t, ra2.api, "ghost"), "orphan_removed"); !ok {
		t.Error("no orphan_removed event")
	}
}

// swarmRuntime is the swarm runtime of agentID on the default engine.
func swarmRuntime(t testing.TB, agentID string) *swarmrt.Runtime {
	t.Helper()
	engine, err := docker.New(docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	a := configs.BuiltinAgent()
	a.ID, a.Backend = agentID, configs.BackendSwarm
	return swarmrt.New(engine, a)
}

// A warm standby is a service of its own; a crash promotes it.
func TestSwarmBackendStandby(t *testing.T) {
	requireSwarm(t)
	id := testenv.AgentID(t)
	repo := "berth-it-" + id + "/echo"
	testenv.BuildLocalImage(t, repo+":1.0.0", nil)
	cfg := swarmConfig(t, id, strings.Replace(swarmYAML("svc", repo, "1.0.0"), "  - name: svc\n", "  - name: svc\n    standby: true\n", 1))
	ra := startAgent(t, cfg)
	first := waitServing(t, ra.api, "svc", 90*time.Second, nil)
	testenv.WaitFor(t, time.Minute, "the standby to be ready", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "svc"), "standby_ready")
		return ok, nil
	})
	testenv.HTTPPost(t, ra.proxy+"/svc/admin/crash", "")
	promoted := waitServing(t, ra.api, "svc", time.Minute, func(v challengeView) bool { return v.ContainerID != first.ContainerID })
	if _, ok := findEvent(events(t, ra.api, "svc"), "standby_promoted"); !ok {
		t.Error("no standby_promoted event")
	}
	if sp := inspectService(t, "", promoted.ContainerID).Spec; sp.Labels["io.berth.challenge"] != "svc" || !strings.HasSuffix(sp.Name, "s") {
		t.Errorf("promoted service %s labels %v, want the standby slot's service", sp.Name, sp.Labels)
	}
	if status, _ := getBody(t, ra.proxy+"/svc/version"); status != http.StatusOK {
		t.Errorf("after the promotion: %d", status)
	}
}
