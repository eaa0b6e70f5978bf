package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"time"

	"berth/agent/challenge"
	"berth/configs"
	"berth/docker"
)

// Runtime is the Docker Engine runtime of one agent.
type Runtime struct {
	Images
	engine  *docker.Client
	agentID string
	network string
	reach   string // "network": dial instances on the network; else their published port
}

var _ challenge.Runtime = (*Runtime)(nil)

// New returns the runtime of agent on engine.
func New(engine *docker.Client, agent configs.Agent) *Runtime {
	return &Runtime{Images: Images{engine}, engine: engine, agentID: agent.ID, network: agent.Network, reach: agent.Reach}
}

// Prepare creates the agent's network if it is missing.
func (r *Runtime) Prepare(ctx context.Context) error {
	if err := r.engine.EnsureNetwork(ctx, r.network, docker.OwnerLabels(r.agentID)); err != nil {
		return fmt.Errorf("ensure network %s: %w", r.network, wrap(err))
	}
	return nil
}

func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	return wrap(r.engine.RemoveImage(ctx, ref))
}

// Create makes the container of spec: named and labelled for this agent,
// its volumes in the challenge's own namespace, hardened by the client.
func (r *Runtime) Create(ctx context.Context, spec challenge.InstanceSpec) (challenge.Instance, error) {
	cs := r.containerSpec(spec)
	id, err := r.engine.Create(ctx, cs)
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	return challenge.Instance{ID: id, Name: cs.Name, Challenge: spec.Challenge.Name, Slot: spec.Slot, Version: spec.Version,
		SpecHash: spec.SpecHash, Image: spec.Ref}, nil
}

func (r *Runtime) containerSpec(s challenge.InstanceSpec) docker.ContainerSpec {
	cs := s.Challenge
	labels := docker.OwnerLabels(r.agentID)
	labels[docker.LabelChallenge] = cs.Name
	labels[docker.LabelVersion] = s.Version
	labels[docker.LabelSlot] = s.Slot
	labels[docker.LabelSpecHash] = s.SpecHash
	spec := docker.ContainerSpec{
		Name:            docker.ContainerName(r.agentID, cs.Name, s.Slot),
		Image:           s.Ref,
		Env:             s.Env,
		Labels:          labels,
		Port:            cs.Port,
		Publish:         r.reach != "network",
		Network:         r.network,
		Aliases:         []string{cs.Name + "-" + s.Slot},
		NanoCPUs:        int64(math.Round(cs.Resources.CPUs * 1e9)),
		MemoryBytes:     int64(cs.Resources.Memory),
		PidsLimit:       cs.Resources.Pids,
		ReadOnlyRootfs:  cs.Security.ReadOnly,
		CapDrop:         cs.Security.CapDrop,
		NoNewPrivileges: cs.Security.NoNewPrivileges,
		Tmpfs:           cs.Security.Tmpfs,
		StopTimeout:     cs.Restart.StopTimeout,
	}
	for _, v := range cs.Volumes {
		// Each challenge has its own volume namespace (docker refuses any other name).
		spec.Volumes = append(spec.Volumes, docker.VolumeMount{Name: docker.VolumeName(r.agentID, cs.Name, v.Name), Target: v.Target, ReadOnly: v.ReadOnly})
	}
	return spec
}

func (r *Runtime) Start(ctx context.Context, id string) error { return wrap(r.engine.Start(ctx, id)) }

func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return wrap(r.engine.Stop(ctx, id, timeout))
}

func (r *Runtime) Remove(ctx context.Context, id string) error { return wrap(r.engine.Remove(ctx, id)) }

func (r *Runtime) Inspect(ctx context.Context, id string) (challenge.Instance, error) {
	ct, err := r.engine.Inspect(ctx, id)
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	return r.instance(ct), nil
}

// InSlot finds the container of challenge in slot by its deterministic
// name, and only when its labels say this agent made it.
func (r *Runtime) InSlot(ctx context.Context, name, slot string) (challenge.Instance, error) {
	ct, err := r.engine.Inspect(ctx, docker.ContainerName(r.agentID, name, slot))
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	if ct.Labels[docker.LabelAgent] != r.agentID || ct.Labels[docker.LabelChallenge] != name {
		return challenge.Instance{}, fmt.Errorf("container %s is not this agent's: %w", ct.Name, challenge.ErrNotFound)
	}
	return r.instance(ct), nil
}

func (r *Runtime) List(ctx context.Context) ([]challenge.Instance, error) {
	list, err := r.engine.List(ctx, docker.OwnerLabels(r.agentID))
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]challenge.Instance, 0, len(list))
	for _, ct := range list {
		out = append(out, r.instance(ct))
	}
	return out, nil
}

// Events streams the agent's container events as instance events: an exit
// with its code, or a change (stop, kill, OOM kill, removal) to confirm.
func (r *Runtime) Events(ctx context.Context) (<-chan challenge.InstanceEvent, <-chan error) {
	in, errs := r.engine.Events(ctx, docker.OwnerLabels(r.agentID))
	out := make(chan challenge.InstanceEvent, cap(in))
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(outErr)
		for ev := range in {
			kind := challenge.InstanceChanged
			switch ev.Action {
			case "die":
				kind = challenge.InstanceExited
			case "oom", "stop", "kill", "destroy":
			default:
				continue
			}
			select {
			case out <- challenge.InstanceEvent{ID: ev.ContainerID, Challenge: ev.Challenge(), Kind: kind, ExitCode: ev.ExitCode}:
			case <-ctx.Done():
			}
		}
		outErr <- wrap(<-errs)
	}()
	return out, outErr
}

func (r *Runtime) Logs(ctx context.Context, id string, opts challenge.LogOptions) (io.ReadCloser, error) {
	rc, err := r.engine.Logs(ctx, id, docker.LogOptions{Follow: opts.Follow, Tail: opts.Tail})
	return rc, wrap(err)
}

// instance is ct in the lifecycle's terms.
func (r *Runtime) instance(ct docker.Container) challenge.Instance {
	return challenge.Instance{
		ID:            ct.ID,
		Name:          ct.Name,
		Challenge:     ct.Labels[docker.LabelChallenge],
		Slot:          ct.Labels[docker.LabelSlot],
		Version:       ct.Labels[docker.LabelVersion],
		SpecHash:      ct.Labels[docker.LabelSpecHash],
		Image:         ct.Image,
		Address:       r.address(ct),
		Running:       ct.Running,
		ExitCode:      ct.ExitCode,
		OOMKilled:     ct.OOMKilled,
		StartedAt:     ct.StartedAt,
		ForeignVolume: docker.ForeignVolume(r.agentID, ct.Labels[docker.LabelChallenge], ct),
	}
}

// address is where berth dials ct, as agent.reach says.
func (r *Runtime) address(ct docker.Container) string {
	if r.reach == "network" {
		if ip := ct.NetworkIPs[r.network]; ip != "" && ct.Port != 0 {
			return "http://" + net.JoinHostPort(ip, strconv.Itoa(ct.Port))
		}
		return ""
	}
	if ct.HostPort == "" {
		return ""
	}
	return "http://" + net.JoinHostPort("127.0.0.1", ct.HostPort)
}

// wrap adds the lifecycle's error kinds to an engine error, keeping the
// engine's own for callers that know it.
func wrap(err error) error { return WrapEngineError(err) }

// WrapEngineError adds the lifecycle's error kinds to an error of the
// engine client; the Swarm runtime shares it.
func WrapEngineError(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range []struct{ docker, domain error }{
		{docker.ErrNotFound, challenge.ErrNotFound},
		{docker.ErrConflict, challenge.ErrConflict},
		{docker.ErrRefused, challenge.ErrRefused},
	} {
		if errors.Is(err, k.docker) {
			return &kindError{kind: k.domain, err: err}
		}
	}
	if docker.IsTransient(err) {
		return &kindError{kind: challenge.ErrUnavailable, err: err}
	}
	return err
}

// kindError is an engine error that also matches a lifecycle error kind; its
// text is the engine's alone.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
