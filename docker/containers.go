package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// ContainerSpec is everything berth decides about a challenge container.
// Hardening (SPEC §5.9) is applied by Create, not chosen by callers.
type ContainerSpec struct {
	Name    string
	Image   string // reference the engine resolves locally (repo:tag or repo@digest)
	Env     []string
	Labels  map[string]string
	Port    int    // container port the challenge listens on
	Publish bool   // publish Port on 127.0.0.1 with an ephemeral host port
	Network string // user-defined bridge network to join
	Aliases []string

	NanoCPUs    int64
	MemoryBytes int64
	PidsLimit   int64

	ReadOnlyRootfs  bool
	CapDrop         []string
	CapAdd          []string // only NET_BIND_SERVICE; anything else is refused
	NoNewPrivileges bool
	Tmpfs           []string
	Volumes         []VolumeMount
	StopTimeout     time.Duration
}

// VolumeMount is a named volume; host paths are refused.
type VolumeMount struct {
	Name     string
	Target   string
	ReadOnly bool
}

// Container is the engine's view of one container, reduced to what berth uses.
type Container struct {
	ID         string
	Name       string
	Image      string
	ImageID    string
	Labels     map[string]string
	State      string // created, running, exited, dead, …
	Running    bool
	ExitCode   int
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	// HostPort is the 127.0.0.1 port published for the challenge port, if any.
	HostPort string
	// Port is the container port the challenge listens on (Inspect only).
	Port int
	// NetworkIPs maps network name to the container's address on it.
	NetworkIPs map[string]string
	// Volumes names the named volumes the container mounts (Inspect only).
	Volumes []string
}

// allowedCapAdd lists the only capabilities a container may get back after
// CapDrop. Every other capability (SYS_ADMIN, NET_ADMIN, ALL, ...) is refused.
var allowedCapAdd = []string{"NET_BIND_SERVICE"}

// checkPolicy refuses what berth never creates, even if a caller asked.
func checkPolicy(spec ContainerSpec) error {
	if spec.Name == "" || spec.Image == "" {
		return fmt.Errorf("%w: container name and image are required", ErrRefused)
	}
	for _, v := range spec.Volumes {
		if v.Name == "" || strings.ContainsAny(v.Name, `/\`) || strings.HasPrefix(v.Name, ".") {
			return fmt.Errorf("%w: volume %q is not a named volume (host paths are never mounted)", ErrRefused, v.Name)
		}
		if !strings.HasPrefix(v.Target, "/") {
			return fmt.Errorf("%w: volume target %q is not absolute", ErrRefused, v.Target)
		}
		if isDockerSocket(v.Name) || isDockerSocket(v.Target) {
			return fmt.Errorf("%w: the Docker socket is never mounted into challenges", ErrRefused)
		}
		if path.Clean(v.Target) == "/" {
			return fmt.Errorf("%w: volume %q cannot be mounted over /", ErrRefused, v.Name)
		}
		agent, challenge := spec.Labels[LabelAgent], spec.Labels[LabelChallenge]
		if prefix := volumePrefix(agent, challenge); agent == "" || challenge == "" || !strings.HasPrefix(v.Name, prefix) || v.Name == prefix {
			return fmt.Errorf("%w: volume %q is outside this challenge's namespace %s*", ErrRefused, v.Name, prefix)
		}
	}
	for _, t := range spec.Tmpfs {
		if !strings.HasPrefix(t, "/") || path.Clean(t) == "/" {
			return fmt.Errorf("%w: tmpfs %q must be an absolute path other than /", ErrRefused, t)
		}
	}
	if isHostMode(spec.Network) || spec.Network == "none" {
		return fmt.Errorf("%w: network %q (challenges run on a user-defined bridge network)", ErrRefused, spec.Network)
	}
	for _, c := range spec.CapAdd {
		if !slices.Contains(allowedCapAdd, normalizeCap(c)) {
			return fmt.Errorf("%w: capability %q cannot be added (allowed: %s)", ErrRefused, c, strings.Join(allowedCapAdd, ", "))
		}
	}
	// Zero means "no limit" to the engine; berth always sets limits.
	if spec.PidsLimit <= 0 {
		return fmt.Errorf("%w: pids limit %d (a container without a pids limit can fork-bomb the host)", ErrRefused, spec.PidsLimit)
	}
	if spec.MemoryBytes <= 0 {
		return fmt.Errorf("%w: memory limit %d (a container without a memory limit can exhaust the host)", ErrRefused, spec.MemoryBytes)
	}
	if spec.NanoCPUs < 0 {
		return fmt.Errorf("%w: negative CPU limit %d", ErrRefused, spec.NanoCPUs)
	}
	return nil
}

// Limits are the operator's maxima (agent.policy) for one container; zero
// leaves a resource unbounded here (checkPolicy still requires a pids and a
// memory limit).
type Limits struct {
	NanoCPUs    int64
	MemoryBytes int64
	Pids        int64
}

// checkLimits refuses a spec above the policy maxima, whoever validated it.
func checkLimits(spec ContainerSpec, l Limits) error {
	switch {
	case l.NanoCPUs > 0 && (spec.NanoCPUs <= 0 || spec.NanoCPUs > l.NanoCPUs):
		return fmt.Errorf("%w: CPU limit %.2f is above the policy maximum %.2f (agent.policy.max_cpus)", ErrRefused, float64(spec.NanoCPUs)/1e9, float64(l.NanoCPUs)/1e9)
	case l.MemoryBytes > 0 && spec.MemoryBytes > l.MemoryBytes:
		return fmt.Errorf("%w: memory limit %d bytes is above the policy maximum %d (agent.policy.max_memory)", ErrRefused, spec.MemoryBytes, l.MemoryBytes)
	case l.Pids > 0 && spec.PidsLimit > l.Pids:
		return fmt.Errorf("%w: pids limit %d is above the policy maximum %d (agent.policy.max_pids)", ErrRefused, spec.PidsLimit, l.Pids)
	}
	return nil
}

// isDockerSocket matches any spelling of the engine's socket; whoever holds
// it is root on the host.
func isDockerSocket(s string) bool {
	return strings.Contains(strings.ToLower(s), "docker.sock")
}

// isHostMode reports a namespace mode that joins the host's or another
// container's namespace.
func isHostMode(mode string) bool {
	return strings.EqualFold(mode, "host") || strings.HasPrefix(strings.ToLower(mode), "container:")
}

// normalizeCap spells a capability as the engine does: upper case, no CAP_ prefix.
func normalizeCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
}

// checkRequest re-checks the request actually sent to the engine, so a later
// change to createRequest cannot quietly drop a guarantee.
func checkRequest(host *container.HostConfig) error {
	refuse := func(what string, args ...any) error {
		return fmt.Errorf("%w: create request has %s", ErrRefused, fmt.Sprintf(what, args...))
	}
	switch {
	case host.Privileged:
		return refuse("privileged mode")
	case isHostMode(string(host.NetworkMode)):
		return refuse("network mode %q", host.NetworkMode)
	case isHostMode(string(host.PidMode)), isHostMode(string(host.IpcMode)),
		isHostMode(string(host.UTSMode)), isHostMode(string(host.UsernsMode)), isHostMode(string(host.CgroupnsMode)):
		return refuse("a shared host namespace")
	case len(host.Binds) > 0 || len(host.VolumesFrom) > 0:
		return refuse("bind mounts")
	case len(host.Devices) > 0 || len(host.DeviceRequests) > 0 || len(host.DeviceCgroupRules) > 0:
		return refuse("devices")
	case host.PidsLimit == nil || *host.PidsLimit <= 0 || host.Memory <= 0:
		return refuse("no pids or memory limit")
	}
	for _, m := range host.Mounts {
		if m.Type != mount.TypeVolume || strings.ContainsAny(m.Source, `/\`) {
			return refuse("a %s mount of %q", m.Type, m.Source)
		}
	}
	for _, c := range host.CapAdd {
		if !slices.Contains(allowedCapAdd, normalizeCap(c)) {
			return refuse("capability %q", c)
		}
	}
	for _, o := range host.SecurityOpt {
		if o != "no-new-privileges:true" {
			return refuse("security option %q", o)
		}
	}
	for port, bindings := range host.PortBindings {
		for _, b := range bindings {
			if b.HostIP != "127.0.0.1" {
				return refuse("port %s published on %q, not loopback", port, b.HostIP)
			}
		}
	}
	return nil
}

// createRequest turns a spec into the engine's create request with berth's
// hardening (SPEC §5.9) applied.
func createRequest(spec ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	port := nat.Port(strconv.Itoa(spec.Port) + "/tcp")
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          spec.Env,
		Labels:       maps.Clone(spec.Labels),
		ExposedPorts: nat.PortSet{port: struct{}{}},
	}
	if spec.StopTimeout > 0 {
		secs := int((spec.StopTimeout + time.Second - 1) / time.Second)
		cfg.StopTimeout = &secs
	}
	init := true
	pids := spec.PidsLimit
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.Network),
		IpcMode:        container.IPCModePrivate,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ReadonlyRootfs: spec.ReadOnlyRootfs,
		CapDrop:        spec.CapDrop,
		CapAdd:         spec.CapAdd,
		Init:           &init,
		Privileged:     false,
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
		Resources: container.Resources{
			NanoCPUs:   spec.NanoCPUs,
			Memory:     spec.MemoryBytes,
			MemorySwap: spec.MemoryBytes, // no swap beyond the memory limit
			PidsLimit:  &pids,
		},
	}
	if spec.NoNewPrivileges {
		host.SecurityOpt = append(host.SecurityOpt, "no-new-privileges:true")
	}
	if len(spec.Tmpfs) > 0 {
		host.Tmpfs = map[string]string{}
		for _, t := range spec.Tmpfs {
			host.Tmpfs[t] = "rw,noexec,nosuid,size=64m"
		}
	}
	for _, v := range spec.Volumes {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly,
			VolumeOptions: &mount.VolumeOptions{Labels: maps.Clone(spec.Labels)}})
	}
	if spec.Publish {
		host.PortBindings = nat.PortMap{port: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: ""}}}
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, host, netCfg
}

// Create creates (does not start) a hardened, labelled container. A spec that
// breaks the policy is refused with ErrRefused and never reaches the engine.
func (c *Client) Create(ctx context.Context, spec ContainerSpec) (string, error) {
	if err := checkPolicy(spec); err != nil {
		return "", fmt.Errorf("create %s: %w", spec.Name, err)
	}
	if err := checkLimits(spec, c.Limits()); err != nil {
		return "", fmt.Errorf("create %s: %w", spec.Name, err)
	}
	cfg, host, netCfg := createRequest(spec)
	if err := checkRequest(host); err != nil {
		return "", fmt.Errorf("create %s: %w", spec.Name, err)
	}
	ctx, cancel := c.call(ctx, "container_create")
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		return "", classify("create "+spec.Name, err)
	}
	return resp.ID, nil
}

// Start starts a created or stopped container.
func (c *Client) Start(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx, "container_start")
	defer cancel()
	return classify("start "+id, c.api.ContainerStart(ctx, id, container.StartOptions{}))
}

// Stop sends SIGTERM and SIGKILL after timeout. Stopping a stopped or missing
// container is not an error.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	c.count("container_stop")
	// The call itself may take the whole stop timeout.
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout+timeout)
	defer cancel()
	err := classify("stop "+id, c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Kill sends signal (e.g. "KILL") to a running container.
func (c *Client) Kill(ctx context.Context, id, signal string) error {
	ctx, cancel := c.call(ctx, "container_kill")
	defer cancel()
	err := classify("kill "+id, c.api.ContainerKill(ctx, id, signal))
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return nil // gone or not running
	}
	return err
}

// Remove force-removes a container and its anonymous volumes. Removing a
// missing container is not an error.
func (c *Client) Remove(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx, "container_remove")
	defer cancel()
	err := classify("remove "+id, c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if errors.Is(err, ErrConflict) && strings.Contains(err.Error(), "already in progress") {
		return nil
	}
	return err
}

// Inspect returns one container; ErrNotFound when it does not exist.
func (c *Client) Inspect(ctx context.Context, idOrName string) (Container, error) {
	ctx, cancel := c.call(ctx, "container_inspect")
	defer cancel()
	info, err := c.api.ContainerInspect(ctx, idOrName)
	if err != nil {
		return Container{}, classify("inspect "+idOrName, err)
	}
	out := Container{
		ID:         info.ID,
		Name:       strings.TrimPrefix(info.Name, "/"),
		ImageID:    info.Image,
		NetworkIPs: map[string]string{},
	}
	if info.Config != nil {
		out.Image = info.Config.Image
		out.Labels = info.Config.Labels
		for p := range info.Config.ExposedPorts {
			if p.Proto() == "tcp" {
				out.Port = p.Int()
			}
		}
	}
	if st := info.State; st != nil {
		out.State = string(st.Status)
		out.Running = st.Running
		out.ExitCode = st.ExitCode
		out.OOMKilled = st.OOMKilled
		out.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
		out.FinishedAt, _ = time.Parse(time.RFC3339Nano, st.FinishedAt)
	}
	for _, m := range info.Mounts {
		if m.Type == mount.TypeVolume {
			out.Volumes = append(out.Volumes, m.Name)
		}
	}
	if ns := info.NetworkSettings; ns != nil {
		for _, bindings := range ns.Ports {
			for _, b := range bindings {
				if b.HostIP == "127.0.0.1" || out.HostPort == "" {
					out.HostPort = b.HostPort
				}
			}
		}
		for name, ep := range ns.Networks {
			if ep != nil && ep.IPAddress != "" {
				out.NetworkIPs[name] = ep.IPAddress
			}
		}
	}
	return out, nil
}

// List returns every container (any state) carrying all the given labels.
func (c *Client) List(ctx context.Context, labels map[string]string) ([]Container, error) {
	ctx, cancel := c.call(ctx, "container_list")
	defer cancel()
	args := filters.NewArgs()
	for k, v := range labels {
		args.Add("label", k+"="+v)
	}
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, classify("list containers", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		ct := Container{ID: s.ID, Image: s.Image, ImageID: s.ImageID, Labels: s.Labels,
			State: string(s.State), Running: s.State == container.StateRunning, NetworkIPs: map[string]string{}}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		for _, p := range s.Ports {
			if p.PublicPort != 0 && (p.IP == "127.0.0.1" || ct.HostPort == "") {
				ct.HostPort = strconv.Itoa(int(p.PublicPort))
			}
		}
		if s.NetworkSettings != nil {
			for name, ep := range s.NetworkSettings.Networks {
				if ep != nil && ep.IPAddress != "" {
					ct.NetworkIPs[name] = ep.IPAddress
				}
			}
		}
		out = append(out, ct)
	}
	return out, nil
}

// EnsureNetwork creates the user-defined bridge network name if it is missing.
func (c *Client) EnsureNetwork(ctx context.Context, name string, labels map[string]string) error {
	ctx, cancel := c.call(ctx, "network_inspect")
	defer cancel()
	_, err := c.api.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if err = classify("inspect network "+name, err); !errors.Is(err, ErrNotFound) {
		return err
	}
	c.count("network_create")
	_, err = c.api.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
	err = classify("create network "+name, err)
	if errors.Is(err, ErrConflict) {
		return nil // created concurrently
	}
	return err
}
