package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/docker"
	"berth/integration/testenv"
)

// rawAPIRequest sends a request with exactly the Host and headers a browser
// would, not the ones Go's client derives from the URL.
func rawAPIRequest(t testing.TB, method, url, host string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSecurityAPICannotEscapeTheConfig drives a real berth: web pages cannot
// reach the API, API specs cannot read host files, relax hardening, exceed the
// policy or mount volumes outside their namespace, and a stored API spec the
// config in force no longer admits is refused at the next start.
func TestSecurityAPICannotEscapeTheConfig(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/other", "1.0.0", nil)
	cfgPath := berthConfig(t, id, challengeYAML("cfg", reg.Host+"/berth-it/echo", "1.0.0", "    volumes: [{name: data, target: /data}]\n"))
	ra := startAgent(t, cfgPath)
	v := waitServing(t, ra.api, "cfg", 60*time.Second, nil)
	mounts := func(cid string) string {
		return strings.TrimSpace(testenv.Docker(t, "inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", cid))
	}
	if got, want := mounts(v.ContainerID), docker.VolumeName(id, "cfg", "data"); got != want {
		t.Errorf("config challenge mounts %q, want %q", got, want)
	}

	// Browsers: DNS rebinding, cross-site simple requests.
	host := strings.TrimPrefix(ra.api, "http://")
	if status, body := rawAPIRequest(t, "GET", ra.api+"/v1/challenges", "rebind.example:"+host[strings.LastIndex(host, ":")+1:], nil, ""); status != http.StatusForbidden || !strings.Contains(body, "forbidden_host") {
		t.Errorf("foreign Host: %d %s", status, body)
	}
	if status, body := rawAPIRequest(t, "POST", ra.api+"/v1/reload", "", http.Header{"Origin": {"http://evil.example"}}, ""); status != http.StatusForbidden || !strings.Contains(body, "forbidden_origin") {
		t.Errorf("cross-site Origin: %d %s", status, body)
	}
	if status, body := rawAPIRequest(t, "POST", ra.api+"/v1/challenges/cfg/swap", "", http.Header{"Content-Type": {"text/plain"}}, `{"version":"1.0.0"}`); status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d %s", status, body)
	}

	spec := func(image, extra string) string {
		return fmt.Sprintf(`{"image":%q,"version":"1.0.0","pull_policy":"always","health":{"path":"/health","interval":"300ms","start_interval":"100ms"},"resources":{"cpus":0.5,"memory":"64m","pids":64}%s}`,
			reg.Host+"/"+image, extra)
	}
	for name, extra := range map[string]string{
		"secret_env_files":           `,"secret_env_files":{"TOKEN":"/proc/self/environ"}`,
		"secret_env_files.REL":       `,"secret_env_files":{"REL":"berth.yaml"}`,
		"security.cap_drop":          `,"security":{"cap_drop":[]}`,
		"security.read_only":         `,"security":{"read_only":false}`,
		"security.no_new_privileges": `,"security":{"no_new_privileges":false}`,
		"resources.pids":             `,"resources":{"pids":100000000}`,
		"resources.cpus":             `,"resources":{"cpus":4096}`,
	} {
		status, body := doRequest(t, "PUT", ra.api+"/v1/challenges/dyn", spec("berth-it/other", extra))
		if status != http.StatusBadRequest || !strings.Contains(body, strings.Split(name, ".REL")[0]) {
			t.Errorf("PUT with %s: %d %s", name, status, body)
		}
	}
	if c, _ := challengeStatus(t, ra.api, "dyn"); c.Name != "" {
		t.Fatalf("a refused spec was registered: %+v", c)
	}

	// A volume named like another challenge's stays inside its own namespace.
	other := docker.VolumeName(id, "cfg", "data")
	if status, body := doRequest(t, "PUT", ra.api+"/v1/challenges/dyn", spec("berth-it/other", `,"volumes":[{"name":"`+other+`","target":"/data"}]`)); status != http.StatusCreated {
		t.Fatalf("PUT dyn: %d %s", status, body)
	}
	d := waitServing(t, ra.api, "dyn", 60*time.Second, nil)
	if got, want := mounts(d.ContainerID), docker.VolumeName(id, "dyn", other); got != want {
		t.Errorf("dyn mounts %q, want %q", got, want)
	}

	// Tighten the policy and restart: the stored spec is checked again and refused.
	ra.stop(t)
	rewriteConfig(t, cfgPath, "  log: {level: debug}\n", "  log: {level: debug}\n  policy: {allowed_images: ["+reg.Host+"/berth-it/echo]}\n")
	ra = startAgent(t, cfgPath)
	waitServing(t, ra.api, "cfg", 60*time.Second, nil)
	testenv.WaitFor(t, 30*time.Second, "the refused spec's container is removed", func() (bool, error) {
		out := testenv.Docker(t, "ps", "-aq", "--filter", "label="+docker.LabelChallenge+"=dyn", "--filter", "label="+testenv.LabelAgent+"="+id)
		return strings.TrimSpace(out) == "", nil
	})
	if _, ok := findEvent(events(t, ra.api, "dyn"), "refused"); !ok {
		t.Errorf("no refused event for dyn: %+v", events(t, ra.api, "dyn"))
	}
	if c, _ := challengeStatus(t, ra.api, "dyn"); c.Name != "" {
		t.Errorf("refused spec still listed: %+v", c)
	}
}
