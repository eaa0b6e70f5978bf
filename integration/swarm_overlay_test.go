package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// reach: network on the swarm backend: berth runs in a container attached
// to an attachable overlay and dials tasks at their overlay addresses.
func TestSwarmBackendReachesTasksOnAnOverlay(t *testing.T) {
	requireSwarm(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sock, gid := dockerSocket(t)
	id := testenv.AgentID(t)
	repo := "berth-it-" + id + "/echo"
	overlay := testenv.NetworkName(id)
	berthImage := "berth-it-" + id + "/berth:test"
	buildBerthImage(t, root, berthImage)
	testenv.BuildLocalImage(t, repo+":1.0.0", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// berth's container joins the overlay when it starts, so it exists first.
	testenv.Docker(t, "network", "create", "-d", "overlay", "--attachable", "--label", "io.berth.agent="+id, overlay)
	t.Cleanup(func() {
		if _, err := testenv.DockerE(context.Background(), "network", "rm", overlay); err != nil {
			t.Logf("remove %s: %v", overlay, err)
		}
	})
	t.Cleanup(func() { removeServices(t, id) })

	dir := t.TempDir()
	const token = "overlay-test-token"
	cfg := fmt.Sprintf(`agent:
  id: %s
  backend: swarm
  reach: network
  network: %s
  data_dir: /var/lib/berth
  api: {listen: "0.0.0.0:7070", token_file: /etc/berth/token}
  proxy: {listen: "0.0.0.0:7080"}
challenges:
%s`, id, overlay, swarmYAML("svc", repo, "1.0.0"))
	for name, content := range map[string]string{"berth.yaml": cfg, "token": token} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil { // berth runs as uid 65532
		t.Fatal(err)
	}
	name := "berth-it-" + id + "-berth"
	testenv.Docker(t, "run", "-d", "--name", name, "--network", overlay, "--group-add", fmt.Sprint(gid),
		"-v", sock+":/var/run/docker.sock", "-v", dir+":/etc/berth:ro", "-p", "127.0.0.1::7070", "-p", "127.0.0.1::7080", berthImage)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := testenv.DockerE(context.Background(), "logs", "--tail", "60", name)
			t.Logf("berth's log:\n%s", out)
		}
		if _, err := testenv.DockerE(context.Background(), "rm", "-f", name); err != nil {
			t.Logf("remove %s: %v", name, err)
		}
	})
	port := func(p string) string {
		out, err := testenv.DockerE(ctx, "port", name, p+"/tcp")
		if err != nil {
			t.Fatal(err)
		}
		return "http://" + strings.Split(out, "\n")[0]
	}
	api, proxy := port("7070"), port("7080")

	var v challengeView
	testenv.WaitFor(t, 2*time.Minute, "svc serving through berth in a container", func() (bool, error) {
		_, err := composeGet(api+"/v1/challenges/svc", token, &v)
		return err == nil && v.State == "running" && v.Health == "healthy", fmt.Errorf("%+v %v", v, err)
	})
	if !strings.HasSuffix(v.Upstream, ":8080") || strings.HasPrefix(v.Upstream, "http://127.") {
		t.Errorf("upstream %q, want the task's overlay address and its own port", v.Upstream)
	}
	svc := inspectService(t, "", v.ContainerID)
	if len(svc.Spec.EndpointSpec.Ports) != 0 {
		t.Errorf("reach: network published ports %+v", svc.Spec.EndpointSpec.Ports)
	}
	if status, body := getBody(t, proxy+"/svc/version"); status != http.StatusOK || !strings.Contains(body, "1.0.0") {
		t.Errorf("stable endpoint: %d %q", status, body)
	}
}
