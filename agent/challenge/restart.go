package challenge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxExitOutput bounds the instance output kept with an exit event.
const maxExitOutput = 1 << 10

// causeOf maps a cause event to the restart cause it reports.
func causeOf(eventType string) Cause {
	switch eventType {
	case EventOOMKilled:
		return CauseOOMKilled
	case EventUnhealthy:
		return CauseUnhealthy
	case EventStartFailed:
		return CauseStartFailed
	default:
		return CauseExited
	}
}

// restartUnhealthy stops an instance that stopped answering, in a job, and
// schedules its restart; the bring-up waits for the stop.
// before are events of the same step, recorded with the restart.
func (c *Owner) restartUnhealthy(ctx context.Context, before ...Event) {
	in := c.current
	cause := Event{Type: EventUnhealthy, ContainerID: in.ID, Health: string(HealthUnhealthy),
		Message: "restarting unhealthy container", Error: c.tracker.LastError}
	c.current = nil
	c.stopInJob(ctx, in.ID, c.spec.Restart.StopTimeout, "")
	if c.promoteStandby(in, cause, before...) {
		return
	}
	if len(before) > 0 {
		c.persist(before...)
	}
	c.scheduleRestart(cause)
}

// stopInJob stops id in a job; msgStopped reports the end. With saveFrom,
// the instance's address on a planned stop, the job exports a snapshot
// first.
func (c *Owner) stopInJob(ctx context.Context, id string, timeout time.Duration, saveFrom string) {
	c.stopping = id
	rt, jobs := c.Runtime, c.jobs
	store, spec, version, clock, base := c.Store, c.spec, c.rec.Version, c.Clock, saveFrom
	c.goJob(func() {
		if base != "" {
			snap, err := takeSnapshot(ctx, store, spec, version, base, clock.Now())
			report(ctx, jobs, msgSnapshotTaken{why: snapPlanned, snap: snap, err: err})
		}
		// A stop begun is finished even while berth stops.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
		defer cancel()
		report(ctx, jobs, msgStopped{id: id, err: rt.Stop(stopCtx, id, timeout)})
	})
}

func (c *Owner) onStopped(ctx context.Context, m msgStopped) {
	if m.id != c.stopping {
		return
	}
	c.stopping = ""
	if m.err != nil {
		c.logf(LevelWarn, "stop container", m.err, F(FieldContainerID, ShortID(m.id)))
	}
	if c.upAfterStop {
		c.upAfterStop = false
		c.bringUp(ctx)
	}
}

// checkInstance confirms with the runtime whether the current instance has
// exited; events are hints, the runtime's state is the truth.
func (c *Owner) checkInstance(ctx context.Context) {
	in, err := c.Runtime.Inspect(ctx, c.current.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		c.onExit(ctx, Instance{ID: c.current.ID, ExitCode: -1}, true)
	case err != nil:
		c.logf(LevelWarn, "inspect container after event", err)
	case !in.Running:
		c.onExit(ctx, in, true)
	}
}

// onExit records an exit and schedules the restart; inspected says whether
// in already has the runtime's details (OOM kill, exit code).
func (c *Owner) onExit(ctx context.Context, in Instance, inspected bool) {
	c.current = nil
	before := c.tracker.State
	c.tracker.State = HealthUnhealthy
	c.tracker.LastError = fmt.Sprintf("container exited with code %d", in.ExitCode)
	var events []Event
	if before != HealthUnhealthy {
		events = append(events, Event{Type: EventHealthChanged, ContainerID: in.ID, Health: string(HealthUnhealthy), From: string(before),
			To: string(HealthUnhealthy), Error: c.tracker.LastError, Message: "health " + string(before) + " → unhealthy"})
	}
	// A version that crashed right after its swap, while the previous one
	// still drains, is rolled back to it rather than restarted.
	rollback := c.draining != nil && c.autoRollbackDue(c.Clock.Now())
	if !rollback && c.standby != nil && c.standby.ready {
		c.promoteAfterExit(ctx, in, inspected)
		return
	}
	var plan []Event
	restarting := false
	if !rollback {
		// Planned first: the backoff starts before the inspect and log reads.
		plan, restarting = c.planRestart(CauseExited)
	}
	ev := c.exitEvent(ctx, in, inspected)
	if tail := c.lastOutput(ctx, in.ID); tail != "" {
		ev.Message += "; last output: " + tail
	}
	events = append(events, ev)
	if rollback {
		c.persist(events...)
		if r := c.startSwap(ctx, c.rec.PreviousVersion, swapAutoRollback); r.err == nil {
			c.logf(LevelWarn, "new version exited within rollback_window; rolled back", nil, F(FieldTo, c.rec.PreviousVersion))
			return
		}
		events = nil
		plan, restarting = c.planRestart(CauseExited)
	}
	if restarting {
		c.Observer.Restarted(c.spec.Name, ev.Type)
	}
	c.persist(append(events, plan...)...)
}

// promoteAfterExit records the exit of the active instance and promotes the
// ready standby in its place.
func (c *Owner) promoteAfterExit(ctx context.Context, in Instance, inspected bool) {
	c.promoteStandby(&in, c.exitEvent(ctx, in, inspected))
}

// exitEvent records in's exit code and returns its exited or oom_killed
// event; inspected says whether in already has the runtime's details.
func (c *Owner) exitEvent(ctx context.Context, in Instance, inspected bool) Event {
	if !inspected {
		if got, err := c.Runtime.Inspect(ctx, in.ID); err == nil && !got.Running {
			in.ExitCode, in.OOMKilled = got.ExitCode, got.OOMKilled
		}
	}
	code := in.ExitCode
	c.rec.LastExitCode = &code
	ev := Event{Type: EventExited, ContainerID: in.ID, ExitCode: &code, Message: fmt.Sprintf("container exited with code %d", code)}
	if in.OOMKilled {
		ev.Type, ev.OOM, ev.Message = EventOOMKilled, true, "container killed: out of memory"
	}
	return ev
}

// lastOutput returns the end of an instance's output for the exit cause,
// bounded in time and size, on one line (see OneLine).
func (c *Owner) lastOutput(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := c.Runtime.Logs(ctx, id, LogOptions{Tail: 5})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, maxExitOutput))
	return OneLine(strings.TrimSpace(Printable(string(b), true)))
}

// operatorRestart restarts now, without backoff, and clears a give-up.
func (c *Owner) operatorRestart(ctx context.Context) {
	if c.current != nil {
		in := c.current
		c.current = nil
		c.stopInJob(ctx, in.ID, c.spec.Restart.StopTimeout, c.planned(in))
	}
	// A bring-up in progress starts over with what it finds now.
	c.imageGen++
	c.rec.RestartTimes = nil
	c.rec.RestartAttempt = 0
	c.rec.Restarts++
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.Clock.Now())
	if !c.setLifecycle(Restarting) {
		return
	}
	c.Observer.Restarted(c.spec.Name, "operator")
	c.persist(Event{Type: EventRestarting, Message: "restart requested by operator"})
	c.armAction(0)
}

// scheduleRestart records cause and arms the restart after the challenge's
// own backoff, or gives up when max_restarts is exceeded within window.
func (c *Owner) scheduleRestart(cause Event) {
	plan, restarting := c.planRestart(causeOf(cause.Type))
	if restarting {
		c.Observer.Restarted(c.spec.Name, cause.Type)
	}
	c.persist(append([]Event{cause}, plan...)...)
}

// planRestart applies DecideRestart and arms the restart, or gives up; it
// returns the events to record. The timer runs from here, so recording the
// cause (an inspect, a log fetch, a synced write) overlaps the backoff
// instead of adding to it.
func (c *Owner) planRestart(cause Cause) (events []Event, restarting bool) {
	policy := c.spec.Restart
	d := DecideRestart(cause, policy, c.rec.RestartTimes, c.rec.RestartAttempt, c.Clock.Now(), c.Rand())
	c.rec.RestartTimes = d.Times
	if d.Action == GiveUp {
		c.setLifecycle(Failed)
		return []Event{{Type: EventGaveUp, Message: fmt.Sprintf("%d restarts within %s; giving up until restarted by an operator", len(d.Times), policy.Window)}}, false
	}
	c.rec.RestartAttempt = d.Attempt
	c.rec.Restarts++
	c.setLifecycle(Restarting)
	c.armAction(d.Delay)
	return []Event{{Type: EventRestarting, Attempt: d.Attempt, DelayMS: d.Delay.Milliseconds(),
		Message: fmt.Sprintf("restart %d in %s", d.Attempt, d.Delay.Round(time.Millisecond))}}, true
}

// shutdown runs when berth stops: instances keep serving unless the agent
// is configured to stop them.
func (c *Owner) shutdown() {
	if !c.StopOnShutdown || c.current == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.spec.Restart.StopTimeout+snapshotTimeout+30*time.Second)
	defer cancel()
	if c.saveBeforeStop(c.current) {
		snap, err := takeSnapshot(ctx, c.Store, c.spec, c.rec.Version, c.current.Address, c.Clock.Now())
		c.onSnapshotTaken(msgSnapshotTaken{why: snapPlanned, snap: snap, err: err})
	}
	c.setLifecycle(Stopping)
	c.persist()
	if err := c.Runtime.Stop(ctx, c.current.ID, c.spec.Restart.StopTimeout); err != nil {
		c.logf(LevelError, "stop container at shutdown", err)
		return
	}
	c.current = nil
	c.setLifecycle(Stopped)
	c.persist(Event{Type: EventStopped, Message: "stopped at shutdown"})
}
