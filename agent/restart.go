package agent

import (
	domain "berth/agent/challenge"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// maxExitOutput bounds the container output kept with an exit event.
const maxExitOutput = 1 << 10

// restartUnhealthy stops a container that stopped answering and schedules its restart.
func (c *challenge) restartUnhealthy(ctx context.Context) {
	ct := c.current
	c.current = nil
	if err := c.engine.Stop(ctx, ct.ID, c.spec.Restart.StopTimeout); err != nil {
		c.log.Warn().Err(err).Msg("stop unhealthy container")
	}
	c.scheduleRestart(statestore.Event{Type: "unhealthy", ContainerID: ct.ID, Health: string(HealthUnhealthy),
		Message: "restarting unhealthy container", Error: c.tracker.LastError})
}

// checkContainer confirms with the engine whether the current container has
// exited; events are hints, the engine's state is the truth.
func (c *challenge) checkContainer(ctx context.Context) {
	ct, err := c.engine.Inspect(ctx, c.current.ID)
	switch {
	case errors.Is(err, docker.ErrNotFound):
		c.onExit(ctx, docker.Container{ID: c.current.ID, ExitCode: -1}, true)
	case err != nil:
		c.log.Warn().Err(err).Msg("inspect container after event")
	case !ct.Running:
		c.onExit(ctx, ct, true)
	}
}

// onDie handles the engine's die event for the current container. The
// restart's backoff starts at once: the engine holds the container while it
// cleans up after the exit (an inspect waits ~100 ms for that), so reading
// the details first would add that wait to every restart. The restart itself
// inspects before it starts anything. A die without an exit code is only a
// hint, confirmed first.
func (c *challenge) onDie(ctx context.Context, ev docker.Event) {
	if ev.ExitCode == nil {
		c.checkContainer(ctx)
		return
	}
	c.onExit(ctx, docker.Container{ID: ev.ContainerID, ExitCode: *ev.ExitCode}, false)
}

// onExit records an exit and schedules the restart; inspected says whether
// ct already has the engine's details (OOM kill, exit code).
func (c *challenge) onExit(ctx context.Context, ct docker.Container, inspected bool) {
	c.current = nil
	before := c.tracker.State
	c.tracker.State = HealthUnhealthy
	c.tracker.LastError = fmt.Sprintf("container exited with code %d", ct.ExitCode)
	var events []statestore.Event
	if before != HealthUnhealthy {
		events = append(events, statestore.Event{Type: "health_changed", ContainerID: ct.ID, Health: string(HealthUnhealthy), From: string(before),
			To: string(HealthUnhealthy), Error: c.tracker.LastError, Message: "health " + string(before) + " → unhealthy"})
	}
	// A version that crashed right after its swap, while the previous one
	// still drains, is rolled back to it rather than restarted.
	rollback := c.draining != nil && c.autoRollbackDue(c.clock.Now())
	var plan []statestore.Event
	restarting := false
	if !rollback {
		// Planned first: the backoff starts before the inspect and log reads.
		plan, restarting = c.planRestart()
	}
	if !inspected {
		if got, err := c.engine.Inspect(ctx, ct.ID); err == nil && !got.Running {
			ct.ExitCode, ct.OOMKilled = got.ExitCode, got.OOMKilled
		}
	}
	code := ct.ExitCode
	c.rec.LastExitCode = &code
	ev := statestore.Event{Type: "exited", ContainerID: ct.ID, ExitCode: &code, Message: fmt.Sprintf("container exited with code %d", code)}
	if ct.OOMKilled {
		ev.Type, ev.OOM, ev.Message = "oom_killed", true, "container killed: out of memory"
	}
	if tail := c.lastOutput(ctx, ct.ID); tail != "" {
		ev.Message += "; last output: " + tail
	}
	events = append(events, ev)
	if rollback {
		c.persist(events...)
		if r := c.startSwap(ctx, c.rec.PreviousVersion, swapAutoRollback); r.err == nil {
			c.log.Warn().Str("to", c.rec.PreviousVersion).Msg("new version exited within rollback_window; rolled back")
			return
		}
		events = nil
		plan, restarting = c.planRestart()
	}
	if restarting {
		c.metrics.restarts.WithLabelValues(c.spec.Name, ev.Type).Inc()
	}
	c.persist(append(events, plan...)...)
}

// lastOutput returns the end of a container's output for the exit cause,
// bounded in time and size.
func (c *challenge) lastOutput(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := c.engine.Logs(ctx, id, docker.LogOptions{Tail: 5})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, maxExitOutput))
	return strings.TrimSpace(domain.Printable(string(b), true))
}

// operatorRestart restarts now, without backoff, and clears a give-up.
func (c *challenge) operatorRestart(ctx context.Context) {
	if c.current != nil {
		id := c.current.ID
		c.current = nil
		if err := c.engine.Stop(ctx, id, c.spec.Restart.StopTimeout); err != nil {
			c.log.Warn().Err(err).Msg("stop container for restart")
		}
	}
	c.rec.RestartTimes = nil
	c.rec.RestartAttempt = 0
	c.rec.Restarts++
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.clock.Now())
	if !c.setLifecycle(Restarting) {
		return
	}
	c.metrics.restarts.WithLabelValues(c.spec.Name, "operator").Inc()
	c.persist(statestore.Event{Type: "restarting", Message: "restart requested by operator"})
	c.armAction(0)
}

// scheduleRestart records cause and arms the restart after the challenge's
// own backoff, or gives up when max_restarts is exceeded within window.
func (c *challenge) scheduleRestart(cause statestore.Event) {
	plan, restarting := c.planRestart()
	if restarting {
		c.metrics.restarts.WithLabelValues(c.spec.Name, cause.Type).Inc()
	}
	c.persist(append([]statestore.Event{cause}, plan...)...)
}

// planRestart counts a restart and arms it, or gives up; it returns the
// events to record. The timer runs from here, so recording the cause (an
// inspect, a log fetch, a synced write) overlaps the backoff instead of
// adding to it.
func (c *challenge) planRestart() (events []statestore.Event, restarting bool) {
	now := c.clock.Now()
	policy := c.spec.Restart
	kept := c.rec.RestartTimes[:0]
	for _, t := range c.rec.RestartTimes {
		if now.Sub(t) < policy.Window {
			kept = append(kept, t)
		}
	}
	c.rec.RestartTimes = kept
	if policy.MaxRestarts > 0 && len(kept) >= policy.MaxRestarts {
		c.setLifecycle(Failed)
		return []statestore.Event{{Type: "gave_up", Message: fmt.Sprintf("%d restarts within %s; giving up until restarted by an operator", len(kept), policy.Window)}}, false
	}
	c.rec.RestartAttempt++
	c.rec.Restarts++
	c.rec.RestartTimes = append(c.rec.RestartTimes, now)
	if len(c.rec.RestartTimes) > 1000 {
		c.rec.RestartTimes = c.rec.RestartTimes[len(c.rec.RestartTimes)-1000:]
	}
	backoff := supervisor.Backoff{Initial: policy.InitialBackoff, Max: policy.MaxBackoff, Multiplier: policy.Multiplier, Jitter: policy.Jitter}
	delay := backoff.Delay(c.rec.RestartAttempt, c.rand())
	c.setLifecycle(Restarting)
	c.armAction(delay)
	return []statestore.Event{{Type: "restarting", Attempt: c.rec.RestartAttempt, DelayMS: delay.Milliseconds(),
		Message: fmt.Sprintf("restart %d in %s", c.rec.RestartAttempt, delay.Round(time.Millisecond))}}, true
}

// shutdown runs when berth stops: containers keep serving unless the agent
// is configured to stop them.
func (c *challenge) shutdown() {
	if c.agent.Shutdown != "stop" || c.current == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.spec.Restart.StopTimeout+30*time.Second)
	defer cancel()
	c.setLifecycle(Stopping)
	c.persist()
	if err := c.engine.Stop(ctx, c.current.ID, c.spec.Restart.StopTimeout); err != nil {
		c.log.Error().Err(err).Msg("stop container at shutdown")
		return
	}
	c.current = nil
	c.setLifecycle(Stopped)
	c.persist(statestore.Event{Type: "stopped", Message: "stopped at shutdown"})
}
