package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/docker"
	"berth/integration/testenv"
)

// dkClient is a berth Docker client on the local engine.
func dkClient(t *testing.T) *docker.Client {
	t.Helper()
	c, err := docker.New(docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dkCtx bounds one test generously.
func dkCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// dkLeaveNothing must run before AgentID so its check runs after the agent's
// cleanup: nothing labelled with the agent and no agent network is left.
func dkLeaveNothing(t *testing.T, agent *string) {
	t.Helper()
	t.Cleanup(func() {
		if *agent == "" {
			return
		}
		filter := "label=" + testenv.LabelAgent + "=" + *agent
		for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
			if out := testenv.Docker(t, append(kind, "--filter", filter)...); out != "" {
				t.Errorf("docker %s: left behind for %s: %s", kind[0], *agent, out)
			}
		}
		if out := testenv.Docker(t, "network", "ls", "-q", "--filter", "name="+testenv.NetworkName(*agent)); out != "" {
			t.Errorf("network %s left behind", testenv.NetworkName(*agent))
		}
	})
}

// dkPullChallenge pushes the test challenge as tag to a fresh registry and
// pulls it through berth's client.
func dkPullChallenge(t *testing.T, c *docker.Client, tag string) (ref, digest string) {
	t.Helper()
	reg := testenv.StartRegistry(t)
	ref, digest = reg.PushChallenge(t, "berth-test/docker", tag, nil)
	got, err := c.Pull(dkCtx(t), ref, nil)
	if err != nil {
		t.Fatalf("Pull %s: %v", ref, err)
	}
	if got != digest {
		t.Fatalf("Pull %s = %s, pushed %s", ref, got, digest)
	}
	return ref, digest
}

func dkLabels(agent, challenge string) map[string]string {
	l := docker.OwnerLabels(agent)
	l[docker.LabelChallenge] = challenge
	l[docker.LabelSlot] = "a"
	return l
}

func TestDockerPing(t *testing.T) {
	testenv.RequireDocker(t)
	c := dkClient(t)
	info, err := c.Ping(dkCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := testenv.Docker(t, "version", "--format", "{{.Server.APIVersion}}"); info.APIVersion != want {
		t.Fatalf("Ping API version %q, engine says %q", info.APIVersion, want)
	}
	if info.OSType != "linux" {
		t.Errorf("OSType = %q", info.OSType)
	}
}

func TestDockerPullFromRegistry(t *testing.T) {
	testenv.RequireDocker(t)
	c := dkClient(t)
	ctx := dkCtx(t)
	reg := testenv.StartRegistry(t)
	ref, digest := reg.PushChallenge(t, "berth-test/pull", "1.0.0", nil)

	var mu sync.Mutex
	var seen []docker.PullProgress
	got, err := c.Pull(ctx, ref, func(p docker.PullProgress) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != digest {
		t.Fatalf("Pull digest %s, pushed %s", got, digest)
	}
	mu.Lock()
	if len(seen) == 0 {
		t.Error("progress callback never called")
	}
	for _, p := range seen {
		if p.Ref != ref {
			t.Errorf("progress %+v names another ref", p)
		}
	}
	mu.Unlock()

	info, err := c.ImageInfo(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID == "" || info.RepoDigest(ref) != digest {
		t.Fatalf("ImageInfo(%s) = %+v, want repo digest %s", ref, info, digest)
	}
	if again, err := c.Pull(ctx, ref, nil); err != nil || again != digest {
		t.Fatalf("pulling a present image: %s, %v", again, err)
	}

	missing := reg.Host + "/berth-test/pull:9.9.9"
	if _, err := c.ImageInfo(ctx, missing); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("ImageInfo(%s) = %v, want ErrNotFound", missing, err)
	}
	if _, err := c.Pull(ctx, missing, nil); err == nil {
		t.Fatalf("Pull of a missing tag succeeded")
	} else if !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("Pull of a missing tag = %v, want ErrNotFound", err)
	}
}

func TestDockerTags(t *testing.T) {
	testenv.RequireDocker(t)
	c := dkClient(t)
	reg := testenv.StartRegistry(t)
	want := []string{"1.0.0", "1.2.0", "2.0.0-rc.1", "latest"}
	for _, tag := range want {
		reg.PushChallenge(t, "berth-test/tags", tag, nil)
	}
	got, err := c.Tags(dkCtx(t), reg.Host+"/berth-test/tags")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
	if tags, err := c.Tags(dkCtx(t), reg.Host+"/berth-test/none"); err == nil {
		t.Fatalf("Tags of a missing repository = %v, want an error", tags)
	}
}

func TestDockerEnsureNetwork(t *testing.T) {
	testenv.RequireDocker(t)
	var id string
	dkLeaveNothing(t, &id)
	id = testenv.AgentID(t)
	c := dkClient(t)
	ctx := dkCtx(t)
	name := testenv.NetworkName(id)

	inspect := func() (netID, driver string, labels map[string]string) {
		t.Helper()
		var n struct {
			ID     string `json:"Id"`
			Driver string
			Labels map[string]string
		}
		if err := json.Unmarshal([]byte(testenv.Docker(t, "network", "inspect", "--format", "{{json .}}", name)), &n); err != nil {
			t.Fatal(err)
		}
		return n.ID, n.Driver, n.Labels
	}
	if err := c.EnsureNetwork(ctx, name, docker.OwnerLabels(id)); err != nil {
		t.Fatal(err)
	}
	first, driver, labels := inspect()
	if driver != "bridge" || !maps.Equal(labels, docker.OwnerLabels(id)) {
		t.Fatalf("network %s: driver %s labels %v", name, driver, labels)
	}
	if err := c.EnsureNetwork(ctx, name, docker.OwnerLabels(id)); err != nil {
		t.Fatalf("second EnsureNetwork: %v", err)
	}
	if again, _, _ := inspect(); again != first {
		t.Fatalf("second EnsureNetwork replaced the network: %s then %s", first, again)
	}
	if out := testenv.Docker(t, "network", "ls", "-q", "--filter", "name=^"+name+"$"); len(strings.Fields(out)) != 1 {
		t.Fatalf("networks named %s: %q", name, out)
	}
}

func TestDockerContainerLifecycle(t *testing.T) {
	testenv.RequireDocker(t)
	var id string
	dkLeaveNothing(t, &id)
	id = testenv.AgentID(t)
	c := dkClient(t)
	ctx := dkCtx(t)
	ref, _ := dkPullChallenge(t, c, "1.0.0")

	netName := testenv.NetworkName(id)
	if err := c.EnsureNetwork(ctx, netName, docker.OwnerLabels(id)); err != nil {
		t.Fatal(err)
	}
	labels := dkLabels(id, "web")
	labels[docker.LabelVersion] = "1.0.0"
	volume := docker.VolumeName(id, "web", "data")
	spec := docker.ContainerSpec{
		Name:            docker.ContainerName(id, "web", "a"),
		Image:           ref,
		Env:             []string{"HEALTH_STATUS=fine"},
		Labels:          labels,
		Port:            8080,
		Publish:         true,
		Network:         netName,
		Aliases:         []string{"web"},
		NanoCPUs:        500_000_000,
		MemoryBytes:     128 << 20,
		PidsLimit:       64,
		ReadOnlyRootfs:  true,
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		Tmpfs:           []string{"/tmp"},
		Volumes:         []docker.VolumeMount{{Name: volume, Target: "/data"}},
		StopTimeout:     2 * time.Second,
	}
	cid, err := c.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, spec); !errors.Is(err, docker.ErrConflict) {
		t.Fatalf("second Create with name %s = %v, want ErrConflict", spec.Name, err)
	}
	if ct, err := c.Inspect(ctx, cid); err != nil || ct.Running || ct.State != "created" {
		t.Fatalf("created container: %+v, %v", ct, err)
	}

	if err := c.Start(ctx, cid); err != nil {
		t.Fatal(err)
	}
	ct, err := c.Inspect(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if ct.ID != cid || ct.Name != spec.Name || !ct.Running || ct.State != "running" || ct.Image != ref {
		t.Fatalf("Inspect = %+v", ct)
	}
	if ct.HostPort == "" || ct.NetworkIPs[netName] == "" {
		t.Fatalf("Inspect: host port %q, addresses %v; want a port and an address on %s", ct.HostPort, ct.NetworkIPs, netName)
	}
	for k, v := range labels {
		if ct.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, ct.Labels[k], v)
		}
	}
	if ct.StartedAt.IsZero() {
		t.Error("StartedAt not set")
	}
	dkCheckHardening(t, cid, netName, volume)

	base := "http://127.0.0.1:" + ct.HostPort
	testenv.WaitFor(t, 30*time.Second, "challenge healthy at "+base, func() (bool, error) {
		var h struct{ Status, Version string }
		status, err := testenv.GetJSON(ctx, base+"/health", &h)
		return status == http.StatusOK && h.Status == "fine" && h.Version == "1.0.0", err
	})

	list, err := c.List(ctx, docker.OwnerLabels(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != cid || list[0].Name != spec.Name || !list[0].Running ||
		list[0].HostPort != ct.HostPort || list[0].NetworkIPs[netName] != ct.NetworkIPs[netName] {
		t.Fatalf("List(own labels) = %+v, want only %s", list, cid)
	}
	if list, err := c.List(ctx, docker.OwnerLabels("nobody-"+id)); err != nil || len(list) != 0 {
		t.Fatalf("List(another agent) = %+v, %v; want nothing", list, err)
	}

	dkCheckLogs(t, c, cid)

	// A followed log ends once the container stops.
	followed, err := c.Logs(ctx, cid, docker.LogOptions{Follow: true, Tail: docker.TailAll})
	if err != nil {
		t.Fatal(err)
	}
	defer followed.Close()
	followDone := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(followed)
		followDone <- string(b)
	}()

	if err := c.Stop(ctx, cid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ct, err := c.Inspect(ctx, cid); err != nil || ct.Running || ct.ExitCode != 0 || ct.FinishedAt.IsZero() {
		t.Fatalf("after Stop: %+v, %v; want stopped by SIGTERM with exit code 0", ct, err)
	}
	select {
	case out := <-followDone:
		if !strings.Contains(out, "terminating") {
			t.Errorf("followed log lacks the SIGTERM drain message: %q", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("followed log did not end after the container stopped")
	}
	if err := c.Stop(ctx, cid, 10*time.Second); err != nil {
		t.Fatalf("Stop of a stopped container: %v", err)
	}
	if err := c.Kill(ctx, cid, "KILL"); err != nil {
		t.Fatalf("Kill of a stopped container: %v", err)
	}

	if err := c.Remove(ctx, cid); err != nil {
		t.Fatal(err)
	}
	if testenv.ContainerExists(t, cid) {
		t.Fatal("container exists after Remove")
	}
	if _, err := c.Inspect(ctx, cid); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("Inspect after Remove = %v, want ErrNotFound", err)
	}
	if err := c.Remove(ctx, cid); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := c.Stop(ctx, cid, time.Second); err != nil {
		t.Fatalf("Stop of a missing container: %v", err)
	}
	if err := c.Kill(ctx, cid, "KILL"); err != nil {
		t.Fatalf("Kill of a missing container: %v", err)
	}
	if err := c.Start(ctx, cid); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("Start of a missing container = %v, want ErrNotFound", err)
	}

	// The named volume outlives the container and carries the labels that
	// let the agent's cleanup find it.
	var volLabels map[string]string
	out := testenv.Docker(t, "volume", "inspect", "--format", "{{json .Labels}}", volume)
	if err := json.Unmarshal([]byte(out), &volLabels); err != nil {
		t.Fatal(err)
	}
	if volLabels[testenv.LabelAgent] != id || volLabels[docker.LabelManaged] != "true" {
		t.Fatalf("volume %s labels = %v", volume, volLabels)
	}
}

// dkCheckHardening reads the engine's own view of the container (SPEC §5.9).
func dkCheckHardening(t *testing.T, cid, netName, volume string) {
	t.Helper()
	raw, err := json.Marshal(testenv.DockerInspect(t, cid))
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Config struct {
			StopTimeout *int
			Env         []string
		}
		HostConfig struct {
			ReadonlyRootfs, Privileged bool
			Init                       *bool
			CapDrop, SecurityOpt       []string
			CapAdd, Binds              []string
			Tmpfs                      map[string]string
			Memory, MemorySwap         int64
			NanoCpus                   int64
			PidsLimit                  *int64
			NetworkMode, PidMode       string
			IpcMode                    string
			RestartPolicy              struct{ Name string }
			PortBindings               map[string][]struct{ HostIp, HostPort string }
		}
		Mounts []struct {
			Type, Name, Destination string
			RW                      bool
		}
		NetworkSettings struct {
			Networks map[string]struct{ Aliases []string }
		}
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	hc := in.HostConfig
	check := func(ok bool, what string, got any) {
		t.Helper()
		if !ok {
			t.Errorf("docker inspect: %s, got %v", what, got)
		}
	}
	check(hc.ReadonlyRootfs, "read-only root fs", hc.ReadonlyRootfs)
	check(!hc.Privileged, "not privileged", hc.Privileged)
	check(hc.Init != nil && *hc.Init, "an init process", hc.Init)
	check(slices.Equal(hc.CapDrop, []string{"ALL"}), "cap_drop ALL", hc.CapDrop)
	check(len(hc.CapAdd) == 0, "no added capabilities", hc.CapAdd)
	check(slices.ContainsFunc(hc.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") }),
		"no-new-privileges", hc.SecurityOpt)
	_, tmp := hc.Tmpfs["/tmp"]
	check(tmp, "tmpfs /tmp", hc.Tmpfs)
	check(hc.Memory == 128<<20 && hc.MemorySwap == 128<<20, "128 MiB memory, no swap", []int64{hc.Memory, hc.MemorySwap})
	check(hc.NanoCpus == 500_000_000, "half a CPU", hc.NanoCpus)
	check(hc.PidsLimit != nil && *hc.PidsLimit == 64, "pids limit 64", hc.PidsLimit)
	check(hc.NetworkMode == netName, "network "+netName, hc.NetworkMode)
	check(hc.PidMode != "host" && hc.IpcMode != "host", "no host pid or ipc", hc.PidMode+" "+hc.IpcMode)
	check(hc.RestartPolicy.Name == "no", "no engine restart policy (berth restarts)", hc.RestartPolicy.Name)
	check(len(hc.Binds) == 0, "no bind mounts", hc.Binds)
	b := hc.PortBindings["8080/tcp"]
	check(len(b) == 1 && b[0].HostIp == "127.0.0.1", "8080/tcp published on 127.0.0.1 only", b)
	check(len(in.Mounts) == 1 && in.Mounts[0].Type == "volume" && in.Mounts[0].Name == volume &&
		in.Mounts[0].Destination == "/data" && in.Mounts[0].RW, "named volume "+volume+" at /data", in.Mounts)
	check(in.Config.StopTimeout != nil && *in.Config.StopTimeout == 2, "stop timeout 2s", in.Config.StopTimeout)
	check(slices.Contains(in.Config.Env, "HEALTH_STATUS=fine"), "env passed", in.Config.Env)
	check(slices.Contains(in.NetworkSettings.Networks[netName].Aliases, "web"), "alias web on "+netName, in.NetworkSettings.Networks)
}

func dkCheckLogs(t *testing.T, c *docker.Client, cid string) {
	t.Helper()
	ctx := dkCtx(t)
	rc, err := c.Logs(ctx, cid, docker.LogOptions{Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "listening on") {
		t.Fatalf("Logs(Tail 1) = %q, want the one startup line", b)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err = c.Logs(fctx, cid, docker.LogOptions{Follow: true, Tail: docker.TailAll})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case l := <-lines:
		if !strings.Contains(l, "listening on") {
			t.Errorf("first followed line %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("followed log delivered nothing")
	}
	cancel()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("followed log did not end after its context was cancelled")
		}
	}
}

func TestDockerEvents(t *testing.T) {
	testenv.RequireDocker(t)
	var id, other string
	dkLeaveNothing(t, &id)
	dkLeaveNothing(t, &other)
	id = testenv.AgentID(t)
	other = testenv.AgentID(t)
	c := dkClient(t)
	ctx := dkCtx(t)
	ref, _ := dkPullChallenge(t, c, "1.0.0")

	create := func(agent string) string {
		t.Helper()
		cid, err := c.Create(ctx, docker.ContainerSpec{Name: docker.ContainerName(agent, "ev", "a"), Image: ref,
			Labels: dkLabels(agent, "ev"), Port: 8080, MemoryBytes: 64 << 20, PidsLimit: 64})
		if err != nil {
			t.Fatal(err)
		}
		return cid
	}
	mine, theirs := create(id), create(other)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errs := c.Events(sctx, docker.OwnerLabels(id))
	var seen []docker.Event
	next := func(what string, match func(docker.Event) bool) docker.Event {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					t.Fatalf("event stream closed waiting for %s: %v", what, <-errs)
				}
				seen = append(seen, ev)
				if match(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("no %s event; saw %+v", what, seen)
			}
		}
	}
	if err := c.Start(ctx, mine); err != nil {
		t.Fatal(err)
	}
	start := next("start", func(e docker.Event) bool { return e.Action == "start" && e.ContainerID == mine })
	if start.Challenge() != "ev" || start.Labels[docker.LabelAgent] != id || start.Time.IsZero() {
		t.Errorf("start event = %+v", start)
	}
	if err := c.Start(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	testenv.DockerKill(t, theirs)
	testenv.DockerKill(t, mine)
	die := next("die", func(e docker.Event) bool { return e.Action == "die" && e.ContainerID == mine })
	if die.ExitCode == nil || *die.ExitCode != 137 {
		t.Fatalf("die event exit code = %v, want 137", die.ExitCode)
	}
	for _, e := range seen {
		if e.Action == "oom" {
			t.Errorf("oom event for a killed container: %+v", e)
		}
		if e.ContainerID == theirs || e.Labels[docker.LabelAgent] != id {
			t.Errorf("event of another agent's container: %+v", e)
		}
	}

	cancel()
	deadline := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-evs:
		case <-deadline:
			t.Fatal("event channel not closed after cancel")
		}
	}
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stream ended with %v, want context.Canceled", err)
		}
	case <-deadline:
		t.Fatal("no error delivered after cancel")
	}
	if _, ok := <-errs; ok {
		t.Fatal("error channel not closed after its one error")
	}
}
