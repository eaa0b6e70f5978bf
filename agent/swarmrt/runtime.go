package swarmrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"berth/agent/challenge"
	"berth/agent/dockerrt"
	"berth/configs"
	"berth/docker"
)

// Runtime is the Swarm runtime of one agent, on a manager's engine.
type Runtime struct {
	// Images acts on the manager's engine: every node must be able to pull
	// the image from a registry (or hold it already).
	dockerrt.Images
	engine  *docker.Client
	agentID string
	network string
	reach   string // "network": dial tasks on the overlay; else their host-mode port
	// poll is how often Events compares the services' tasks: tasks on
	// other nodes send berth no container events.
	poll time.Duration
	// startWait bounds how long Start waits for a task to run, pullWait
	// how long while a node prepares it (pulls its image).
	startWait, pullWait time.Duration

	nodeCache atomic.Pointer[nodeSnapshot] // see nodes
}

var _ challenge.Runtime = (*Runtime)(nil)

// New returns the swarm runtime of agent on engine.
func New(engine *docker.Client, agent configs.Agent) *Runtime {
	return &Runtime{Images: dockerrt.Images{Engine: engine}, engine: engine, agentID: agent.ID, network: agent.Network, reach: agent.Reach,
		poll: time.Second, startWait: 45 * time.Second, pullWait: 5 * time.Minute}
}

// ErrNotManager says the engine cannot run the swarm backend.
var ErrNotManager = errors.New("not a swarm manager")

// CheckManager returns an error unless the engine is an active swarm
// manager, and the limits of this engine berth should warn about.
func (r *Runtime) CheckManager(ctx context.Context) (warnings []string, err error) {
	info, err := r.engine.SwarmInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("swarm backend: ask the engine at %s for its swarm state: %w", r.engine.Host(), err)
	}
	if info.State != "active" || !info.Manager {
		return nil, fmt.Errorf("agent.backend is swarm, but the engine at %s is %w (swarm state %q, manager %t): "+
			"run berth on a manager node (docker swarm init, or docker node promote), or use agent.backend: docker",
			r.engine.Host(), ErrNotManager, info.State, info.Manager)
	}
	if v, err := strconv.ParseFloat(info.APIVersion, 64); err == nil && v < 1.46 {
		warnings = append(warnings, fmt.Sprintf("engine API %s applies no_new_privileges to containers but not to Swarm services (API 1.46 and later do)", info.APIVersion))
	}
	return warnings, nil
}

// Prepare checks the engine manages a swarm and, with reach: network,
// creates the attachable overlay berth dials tasks on.
func (r *Runtime) Prepare(ctx context.Context) error {
	if _, err := r.CheckManager(ctx); err != nil {
		return err
	}
	if r.reach == configs.ReachNetwork {
		if err := r.engine.EnsureOverlay(ctx, r.network, docker.OwnerLabels(r.agentID)); err != nil {
			return fmt.Errorf("ensure overlay network %s: %w", r.network, wrap(err))
		}
	}
	return nil
}

// Create makes the service of spec with no replicas: a stopped instance.
func (r *Runtime) Create(ctx context.Context, spec challenge.InstanceSpec) (challenge.Instance, error) {
	ss := r.serviceSpec(spec)
	id, err := r.engine.CreateService(ctx, ss)
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	return challenge.Instance{ID: id, Name: ss.Name, Challenge: spec.Challenge.Name, Slot: spec.Slot, Version: spec.Version,
		SpecHash: spec.SpecHash, Image: spec.Ref}, nil
}

func (r *Runtime) serviceSpec(s challenge.InstanceSpec) docker.ServiceSpec {
	cs := s.Challenge
	replicas := max(cs.Replicas, 1)
	labels := docker.OwnerLabels(r.agentID)
	labels[docker.LabelChallenge] = cs.Name
	labels[docker.LabelVersion] = s.Version
	labels[docker.LabelSlot] = s.Slot
	labels[docker.LabelSpecHash] = s.SpecHash
	labels[docker.LabelReplicas] = strconv.Itoa(replicas)
	labels[docker.LabelPort] = strconv.Itoa(cs.Port)
	spec := docker.ServiceSpec{
		Name:            docker.ContainerName(r.agentID, cs.Name, s.Slot),
		Image:           s.Ref,
		Env:             s.Env,
		Labels:          labels,
		Port:            cs.Port,
		PublishHost:     r.reach != configs.ReachNetwork,
		Placement:       cs.Placement,
		Replicas:        uint64(replicas),
		NanoCPUs:        int64(math.Round(cs.Resources.CPUs * 1e9)),
		MemoryBytes:     int64(cs.Resources.Memory),
		PidsLimit:       cs.Resources.Pids,
		ReadOnlyRootfs:  cs.Security.ReadOnly,
		CapDrop:         cs.Security.CapDrop,
		NoNewPrivileges: cs.Security.NoNewPrivileges,
		Tmpfs:           cs.Security.Tmpfs,
		StopTimeout:     cs.Restart.StopTimeout,
	}
	if r.reach == configs.ReachNetwork {
		spec.Network = r.network
	}
	for _, v := range cs.Volumes {
		// Volumes are node-local: a task moved to another node starts empty.
		spec.Volumes = append(spec.Volumes, docker.VolumeMount{Name: docker.VolumeName(r.agentID, cs.Name, v.Name), Target: v.Target, ReadOnly: v.ReadOnly})
	}
	return spec
}

// Start scales the service up to its replicas with fresh tasks and waits
// until one runs: the lifecycle probes the address Inspect returns next.
func (r *Runtime) Start(ctx context.Context, id string) error {
	svc, err := r.engine.InspectService(ctx, id)
	if err != nil {
		return wrap(err)
	}
	before, err := r.engine.ServiceTasks(ctx, svc.ID)
	if err != nil {
		return wrap(err)
	}
	old := map[string]bool{}
	for _, t := range before {
		old[t.ID] = true
	}
	// Forced, so a replica that exited under restart policy "none" is
	// replaced even when the count does not change.
	if err := r.engine.ScaleService(ctx, svc.ID, replicasOf(svc), true); err != nil {
		return wrap(err)
	}
	return r.waitRunning(ctx, svc, old)
}

// Stop scales the service to no replicas (its tasks get SIGTERM and the
// grace period) and waits until none runs.
func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	svc, err := r.engine.InspectService(ctx, id)
	if errors.Is(err, docker.ErrNotFound) {
		return nil
	}
	if err != nil {
		return wrap(err)
	}
	if svc.Replicas != 0 {
		if err := r.engine.ScaleService(ctx, svc.ID, 0, false); err != nil {
			if errors.Is(err, docker.ErrNotFound) {
				return nil
			}
			return wrap(err)
		}
	}
	return r.waitStopped(ctx, svc, timeout+30*time.Second)
}

// Remove removes the service; Swarm stops its tasks.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	return wrap(r.engine.RemoveService(ctx, id))
}

// Inspect reads the service, its tasks and the nodes. A task of this node
// whose container has ended is taken as ended at once: the manager learns
// it a little later, and the lifecycle asks right after the container's
// event.
func (r *Runtime) Inspect(ctx context.Context, id string) (challenge.Instance, error) {
	// The three reads are independent; together they would add up.
	var (
		wg    sync.WaitGroup
		svc   docker.Service
		tasks []docker.Task
		nodes map[string]docker.Node
		errs  [3]error
	)
	wg.Add(3)
	go func() { defer wg.Done(); svc, errs[0] = r.engine.InspectService(ctx, id) }()
	go func() { defer wg.Done(); tasks, errs[1] = r.engine.ServiceTasks(ctx, id) }()
	go func() { defer wg.Done(); nodes, errs[2] = r.nodes(ctx) }()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return challenge.Instance{}, wrap(err)
		}
	}
	if t, ok := dialed(tasks, nodes); ok && nodes[t.NodeID].Local {
		if running, code, found, err := r.engine.TaskContainer(ctx, t.ID); err == nil && found && !running {
			for i := range tasks {
				if tasks[i].ID == t.ID {
					tasks[i].State, tasks[i].ExitCode, tasks[i].Timestamp = "failed", code, time.Now()
				}
			}
		}
	}
	return r.instance(svc, tasks, nodes), nil
}

// InSlot finds the service of challenge in slot by its deterministic name,
// and only when its labels say this agent made it.
func (r *Runtime) InSlot(ctx context.Context, name, slot string) (challenge.Instance, error) {
	svc, err := r.engine.InspectService(ctx, docker.ContainerName(r.agentID, name, slot))
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	if svc.Labels[docker.LabelAgent] != r.agentID || svc.Labels[docker.LabelChallenge] != name {
		return challenge.Instance{}, fmt.Errorf("service %s is not this agent's: %w", svc.Name, challenge.ErrNotFound)
	}
	return r.inspected(ctx, svc)
}

func (r *Runtime) inspected(ctx context.Context, svc docker.Service) (challenge.Instance, error) {
	tasks, err := r.engine.ServiceTasks(ctx, svc.ID)
	if err != nil {
		return challenge.Instance{}, wrap(err)
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return challenge.Instance{}, err
	}
	return r.instance(svc, tasks, nodes), nil
}

// List is every service of this agent with its tasks.
func (r *Runtime) List(ctx context.Context) ([]challenge.Instance, error) {
	svcs, err := r.engine.ListServices(ctx, docker.OwnerLabels(r.agentID))
	if err != nil {
		return nil, wrap(err)
	}
	if len(svcs) == 0 {
		return nil, nil // no filter would list every task of the swarm
	}
	ids := make([]string, len(svcs))
	for i, s := range svcs {
		ids[i] = s.ID
	}
	tasks, err := r.engine.ServiceTasks(ctx, ids...)
	if err != nil {
		return nil, wrap(err)
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	byService := map[string][]docker.Task{}
	for _, t := range tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	out := make([]challenge.Instance, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, r.instance(s, byService[s.ID], nodes))
	}
	return out, nil
}

// nodes is the swarm's nodes by id, read at most nodesMaxAge ago: nodes
// change seldom, and an inspect right after an exit should not wait for
// the list.
func (r *Runtime) nodes(ctx context.Context) (map[string]docker.Node, error) {
	if c := r.nodeCache.Load(); c != nil && time.Since(c.at) < nodesMaxAge {
		return c.nodes, nil
	}
	list, err := r.engine.Nodes(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make(map[string]docker.Node, len(list))
	for _, n := range list {
		out[n.ID] = n
	}
	r.nodeCache.Store(&nodeSnapshot{nodes: out, at: time.Now()})
	return out, nil
}

const nodesMaxAge = 500 * time.Millisecond

// nodeSnapshot is a node list and when it was read; never modified once stored.
type nodeSnapshot struct {
	nodes map[string]docker.Node
	at    time.Time
}

// Logs is the output of every task of the service, the exited ones too.
func (r *Runtime) Logs(ctx context.Context, id string, opts challenge.LogOptions) (io.ReadCloser, error) {
	rc, err := r.engine.ServiceLogs(ctx, id, docker.LogOptions{Follow: opts.Follow, Tail: opts.Tail})
	return rc, wrap(err)
}

func replicasOf(svc docker.Service) uint64 {
	n, err := strconv.ParseUint(svc.Labels[docker.LabelReplicas], 10, 64)
	if err != nil || n == 0 {
		return 1
	}
	return n
}
