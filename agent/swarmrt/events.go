package swarmrt

import (
	"context"
	"time"

	"berth/agent/challenge"
	"berth/docker"
)

// serviceIDAttr is the container label Swarm gives each task's container.
const serviceIDAttr = "com.docker.swarm.service.id"

// Events reports changes of the agent's services. Two sources feed it:
// container events of this node's tasks (fast, local only), and a poll of
// every service's tasks and the nodes (any node, a lost node included).
// They are InstanceChanged hints, for the owner to confirm with Inspect,
// except the exit of a single-replica service's task on this node: that is
// the instance's exit, reported with its code as on one host (an inspect
// would wait for the engine's clean-up of the container).
func (r *Runtime) Events(ctx context.Context) (<-chan challenge.InstanceEvent, <-chan error) {
	local, localErr := r.engine.Events(ctx, docker.OwnerLabels(r.agentID))
	out := make(chan challenge.InstanceEvent, 64)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(outErr)
		outErr <- r.watch(ctx, local, localErr, out)
	}()
	return out, outErr
}

// burst is how many quick polls follow a local event: the manager learns a
// task's end a little after its container's.
const (
	burst      = 20
	burstEvery = 100 * time.Millisecond
)

func (r *Runtime) watch(ctx context.Context, local <-chan docker.Event, localErr <-chan error, out chan<- challenge.InstanceEvent) error {
	send := func(ev challenge.InstanceEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	type state struct{ challenge, fingerprint string }
	var seen map[string]state // by service id; nil before the first poll
	quick := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-local:
			if !ok {
				return wrap(<-localErr)
			}
			if id := ev.Labels[serviceIDAttr]; id != "" && ev.Action != "start" {
				if !send(instanceEvent(id, ev)) {
					return ctx.Err()
				}
				quick = burst
				timer.Reset(burstEvery)
			}
		case err := <-localErr:
			return wrap(err)
		case <-timer.C:
			list, err := r.List(ctx)
			if err != nil {
				return err
			}
			now := make(map[string]state, len(list))
			for _, in := range list {
				st := state{challenge: in.Challenge, fingerprint: in.Address}
				if !in.Running {
					st.fingerprint = "down"
				}
				now[in.ID] = st
				if old, ok := seen[in.ID]; seen != nil && (!ok || old != st) {
					if !send(challenge.InstanceEvent{ID: in.ID, Challenge: in.Challenge, Kind: challenge.InstanceChanged}) {
						return ctx.Err()
					}
				}
			}
			for id, old := range seen {
				if _, ok := now[id]; !ok {
					// Removed: the owner finds it gone.
					if !send(challenge.InstanceEvent{ID: id, Challenge: old.challenge, Kind: challenge.InstanceChanged}) {
						return ctx.Err()
					}
				}
			}
			seen = now
			next := r.poll
			if quick > 0 {
				quick--
				next = burstEvery
			}
			timer.Reset(next)
		}
	}
}

// instanceEvent is a local container event of service id's task.
func instanceEvent(id string, ev docker.Event) challenge.InstanceEvent {
	out := challenge.InstanceEvent{ID: id, Challenge: ev.Challenge(), Kind: challenge.InstanceChanged}
	// With more replicas, another task may still serve.
	if ev.Action == "die" && ev.ExitCode != nil && ev.Labels[docker.LabelReplicas] == "1" {
		out.Kind, out.ExitCode = challenge.InstanceExited, ev.ExitCode
	}
	return out
}
