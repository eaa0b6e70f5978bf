package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// A second engine in its own network namespace, as TESTING.md describes:
// the host side of a veth pair is managerAddr, the namespace side workerAddr.
const (
	workerNetns = "berth-swarm-n1"
	vethHost    = "bsw-h"
	vethWorker  = "bsw-w"
	managerAddr = "10.77.0.1"
	workerAddr  = "10.77.0.2"
)

// secondEngine is a dockerd the test started.
type secondEngine struct {
	host    string // unix://…/docker.sock
	pidfile string
	cmd     *exec.Cmd
}

func runCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func runQuiet(name string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = exec.CommandContext(ctx, name, args...).Run()
}

// startSecondEngine starts dockerd in a fresh network namespace and removes
// it all (engine, its data, the namespace and veth) when the test ends.
func startSecondEngine(t testing.TB) *secondEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a second engine needs root")
	}
	if _, err := os.Stat("/var/run/netns/" + workerNetns); err == nil {
		t.Fatalf("network namespace %s exists: another run is active or one did not clean up", workerNetns)
	}
	runCmd(t, "ip", "netns", "add", workerNetns)
	t.Cleanup(func() { runQuiet("ip", "netns", "del", workerNetns) })
	runCmd(t, "ip", "link", "add", vethHost, "type", "veth", "peer", "name", vethWorker)
	t.Cleanup(func() { runQuiet("ip", "link", "del", vethHost) })
	runCmd(t, "ip", "link", "set", vethWorker, "netns", workerNetns)
	runCmd(t, "ip", "addr", "add", managerAddr+"/24", "dev", vethHost)
	runCmd(t, "ip", "link", "set", vethHost, "up")
	for _, args := range [][]string{
		{"addr", "add", workerAddr + "/24", "dev", vethWorker},
		{"link", "set", vethWorker, "up"},
		{"link", "set", "lo", "up"},
		{"route", "add", "default", "via", managerAddr},
	} {
		runCmd(t, "ip", append([]string{"-n", workerNetns}, args...)...)
	}

	// Not under t.TempDir: dockerd's files may still be mounted when the
	// temp dir is removed; this cleanup runs after the engine stopped.
	dir, err := os.MkdirTemp("", "berth-swarm-n1-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runQuiet("sh", "-c", "grep -o ' "+dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l")
		os.RemoveAll(dir)
	})
	conf := map[string]any{}
	if b, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
		_ = json.Unmarshal(b, &conf)
	}
	conf["data-root"] = filepath.Join(dir, "data")
	conf["storage-driver"] = "fuse-overlayfs"
	b, _ := json.Marshal(conf)
	confPath := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(confPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &secondEngine{host: "unix://" + filepath.Join(dir, "docker.sock"), pidfile: filepath.Join(dir, "docker.pid")}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// nsenter, not ip netns exec: that remounts /sys and hides the cgroups.
	e.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+workerNetns, "dockerd",
		"--config-file", confPath, "--exec-root", filepath.Join(dir, "exec"), "-H", e.host,
		"--pidfile", e.pidfile, "--bip", "172.31.77.1/24", "--iptables=false")
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		e.stop()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("second dockerd did not stop within a minute")
			_ = e.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dockerd.log")); err == nil {
				t.Logf("second dockerd log (tail):\n%s", tail(string(b), 40))
			}
		}
	})
	testenv.WaitFor(t, time.Minute, "the second engine to answer", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := dockerOn(ctx, e.host, "version")
		return err == nil, err
	})
	return e
}

// stop stops the engine (SIGTERM: its containers stop with it).
func (e *secondEngine) stop() {
	if e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// twoNodeSwarm makes the default engine the manager of a swarm that the
// second engine joins as a worker; it returns the worker's node id.
func twoNodeSwarm(t testing.TB, worker *secondEngine) string {
	t.Helper()
	if st := swarmState(t, ""); st != "inactive" {
		t.Skipf("engine swarm state %q: the two-node test makes its own swarm", st)
	}
	hadGateway := hasNetwork(t, "", gatewayBridge)
	testenv.Docker(t, "swarm", "init", "--advertise-addr", managerAddr, "--listen-addr", managerAddr+":2377")
	t.Cleanup(func() { leaveSwarm(t, "", !hadGateway) })
	token := testenv.Docker(t, "swarm", "join-token", "-q", "worker")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := dockerOn(ctx, worker.host, "swarm", "join", "--token", token, "--advertise-addr", workerAddr, managerAddr+":2377"); err != nil {
		t.Fatal(err)
	}
	id, err := dockerOn(ctx, worker.host, "info", "--format", "{{.Swarm.NodeID}}")
	if err != nil || id == "" {
		t.Fatalf("worker node id: %q %v", id, err)
	}
	return id
}

// copyImage loads ref from the default engine into the second one.
func copyImage(t testing.TB, worker *secondEngine, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("docker save %s | docker -H %s load", ref, worker.host))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy %s to the worker: %v\n%s", ref, err, out)
	}
}
