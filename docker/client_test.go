package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPingAndRequestCounting(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, ops := f.client(t, Options{})
	if got, want := c.Host(), "tcp://"+f.host; got != want {
		t.Errorf("Host() = %q, want %q", got, want)
	}
	info, err := c.Ping(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if info.APIVersion != "1.41" || info.OSType != "linux" {
		t.Fatalf("Ping = %+v, want API 1.41 on linux", info)
	}
	if _, err := c.Pull(testCtx(t, 10*time.Second), "registry.test/x/y:1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := ops.get("ping"); got != 2 {
		t.Errorf("OnRequest saw %d ping, want 2", got)
	}
	if got := ops.get("image_pull"); got != 1 {
		t.Errorf("OnRequest saw %d image_pull, want 1", got)
	}
}

func TestUnreachableEngine(t *testing.T) {
	for _, k := range []string{"DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
	writeDockerConfig(t, `{"auths":{}}`)
	c, err := New(Options{Host: "tcp://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("New must not contact the engine: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	calls := map[string]func(ctx context.Context) error{
		"ping":    func(ctx context.Context) error { _, err := c.Ping(ctx); return err },
		"inspect": func(ctx context.Context) error { _, err := c.Inspect(ctx, "x"); return err },
		"list":    func(ctx context.Context) error { _, err := c.List(ctx, OwnerLabels("a")); return err },
		"pull":    func(ctx context.Context) error { _, err := c.Pull(ctx, "registry.test/x/y:1", nil); return err },
		"start":   func(ctx context.Context) error { return c.Start(ctx, "x") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call(testCtx(t, 20*time.Second))
			if !errors.Is(err, ErrUnavailable) || !IsTransient(err) {
				t.Fatalf("%s on an unreachable engine = %v, want transient ErrUnavailable", name, err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%s took %v to notice a refused connection", name, took)
			}
		})
	}
	if _, err := c.Ping(testCtx(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Ping error %v does not name the engine address", err)
	}
}

func TestCreateRefusedSpecNeverReachesEngine(t *testing.T) {
	f := newFakeEngine(t)
	c, ops := f.client(t, Options{})
	_, err := c.Create(testCtx(t, 10*time.Second), ContainerSpec{Name: "n", Image: "i",
		Volumes: []VolumeMount{{Name: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Create = %v, want ErrRefused", err)
	}
	if n := ops.get("container_create"); n != 0 || len(f.requests("/containers/create")) != 0 {
		t.Fatalf("a refused spec reached the engine (%d container_create)", n)
	}
}

func TestInspectMapsEngineState(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "c1" {
			engineError(w, http.StatusNotFound, "No such container: "+r.PathValue("id"))
			return
		}
		_, _ = io.WriteString(w, `{
 "Id":"c1","Name":"/berth-a-web-a","Image":"sha256:img",
 "State":{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":true,
   "StartedAt":"2024-05-01T10:00:00.5Z","FinishedAt":"2024-05-01T10:01:00Z"},
 "Config":{"Image":"127.0.0.1:5000/web:1","Labels":{"io.berth.agent":"a"}},
 "Mounts":[{"Type":"volume","Name":"berth_a_web_data","Destination":"/data"},{"Type":"tmpfs","Destination":"/tmp"}],
 "NetworkSettings":{
   "Ports":{"8080/tcp":[{"HostIp":"0.0.0.0","HostPort":"1111"},{"HostIp":"127.0.0.1","HostPort":"49153"},{"HostIp":"::","HostPort":"2222"}]},
   "Networks":{"berth-a":{"IPAddress":"172.18.0.2"},"none":{"IPAddress":""}}}}`)
	})
	c, ops := f.client(t, Options{})
	got, err := c.Inspect(testCtx(t, 10*time.Second), "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := Container{ID: "c1", Name: "berth-a-web-a", Image: "127.0.0.1:5000/web:1", ImageID: "sha256:img",
		State: "exited", ExitCode: 137, OOMKilled: true, HostPort: "49153"}
	if got.ID != want.ID || got.Name != want.Name || got.Image != want.Image || got.ImageID != want.ImageID ||
		got.State != want.State || got.Running || got.ExitCode != want.ExitCode || !got.OOMKilled || got.HostPort != want.HostPort {
		t.Fatalf("Inspect = %+v, want %+v", got, want)
	}
	if got.Labels["io.berth.agent"] != "a" {
		t.Errorf("labels = %v", got.Labels)
	}
	if len(got.Volumes) != 1 || got.Volumes[0] != "berth_a_web_data" {
		t.Errorf("Volumes = %v, want [berth_a_web_data]", got.Volumes)
	}
	if len(got.NetworkIPs) != 1 || got.NetworkIPs["berth-a"] != "172.18.0.2" {
		t.Errorf("NetworkIPs = %v, want only berth-a", got.NetworkIPs)
	}
	if want := time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC); !got.StartedAt.Equal(want) {
		t.Errorf("StartedAt = %v, want %v", got.StartedAt, want)
	}
	if got.FinishedAt.Sub(got.StartedAt) != 59500*time.Millisecond {
		t.Errorf("FinishedAt = %v", got.FinishedAt)
	}
	if _, err := c.Inspect(testCtx(t, 10*time.Second), "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Inspect(gone) = %v, want ErrNotFound", err)
	}
	if n := ops.get("container_inspect"); n != 2 {
		t.Errorf("OnRequest saw %d container_inspect, want 2", n)
	}
}

func TestStopKillRemoveAreIdempotent(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /containers/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "gone" {
			engineError(w, http.StatusNotFound, "No such container: gone")
			return
		}
		w.WriteHeader(http.StatusNotModified) // already stopped
	})
	f.on("POST /containers/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "gone":
			engineError(w, http.StatusNotFound, "No such container: gone")
		case "stopped":
			engineError(w, http.StatusConflict, "Container stopped is not running")
		default:
			engineError(w, http.StatusInternalServerError, "kill failed")
		}
	})
	f.on("DELETE /containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "gone":
			engineError(w, http.StatusNotFound, "No such container: gone")
		case "removing":
			engineError(w, http.StatusConflict, "removal of container removing is already in progress")
		case "busy":
			engineError(w, http.StatusConflict, "some other conflict")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	c, _ := f.client(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	for _, id := range []string{"gone", "stopped"} {
		if err := c.Stop(ctx, id, time.Second); err != nil {
			t.Errorf("Stop(%s) = %v, want nil", id, err)
		}
		if err := c.Kill(ctx, id, "KILL"); err != nil {
			t.Errorf("Kill(%s) = %v, want nil", id, err)
		}
	}
	if err := c.Kill(ctx, "broken", "KILL"); err == nil {
		t.Error("Kill hid an engine failure")
	}
	for _, id := range []string{"gone", "removing", "c1"} {
		if err := c.Remove(ctx, id); err != nil {
			t.Errorf("Remove(%s) = %v, want nil", id, err)
		}
	}
	if err := c.Remove(ctx, "busy"); !errors.Is(err, ErrConflict) {
		t.Errorf("Remove(busy) = %v, want ErrConflict", err)
	}
	// Stop asks the engine to wait at least the timeout, rounded up to seconds.
	if err := c.Stop(ctx, "stopped", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests("/containers/stopped/stop")
	if got := reqs[len(reqs)-1].Query.Get("t"); got != "2" {
		t.Errorf("stop timeout t=%q, want 2", got)
	}
	dels := f.requests("/containers/c1")
	if q := dels[0].Query; q.Get("force") != "1" || q.Get("v") != "1" {
		t.Errorf("remove query = %v, want force and v", q)
	}
}

func TestListFiltersByLabels(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /containers/json", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"Id":"c1","Names":["/berth-a-web-a"],"Image":"img:1","ImageID":"sha256:i","State":"running",
 "Labels":{"io.berth.agent":"a"},"Ports":[{"IP":"0.0.0.0","PrivatePort":8080,"PublicPort":1111,"Type":"tcp"},{"IP":"127.0.0.1","PrivatePort":8080,"PublicPort":49153,"Type":"tcp"}],
 "NetworkSettings":{"Networks":{"berth-a":{"IPAddress":"172.18.0.2"}}}},
 {"Id":"c2","Names":["/berth-a-web-b"],"State":"exited","Labels":{"io.berth.agent":"a"}}]`)
	})
	c, _ := f.client(t, Options{})
	list, err := c.List(testCtx(t, 10*time.Second), OwnerLabels("a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %+v", list)
	}
	c1, c2 := list[0], list[1]
	if c1.ID != "c1" || c1.Name != "berth-a-web-a" || !c1.Running || c1.State != "running" ||
		c1.HostPort != "49153" || c1.NetworkIPs["berth-a"] != "172.18.0.2" {
		t.Errorf("first = %+v", c1)
	}
	if c2.ID != "c2" || c2.Running || c2.State != "exited" || c2.HostPort != "" {
		t.Errorf("second = %+v", c2)
	}
	q := f.requests("/containers/json")[0].Query
	if q.Get("all") != "1" {
		t.Errorf("List must include stopped containers: query %v", q)
	}
	filters := q.Get("filters")
	for _, want := range []string{`"io.berth.agent=a"`, `"io.berth.managed=true"`} {
		if !strings.Contains(filters, want) {
			t.Errorf("filters %s lack label %s", filters, want)
		}
	}
}

func TestEnsureNetwork(t *testing.T) {
	f := newFakeEngine(t)
	exists := map[string]bool{"there": true}
	f.on("GET /networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if exists[r.PathValue("name")] {
			_, _ = io.WriteString(w, `{"Name":"`+r.PathValue("name")+`","Id":"n1","Driver":"bridge"}`)
			return
		}
		engineError(w, http.StatusNotFound, "network "+r.PathValue("name")+" not found")
	})
	f.on("POST /networks/create", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"racing"`) {
			engineError(w, http.StatusConflict, "network with name racing already exists")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"n2"}`)
	})
	c, ops := f.client(t, Options{})
	ctx := testCtx(t, 10*time.Second)
	if err := c.EnsureNetwork(ctx, "there", OwnerLabels("a")); err != nil {
		t.Fatal(err)
	}
	if n := ops.get("network_create"); n != 0 {
		t.Fatalf("existing network was created again (%d network_create)", n)
	}
	if err := c.EnsureNetwork(ctx, "fresh", OwnerLabels("a")); err != nil {
		t.Fatal(err)
	}
	if n := ops.get("network_create"); n != 1 {
		t.Fatalf("missing network not created (%d network_create)", n)
	}
	if err := c.EnsureNetwork(ctx, "racing", OwnerLabels("a")); err != nil {
		t.Fatalf("a network created concurrently is not an error: %v", err)
	}
}

func TestEventsStream(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		writeLines(w,
			`{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"c1","Attributes":{"io.berth.challenge":"web"}},"timeNano":1700000000000000000}`,
			`{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"io.berth.challenge":"web","exitCode":"137"}},"timeNano":1700000001000000000}`,
			`{"Type":"container","Action":"oom","Actor":{"ID":"c2","Attributes":{}},"timeNano":1700000002000000000}`)
		// The stream then breaks.
	})
	c, ops := f.client(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := c.Events(ctx, OwnerLabels("a"))
	var got []Event
	for ev := range evs {
		got = append(got, ev)
	}
	if len(got) != 3 {
		t.Fatalf("events = %+v, want 3", got)
	}
	if got[0].Action != "health_status" || got[0].ExitCode != nil || got[0].Challenge() != "web" {
		t.Errorf("health event = %+v", got[0])
	}
	if got[1].Action != "die" || got[1].ContainerID != "c1" || got[1].ExitCode == nil || *got[1].ExitCode != 137 {
		t.Errorf("die event = %+v", got[1])
	}
	if !got[1].Time.Equal(time.Unix(1700000001, 0)) {
		t.Errorf("die time = %v", got[1].Time)
	}
	if got[2].Action != "oom" || got[2].Challenge() != "" {
		t.Errorf("oom event = %+v", got[2])
	}
	err, ok := <-errs
	if !ok || err == nil {
		t.Fatalf("broken stream delivered %v, %v; want one error", err, ok)
	}
	if _, ok := <-errs; ok {
		t.Fatal("error channel not closed after its one error")
	}
	q := f.requests("/events")[0].Query.Get("filters")
	for _, want := range []string{`"type":{"container":true}`, `"io.berth.agent=a":true`} {
		if !strings.Contains(q, want) {
			t.Errorf("events filters %s lack %s", q, want)
		}
	}
	if n := ops.get("events"); n != 1 {
		t.Errorf("OnRequest saw %d events, want 1", n)
	}
}

func TestEventsEndWithContext(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /events", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"Type":"container","Action":"start","Actor":{"ID":"c1"}}`)
		<-r.Context().Done()
	})
	c, _ := f.client(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := c.Events(ctx, nil)
	if ev := recv(t, evs, "the start event"); ev.Action != "start" {
		t.Fatalf("event = %+v", ev)
	}
	cancel()
	for range evs {
	}
	err := recv(t, errs, "the stream error")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stream ended with %v, want context.Canceled", err)
	}
	if _, ok := <-errs; ok {
		t.Fatal("error channel not closed")
	}
}

func TestLogsDemultiplexes(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /containers/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		writeFrame(w, 1, "listening on :8080\n")
		writeFrame(w, 2, "warning: slow\n")
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("follow") == "1" {
			<-r.Context().Done()
		}
	})
	c, _ := f.client(t, Options{})
	rc, err := c.Logs(testCtx(t, 10*time.Second), "c1", LogOptions{Tail: 5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || string(b) != "listening on :8080\nwarning: slow\n" {
		t.Fatalf("logs = %q, %v", b, err)
	}
	q := f.requests("/containers/c1/logs")[0].Query
	if q.Get("tail") != "5" || q.Get("stdout") != "1" || q.Get("stderr") != "1" || q.Get("follow") == "1" {
		t.Errorf("logs query = %v", q)
	}

	// Following: Close releases the stream even while the engine keeps it open.
	rc, err = c.Logs(testCtx(t, 10*time.Second), "c1", LogOptions{Follow: true, Tail: TailAll})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("listening on :8080\n"))
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc)
		done <- err
	}()
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "a followed log to end after Close")
	if q := f.requests("/containers/c1/logs")[1].Query; q.Get("tail") != "all" || q.Get("follow") != "1" {
		t.Errorf("follow query = %v", q)
	}
}

// The engine sends only the container actions berth acts on: exec_* and
// the like would fill the challenges' inboxes for nothing.
func TestEventsSubscribeOnlyToUsedActions(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// An engine that ignores the filter still must not get exec events through.
		writeLines(w,
			`{"Type":"container","Action":"exec_create: sh -c true","Actor":{"ID":"c1","Attributes":{}},"timeNano":1700000000000000000}`,
			`{"Type":"container","Action":"exec_start: sh -c true","Actor":{"ID":"c1","Attributes":{}},"timeNano":1700000000000000000}`,
			`{"Type":"container","Action":"exec_die","Actor":{"ID":"c1","Attributes":{}},"timeNano":1700000000000000000}`,
			`{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"1"}},"timeNano":1700000001000000000}`)
	})
	c, _ := f.client(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := c.Events(ctx, OwnerLabels("a"))
	var got []string
	for ev := range evs {
		got = append(got, ev.Action)
	}
	<-errs
	if len(got) != 1 || got[0] != "die" {
		t.Errorf("delivered actions %q, want only die", got)
	}
	var filters map[string]map[string]bool
	if err := json.Unmarshal([]byte(f.requests("/events")[0].Query.Get("filters")), &filters); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"die", "oom", "stop", "kill", "destroy", "start", "health_status"} {
		if !filters["event"][want] {
			t.Errorf("events filter %v lacks event=%s", filters["event"], want)
		}
	}
	for action := range filters["event"] {
		if strings.HasPrefix(action, "exec_") {
			t.Errorf("events filter subscribes to %s", action)
		}
	}
}
