package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
	"berth/statestore"
)

func TestHungChallengeIsRestartedAfterFailureThreshold(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	yaml := fmt.Sprintf(`  - name: hang
    image: %s/berth-it/echo
    version: "1.0.0"
    health: {path: /health, interval: 500ms, timeout: 400ms, failure_threshold: 3, start_period: 20s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, stop_timeout: 1s}
`, reg.Host)
	ra := startAgent(t, berthConfig(t, id, yaml))
	before := waitServing(t, ra.api, "hang", 60*time.Second, nil)

	hungAt := time.Now()
	if status := testenv.HTTPPost(t, ra.proxy+"/hang/admin/hang", ""); status != http.StatusOK {
		t.Fatalf("hang request: %d", status)
	}
	after := waitServing(t, ra.api, "hang", 30*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	t.Logf("hang → serving again after %s (threshold 3 × 500ms)", time.Since(hungAt).Round(10*time.Millisecond))
	if after.ContainerID != before.ContainerID {
		t.Logf("restarted as a new container %s", after.ContainerID)
	}
	evs := events(t, ra.api, "hang")
	var sawDegraded, sawUnhealthy bool
	for _, ev := range evs {
		if ev.Type == "health_changed" && ev.To == "degraded" {
			sawDegraded = true
		}
		if ev.Type == "health_changed" && ev.To == "unhealthy" {
			sawUnhealthy = true
			if !strings.Contains(ev.Error, "no answer within") {
				t.Errorf("unhealthy event should carry the probe error, got %q", ev.Error)
			}
		}
	}
	if !sawDegraded || !sawUnhealthy {
		t.Errorf("health events should pass degraded then unhealthy: %+v", evs)
	}
	if _, ok := findEvent(evs, "unhealthy"); !ok {
		t.Error("no unhealthy restart cause event")
	}
	// One health_changed line per change, not one per failing probe.
	if n := strings.Count(ra.logs.String(), `"to":"unhealthy"`); n != 1 {
		t.Errorf("logged the unhealthy transition %d times, want once", n)
	}
}

func TestOOMKillIsRecordedAsSuch(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, challengeYAML("oom", reg.Host+"/berth-it/echo", "1.0.0", "")))
	waitServing(t, ra.api, "oom", 60*time.Second, nil)
	if status := testenv.HTTPPost(t, ra.proxy+"/oom/admin/oom", ""); status != http.StatusOK {
		t.Fatalf("oom request: %d", status)
	}
	var ev statestore.Event
	testenv.WaitFor(t, 30*time.Second, "an oom_killed event", func() (bool, error) {
		var ok bool
		ev, ok = findEvent(events(t, ra.api, "oom"), "oom_killed")
		return ok, nil
	})
	if !ev.OOM || ev.ExitCode == nil || *ev.ExitCode != 137 {
		t.Errorf("oom_killed event %+v: want oom=true and exit_code 137", ev)
	}
	waitServing(t, ra.api, "oom", 30*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
}

func TestCrashLoopBacksOffWithoutDelayingSibling(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/crashy", "1.0.0", map[string]string{"CRASH_AFTER_MS": "100", "CRASH_EXIT_CODE": "7"})
	loop := fmt.Sprintf(`  - name: loop
    image: %s/berth-it/crashy
    version: "1.0.0"
    health: {path: /health, interval: 500ms, start_interval: 100ms}
    restart: {initial_backoff: 400ms, max_backoff: 10s, multiplier: 2, jitter: 0.1, stop_timeout: 1s}
`, reg.Host)
	ra := startAgent(t, berthConfig(t, id, loop+challengeYAML("calm", reg.Host+"/berth-it/echo", "1.0.0", "")))
	calm := waitServing(t, ra.api, "calm", 60*time.Second, nil)

	// Let the loop reach a long backoff (attempt 4: 3.2 s ± 10%).
	testenv.WaitFor(t, 60*time.Second, "crash loop to reach restart attempt 4", func() (bool, error) {
		for _, ev := range events(t, ra.api, "loop") {
			if ev.Type == "restarting" && ev.Attempt >= 4 {
				return true, nil
			}
		}
		return false, nil
	})
	killedAt := time.Now()
	testenv.DockerKill(t, calm.ContainerID)
	waitServing(t, ra.api, "calm", 20*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })
	t.Logf("sibling serving again %s after its kill while the loop backs off", time.Since(killedAt).Round(10*time.Millisecond))
	if r, _ := findEvent(events(t, ra.api, "calm"), "restarting"); r.DelayMS > 1000 {
		t.Errorf("sibling's first restart delay %d ms: backoff leaked from the crash-looping challenge", r.DelayMS)
	}

	// The loop's delays follow initial × multiplier^(n−1) within jitter.
	for _, ev := range events(t, ra.api, "loop") {
		if ev.Type != "restarting" || ev.Attempt == 0 {
			continue
		}
		want := 400.0
		for i := 1; i < ev.Attempt; i++ {
			want *= 2
		}
		want = min(want, 10000)
		if got := float64(ev.DelayMS); got < want*0.89 || got > want*1.11 {
			t.Errorf("attempt %d delay %v ms, want %v ± 10%%", ev.Attempt, got, want)
		}
	}
	exited, _ := findEvent(events(t, ra.api, "loop"), "exited")
	if exited.ExitCode == nil || *exited.ExitCode != 7 {
		t.Errorf("loop exit code %v, want 7", exited.ExitCode)
	}
}

func TestGiveUpAfterMaxRestartsAndOperatorRestartClearsIt(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/crashy", "1.0.0", map[string]string{"CRASH_AFTER_MS": "100"})
	yaml := fmt.Sprintf(`  - name: doomed
    image: %s/berth-it/crashy
    version: "1.0.0"
    health: {path: /health, start_interval: 100ms}
    restart: {initial_backoff: 100ms, max_backoff: 200ms, max_restarts: 2, window: 1m, stop_timeout: 1s}
`, reg.Host)
	ra := startAgent(t, berthConfig(t, id, yaml))
	testenv.WaitFor(t, 60*time.Second, "doomed to give up", func() (bool, error) {
		v, err := challengeStatus(t, ra.api, "doomed")
		if err != nil {
			return false, err
		}
		return v.State == "failed", fmt.Errorf("state %s restarts %d", v.State, v.Restarts)
	})
	v, _ := challengeStatus(t, ra.api, "doomed")
	if v.Restarts != 2 {
		t.Errorf("restarts before giving up = %d, want max_restarts 2", v.Restarts)
	}
	evs := events(t, ra.api, "doomed")
	gaveUp, ok := findEvent(evs, "gave_up")
	if !ok {
		t.Fatal("no gave_up event")
	}
	// Failed stays failed: no start after the give-up.
	lastSeq := evs[len(evs)-1].Seq
	time.Sleep(time.Second) // observe that nothing happens; not a timing assertion
	for _, ev := range events(t, ra.api, "doomed") {
		if ev.Seq > lastSeq && ev.Type == "started" {
			t.Errorf("started again after gave_up: %+v", ev)
		}
	}

	if status := testenv.HTTPPost(t, ra.api+"/v1/challenges/doomed/restart", ""); status != http.StatusAccepted {
		t.Fatalf("POST restart: %d, want 202", status)
	}
	testenv.WaitFor(t, 30*time.Second, "a start after the operator restart", func() (bool, error) {
		for _, ev := range events(t, ra.api, "doomed") {
			if ev.Seq > gaveUp.Seq && ev.Type == "started" {
				return true, nil
			}
		}
		return false, nil
	})
	if status := testenv.HTTPPost(t, ra.api+"/v1/challenges/nope/restart", ""); status != http.StatusNotFound {
		t.Errorf("restart of unknown challenge: %d, want 404", status)
	}
}
