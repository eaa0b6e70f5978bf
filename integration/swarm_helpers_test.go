package integration_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

// swarmState is the engine's swarm membership: inactive, active, …
func swarmState(t testing.TB, host string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := dockerOn(ctx, host, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		t.Fatalf("swarm state of %s: %v", host, err)
	}
	return out
}

// dockerOn runs the docker CLI against host ("" the default engine).
func dockerOn(ctx context.Context, host string, args ...string) (string, error) {
	if host != "" {
		args = append([]string{"-H", host}, args...)
	}
	return testenv.DockerE(ctx, args...)
}

// requireSwarm makes the default engine a single-node swarm manager for the
// test, and leaves the swarm afterwards only if the test made it: an engine
// already in a swarm is used as it is and left as it was.
func requireSwarm(t testing.TB) {
	t.Helper()
	testenv.RequireDocker(t)
	switch st := swarmState(t, ""); st {
	case "active":
		return
	case "inactive":
	default:
		t.Fatalf("engine swarm state %q; want inactive or active", st)
	}
	hadGateway := hasNetwork(t, "", gatewayBridge)
	testenv.Docker(t, "swarm", "init", "--advertise-addr", "127.0.0.1")
	t.Cleanup(func() { leaveSwarm(t, "", !hadGateway) })
}

// gatewayBridge is the network swarm init creates and swarm leave keeps.
const gatewayBridge = "docker_gwbridge"

func hasNetwork(t testing.TB, host, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := dockerOn(ctx, host, "network", "inspect", name)
	return err == nil
}

// leaveSwarm leaves the swarm, and removes the gateway bridge when the
// swarm's init made it (the removal fails harmlessly while anything uses it).
func leaveSwarm(t testing.TB, host string, removeGateway bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := dockerOn(ctx, host, "swarm", "leave", "--force"); err != nil {
		t.Errorf("leave the swarm on %q: %v", host, err)
	}
	if removeGateway {
		if _, err := dockerOn(ctx, host, "network", "rm", gatewayBridge); err != nil {
			t.Logf("remove %s on %q: %v", gatewayBridge, host, err)
		}
	}
}

// swarmConfig is berthConfig on the swarm backend; the agent's services are
// removed when the test ends, before the swarm is left.
func swarmConfig(t testing.TB, agentID, challengesYAML string) string {
	t.Helper()
	path := berthConfig(t, agentID, challengesYAML)
	rewriteConfig(t, path, "agent:\n", "agent:\n  backend: swarm\n")
	t.Cleanup(func() {
		if t.Failed() {
			logServices(t, agentID)
		}
		removeServices(t, agentID)
	})
	return path
}

// logServices logs the tasks of the agent's services, for a failed test.
func logServices(t testing.TB, agentID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids, err := testenv.DockerE(ctx, "service", "ls", "-q", "--filter", "label=io.berth.agent="+agentID)
	if err != nil || ids == "" {
		return
	}
	out, _ := testenv.DockerE(ctx, append([]string{"service", "ps", "--no-trunc", "--format",
		"{{.Name}} {{.ID}} node={{.Node}} desired={{.DesiredState}} current={{.CurrentState}} ports={{.Ports}} err={{.Error}}"}, strings.Fields(ids)...)...)
	t.Logf("tasks of agent %s:\n%s", agentID, out)
	ps, _ := testenv.DockerE(ctx, "ps", "-a", "--filter", "label=io.berth.agent="+agentID, "--format", "{{.Names}} {{.Status}} {{.Ports}}")
	t.Logf("containers of agent %s on this engine:\n%s", agentID, ps)
}

func removeServices(t testing.TB, agentID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := testenv.DockerE(ctx, "service", "ls", "-q", "--filter", "label=io.berth.agent="+agentID)
	if err != nil {
		return // no swarm (left already): nothing of ours remains
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := testenv.DockerE(ctx, append([]string{"service", "rm"}, ids...)...); err != nil {
			t.Logf("remove services of %s: %v", agentID, err)
		}
	}
	// Task containers stop with their grace period; wait so the image and
	// volume cleanups after this one find them gone.
	for ctx.Err() == nil {
		out, _ := testenv.DockerE(ctx, "ps", "-aq", "--filter", "label=io.berth.agent="+agentID)
		if out == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serviceView is the part of `docker service inspect` the tests check.
type serviceView struct {
	ID           string
	Version      struct{ Index uint64 }
	UpdateStatus *struct{ State string }
	Spec         struct {
		Name         string
		Labels       map[string]string
		TaskTemplate struct {
			ContainerSpec struct {
				Init           *bool
				ReadOnly       bool
				CapabilityDrop []string
				Mounts         []struct{ Type, Source, Target string }
			}
			Resources struct {
				Limits struct {
					NanoCPUs, MemoryBytes, Pids int64
				}
			}
			RestartPolicy struct{ Condition string }
			ForceUpdate   uint64
			Placement     struct{ Constraints []string }
		}
		Mode struct {
			Replicated struct{ Replicas uint64 }
		}
		EndpointSpec struct {
			Ports []struct {
				TargetPort  uint32
				PublishMode string
			}
		}
	}
}

func inspectService(t testing.TB, host, id string) serviceView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := dockerOn(ctx, host, "service", "inspect", id)
	if err != nil {
		t.Fatal(err)
	}
	var v []serviceView
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("service inspect %s: %v %s", id, err, out)
	}
	return v[0]
}

// serviceTasks lists the tasks of a service as "id node desired current".
func serviceTasks(t testing.TB, host, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := dockerOn(ctx, host, "service", "ps", "--no-trunc", "--format", "{{.ID}} {{.Node}} {{.DesiredState}} {{.CurrentState}}", id)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(out), "\n")
}

// runningTasks are the tasks of a service Swarm wants running and runs.
func runningTasks(t testing.TB, host, id string) []string {
	var out []string
	for _, l := range serviceTasks(t, host, id) {
		f := strings.Fields(l)
		if len(f) >= 4 && f[2] == "Running" && f[3] == "Running" {
			out = append(out, f[0]+" "+f[1])
		}
	}
	return out
}
