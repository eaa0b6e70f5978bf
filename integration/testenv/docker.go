package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// LabelAgent is the ownership label from SPEC §5.9; repeated here so the tests
// check berth against the spec rather than against its own constant.
const LabelAgent = "io.berth.agent"

const (
	pingTimeout    = 5 * time.Second
	cliTimeout     = 2 * time.Minute
	cleanupTimeout = time.Minute
)

// RequireDocker fails (when CI is set) or skips the test unless the Docker
// Engine answers within a few seconds.
func RequireDocker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	out, err := DockerE(ctx, "version", "--format", "{{.Server.APIVersion}}")
	if err == nil && out != "" {
		return
	}
	msg := fmt.Sprintf("Docker Engine not reachable: %v; start it with `sudo dockerd &` or `sudo systemctl start docker`", err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set CI=1 to make this a failure)")
}

// DockerE runs the docker CLI and returns its trimmed stdout; the error carries stderr.
func DockerE(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	// Keep a killed CLI from holding us on its pipes.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w: %s",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Docker runs the docker CLI and fails the test if it exits non-zero.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := DockerE(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AgentID returns an agent id unique to this test and removes, at cleanup,
// every container, network and volume labelled with it plus NetworkName(id).
// Cleanup errors are logged, never fatal, so they cannot hide the real failure.
func AgentID(t testing.TB) string {
	t.Helper()
	id := newAgentID(t.Name())
	t.Cleanup(func() { removeAgentObjects(t, id) })
	return id
}

func newAgentID(testName string) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // documented never to return an error
	return "it-" + sanitize(testName, 24) + "-" + hex.EncodeToString(b[:])
}

// NetworkName is the network berth creates for an agent.
func NetworkName(agentID string) string { return "berth-" + agentID }

// sanitize lowercases s, keeps [a-z0-9] and turns every other run into one '-'.
func sanitize(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.TrimPrefix(s, "Test")) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := b.String()
	if len(out) > max {
		out = out[:max]
	}
	out = strings.Trim(out, "-")
	if out == "" {
		out = "t"
	}
	return out
}

func removeAgentObjects(t testing.TB, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	filter := "label=" + LabelAgent + "=" + id
	logErr := func(err error) {
		if err != nil {
			t.Logf("testenv cleanup of agent %s: %v", id, err)
		}
	}
	// A supervisor still winding down may recreate a container; retry a few rounds.
	for round := 0; round < 3; round++ {
		out, err := DockerE(ctx, "ps", "-aq", "--no-trunc", "--filter", filter)
		logErr(err)
		ids := strings.Fields(out)
		if len(ids) == 0 {
			break
		}
		_, err = DockerE(ctx, append([]string{"rm", "-f", "-v"}, ids...)...)
		logErr(err)
	}
	nets, err := DockerE(ctx, "network", "ls", "-q", "--filter", filter)
	logErr(err)
	named, err := DockerE(ctx, "network", "ls", "--format", "{{.Name}}", "--filter", "name="+NetworkName(id))
	logErr(err)
	toRemove := strings.Fields(nets)
	for _, n := range strings.Fields(named) {
		if n == NetworkName(id) {
			toRemove = append(toRemove, n)
		}
	}
	for _, n := range toRemove {
		if _, err := DockerE(ctx, "network", "rm", n); err != nil && !strings.Contains(err.Error(), "No such network") &&
			!strings.Contains(err.Error(), "not found") {
			logErr(err)
		}
	}
	vols, err := DockerE(ctx, "volume", "ls", "-q", "--filter", filter)
	logErr(err)
	if v := strings.Fields(vols); len(v) > 0 {
		_, err = DockerE(ctx, append([]string{"volume", "rm", "-f"}, v...)...)
		logErr(err)
	}
}

// DockerInspect returns `docker container inspect` of one container.
func DockerInspect(t testing.TB, containerNameOrID string) map[string]any {
	t.Helper()
	out := Docker(t, "container", "inspect", containerNameOrID)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("docker inspect %s: %d results, %v", containerNameOrID, len(list), err)
	}
	return list[0]
}

// ContainerExists reports whether the engine knows the container, running or not.
func ContainerExists(t testing.TB, containerNameOrID string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	_, err := DockerE(ctx, "container", "inspect", "--format", "{{.Id}}", containerNameOrID)
	if err == nil {
		return true
	}
	if strings.Contains(strings.ToLower(err.Error()), "no such") {
		return false
	}
	t.Fatal(err)
	return false
}

// DockerKill sends SIGKILL to a container, as an outside crash would.
func DockerKill(t testing.TB, id string) {
	t.Helper()
	Docker(t, "kill", id)
}

// DockerPS lists the full ids of the containers labelled with agentID, running or not.
func DockerPS(t testing.TB, agentID string) []string {
	t.Helper()
	return strings.Fields(Docker(t, "ps", "-aq", "--no-trunc", "--filter", "label="+LabelAgent+"="+agentID))
}
