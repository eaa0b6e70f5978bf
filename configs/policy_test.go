package configs

import (
	"strings"
	"testing"
)

// TestRefusedContainerOptions: every Docker option that would weaken a
// challenge's isolation is refused by name, with file, line and key, wherever
// it is written.
func TestRefusedContainerOptions(t *testing.T) {
	const c = "challenges[0]"
	tests := []struct {
		name, extra, key, msg string
	}{
		{"privileged", "privileged: true", c, "privileged containers are refused"},
		{"privileged false", "privileged: false", c, "privileged containers are refused"},
		{"network_mode host", "network_mode: host", c, "host networking is refused"},
		{"host_network", "host_network: true", c, "host networking is refused"},
		{"pid host", "pid: host", c, "sharing host namespaces is refused"},
		{"pid_mode host", "pid_mode: host", c, "sharing host namespaces is refused"},
		{"ipc host", "ipc: host", c, "sharing host namespaces is refused"},
		{"ipc_mode host", "ipc_mode: host", c, "sharing host namespaces is refused"},
		{"uts host", "uts: host", c, "sharing host namespaces is refused"},
		{"userns host", "userns_mode: host", c, "sharing host namespaces is refused"},
		{"binds", "binds: ['/:/host']", c, "host bind mounts are refused"},
		{"mounts", "mounts: [{type: bind, source: /, target: /host}]", c, "host bind mounts are refused"},
		{"volumes_from", "volumes_from: [other]", c, "another container's volumes is refused"},
		{"devices", "devices: [/dev/sda]", c, "host devices are refused"},
		{"device cgroup rules", "device_cgroup_rules: ['c 1:3 mr']", c, "host devices are refused"},
		{"cap_add", "cap_add: [SYS_ADMIN]", c, "adding capabilities is refused"},
		{"security.cap_add", "security: {cap_add: [NET_BIND_SERVICE]}", c + ".security", "adding capabilities is refused"},
		{"security_opt", "security_opt: ['seccomp=unconfined']", c, "custom seccomp, AppArmor"},
		{"security.security_opt", "security: {security_opt: ['apparmor=unconfined']}", c + ".security", "custom seccomp, AppArmor"},
		{"cgroup_parent", "cgroup_parent: /", c, "cgroup parent is refused"},
		{"volume name absolute path", "volumes: [{name: /etc, target: /etc}]", c + ".volumes[0].name", "host bind mounts are refused"},
		{"volume name relative path", "volumes: [{name: ../x, target: /x}]", c + ".volumes[0].name", "host bind mounts are refused"},
		{"volume name dot", "volumes: [{name: ., target: /x}]", c + ".volumes[0].name", "host bind mounts are refused"},
		{"volume name windows path", `volumes: [{name: 'C:\x', target: /x}]`, c + ".volumes[0].name", "host bind mounts are refused"},
		{"volume named docker.sock", "volumes: [{name: docker.sock, target: /x}]", c + ".volumes[0].name", "Docker socket"},
		{"docker socket target", "volumes: [{name: data, target: /var/run/docker.sock}]", c + ".volumes[0].target", "Docker socket"},
		{"docker socket target /run", "volumes: [{name: data, target: /run/docker.sock}]", c + ".volumes[0].target", "Docker socket"},
		{"docker socket target spelled oddly", "volumes: [{name: data, target: /var/run/../run/Docker.Sock/}]", c + ".volumes[0].target", "Docker socket"},
		{"cpus rounding to no limit", "resources: {cpus: 0.000000001}", c + ".resources.cpus", "below Docker's minimum of 0.01"},
		{"pids unlimited", "resources: {pids: -1}", c + ".resources.pids", "at least 1"},
		{"memory unlimited", "resources: {memory: 0}", c + ".resources.memory", "below Docker's minimum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrs(t, challengeDoc(tt.extra))
			e := wantErr(t, es, tt.key, tt.msg)
			if e.File != "test.yaml" || e.Line < 2 {
				t.Errorf("error %q lacks a position", e)
			}
			if strings.Contains(e.Msg, "did you mean") {
				t.Errorf("a refused key reads like a typo: %q", e)
			}
		})
	}
}

// The same refusals hold in defaults, in challenge_dirs files and for specs
// that arrive without a file (the admin API).
func TestRefusedEverywhere(t *testing.T) {
	es := parseErrs(t, "defaults:\n  security:\n    cap_add: [SYS_ADMIN]\n")
	if e := wantErr(t, es, "defaults.security", "adding capabilities is refused"); e.Line != 3 {
		t.Errorf("line %d, want 3", e.Line)
	}
	es = parseErrs(t, "defaults:\n  resources: {pids: 0}\n")
	wantErr(t, es, "defaults.resources.pids", "at least 1")

	_, err := ParseChallenge("", []byte(`{"name":"a","image":"x/a","version":"1","privileged":true}`), BuiltinDefaults())
	if err == nil || !strings.Contains(err.Error(), "privileged containers are refused") {
		t.Errorf("JSON spec with privileged: %v", err)
	}
	_, err = ParseChallenge("", []byte(`{"name":"a","image":"x/a","version":"1","volumes":[{"name":"/","target":"/host"}]}`), BuiltinDefaults())
	if err == nil || !strings.Contains(err.Error(), "volumes[0].name") {
		t.Errorf("JSON spec with a host path volume: %v", err)
	}
	valid := BuiltinDefaults().NewChallenge()
	valid.Name, valid.Image, valid.Version = "app", "ghcr.io/org/app", "1"
	for name, mutate := range map[string]func(*Challenge){
		"docker socket volume": func(c *Challenge) { c.Volumes = []Volume{{Name: "v", Target: "/var/run/docker.sock"}} },
		"no pids limit":        func(c *Challenge) { c.Resources.Pids = 0 },
		"no memory limit":      func(c *Challenge) { c.Resources.Memory = 0 },
		"no cpu limit":         func(c *Challenge) { c.Resources.CPUs = 0 },
	} {
		c := valid.Clone()
		mutate(&c)
		if err := ValidateChallenge(c); err == nil {
			t.Errorf("ValidateChallenge accepted %s", name)
		}
	}
}

func TestImagePolicyBoundaries(t *testing.T) {
	tests := []struct {
		image    string
		prefixes []string
		want     bool
	}{
		// Path boundaries, not string prefixes.
		{"ghcr.io/org/app", []string{"ghcr.io/org/app"}, true},
		{"ghcr.io/org/application", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app-evil", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app.evil", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app_evil", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app/sub", []string{"ghcr.io/org/app/"}, true},
		{"ghcr.io/organisation/app", []string{"ghcr.io/org"}, false},
		{"platform-evil/app", []string{"platform"}, false},
		{"ghcr.io.evil.com/org/app", []string{"ghcr.io"}, false},
		{"evil.com/ghcr.io/org/app", []string{"ghcr.io"}, false},
		{"localhost:50001/app", []string{"localhost:5000"}, false},
		{"ghcr.io:443/org/app", []string{"ghcr.io"}, false}, // another host:port, fail closed
		// Registry hosts are case-insensitive; repository paths are lowercase anyway.
		{"GHCR.io/org/app", []string{"ghcr.io/org"}, true},
		{"ghcr.io/org/app", []string{"GHCR.IO/org"}, true},
		// Docker Hub spellings are normalised on both sides.
		{"nginx", []string{"docker.io/library/nginx"}, true},
		{"docker.io/library/nginx", []string{"nginx"}, true},
		{"index.docker.io/library/nginx", []string{"docker.io/library"}, true},
		{"nginx", []string{"docker.io/nginx"}, true},
		{"library/nginx", []string{"docker.io/library/nginx"}, true},
		{"nginx", []string{"ghcr.io"}, false},
		{"nginxx", []string{"nginx"}, false},
		{"docker.io/library/nginx", []string{"docker.io"}, true},
		{"ghcr.io/org/app", []string{"docker.io"}, false},
	}
	for _, tt := range tests {
		if got := ImageAllowed(tt.image, tt.prefixes); got != tt.want {
			t.Errorf("ImageAllowed(%q, %q) = %v, want %v", tt.image, tt.prefixes, got, tt.want)
		}
	}
}

// Image references that could smuggle a tag or digest past the policy, or
// name a repository Docker would refuse, are refused with a clear message.
func TestImageReferencesRefused(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	tests := []struct{ image, msg string }{
		{"ghcr.io/org/app" + digest, "includes a digest; put the tag in version and the digest in digest"},
		{"nginx" + digest, "includes a digest"},
		{"ghcr.io/org/app:1.0", "includes a tag"},
		{"ghcr.io/Org/app", "must be lowercase"},
		{"ghcr.io/org/APP", "must be lowercase"},
		{"https://ghcr.io/org/app", "must not include a scheme"},
		{"ghcr.io/org/../app", "invalid path component"},
		{" ghcr.io/org/app", "invalid"},
	}
	for _, tt := range tests {
		es := parseErrs(t, challengeDoc("image: '"+tt.image+"'"))
		wantErr(t, es, "challenges[0].image", tt.msg)
	}
	for _, p := range []string{"ghcr.io/org/app" + digest, "ghcr.io/org/app:1"} {
		es := parseErrs(t, agentDoc("policy: {allowed_images: ['"+p+"']}"))
		wantErr(t, es, "agent.policy.allowed_images[0]", "put the tag in version")
	}
}

func TestCheckVersionExported(t *testing.T) {
	for _, v := range []string{"1.4.2", "^1.4", ">=1.2 <2", "latest"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v", v, err)
		}
	}
	for v, msg := range map[string]string{
		"":                               "is required",
		">>1":                            "neither an image tag nor a semver constraint",
		"1.0.0+build":                    "not a valid image tag",
		strings.Repeat("1", 300):         "longer than 256",
		"^1." + strings.Repeat("0", 300): "longer than 256",
	} {
		err := CheckVersion(v)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("CheckVersion(%.20q…) = %v, want %q", v, err, msg)
		}
	}
}

// YAML errors that yaml reports without a line still get one, so every
// refusal says where.
func TestSyntaxErrorsHaveLines(t *testing.T) {
	tests := []struct {
		doc  string
		line int
		msg  string
	}{
		{"a: b: c", 1, "mapping values are not allowed"},
		{"\tx: 1", 1, "cannot start any token"},
		{"x: 1\ny: &a 1\nz: *b\n", 3, "unknown anchor 'b'"},
		{"agent:\n  id: a\n\x01\n", 3, "control characters"},
		{"agent:\n  id: \"\xff\"\n", 2, "UTF-8"},
		{"x: 1\na: b: c", 2, "mapping values"},
	}
	for _, tt := range tests {
		es := parseErrs(t, tt.doc)
		if len(es) != 1 || es[0].Line != tt.line || !strings.Contains(es[0].Msg, tt.msg) || es[0].File != "test.yaml" {
			t.Errorf("%q: got %v, want test.yaml:%d: …%s", tt.doc, es, tt.line, tt.msg)
		}
	}
	_, err := ParseChallenge("c.yaml", nil, BuiltinDefaults())
	if err == nil || err.Error() != "c.yaml:1: file is empty; expected one challenge (name, image, version, ...)" {
		t.Errorf("empty challenge file: %v", err)
	}
}
