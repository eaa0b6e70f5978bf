package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// ServiceSpec is everything berth decides about a challenge's Swarm
// service. Hardening is applied by CreateService, as Create does for
// containers; the restart policy is always "none" (berth decides restarts).
type ServiceSpec struct {
	Name   string
	Image  string
	Env    []string
	Labels map[string]string // on the service and on its task containers
	Port   int               // container port the challenge listens on
	// PublishHost publishes Port in host mode on an engine-chosen port of
	// the node the task runs on, so two slots never collide on one node.
	PublishHost bool
	Network     string   // attachable overlay to join; "" for none
	Placement   []string // constraints, e.g. node.labels.zone==a
	Replicas    uint64   // applied by ScaleService; a service is created with none

	NanoCPUs    int64
	MemoryBytes int64
	PidsLimit   int64

	ReadOnlyRootfs  bool
	CapDrop         []string
	NoNewPrivileges bool // honoured by engines with API 1.46 and later
	Tmpfs           []string
	Volumes         []VolumeMount
	StopTimeout     time.Duration
}

// Service is the manager's view of one service, reduced to what berth uses.
type Service struct {
	ID        string
	Name      string
	Image     string
	Labels    map[string]string
	Port      int
	Replicas  uint64 // desired
	Volumes   []string
	Network   string
	CreatedAt time.Time
}

// checkService refuses what berth never runs, with the container rules.
func checkService(spec ServiceSpec) error {
	if spec.Replicas > maxReplicas {
		return fmt.Errorf("%w: %d replicas (at most %d)", ErrRefused, spec.Replicas, maxReplicas)
	}
	for _, c := range spec.Placement {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("%w: empty placement constraint", ErrRefused)
		}
	}
	return checkPolicy(ContainerSpec{Name: spec.Name, Image: spec.Image, Labels: spec.Labels, Network: spec.Network,
		PidsLimit: spec.PidsLimit, MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs, Tmpfs: spec.Tmpfs, Volumes: spec.Volumes})
}

const maxReplicas = 64

// serviceRequest is the engine's service spec for spec, with no replicas.
func serviceRequest(spec ServiceSpec) swarm.ServiceSpec {
	init := true
	grace := spec.StopTimeout
	zero := uint64(0)
	cs := &swarm.ContainerSpec{
		Image:           spec.Image,
		Labels:          maps.Clone(spec.Labels),
		Env:             spec.Env,
		Init:            &init,
		ReadOnly:        spec.ReadOnlyRootfs,
		CapabilityDrop:  spec.CapDrop,
		StopGracePeriod: &grace,
	}
	if spec.NoNewPrivileges {
		cs.Privileges = &swarm.Privileges{NoNewPrivileges: true}
	}
	for _, t := range spec.Tmpfs {
		cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: t,
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Options: [][]string{{"noexec"}, {"nosuid"}}}})
	}
	for _, v := range spec.Volumes {
		cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly,
			VolumeOptions: &mount.VolumeOptions{Labels: maps.Clone(spec.Labels)}})
	}
	out := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: spec.Name, Labels: maps.Clone(spec.Labels)},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs,
			Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{NanoCPUs: spec.NanoCPUs, MemoryBytes: spec.MemoryBytes,
				Pids: spec.PidsLimit}},
			// berth owns restart decisions (backoff, crash-loop give-up):
			// Swarm replaces no task on its own.
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			LogDriver:     &swarm.Driver{Name: "json-file", Options: map[string]string{"max-size": "10m", "max-file": "3"}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
		// A Start replaces every task at once, without waiting for the
		// manager to see the old ones end (berth starts a service only
		// when none of its tasks serves), and a task that fails soon after
		// never pauses the service: berth handles the failure.
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 0, Order: swarm.UpdateOrderStartFirst,
			FailureAction: swarm.UpdateFailureActionContinue, Monitor: 500 * time.Millisecond},
		// No VIP: it needs the routing mesh berth does not use.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	if len(spec.Placement) > 0 {
		out.TaskTemplate.Placement = &swarm.Placement{Constraints: append([]string(nil), spec.Placement...)}
	}
	if spec.Network != "" {
		out.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: spec.Network}}
	}
	if spec.PublishHost {
		out.EndpointSpec.Ports = []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP, TargetPort: uint32(spec.Port),
			PublishMode: swarm.PortConfigPublishModeHost}}
	}
	return out
}

// checkServiceRequest re-checks the request sent to the engine.
func checkServiceRequest(s swarm.ServiceSpec) error {
	refuse := func(what string, args ...any) error {
		return fmt.Errorf("%w: service request has %s", ErrRefused, fmt.Sprintf(what, args...))
	}
	cs := s.TaskTemplate.ContainerSpec
	switch {
	case cs == nil:
		return refuse("no container spec")
	case s.TaskTemplate.RestartPolicy == nil || s.TaskTemplate.RestartPolicy.Condition != swarm.RestartPolicyConditionNone:
		return refuse("a restart policy of its own")
	case s.TaskTemplate.Resources == nil || s.TaskTemplate.Resources.Limits == nil ||
		s.TaskTemplate.Resources.Limits.Pids <= 0 || s.TaskTemplate.Resources.Limits.MemoryBytes <= 0:
		return refuse("no pids or memory limit")
	case len(cs.CapabilityAdd) > 0:
		return refuse("added capabilities")
	}
	for _, m := range cs.Mounts {
		if (m.Type != mount.TypeVolume && m.Type != mount.TypeTmpfs) || strings.ContainsAny(m.Source, `/\`) {
			return refuse("a %s mount of %q", m.Type, m.Source)
		}
	}
	for _, n := range s.TaskTemplate.Networks {
		if isHostMode(n.Target) {
			return refuse("network %q", n.Target)
		}
	}
	return nil
}

// CreateService creates a hardened, labelled service with no replicas (a
// stopped instance). A spec that breaks the policy never reaches the engine.
func (c *Client) CreateService(ctx context.Context, spec ServiceSpec) (string, error) {
	if err := checkService(spec); err != nil {
		return "", fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	if err := checkLimits(ContainerSpec{NanoCPUs: spec.NanoCPUs, MemoryBytes: spec.MemoryBytes, PidsLimit: spec.PidsLimit}, c.Limits()); err != nil {
		return "", fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	req := serviceRequest(spec)
	if err := checkServiceRequest(req); err != nil {
		return "", fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	ctx, cancel := c.call(ctx, "service_create")
	defer cancel()
	// No registry query: the image is resolved on each node, and berth
	// checks digests itself.
	resp, err := c.api.ServiceCreate(ctx, req, swarm.ServiceCreateOptions{})
	if err != nil {
		return "", classify("create service "+spec.Name, err)
	}
	return resp.ID, nil
}

// ScaleService sets the desired replicas of a service. With force it also
// replaces its tasks (a restart): a replica that exited stays down under
// restart policy "none" until the service changes.
func (c *Client) ScaleService(ctx context.Context, id string, replicas uint64, force bool) error {
	ctx, cancel := c.call(ctx, "service_update")
	defer cancel()
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		return classify("inspect service "+id, err)
	}
	spec := svc.Spec
	if spec.Mode.Replicated == nil {
		return fmt.Errorf("%w: service %s is not replicated", ErrRefused, id)
	}
	spec.Mode.Replicated.Replicas = &replicas
	if force {
		spec.TaskTemplate.ForceUpdate++
	}
	_, err = c.api.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{})
	return classify("update service "+id, err)
}

// RemoveService removes a service; its tasks stop with their grace period.
// Removing a missing service is not an error.
func (c *Client) RemoveService(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx, "service_remove")
	defer cancel()
	err := classify("remove service "+id, c.api.ServiceRemove(ctx, id))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// InspectService returns one service by id or name; ErrNotFound when there
// is none.
func (c *Client) InspectService(ctx context.Context, idOrName string) (Service, error) {
	ctx, cancel := c.call(ctx, "service_inspect")
	defer cancel()
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, idOrName, swarm.ServiceInspectOptions{})
	if err != nil {
		return Service{}, classify("inspect service "+idOrName, err)
	}
	if svc.Spec.Name != idOrName && svc.ID != idOrName && !strings.HasPrefix(svc.ID, idOrName) {
		// The engine also matches name prefixes; berth names are exact.
		return Service{}, &Error{Op: "inspect service " + idOrName, Kind: ErrNotFound, Err: errors.New("no such service")}
	}
	return serviceOf(svc), nil
}

// ListServices returns every service carrying all the given labels.
func (c *Client) ListServices(ctx context.Context, labels map[string]string) ([]Service, error) {
	ctx, cancel := c.call(ctx, "service_list")
	defer cancel()
	args := filters.NewArgs()
	for k, v := range labels {
		args.Add("label", k+"="+v)
	}
	list, err := c.api.ServiceList(ctx, swarm.ServiceListOptions{Filters: args})
	if err != nil {
		return nil, classify("list services", err)
	}
	out := make([]Service, 0, len(list))
	for _, s := range list {
		out = append(out, serviceOf(s))
	}
	return out, nil
}

func serviceOf(s swarm.Service) Service {
	out := Service{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels, CreatedAt: s.CreatedAt}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		out.Image = cs.Image
		for _, m := range cs.Mounts {
			if m.Type == mount.TypeVolume {
				out.Volumes = append(out.Volumes, m.Source)
			}
		}
	}
	if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		out.Replicas = *r.Replicas
	}
	if ep := s.Spec.EndpointSpec; ep != nil {
		for _, p := range ep.Ports {
			if p.Protocol == swarm.PortConfigProtocolTCP {
				out.Port = int(p.TargetPort)
			}
		}
	}
	if nets := s.Spec.TaskTemplate.Networks; len(nets) > 0 {
		out.Network = nets[0].Target
	}
	return out
}

// ServiceLogs returns the output of a service's tasks as plain text, like
// Logs for a container. The caller must Close the reader.
func (c *Client) ServiceLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	c.count("service_logs")
	tail := "all"
	if opts.Tail >= 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	raw, err := c.api.ServiceLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail})
	if err != nil {
		return nil, classify("service logs "+id, err)
	}
	return demux(raw), nil
}
