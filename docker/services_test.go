package docker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

func swarmSpec() ServiceSpec {
	return ServiceSpec{Name: "berth-a-app-a", Image: "img:1", Port: 8080, PublishHost: true,
		Labels:   map[string]string{LabelAgent: "a", LabelChallenge: "app", LabelManaged: "true"},
		NanoCPUs: 5e8, MemoryBytes: 64 << 20, PidsLimit: 64, ReadOnlyRootfs: true, CapDrop: []string{"ALL"},
		NoNewPrivileges: true, Tmpfs: []string{"/tmp"}, StopTimeout: 3 * time.Second,
		Volumes: []VolumeMount{{Name: VolumeName("a", "app", "data"), Target: "/data"}}, Placement: []string{"node.role==worker"}}
}

func TestServiceRequestIsHardened(t *testing.T) {
	req := serviceRequest(swarmSpec())
	if err := checkServiceRequest(req); err != nil {
		t.Fatal(err)
	}
	cs := req.TaskTemplate.ContainerSpec
	switch {
	case cs.Init == nil || !*cs.Init, !cs.ReadOnly, !slices.Equal(cs.CapabilityDrop, []string{"ALL"}):
		t.Errorf("container spec %+v", cs)
	case cs.Privileges == nil || !cs.Privileges.NoNewPrivileges:
		t.Error("no_new_privileges not asked for")
	case *cs.StopGracePeriod != 3*time.Second:
		t.Errorf("grace %s", *cs.StopGracePeriod)
	case req.TaskTemplate.RestartPolicy.Condition != swarm.RestartPolicyConditionNone:
		t.Error("Swarm would restart tasks itself")
	case *req.Mode.Replicated.Replicas != 0:
		t.Error("a new service must have no task until Start")
	case req.UpdateConfig.FailureAction != swarm.UpdateFailureActionContinue || req.UpdateConfig.Parallelism != 0:
		t.Errorf("update config %+v would let Swarm pause or stagger berth's restarts", req.UpdateConfig)
	case req.EndpointSpec.Mode != swarm.ResolutionModeDNSRR:
		t.Error("a VIP needs the routing mesh")
	case len(req.EndpointSpec.Ports) != 1 || req.EndpointSpec.Ports[0].PublishMode != swarm.PortConfigPublishModeHost || req.EndpointSpec.Ports[0].PublishedPort != 0:
		t.Errorf("ports %+v, want host mode on an engine-chosen port", req.EndpointSpec.Ports)
	case !slices.Equal(req.TaskTemplate.Placement.Constraints, []string{"node.role==worker"}):
		t.Errorf("placement %+v", req.TaskTemplate.Placement)
	}
	if l := req.TaskTemplate.Resources.Limits; l.Pids != 64 || l.MemoryBytes != 64<<20 || l.NanoCPUs != 5e8 {
		t.Errorf("limits %+v", l)
	}
	var kinds []mount.Type
	for _, m := range cs.Mounts {
		kinds = append(kinds, m.Type)
	}
	if !slices.Equal(kinds, []mount.Type{mount.TypeTmpfs, mount.TypeVolume}) {
		t.Errorf("mounts %v", kinds)
	}
}

func TestServicePolicyRefuses(t *testing.T) {
	for name, mutate := range map[string]func(*ServiceSpec){
		"no pids limit":     func(s *ServiceSpec) { s.PidsLimit = 0 },
		"no memory limit":   func(s *ServiceSpec) { s.MemoryBytes = 0 },
		"host path volume":  func(s *ServiceSpec) { s.Volumes = []VolumeMount{{Name: "/etc", Target: "/x"}} },
		"foreign volume":    func(s *ServiceSpec) { s.Volumes = []VolumeMount{{Name: "other", Target: "/x"}} },
		"host network":      func(s *ServiceSpec) { s.Network = "host" },
		"too many replicas": func(s *ServiceSpec) { s.Replicas = 1000 },
		"empty constraint":  func(s *ServiceSpec) { s.Placement = []string{" "} },
	} {
		s := swarmSpec()
		mutate(&s)
		if err := checkService(s); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}
	req := serviceRequest(swarmSpec())
	req.TaskTemplate.RestartPolicy.Condition = swarm.RestartPolicyConditionAny
	if err := checkServiceRequest(req); !errors.Is(err, ErrRefused) {
		t.Errorf("a request with Swarm's own restarts: %v", err)
	}
	req = serviceRequest(swarmSpec())
	req.TaskTemplate.ContainerSpec.Mounts = append(req.TaskTemplate.ContainerSpec.Mounts, mount.Mount{Type: mount.TypeBind, Source: "/var/run/docker.sock"})
	if err := checkServiceRequest(req); !errors.Is(err, ErrRefused) {
		t.Errorf("a request with a bind mount: %v", err)
	}
}

func TestExitCodeOfListStatus(t *testing.T) {
	for status, want := range map[string]int{
		"Exited (137) 2 seconds ago":            137,
		"Exited (0) Less than a second ago":     0,
		"Exited (1) About a minute ago":         1,
		"Up 3 seconds":                          0,
		"Exited (x)":                            0,
		"Restarting (2) Less than a second ago": 0,
	} {
		if got := exitCodeOf(status); got != want {
			t.Errorf("exitCodeOf(%q) = %d, want %d", status, got, want)
		}
	}
}
