package docker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event is a container event from the engine. Events are hints: callers
// confirm with Inspect or List before acting on them.
type Event struct {
	Action      string // die, oom, start, stop, destroy, health_status, …
	ContainerID string
	Labels      map[string]string
	ExitCode    *int // on die
	Time        time.Time
}

// EventActions are the container actions Events subscribes to: those that
// tell berth a container started, stopped or changed health. Exec, attach,
// copy and the rest are never delivered.
var EventActions = []string{"start", "die", "oom", "stop", "kill", "destroy", "health_status"}

func wantedAction(action string) bool {
	for _, a := range EventActions {
		if a == action {
			return true
		}
	}
	return false
}

// Challenge is the challenge label of the container, if any.
func (e Event) Challenge() string { return e.Labels[LabelChallenge] }

// Events streams container events for containers carrying all labels until
// ctx ends or the stream breaks. Exactly one error (ctx's or the stream's) is
// delivered on the error channel, after which both channels are closed.
// The caller owns the stream and must cancel ctx to release it.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	c.count("events")
	args := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for k, v := range labels {
		args.Add("label", k+"="+v)
	}
	for _, a := range EventActions {
		args.Add("event", a)
	}
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: args})
	out := make(chan Event, 64)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(outErr)
		for {
			select {
			case m := <-msgs:
				// health_status arrives as "health_status: healthy"
				action := strings.SplitN(string(m.Action), ":", 2)[0]
				if !wantedAction(action) {
					continue // an engine that ignored the filter
				}
				ev := Event{
					Action:      action,
					ContainerID: m.Actor.ID,
					Labels:      m.Actor.Attributes,
					Time:        time.Unix(0, m.TimeNano),
				}
				if code, ok := m.Actor.Attributes["exitCode"]; ok {
					if n, err := strconv.Atoi(code); err == nil {
						ev.ExitCode = &n
					}
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					outErr <- ctx.Err()
					return
				}
			case err := <-errs:
				outErr <- classify("events", err)
				return
			case <-ctx.Done():
				outErr <- ctx.Err()
				return
			}
		}
	}()
	return out, outErr
}
