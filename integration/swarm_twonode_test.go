package integration_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"berth/agent"
	"berth/configs"
	"berth/integration/testenv"
)

// twoNodeYAML is a challenge placed by a node label.
func twoNodeYAML(name, repo, constraint string) string {
	return swarmYAML(name, repo, "1.0.0") + "    placement: ['" + constraint + "']\n"
}

// Placement, a cross-node swap, a drained worker and a lost worker, on a
// swarm of this engine and a second one in a network namespace. It needs
// root and takes minutes: BERTH_SWARM_TWO_NODE=1 runs it.
func TestSwarmTwoNodes(t *testing.T) {
	if os.Getenv("BERTH_SWARM_TWO_NODE") != "1" {
		t.Skip("set BERTH_SWARM_TWO_NODE=1 to run the two-node swarm test (root; starts a second dockerd in a network namespace)")
	}
	testenv.RequireDocker(t)
	worker := startSecondEngine(t)
	workerID := twoNodeSwarm(t, worker)
	managerID := strings.TrimSpace(testenv.Docker(t, "info", "--format", "{{.Swarm.NodeID}}"))
	testenv.Docker(t, "node", "update", "--label-add", "zone=m", managerID)
	testenv.Docker(t, "node", "update", "--label-add", "zone=w", "--label-add", "pool=apps", workerID)

	id := testenv.AgentID(t)
	repo := "berth-it-" + id + "/echo"

	// berth refuses to run the swarm backend on a worker.
	wcfg, err := configs.Load(berthConfig(t, id, swarmYAML("svc", repo, "1.0.0")))
	if err != nil {
		t.Fatal(err)
	}
	wcfg.Agent.Backend, wcfg.Agent.DockerHost = configs.BackendSwarm, worker.host
	if _, err := agent.New(wcfg, agent.Options{}); err == nil || !strings.Contains(err.Error(), "not a swarm manager") {
		t.Errorf("agent.New on a worker: %v, want a refusal saying it is not a swarm manager", err)
	}

	for _, v := range []string{"1.0.0", "1.1.0"} {
		testenv.BuildLocalImage(t, repo+":"+v, nil)
		copyImage(t, worker, repo+":"+v)
	}
	onWorker, onManager := "http://"+workerAddr+":", "http://"+managerAddr+":"
	// roam keeps its state in snapshots, restored wherever it runs next.
	roamYAML := strings.Replace(twoNodeYAML("roam", repo, "node.labels.pool==apps"),
		"state: {export: /state, import: /state}", "state: {export: /state, import: /state, snapshot_interval: 1s}", 1)
	cfg := swarmConfig(t, id, twoNodeYAML("pinned", repo, "node.labels.zone==w")+roamYAML)
	ra := startAgent(t, cfg)

	// Placement: both run on the worker, reached at its address.
	pinned := waitServing(t, ra.api, "pinned", 2*time.Minute, nil)
	roam := waitServing(t, ra.api, "roam", 2*time.Minute, nil)
	for _, v := range []challengeView{pinned, roam} {
		if !strings.HasPrefix(v.Upstream, onWorker) {
			t.Errorf("%s upstream %q, want the worker %s…", v.Name, v.Upstream, onWorker)
		}
		if status, body := getBody(t, ra.proxy+"/"+v.Name+"/version"); status != 200 || !strings.Contains(body, "1.0.0") {
			t.Errorf("%s through the stable endpoint: %d %q", v.Name, status, body)
		}
	}

	// A cross-node swap: the new placement is a spec change, swapped
	// blue-green from the worker to the manager under load.
	l := startLoad(t, ra.proxy+"/pinned", 4, 2)
	time.Sleep(time.Second) // steady load first; not a timing assertion
	rewriteConfig(t, cfg, "node.labels.zone==w", "node.labels.zone==m")
	if status := testenv.HTTPPost(t, ra.api+"/v1/reload", ""); status != 200 {
		t.Fatalf("reload: %d", status)
	}
	swap := waitSwapEnd(t, ra.api, "pinned", 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	res := l.Finish()
	if swap["phase"] != "completed" {
		t.Fatalf("cross-node swap ended in %v: %v", swap["phase"], swap["error"])
	}
	t.Logf("cross-node swap: %d requests, %d failed", res.Requests, res.Failed)
	if res.Failed != 0 {
		t.Errorf("%d failed requests during the cross-node swap: %v", res.Failed, res.Errors)
	}
	if v, _ := challengeStatus(t, ra.api, "pinned"); !strings.HasPrefix(v.Upstream, onManager) {
		t.Errorf("after the swap pinned is at %q, want the manager %s…", v.Upstream, onManager)
	}

	// A drained worker: roam runs again on the manager, now eligible too.
	testenv.Docker(t, "node", "update", "--label-add", "pool=apps", managerID)
	start := time.Now()
	testenv.Docker(t, "node", "update", "--availability", "drain", workerID)
	moved := waitServing(t, ra.api, "roam", 2*time.Minute, func(v challengeView) bool { return strings.HasPrefix(v.Upstream, onManager) })
	t.Logf("drain: roam serves from %s after %s", moved.Upstream, time.Since(start).Round(time.Millisecond))
	if status, _ := getBody(t, ra.proxy+"/roam/version"); status != 200 {
		t.Errorf("roam after the drain: %d", status)
	}

	// Back to the worker: only it is eligible again, and an operator restart
	// schedules a new task there.
	testenv.Docker(t, "node", "update", "--availability", "active", workerID)
	testenv.Docker(t, "node", "update", "--label-rm", "pool", managerID)
	if status := testenv.HTTPPost(t, ra.api+"/v1/challenges/roam/restart", ""); status != 202 && status != 200 {
		t.Fatalf("restart roam: %d", status)
	}
	waitServing(t, ra.api, "roam", 2*time.Minute, func(v challengeView) bool { return strings.HasPrefix(v.Upstream, onWorker) })

	// A lost worker: its engine stops; roam runs again on the manager with
	// its last snapshot, and the stable endpoint follows.
	if status := testenv.HTTPPost(t, ra.proxy+"/roam/state", "carry-me"); status != 200 {
		t.Fatalf("POST roam state: %d", status)
	}
	testenv.WaitFor(t, 20*time.Second, "a snapshot of roam's state", func() (bool, error) {
		var list []struct{ Bytes int }
		testenv.HTTPGetJSON(t, ra.api+"/v1/challenges/roam/snapshots", &list)
		return len(list) > 0 && list[0].Bytes == len("carry-me"), fmt.Errorf("snapshots %+v", list)
	})
	testenv.Docker(t, "node", "update", "--label-add", "pool=apps", managerID)
	start = time.Now()
	worker.stop()
	moved = waitServing(t, ra.api, "roam", 3*time.Minute, func(v challengeView) bool { return strings.HasPrefix(v.Upstream, onManager) })
	recovery := time.Since(start)
	t.Logf("worker lost: roam serves from %s after %s", moved.Upstream, recovery.Round(time.Millisecond))
	testenv.WaitFor(t, 30*time.Second, "roam through the stable endpoint", func() (bool, error) {
		status, body := getBody(t, ra.proxy+"/roam/version")
		return status == 200 && strings.Contains(body, "1.0.0"), nil
	})
	if _, body := getBody(t, ra.proxy+"/roam/state"); body != "carry-me" {
		t.Errorf("roam's state after the worker loss %q, want the snapshot's carry-me", body)
	}
}
