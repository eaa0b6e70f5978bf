package docker

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
)

// validSpec is what berth asks for by default (SPEC §5.9).
func validSpec() ContainerSpec {
	return ContainerSpec{
		Name: "berth-a-web-a", Image: "127.0.0.1:5000/web:1", Port: 8080, Publish: true, Network: "berth-a",
		NanoCPUs: 1e9, MemoryBytes: 64 << 20, PidsLimit: 64,
		ReadOnlyRootfs: true, CapDrop: []string{"ALL"}, NoNewPrivileges: true, Tmpfs: []string{"/tmp"},
		Volumes: []VolumeMount{{Name: "berth_a_web_data", Target: "/data"}},
		Labels:  map[string]string{LabelManaged: "true", LabelAgent: "a", LabelChallenge: "web"},
	}
}

func TestCheckPolicy(t *testing.T) {
	with := func(f func(*ContainerSpec)) ContainerSpec {
		s := validSpec()
		f(&s)
		return s
	}
	vol := func(name, target string) ContainerSpec {
		return with(func(s *ContainerSpec) { s.Volumes = []VolumeMount{{Name: name, Target: target}} })
	}
	tests := []struct {
		name    string
		spec    ContainerSpec
		refused string // substring of the message; "" means allowed
	}{
		{"default hardened spec", validSpec(), ""},
		{"no volumes", with(func(s *ContainerSpec) { s.Volumes = nil }), ""},
		{"read-only named volume", with(func(s *ContainerSpec) { s.Volumes[0].ReadOnly = true }), ""},
		{"NET_BIND_SERVICE", with(func(s *ContainerSpec) { s.CapAdd = []string{"NET_BIND_SERVICE", "cap_net_bind_service"} }), ""},
		{"no CPU limit given", with(func(s *ContainerSpec) { s.NanoCPUs = 0 }), ""},
		{"absolute host path", vol("/srv/data", "/data"), "/srv/data"},
		{"relative host path", vol("data/x", "/data"), "data/x"},
		{"windows path", vol(`C:\data`, "/data"), "named volume"},
		{"dot path", vol("..", "/data"), "named volume"},
		{"empty volume name", vol("", "/data"), "named volume"},
		{"relative target", vol("v", "data"), "not absolute"},
		{"volume over /", vol("v", "/./"), "over /"},
		{"docker socket target", vol("v", "/var/run/docker.sock"), "Docker socket"},
		{"docker socket under /run", vol("v", "/run/docker.sock"), "Docker socket"},
		{"docker socket any case", vol("v", "/run/Docker.Sock"), "Docker socket"},
		{"docker socket as name", vol("docker.sock", "/s"), "Docker socket"},
		{"host socket path", vol("/var/run/docker.sock", "/var/run/docker.sock"), "named volume"},
		{"tmpfs relative", with(func(s *ContainerSpec) { s.Tmpfs = []string{"tmp"} }), "tmpfs"},
		{"tmpfs over /", with(func(s *ContainerSpec) { s.Tmpfs = []string{"/"} }), "tmpfs"},
		{"no name", with(func(s *ContainerSpec) { s.Name = "" }), "required"},
		{"no image", with(func(s *ContainerSpec) { s.Image = "" }), "required"},
		// SPEC §5.9: never the host's namespaces, whoever asks.
		{"host network", with(func(s *ContainerSpec) { s.Network = "host" }), "host"},
		{"host network upper case", with(func(s *ContainerSpec) { s.Network = "HOST" }), "HOST"},
		{"another container's network", with(func(s *ContainerSpec) { s.Network = "container:abc" }), "container:abc"},
		{"no network", with(func(s *ContainerSpec) { s.Network = "none" }), "none"},
		{"SYS_ADMIN", with(func(s *ContainerSpec) { s.CapAdd = []string{"SYS_ADMIN"} }), "SYS_ADMIN"},
		{"ALL capabilities", with(func(s *ContainerSpec) { s.CapAdd = []string{"ALL"} }), "cannot be added"},
		{"NET_ADMIN behind an allowed one", with(func(s *ContainerSpec) { s.CapAdd = []string{"NET_BIND_SERVICE", "CAP_NET_ADMIN"} }), "CAP_NET_ADMIN"},
		// Zero limits mean "unlimited" to the engine.
		{"zero pids limit", with(func(s *ContainerSpec) { s.PidsLimit = 0 }), "pids limit"},
		{"unlimited pids", with(func(s *ContainerSpec) { s.PidsLimit = -1 }), "pids limit"},
		{"zero memory", with(func(s *ContainerSpec) { s.MemoryBytes = 0 }), "memory limit"},
		{"negative memory", with(func(s *ContainerSpec) { s.MemoryBytes = -1 }), "memory limit"},
		{"negative cpus", with(func(s *ContainerSpec) { s.NanoCPUs = -1 }), "CPU"},
		{"zero-value spec", ContainerSpec{}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPolicy(tt.spec)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("checkPolicy refused an allowed spec: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("checkPolicy = %v, want ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("message %q does not mention %q", err, tt.refused)
			}
		})
	}
}

// TestCreateRequestHardening checks the request berth builds for a default
// spec carries every SPEC §5.9 setting and passes checkRequest.
func TestCreateRequestHardening(t *testing.T) {
	spec := validSpec()
	spec.StopTimeout = 1500 * time.Millisecond
	cfg, host, netCfg := createRequest(spec)
	if err := checkRequest(host); err != nil {
		t.Fatalf("checkRequest refused berth's own request: %v", err)
	}
	port := nat.Port("8080/tcp")
	checks := map[string]bool{
		"image":                 cfg.Image == spec.Image,
		"stop timeout rounded":  cfg.StopTimeout != nil && *cfg.StopTimeout == 2,
		"exposed port":          func() bool { _, ok := cfg.ExposedPorts[port]; return ok }(),
		"read-only rootfs":      host.ReadonlyRootfs,
		"cap_drop ALL":          slices.Equal(host.CapDrop, []string{"ALL"}),
		"no cap_add":            len(host.CapAdd) == 0,
		"no-new-privileges":     slices.Equal(host.SecurityOpt, []string{"no-new-privileges:true"}),
		"init":                  host.Init != nil && *host.Init,
		"not privileged":        !host.Privileged,
		"private ipc":           host.IpcMode == container.IPCModePrivate,
		"own pid namespace":     host.PidMode == "",
		"pids limit":            host.PidsLimit != nil && *host.PidsLimit == 64,
		"memory, no swap":       host.Memory == 64<<20 && host.MemorySwap == 64<<20,
		"cpus":                  host.NanoCPUs == 1e9,
		"tmpfs noexec":          strings.Contains(host.Tmpfs["/tmp"], "noexec"),
		"no binds":              len(host.Binds) == 0,
		"named volume only":     len(host.Mounts) == 1 && host.Mounts[0].Type == mount.TypeVolume && host.Mounts[0].Source == "berth_a_web_data",
		"no devices":            len(host.Devices) == 0 && len(host.DeviceRequests) == 0,
		"loopback publish":      len(host.PortBindings[port]) == 1 && host.PortBindings[port][0].HostIP == "127.0.0.1",
		"user-defined network":  host.NetworkMode == "berth-a" && netCfg.EndpointsConfig["berth-a"] != nil,
		"engine never restarts": host.RestartPolicy.Name == container.RestartPolicyDisabled,
		"bounded log files":     host.LogConfig.Config["max-size"] != "",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("create request: %s not applied", what)
		}
	}
}

// TestCheckRequestRefusesWeakening proves the last-line check catches each
// setting a future edit of createRequest could weaken.
func TestCheckRequestRefusesWeakening(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*container.HostConfig)
	}{
		{"privileged", func(h *container.HostConfig) { h.Privileged = true }},
		{"host network", func(h *container.HostConfig) { h.NetworkMode = "host" }},
		{"host pid", func(h *container.HostConfig) { h.PidMode = "host" }},
		{"other container's pid", func(h *container.HostConfig) { h.PidMode = "container:x" }},
		{"host ipc", func(h *container.HostConfig) { h.IpcMode = "host" }},
		{"host uts", func(h *container.HostConfig) { h.UTSMode = "host" }},
		{"host userns", func(h *container.HostConfig) { h.UsernsMode = "host" }},
		{"host cgroupns", func(h *container.HostConfig) { h.CgroupnsMode = "host" }},
		{"bind", func(h *container.HostConfig) { h.Binds = []string{"/:/host"} }},
		{"bind mount", func(h *container.HostConfig) {
			h.Mounts = append(h.Mounts, mount.Mount{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/s"})
		}},
		{"volume by path", func(h *container.HostConfig) { h.Mounts[0].Source = "/etc" }},
		{"volumes from", func(h *container.HostConfig) { h.VolumesFrom = []string{"other"} }},
		{"device", func(h *container.HostConfig) {
			h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/sda", PathInContainer: "/dev/sda"}}
		}},
		{"gpu", func(h *container.HostConfig) { h.DeviceRequests = []container.DeviceRequest{{Count: -1}} }},
		{"cgroup rule", func(h *container.HostConfig) { h.DeviceCgroupRules = []string{"c 1:3 mr"} }},
		{"cap_add", func(h *container.HostConfig) { h.CapAdd = []string{"SYS_PTRACE"} }},
		{"seccomp off", func(h *container.HostConfig) { h.SecurityOpt = append(h.SecurityOpt, "seccomp=unconfined") }},
		{"no pids limit", func(h *container.HostConfig) { h.PidsLimit = nil }},
		{"zero memory", func(h *container.HostConfig) { h.Memory = 0 }},
		{"published on all interfaces", func(h *container.HostConfig) {
			h.PortBindings = nat.PortMap{"8080/tcp": {{HostIP: "0.0.0.0"}}}
		}},
		{"published without an address", func(h *container.HostConfig) {
			h.PortBindings = nat.PortMap{"8080/tcp": {{HostIP: ""}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, host, _ := createRequest(validSpec())
			tt.mutate(host)
			if err := checkRequest(host); !errors.Is(err, ErrRefused) {
				t.Fatalf("checkRequest = %v, want ErrRefused", err)
			}
		})
	}
}

// TestCreateSendsHardenedRequest reads the create request off the wire.
func TestCreateSendsHardenedRequest(t *testing.T) {
	f := newFakeEngine(t)
	var body []byte
	f.on("POST /containers/create", func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		if r.URL.Query().Get("name") != "berth-a-web-a" {
			engineError(w, http.StatusBadRequest, "wrong name")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"c1","Warnings":[]}`)
	})
	c, _ := f.client(t, Options{})
	spec := validSpec()
	spec.Env = []string{"A=1"}
	if id, err := c.Create(testCtx(t, 10*time.Second), spec); err != nil || id != "c1" {
		t.Fatalf("Create = %q, %v", id, err)
	}
	var req struct {
		HostConfig struct {
			Privileged, ReadonlyRootfs bool
			CapDrop, CapAdd, Binds     []string
			SecurityOpt                []string
			PidsLimit                  *int64
			Memory, MemorySwap         int64
			IpcMode, PidMode           string
			Devices                    []any
			Mounts                     []struct{ Type, Source string }
			PortBindings               map[string][]struct{ HostIp string }
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("create body %s: %v", body, err)
	}
	h := req.HostConfig
	if h.Privileged || !h.ReadonlyRootfs || !slices.Equal(h.CapDrop, []string{"ALL"}) || len(h.CapAdd) != 0 || len(h.Binds) != 0 ||
		!slices.Equal(h.SecurityOpt, []string{"no-new-privileges:true"}) || h.PidsLimit == nil || *h.PidsLimit != 64 ||
		h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.IpcMode != "private" || h.PidMode != "" || len(h.Devices) != 0 ||
		len(h.Mounts) != 1 || h.Mounts[0].Type != "volume" || h.PortBindings["8080/tcp"][0].HostIp != "127.0.0.1" {
		t.Errorf("create request is not hardened:\n%s", body)
	}
}
