package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

func doRequest(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRegisterUpdateDeleteOverTheAPI(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	cfg := berthConfig(t, id, challengeYAML("cfg", reg.Host+"/berth-it/echo", "1.0.0", ""))
	ra := startAgent(t, cfg)
	waitServing(t, ra.api, "cfg", 60*time.Second, nil)

	spec := func(version string) string {
		return fmt.Sprintf(`{"image":%q,"version":%q,"health":{"path":"/health","interval":"300ms","start_interval":"100ms"},"update":{"min_healthy_time":"200ms"}}`,
			reg.Host+"/berth-it/echo", version)
	}
	if status, body := doRequest(t, "PUT", ra.api+"/v1/challenges/dyn", spec("1.0.0")); status != http.StatusCreated {
		t.Fatalf("PUT new: %d %s", status, body)
	}
	waitServing(t, ra.api, "dyn", 60*time.Second, nil)
	if status, _ := getBody(t, ra.proxy+"/dyn/version"); status != http.StatusOK {
		t.Errorf("registered challenge not served: %d", status)
	}
	// A version change swaps.
	if status, body := doRequest(t, "PUT", ra.api+"/v1/challenges/dyn", spec("1.1.0")); status != http.StatusOK {
		t.Fatalf("PUT update: %d %s", status, body)
	}
	waitServing(t, ra.api, "dyn", 60*time.Second, func(v challengeView) bool { return v.Version == "1.1.0" })
	if s := waitSwapEnd(t, ra.api, "dyn", time.Minute); s["phase"] != "completed" {
		t.Errorf("update swap: %v", s)
	}
	// Bad input is refused with a clear 4xx.
	for _, c := range []struct {
		name, body string
		want       int
	}{
		{"dyn", `{"image":"x","version":"1.0.0","bogus":1}`, http.StatusBadRequest},
		{"dyn", `{"version":"1.0.0"}`, http.StatusBadRequest},
		{"Bad_Name", spec("1.0.0"), http.StatusBadRequest},
		{"cfg", spec("1.0.0"), http.StatusConflict},
	} {
		if status, body := doRequest(t, "PUT", ra.api+"/v1/challenges/"+c.name, c.body); status != c.want || !strings.Contains(body, `"code"`) {
			t.Errorf("PUT %s %s: %d %s, want %d JSON", c.name, c.body, status, body, c.want)
		}
	}
	// Registered specs survive a restart of berth.
	ra.stop(t)
	ra2 := startAgent(t, cfg)
	waitServing(t, ra2.api, "dyn", 60*time.Second, func(v challengeView) bool { return v.Version == "1.1.0" })

	if status, body := doRequest(t, "DELETE", ra2.api+"/v1/challenges/cfg", ""); status != http.StatusConflict {
		t.Errorf("DELETE config challenge: %d %s, want 409", status, body)
	}
	if status, body := doRequest(t, "DELETE", ra2.api+"/v1/challenges/dyn", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, _ := getBody(t, ra2.api+"/v1/challenges/dyn"); status != http.StatusNotFound {
		t.Errorf("deleted challenge still listed: %d", status)
	}
	testenv.WaitFor(t, 30*time.Second, "deleted challenge's containers removed", func() (bool, error) {
		out := testenv.Docker(t, "ps", "-aq", "--filter", "label=io.berth.agent="+id, "--filter", "label=io.berth.challenge=dyn")
		return out == "", fmt.Errorf("left: %s", out)
	})
}

func TestReloadAddsChangesRemovesAndRefusesInvalid(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	image := reg.Host + "/berth-it/echo"
	keep := swapYAML("keep", image, "1.0.0", "min_healthy_time: 200ms")
	drop := challengeYAML("drop", image, "1.0.0", "")
	cfg := berthConfig(t, id, keep+drop)
	dir := filepath.Join(filepath.Dir(cfg), "challenges.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg = rewriteConfig(t, cfg, "  network:", "  challenge_dirs: ["+dir+"]\n  network:")
	p := startBerthProcess(t, cfg)
	waitServing(t, p.api, "keep", 60*time.Second, nil)
	untouched := waitServing(t, p.api, "drop", 60*time.Second, nil)

	// An invalid config is refused whole; everything keeps running.
	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(append([]byte{}, good...), []byte("  - name: BAD\n")...), 0o600)
	if status, body := doRequest(t, "POST", p.api+"/v1/reload", ""); status != http.StatusBadRequest || !strings.Contains(body, "BAD") {
		t.Errorf("invalid reload: %d %s", status, body)
	}
	if v, _ := challengeStatus(t, p.api, "drop"); v.ContainerID != untouched.ContainerID || v.State != "running" {
		t.Errorf("invalid reload changed a challenge: %+v", v)
	}

	// Valid: keep's version changes (swap), drop is removed, a dir file adds one.
	os.WriteFile(cfg, good, 0o600)
	rewriteConfig(t, cfg, drop, "")
	rewriteConfig(t, cfg, `version: "1.0.0"`, `version: "1.1.0"`)
	added := fmt.Sprintf("name: added\nimage: %s\nversion: \"1.0.0\"\nhealth: {path: /health, start_interval: 100ms}\n", image)
	os.WriteFile(filepath.Join(dir, "added.yaml"), []byte(added), 0o600)
	// SIGHUP does what POST /v1/reload does.
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitServing(t, p.api, "added", 60*time.Second, nil)
	waitServing(t, p.api, "keep", 60*time.Second, func(v challengeView) bool { return v.Version == "1.1.0" })
	testenv.WaitFor(t, 30*time.Second, "removed challenge gone", func() (bool, error) {
		status, _ := getBody(t, p.api+"/v1/challenges/drop")
		return status == http.StatusNotFound && !testenv.ContainerExists(t, untouched.ContainerID), fmt.Errorf("status %d", status)
	})
}
