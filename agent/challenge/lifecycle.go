package challenge

import "fmt"

// Lifecycle is a challenge's supervision state (SPEC §5.1), separate from health.
type Lifecycle string

const (
	Registered Lifecycle = "registered"
	Pulling    Lifecycle = "pulling"
	Starting   Lifecycle = "starting"
	Running    Lifecycle = "running"
	Restarting Lifecycle = "restarting"
	Migrating  Lifecycle = "migrating"
	Stopping   Lifecycle = "stopping"
	Stopped    Lifecycle = "stopped"
	Failed     Lifecycle = "failed"
)

// transitions is the one table of allowed lifecycle moves.
var transitions = map[Lifecycle][]Lifecycle{
	Registered: {Pulling, Starting, Running, Restarting, Stopping, Failed},
	Pulling:    {Starting, Restarting, Failed, Stopping},
	Starting:   {Running, Restarting, Failed, Stopping},
	Running:    {Restarting, Migrating, Stopping, Failed},
	Restarting: {Pulling, Starting, Running, Stopping, Failed},
	Migrating:  {Running, Restarting, Stopping, Failed},
	Stopping:   {Stopped, Failed},
	Stopped:    {Pulling, Starting, Running, Stopping},
	Failed:     {Pulling, Starting, Restarting, Running, Stopping},
}

// Probed says whether the owner probes an instance in this state: a
// migrating one is probed while it is not yet served.
func (l Lifecycle) Probed() bool { return l == Running || l == Migrating }

// Transition validates a lifecycle move. It is pure: callers apply the
// returned state only when err is nil.
func Transition(from, to Lifecycle) (Lifecycle, error) {
	for _, allowed := range transitions[from] {
		if allowed == to {
			return to, nil
		}
	}
	return from, fmt.Errorf("invalid lifecycle transition %s → %s", from, to)
}

// ParseLifecycle reads a stored lifecycle, defaulting unknown values to registered.
func ParseLifecycle(s string) Lifecycle {
	if _, ok := transitions[Lifecycle(s)]; ok {
		return Lifecycle(s)
	}
	return Registered
}
