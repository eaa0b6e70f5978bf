package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// counterYAML is a challenge that counts work items in memory and keeps
// them in snapshots every second.
func counterYAML(image, version, extra string) string {
	return fmt.Sprintf(`  - name: cnt
    image: %s
    version: %q
    port: 8080
    state: {export: /items/state, import: /items/state, snapshot_interval: 1s}
    health: {path: /health, interval: 300ms, timeout: 1s, failure_threshold: 2, start_period: 10s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, stop_timeout: 2s}
    update: {healthy_deadline: 6s, min_healthy_time: 200ms}
    resources: {memory: 64m}
%s`, image, version, extra)
}

// items asks the counter through the stable endpoint; -1 when it does not answer.
func items(t testing.TB, proxy string) int {
	t.Helper()
	code, body := getBody(t, proxy+"/cnt/items")
	var v struct{ Items int }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		return -1
	}
	return v.Items
}

func addItems(t testing.TB, proxy string, n int) {
	t.Helper()
	for range n {
		if code := testenv.HTTPPost(t, proxy+"/cnt/items", ""); code != http.StatusOK {
			t.Fatalf("POST items: %d", code)
		}
	}
}

type snapshotView struct {
	Seq     uint64 `json:"seq"`
	Version string `json:"version"`
	Bytes   int    `json:"bytes"`
	SHA256  string `json:"sha256"`
}

func snapshotList(t testing.TB, api string) []snapshotView {
	t.Helper()
	var list []snapshotView
	if code := testenv.HTTPGetJSON(t, api+"/v1/challenges/cnt/snapshots", &list); code != http.StatusOK {
		t.Fatalf("GET snapshots: %d", code)
	}
	return list
}

// waitSnapshotOf waits for a snapshot taken after now that holds n items:
// its size is that of {"items":n} plus a newline.
func waitSnapshotOf(t testing.TB, api string, n int) {
	t.Helper()
	want := len(fmt.Sprintf(`{"items":%d}`, n)) + 1
	before := uint64(0)
	if l := snapshotList(t, api); len(l) > 0 {
		before = l[0].Seq
	}
	testenv.WaitFor(t, 20*time.Second, "a snapshot of the counter", func() (bool, error) {
		l := snapshotList(t, api)
		return len(l) > 0 && l[0].Seq > before+1 && l[0].Bytes == want, fmt.Errorf("snapshots %+v", l)
	})
}

// waitItems waits until the restarted counter answers n.
func waitItems(t testing.TB, ra *runningAgent, n int, after string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, after, func() (bool, error) {
		got := items(t, ra.proxy)
		return got == n, fmt.Errorf("items %d, want %d", got, n)
	})
}

func countEvents(t testing.TB, api, typ string) int {
	n := 0
	for _, e := range events(t, api, "cnt") {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// counterRig is berth running the counter challenge from a registry of its own.
type counterRig struct {
	ra   *runningAgent
	cfg  string // the config file
	id   string // the agent id
	repo string
}

// startCounter pushes the counter as each of versions (env per version,
// optional) and runs berth on the first until it serves.
func startCounter(t *testing.T, env map[string]map[string]string, versions ...string) *counterRig {
	t.Helper()
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	r := &counterRig{id: testenv.AgentID(t), repo: reg.Host + "/berth-it/echo"}
	for _, v := range versions {
		reg.PushChallenge(t, "berth-it/echo", v, env[v])
	}
	r.cfg = berthConfig(t, r.id, counterYAML(r.repo, versions[0], ""))
	r.ra = startAgent(t, r.cfg)
	waitServing(t, r.ra.api, "cnt", 60*time.Second, nil)
	return r
}

// restartWithoutContainers stops berth, removes the agent's containers as an
// operator would by hand, runs before (which may edit the config or the data
// directory) and starts berth again.
func (r *counterRig) restartWithoutContainers(t *testing.T, before func()) {
	t.Helper()
	r.ra.stop(t)
	for _, cid := range testenv.DockerPS(t, r.id) {
		testenv.Docker(t, "rm", "-f", cid)
	}
	if before != nil {
		before()
	}
	r.ra = startAgent(t, r.cfg)
}

// The counter survives a docker kill, an OOM kill and a hang: each time the
// new container gets the newest snapshot before it serves.
func TestStateSurvivesKillOOMAndHang(t *testing.T) {
	ra := startCounter(t, nil, "1.0.0").ra

	addItems(t, ra.proxy, 5)
	waitSnapshotOf(t, ra.api, 5)
	v, _ := challengeStatus(t, ra.api, "cnt")
	testenv.DockerKill(t, v.ContainerID)
	waitItems(t, ra, 5, "the counter back after docker kill")
	if countEvents(t, ra.api, "state_restored") < 1 {
		t.Error("no state_restored event after the kill")
	}

	addItems(t, ra.proxy, 2)
	waitSnapshotOf(t, ra.api, 7)
	testenv.HTTPPost(t, ra.proxy+"/cnt/admin/oom", "")
	testenv.WaitFor(t, 60*time.Second, "an oom_killed event", func() (bool, error) {
		return countEvents(t, ra.api, "oom_killed") > 0, nil
	})
	waitItems(t, ra, 7, "the counter back after the OOM kill")

	addItems(t, ra.proxy, 1)
	waitSnapshotOf(t, ra.api, 8)
	testenv.HTTPPost(t, ra.proxy+"/cnt/admin/hang", "")
	testenv.WaitFor(t, 60*time.Second, "an unhealthy restart", func() (bool, error) {
		return countEvents(t, ra.api, "unhealthy") > 0, nil
	})
	waitItems(t, ra, 8, "the counter back after the hang")
	if n := countEvents(t, ra.api, "state_restored"); n < 3 {
		t.Errorf("%d state_restored events, want one per restart", n)
	}
}

// berth down, container removed by hand, berth up: the container is
// recreated with the counter. Then the store is lost too and restored from
// a checkpoint, and the counter still comes back.
func TestStateSurvivesRemovedContainerAndLostStore(t *testing.T) {
	r := startCounter(t, nil, "1.0.0")
	addItems(t, r.ra.proxy, 4)
	waitSnapshotOf(t, r.ra.api, 4)
	r.restartWithoutContainers(t, nil)
	waitItems(t, r.ra, 4, "the counter in a recreated container")

	addItems(t, r.ra.proxy, 3)
	waitSnapshotOf(t, r.ra.api, 7)
	if code := testenv.HTTPPost(t, r.ra.api+"/v1/checkpoints", ""); code != http.StatusCreated {
		t.Fatalf("POST checkpoints: %d", code)
	}
	r.restartWithoutContainers(t, func() {
		if err := os.RemoveAll(filepath.Join(filepath.Dir(r.cfg), "data", "state")); err != nil {
			t.Fatal(err)
		}
	})
	waitItems(t, r.ra, 7, "the counter after the store was restored from a checkpoint")
}

// A snapshot of version 1 is not imported into version 2 unless
// across_major allows it; the refusal is an event.
func TestStateRestoreAcrossMajorRefused(t *testing.T) {
	r := startCounter(t, nil, "1.0.0", "2.0.0")
	addItems(t, r.ra.proxy, 3)
	waitSnapshotOf(t, r.ra.api, 3)
	r.restartWithoutContainers(t, func() { rewriteConfig(t, r.cfg, `version: "1.0.0"`, `version: "2.0.0"`) })
	ra := r.ra
	waitServing(t, ra.api, "cnt", 60*time.Second, func(v challengeView) bool { return v.Version == "2.0.0" })
	ev, ok := findEvent(events(t, ra.api, "cnt"), "state_restore_failed")
	if !ok || !strings.Contains(ev.Error, "across_major") {
		t.Errorf("state_restore_failed %+v (found %v)", ev, ok)
	}
	if n := items(t, ra.proxy); n != 0 {
		t.Errorf("version 2 got %d items from a version 1 snapshot", n)
	}
}

// Exports that redirect, fail, are too large or too slow are refused with
// an event saying which, and the last good snapshot stays the newest.
func TestStateBadExportsKeepLastGoodSnapshot(t *testing.T) {
	ra := startCounter(t, nil, "1.0.0").ra
	addItems(t, ra.proxy, 2)
	waitSnapshotOf(t, ra.api, 2)
	good := snapshotList(t, ra.api)[0]
	for _, tc := range []struct{ mode, want string }{
		{"redirect", "a redirect"},
		{"error", "answered 500, not 200"},
		{"huge", "larger than the limit"},
		{"slow", "no complete answer within 10s"},
	} {
		before := countEvents(t, ra.api, "state_save_failed")
		if code := testenv.HTTPPost(t, ra.proxy+"/cnt/admin/export?mode="+tc.mode, ""); code != http.StatusOK {
			t.Fatalf("mode %s: %d", tc.mode, code)
		}
		testenv.WaitFor(t, 30*time.Second, "a refusal of the "+tc.mode+" export", func() (bool, error) {
			return countEvents(t, ra.api, "state_save_failed") > before, nil
		})
		var last string
		for _, e := range events(t, ra.api, "cnt") {
			if e.Type == "state_save_failed" {
				last = e.Error
			}
		}
		if !strings.Contains(last, tc.want) {
			t.Errorf("%s export refused with %q, want …%s…", tc.mode, last, tc.want)
		}
		if l := snapshotList(t, ra.api); l[0].SHA256 != good.SHA256 || l[0].Bytes != good.Bytes {
			t.Errorf("after the %s export the newest snapshot is %+v, want %+v", tc.mode, l[0], good)
		}
	}
	testenv.HTTPPost(t, ra.proxy+"/cnt/admin/export?mode=ok", "")
	addItems(t, ra.proxy, 1)
	waitSnapshotOf(t, ra.api, 3)
}

// Imports that fail twice are retried until they succeed; imports that
// never succeed give up at healthy_deadline and the challenge serves
// without state, saying why.
func TestStateImportRetriedThenGivenUp(t *testing.T) {
	r := startCounter(t, map[string]map[string]string{"1.0.0": {"IMPORT_FAIL": "2"}, "1.0.1": {"IMPORT_FAIL": "1000000"}}, "1.0.0", "1.0.1")
	ra := r.ra
	addItems(t, ra.proxy, 6)
	waitSnapshotOf(t, ra.api, 6)
	v, _ := challengeStatus(t, ra.api, "cnt")
	testenv.DockerKill(t, v.ContainerID)
	waitItems(t, ra, 6, "the counter after two failed imports")

	r.restartWithoutContainers(t, func() { rewriteConfig(t, r.cfg, `version: "1.0.0"`, `version: "1.0.1"`) })
	ra = r.ra
	testenv.WaitFor(t, 60*time.Second, "state_restore_failed", func() (bool, error) {
		return countEvents(t, ra.api, "state_restore_failed") > 0, nil
	})
	waitServing(t, ra.api, "cnt", 30*time.Second, nil)
	if n := items(t, ra.proxy); n != 0 {
		t.Errorf("items %d after a failed restore, want 0", n)
	}
	ev, _ := findEvent(events(t, ra.api, "cnt"), "state_restore_failed")
	if !strings.Contains(ev.Message, "healthy_deadline") || !strings.Contains(ev.Error, "answered 500") {
		t.Errorf("state_restore_failed %+v", ev)
	}
}

// The API and CLI paths: save now, list, restore an older snapshot.
func TestStateSaveListRestoreThroughAPI(t *testing.T) {
	ra := startCounter(t, nil, "1.0.0").ra
	addItems(t, ra.proxy, 1)
	resp, err := http.Post(ra.api+"/v1/challenges/cnt/snapshots", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var saved snapshotView
	_ = json.NewDecoder(resp.Body).Decode(&saved)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || saved.Seq == 0 || saved.Bytes != len(`{"items":1}`)+1 {
		t.Fatalf("POST snapshots: %d %+v", resp.StatusCode, saved)
	}
	addItems(t, ra.proxy, 4)
	waitSnapshotOf(t, ra.api, 5)
	if code := testenv.HTTPPost(t, fmt.Sprintf("%s/v1/challenges/cnt/snapshots/%d/restore", ra.api, saved.Seq), ""); code != http.StatusOK {
		t.Fatalf("restore: %d", code)
	}
	if n := items(t, ra.proxy); n != 1 {
		t.Errorf("items %d after restoring snapshot %d, want 1", n, saved.Seq)
	}
	if code := testenv.HTTPPost(t, ra.api+"/v1/challenges/cnt/snapshots/999999/restore", ""); code != http.StatusNotFound {
		t.Errorf("restore of a missing snapshot: %d, want 404", code)
	}
	var st map[string]any
	testenv.HTTPGetJSON(t, ra.api+"/v1/challenges/cnt", &st)
	if snap, _ := st["snapshot"].(map[string]any); snap == nil || snap["seq"] == nil {
		t.Errorf("challenge object snapshot %v", st["snapshot"])
	}
}
