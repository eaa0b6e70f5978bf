package integration_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// harnessHardened mirrors how berth runs challenges (SPEC §5.9), so the harness
// proves the challenge image works under those constraints.
var harnessHardened = []string{
	"--read-only", "--tmpfs", "/tmp",
	"--cap-drop", "ALL", "--security-opt", "no-new-privileges",
	"--user", "65534:65534", "--init",
	"--memory", "128m", "--memory-swap", "128m", "--pids-limit", "64",
}

// harnessStart runs image detached with port 8080 published on loopback and
// returns the container id and base URL.
func harnessStart(t *testing.T, agentID, image string, extra ...string) (id, baseURL string) {
	t.Helper()
	args := append([]string{"run", "-d", "--label", testenv.LabelAgent + "=" + agentID, "-p", "127.0.0.1::8080"}, harnessHardened...)
	args = append(append(args, extra...), image)
	id = testenv.Docker(t, args...)
	// `docker port` may print one line per address family.
	hostPort := strings.Fields(testenv.Docker(t, "port", id, "8080/tcp"))[0]
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		t.Fatalf("docker port %s: %q: %v", id, hostPort, err)
	}
	return id, "http://" + hostPort
}

type harnessHealth struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

func harnessWaitHealthy(t *testing.T, baseURL, version string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "challenge healthy at "+baseURL, func() (bool, error) {
		var h harnessHealth
		status, err := testenv.GetJSON(t.Context(), baseURL+"/health", &h)
		return status == http.StatusOK && h.Status == "ok" && h.Version == version, err
	})
}

// harnessLeaveNothing registers, before any helper's cleanup, a check that runs after
// all of them: nothing labelled with the agent, its network and the image refs
// are gone.
func harnessLeaveNothing(t *testing.T, agent *string, refs *[]string) {
	t.Cleanup(func() {
		filter := "label=" + testenv.LabelAgent + "=" + *agent
		for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
			if out := testenv.Docker(t, append(kind, "--filter", filter)...); out != "" {
				t.Errorf("docker %s: left behind for %s: %s", kind[0], *agent, out)
			}
		}
		if out := testenv.Docker(t, "network", "ls", "-q", "--filter", "name="+testenv.NetworkName(*agent)); out != "" {
			t.Errorf("network %s left behind", testenv.NetworkName(*agent))
		}
		for _, ref := range *refs {
			if out := testenv.Docker(t, "images", "-q", ref); out != "" {
				t.Errorf("image %s left behind", ref)
			}
		}
	})
}

func TestHarnessRegistryImage(t *testing.T) {
	testenv.RequireDocker(t)
	var agent string
	var refs []string
	harnessLeaveNothing(t, &agent, &refs)
	agent = testenv.AgentID(t)
	reg := testenv.StartRegistry(t)

	ref, digest := reg.PushChallenge(t, "berth-test/challenge", "1.0.0", nil)
	refs = append(refs, ref)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("digest %q", digest)
	}
	if _, again := reg.PushChallenge(t, "berth-test/challenge", "1.0.0", nil); again != digest {
		t.Fatalf("re-push changed the digest: %s then %s", digest, again)
	}
	testenv.Docker(t, "pull", ref)
	if got := testenv.Docker(t, "image", "inspect", "--format", "{{json .RepoDigests}}", ref); !strings.Contains(got, digest) {
		t.Fatalf("engine digests %s do not include pushed %s", got, digest)
	}

	id, url := harnessStart(t, agent, ref)
	harnessWaitHealthy(t, url, "1.0.0")
	var v harnessHealth
	if status := testenv.HTTPGetJSON(t, url+"/version", &v); status != http.StatusOK || v.Version != "1.0.0" {
		t.Fatalf("/version: %d %+v", status, v)
	}
	if ids := testenv.DockerPS(t, agent); len(ids) != 1 || ids[0] != id {
		t.Fatalf("DockerPS = %v, want [%s]", ids, id)
	}
	if status := testenv.HTTPPost(t, url+"/admin/crash?code=3", ""); status != http.StatusOK {
		t.Fatalf("/admin/crash: status %d", status)
	}
	if got := testenv.Docker(t, "wait", id); got != "3" {
		t.Fatalf("exit code after /admin/crash?code=3: %s", got)
	}

	if tags := reg.Tags(t, "berth-test/challenge"); len(tags) != 1 || tags[0] != "1.0.0" {
		t.Fatalf("tags = %v, want [1.0.0]", tags)
	}
}

func TestHarnessLocalImage(t *testing.T) {
	testenv.RequireDocker(t)
	var agent string
	var refs []string
	harnessLeaveNothing(t, &agent, &refs)
	agent = testenv.AgentID(t)
	ref := "berth-local/" + agent + ":2.0.0"
	refs = append(refs, ref)
	testenv.BuildLocalImage(t, ref, map[string]string{"HEALTH_STATUS": "ok"})

	id, url := harnessStart(t, agent, ref, "--pull", "never")
	harnessWaitHealthy(t, url, "2.0.0")
	testenv.Docker(t, "stop", "-t", "20", id)
	state := testenv.DockerInspect(t, id)["State"].(map[string]any)
	if state["ExitCode"] != float64(0) {
		t.Fatalf("exit code after SIGTERM = %v, want 0", state["ExitCode"])
	}

	// A memory limit turns /admin/oom into a real OOM kill.
	id, url = harnessStart(t, agent, ref, "--pull", "never")
	harnessWaitHealthy(t, url, "2.0.0")
	testenv.HTTPPost(t, url+"/admin/oom", "")
	if got := testenv.Docker(t, "wait", id); got != "137" {
		t.Fatalf("exit code after /admin/oom = %s, want 137", got)
	}
	if state := testenv.DockerInspect(t, id)["State"].(map[string]any); state["OOMKilled"] != true {
		t.Fatalf("OOMKilled = %v after /admin/oom", state["OOMKilled"])
	}

	// AgentID's cleanup must find networks and volumes too, and a container
	// still attached to the agent's network.
	label := testenv.LabelAgent + "=" + agent
	testenv.Docker(t, "network", "create", testenv.NetworkName(agent))
	testenv.Docker(t, "network", "create", "--label", label, "other-"+agent)
	testenv.Docker(t, "volume", "create", "--label", label)
	id, url = harnessStart(t, agent, ref, "--network", testenv.NetworkName(agent))
	harnessWaitHealthy(t, url, "2.0.0")
	testenv.DockerKill(t, id)
	if got := testenv.Docker(t, "wait", id); got != "137" {
		t.Fatalf("exit code after docker kill = %s, want 137", got)
	}

	id = testenv.Docker(t, "run", "-d", "--label", testenv.LabelAgent+"="+agent,
		"-e", "CRASH_AFTER_MS=1", "-e", "CRASH_EXIT_CODE=4", ref)
	if got := testenv.Docker(t, "wait", id); got != "4" {
		t.Fatalf("exit code with CRASH_AFTER_MS = %s, want 4", got)
	}
}
