package integration_test

import (
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// update.auto notify names a newer matching tag in an event and swaps nothing.
func TestAutoUpdateNotifyOnlyTells(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "^1.0", "auto: notify, check_interval: 1s, min_healthy_time: 200ms")))
	waitServing(t, ra.api, "svc", 60*time.Second, nil)
	reg.PushChallenge(t, "berth-it/echo", "1.3.0", nil)
	testenv.WaitFor(t, time.Minute, "update_available", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "svc"), "update_available")
		return ok, nil
	})
	ev, _ := findEvent(events(t, ra.api, "svc"), "update_available")
	if ev.From != "1.0.0" || ev.To != "1.3.0" {
		t.Errorf("update_available %+v, want 1.0.0 → 1.3.0", ev)
	}
	time.Sleep(3 * time.Second) // several more checks
	n := 0
	for _, e := range events(t, ra.api, "svc") {
		switch e.Type {
		case "update_available":
			n++
		case "swap_started":
			t.Errorf("notify started a swap: %+v", e)
		}
	}
	if n != 1 {
		t.Errorf("%d update_available events, want 1", n)
	}
	if v, err := challengeStatus(t, ra.api, "svc"); err != nil || v.Version != "1.0.0" {
		t.Errorf("after notify: %+v, %v", v, err)
	}
}

// keep_previous after a swap the old container goes, and its image with it;
// the serving version's image stays.
func TestOldImagePrunedAfterKeepPrevious(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	oldRef, _ := reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	newRef, _ := reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	ra := startAgent(t, berthConfig(t, id, swapYAML("svc", reg.Host+"/berth-it/echo", "1.0.0", "min_healthy_time: 200ms, drain_timeout: 1s, keep_previous: 2s")))
	waitServing(t, ra.api, "svc", 60*time.Second, nil)
	imageExists := func(ref string) bool {
		_, err := testenv.DockerE(dkCtx(t), "image", "inspect", "--format", "{{.Id}}", ref)
		return err == nil
	}
	if !imageExists(oldRef) {
		t.Fatalf("%s not pulled", oldRef)
	}
	postSwap(t, ra.api, "svc", "1.1.0")
	if s := waitSwapEnd(t, ra.api, "svc", time.Minute); s["phase"] != "completed" {
		t.Fatalf("swap: %v", s)
	}
	testenv.WaitFor(t, 30*time.Second, "old image pruned", func() (bool, error) {
		return !imageExists(oldRef), nil
	})
	if !imageExists(newRef) {
		t.Errorf("the serving image %s was removed", newRef)
	}
	if code, body := getBody(t, ra.proxy+"/svc/version"); code != 200 || !strings.Contains(body, "1.1.0") {
		t.Errorf("after pruning: %d %s", code, body)
	}
}
