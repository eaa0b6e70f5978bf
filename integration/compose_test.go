package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// demoImage is the challenge configs/compose.yaml runs, as scripts/demo.sh builds it.
const demoImage = "berth-demo/echo:1.0.0"

// composeCLI is docker-compose (v1), else the docker compose plugin.
func composeCLI(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	t.Skip("neither docker-compose nor the docker compose plugin is installed " +
		"(Debian: apt-get install docker-compose); the compose deployment is not tested")
	return nil
}

// composeProject runs the repository's docker-compose.yml as one project.
type composeProject struct {
	cli  []string
	file string
	name string
	env  []string
}

func (p *composeProject) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append(append([]string{}, p.cli[1:]...), append([]string{"-f", p.file, "-p", p.name}, args...)...)
	cmd := exec.CommandContext(ctx, p.cli[0], full...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", strings.Join(p.cli, " "), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (p *composeProject) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerSocket is the engine's unix socket and the group owning it.
func dockerSocket(t *testing.T) (string, uint32) {
	t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Skipf("the compose deployment mounts the engine's unix socket; DOCKER_HOST=%s is not one", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	return sock, fi.Sys().(*syscall.Stat_t).Gid
}

// buildBerthImage builds berth statically and packages it with
// Dockerfile.local as deploy/README.md describes. It reports whether the
// binary has the healthcheck subcommand the image's HEALTHCHECK runs.
func buildBerthImage(t *testing.T, root, ref string) (hasHealthcheck bool) {
	t.Helper()
	stage := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=compose-it",
		"-o", filepath.Join(stage, "berth"), "./cmd/berth")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		certs = nil // an empty bundle still builds; only https webhooks need it
	}
	if err := os.WriteFile(filepath.Join(stage, "ca-certificates.crt"), certs, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(stage, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := exec.CommandContext(ctx, "docker", "build", "-q", "-f", filepath.Join(root, "Dockerfile.local"), "-t", ref, stage)
	img.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := img.CombinedOutput(); err != nil {
		t.Fatalf("docker build -f Dockerfile.local: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := testenv.DockerE(ctx, "image", "rm", ref); err != nil {
			t.Logf("remove image %s: %v", ref, err)
		}
	})
	out, _ := exec.Command(filepath.Join(stage, "berth"), "healthcheck", "--addr", "http://127.0.0.1:1").CombinedOutput()
	return !strings.Contains(string(out), "unknown command")
}

// composeGet GETs url with the bearer token and decodes a JSON answer into out.
func composeGet(url, token string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(body, out)
	}
	return resp.StatusCode, nil
}

func TestComposeDeployment(t *testing.T) {
	testenv.RequireDocker(t)
	cli := composeCLI(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sock, gid := dockerSocket(t)
	var id string
	dkLeaveNothing(t, &id)
	id = testenv.AgentID(t)

	if _, err := testenv.DockerE(context.Background(), "image", "inspect", demoImage); err != nil {
		testenv.BuildLocalImage(t, demoImage, nil) // removed again at cleanup
	}
	image := "berth-it/berth:" + id
	hasHealthcheck := buildBerthImage(t, root, image)

	token := "compose-it-token"
	tokenFile := filepath.Join(t.TempDir(), "berth_token")
	// Readable by the container's uid 65532; the temp dir keeps it private on the host.
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &composeProject{cli: cli, file: filepath.Join(root, "docker-compose.yml"), name: strings.ReplaceAll(id, "-", ""), env: []string{
		"BERTH_IMAGE=" + image,
		"BERTH_AGENT_ID=" + id,
		"BERTH_NETWORK=" + testenv.NetworkName(id),
		"DOCKER_GID=" + strconv.FormatUint(uint64(gid), 10),
		"DOCKER_SOCKET=" + sock,
		"BERTH_TOKEN_SECRET_FILE=" + tokenFile,
		"BERTH_API_PUBLISH=127.0.0.1:", // ephemeral host ports
		"BERTH_PROXY_PUBLISH=127.0.0.1:",
	}}
	projectFilter := "label=com.docker.compose.project=" + p.name
	t.Cleanup(func() {
		// Challenges outlive berth (shutdown: leave) and hold the network,
		// so they go first; down then removes berth, network and volume.
		if _, err := p.run("stop"); err != nil {
			t.Log(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if ids, _ := testenv.DockerE(ctx, "ps", "-aq", "--filter", "label="+testenv.LabelAgent+"="+id); ids != "" {
			_, _ = testenv.DockerE(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
		}
		if _, err := p.run("down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Error(err)
		}
		for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
			if out, _ := testenv.DockerE(ctx, append(kind, "--filter", projectFilter)...); out != "" {
				t.Errorf("docker %s: project %s left %s", kind[0], p.name, out)
			}
		}
	})

	p.must(t, "up", "-d", "--no-build")
	defer func() {
		if t.Failed() {
			out, _ := p.run("logs", "--no-color", "--tail", "200")
			t.Logf("compose logs:\n%s", out)
		}
	}()
	port := func(container string) string {
		out := strings.TrimSpace(p.must(t, "port", "berth", container))
		if _, _, err := net.SplitHostPort(out); err != nil {
			t.Fatalf("compose port berth %s: %q", container, out)
		}
		if !strings.HasPrefix(out, "127.0.0.1:") {
			t.Errorf("port %s published on %s, want 127.0.0.1 only", container, out)
		}
		return "http://" + out
	}
	api, proxy := port("7070"), port("7080")

	testenv.WaitFor(t, 90*time.Second, "berth /readyz 200", func() (bool, error) {
		status, err := testenv.GetJSON(context.Background(), api+"/readyz", nil)
		return status == http.StatusOK, err
	})
	var v challengeView
	testenv.WaitFor(t, 90*time.Second, "demo running and healthy", func() (bool, error) {
		if _, err := composeGet(api+"/v1/challenges/demo", token, &v); err != nil {
			return false, err
		}
		return v.State == "running" && v.Health == "healthy", fmt.Errorf("state %s health %s", v.State, v.Health)
	})
	if status, body := getBody(t, proxy+"/demo/version"); status != http.StatusOK || !strings.Contains(body, `"1.0.0"`) {
		t.Errorf("proxy GET /demo/version = %d %s", status, body)
	}
	if status, _ := getBody(t, api+"/v1/challenges"); status != http.StatusUnauthorized {
		t.Errorf("API without token: %d, want 401", status)
	}

	// reach: network: berth dials the challenge's address on the shared network.
	ch := testenv.DockerInspect(t, v.ContainerID)
	nets := ch["NetworkSettings"].(map[string]any)["Networks"].(map[string]any)
	ep, ok := nets[testenv.NetworkName(id)].(map[string]any)
	if !ok || v.Upstream != "http://"+fmt.Sprint(ep["IPAddress"])+":8080" {
		t.Errorf("upstream %s is not the challenge's address on %s (%v)", v.Upstream, testenv.NetworkName(id), nets)
	}
	if labels := ch["Config"].(map[string]any)["Labels"].(map[string]any); labels[testenv.LabelAgent] != id {
		t.Errorf("challenge container labels %v", labels)
	}

	berthID := strings.TrimSpace(p.must(t, "ps", "-q", "berth"))
	info := testenv.DockerInspect(t, berthID)
	if user := info["Config"].(map[string]any)["User"]; user != "65532:65532" {
		t.Errorf("berth runs as %q, want 65532:65532", user)
	}
	if hasHealthcheck {
		testenv.WaitFor(t, 60*time.Second, "berth container healthy (HEALTHCHECK)", func() (bool, error) {
			out, err := testenv.DockerE(context.Background(), "inspect", "--format", "{{.State.Health.Status}}", berthID)
			return out == "healthy", fmt.Errorf("health %q: %v", out, err)
		})
	} else {
		t.Log("berth has no healthcheck subcommand yet: the container HEALTHCHECK cannot pass, not checked")
	}

	// Stopping the deployment leaves the challenge serving (shutdown: leave).
	p.must(t, "stop")
	if running, err := testenv.DockerE(context.Background(), "inspect", "--format", "{{.State.Running}}", v.ContainerID); running != "true" {
		t.Errorf("challenge after compose stop: running=%s %v", running, err)
	}
}
