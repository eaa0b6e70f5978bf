package swarmrt

import (
	"context"
	"fmt"
	"time"

	"berth/docker"
)

// waitEvery is how often a Start or Stop re-reads the service's tasks.
const waitEvery = 50 * time.Millisecond

// waitRunning waits until a task of svc that is not in old serves, and
// fails when every new task ended without serving, or when none ran in
// startWait: longer (pullWait) while a node prepares one, as pulling the
// image is part of a task's start on its node.
func (r *Runtime) waitRunning(ctx context.Context, svc docker.Service, old map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.pullWait)
	defer cancel()
	deadline := time.Now().Add(r.startWait)
	last := "no task scheduled"
	for {
		tasks, err := r.engine.ServiceTasks(ctx, svc.ID)
		if err != nil {
			return wrap(err)
		}
		nodes, err := r.nodes(ctx)
		if err != nil {
			return err
		}
		fresh, ended, preparing := 0, 0, false
		for _, t := range tasks {
			if old[t.ID] {
				continue
			}
			fresh++
			if serving(t, nodes) {
				return nil
			}
			if terminal[t.State] {
				ended++
			}
			preparing = preparing || (t.State == "preparing" && alive(t, nodes))
			last = t.State
			if t.Err != "" {
				last += ": " + t.Err
			}
		}
		if fresh > 0 && ended == fresh && uint64(fresh) >= replicasOf(svc) {
			return fmt.Errorf("service %s: no task started (%s)", svc.Name, last)
		}
		if !preparing && time.Now().After(deadline) {
			return fmt.Errorf("service %s: no task running after %s (%s)", svc.Name, r.startWait, last)
		}
		if !sleep(ctx, waitEvery) {
			return fmt.Errorf("service %s: no task running (%s): %w", svc.Name, last, ctx.Err())
		}
	}
}

// waitStopped waits until no task of svc may still run, for at most limit.
func (r *Runtime) waitStopped(ctx context.Context, svc docker.Service, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		tasks, err := r.engine.ServiceTasks(ctx, svc.ID)
		if err != nil {
			return wrap(err)
		}
		nodes, err := r.nodes(ctx)
		if err != nil {
			return err
		}
		running := 0
		for _, t := range tasks {
			if alive(t, nodes) {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		if !sleep(ctx, waitEvery) {
			return fmt.Errorf("service %s: %d task(s) still running after %s: %w", svc.Name, running, limit, ctx.Err())
		}
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
