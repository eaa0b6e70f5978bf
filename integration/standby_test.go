package integration_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"berth/integration/testenv"
)

// standbyView is the part of the challenge object the standby tests read.
type standbyView struct {
	ContainerID        string `json:"container_id"`
	StandbyContainerID string `json:"standby_container_id"`
	State              string `json:"state"`
	Health             string `json:"health"`
}

func standbyStatus(t testing.TB, api string) standbyView {
	t.Helper()
	var v standbyView
	testenv.HTTPGetJSON(t, api+"/v1/challenges/sb", &v)
	return v
}

// waitStandbyReady waits for the n-th standby_ready event and returns the
// challenge object then.
func waitStandbyReady(t testing.TB, api string, n int) standbyView {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("standby ready (%d)", n), func() (bool, error) {
		return countEventsOf(t, api, "sb", "standby_ready") >= n, nil
	})
	return standbyStatus(t, api)
}

func countEventsOf(t testing.TB, api, challenge, typ string) int {
	n := 0
	for _, e := range events(t, api, challenge) {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// Under a steady load, a docker kill, an OOM kill and a hang of the active
// container of a challenge with a standby fail no request: the endpoint
// moves to the standby at once and retries what failed before answering.
func TestStandbyTakesOverWithoutFailedRequests(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, fmt.Sprintf(`  - name: sb
    image: %s/berth-it/echo
    version: "1.0.0"
    port: 8080
    standby: true
    health: {path: /health, interval: 300ms, timeout: 1s, failure_threshold: 2, start_period: 10s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, stop_timeout: 2s, reset_after: 2s}
    resources: {memory: 64m}
`, reg.Host)))
	waitServing(t, ra.api, "sb", 60*time.Second, nil)
	first := waitStandbyReady(t, ra.api, 1)
	if first.StandbyContainerID == "" || first.StandbyContainerID == first.ContainerID {
		t.Fatalf("standby %+v", first)
	}
	load := startLoad(t, ra.proxy+"/sb", 6, 2)
	time.Sleep(time.Second)

	ready := 1
	for i, how := range []string{"kill", "oom", "kill", "hang", "kill"} {
		before := standbyStatus(t, ra.api)
		switch how {
		case "kill":
			testenv.DockerKill(t, before.ContainerID)
		case "oom":
			testenv.HTTPPost(t, ra.proxy+"/sb/admin/oom", "")
		case "hang":
			testenv.HTTPPost(t, ra.proxy+"/sb/admin/hang", "")
		}
		testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("promotion %d (%s)", i+1, how), func() (bool, error) {
			v := standbyStatus(t, ra.api)
			return v.ContainerID == before.StandbyContainerID, fmt.Errorf("%+v", v)
		})
		ready++
		waitStandbyReady(t, ra.api, ready)
		// A request is retried once: let the 3 s requests retried onto the
		// promoted container finish before it is the next one to fail.
		time.Sleep(3500 * time.Millisecond)
	}
	res := load.Finish()
	if res.Failed != 0 || res.Requests < 200 {
		t.Fatalf("%d of %d requests failed across five promotions: %v", res.Failed, res.Requests, res.Errors)
	}
	if n := countEventsOf(t, ra.api, "sb", "standby_promoted"); n != 5 {
		t.Errorf("%d standby_promoted events, want 5", n)
	}
	t.Logf("%d requests, 0 failed, across 5 promotions", res.Requests)
}

// berth restarting adopts the active container and its standby, restarting
// neither; when the active one died while berth was down, the standby serves.
func TestStandbyReadoptedAfterBerthRestart(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, fmt.Sprintf(`  - name: sb
    image: %s/berth-it/echo
    version: "1.0.0"
    port: 8080
    standby: true
    health: {path: /health, interval: 300ms, timeout: 1s, start_interval: 100ms}
`, reg.Host))
	ra := startAgent(t, cfg)
	waitServing(t, ra.api, "sb", 60*time.Second, nil)
	before := waitStandbyReady(t, ra.api, 1)
	started := map[string]string{}
	for _, cid := range []string{before.ContainerID, before.StandbyContainerID} {
		started[cid] = testenv.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", cid)
	}
	ra.stop(t)
	ra = startAgent(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "both adopted", func() (bool, error) {
		v := standbyStatus(t, ra.api)
		return v.ContainerID == before.ContainerID && v.StandbyContainerID == before.StandbyContainerID, fmt.Errorf("%+v", v)
	})
	for cid, at := range started {
		if now := testenv.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", cid); now != at {
			t.Errorf("%s restarted: started %s, now %s", cid, at, now)
		}
	}
	if got := len(testenv.DockerPS(t, id)); got != 2 {
		t.Errorf("%d containers, want the active one and the standby", got)
	}
	if code, _ := getBody(t, ra.proxy+"/sb/version"); code != http.StatusOK {
		t.Errorf("endpoint after re-adoption: %d", code)
	}

	// The active container dies while berth is down: berth comes back
	// serving from the standby, and the dead one returns as the standby.
	ra.stop(t)
	testenv.DockerKill(t, before.ContainerID)
	ra = startAgent(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "the standby serving after the restart", func() (bool, error) {
		v := standbyStatus(t, ra.api)
		return v.ContainerID == before.StandbyContainerID && v.Health == "healthy", fmt.Errorf("%+v", v)
	})
	if n := countEventsOf(t, ra.api, "sb", "standby_promoted"); n != 1 {
		t.Errorf("%d standby_promoted events, want 1", n)
	}
	if now := testenv.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", before.StandbyContainerID); now != started[before.StandbyContainerID] {
		t.Errorf("the standby was restarted to serve: started %s, now %s", started[before.StandbyContainerID], now)
	}
	if code, _ := getBody(t, ra.proxy+"/sb/version"); code != http.StatusOK {
		t.Errorf("endpoint after the promotion: %d", code)
	}
	testenv.WaitFor(t, 30*time.Second, "the dead container back as the standby", func() (bool, error) {
		v := standbyStatus(t, ra.api)
		return v.StandbyContainerID == before.ContainerID, fmt.Errorf("%+v", v)
	})
}
