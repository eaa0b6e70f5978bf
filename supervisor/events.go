package supervisor

import (
	"fmt"
	"time"
)

// Event is something that happened in a Supervisor, passed to Spec.EventHook. The
// set of event types is closed: it is one of the Event* types of this package.
type Event interface {
	fmt.Stringer
	isEvent()
}

// EventServiceStarted: a service's Serve was called (first start or restart).
type EventServiceStarted struct {
	Supervisor string
	Service    string
}

// EventServiceFailed: a service returned an error or panicked. Failures counts
// consecutive failures since the last reset (see Spec.ResetAfter).
type EventServiceFailed struct {
	Supervisor string
	Service    string
	Err        error
	Panic      bool
	Stack      string // set when Panic is true
	Failures   int
}

// EventServiceBackoff: a failed service will be restarted after Delay.
type EventServiceBackoff struct {
	Supervisor string
	Service    string
	Delay      time.Duration
	Attempt    int
}

// EventServiceCompleted: a service returned nil or ErrDoNotRestart on its own and
// was removed.
type EventServiceCompleted struct {
	Supervisor string
	Service    string
}

// EventStopTimeout: a cancelled service has not returned within Spec.StopTimeout.
// The supervisor keeps waiting for it.
type EventStopTimeout struct {
	Supervisor string
	Service    string
}

func (EventServiceStarted) isEvent()   {}
func (EventServiceFailed) isEvent()    {}
func (EventServiceBackoff) isEvent()   {}
func (EventServiceCompleted) isEvent() {}
func (EventStopTimeout) isEvent()      {}

func (e EventServiceStarted) String() string {
	return fmt.Sprintf("supervisor %q: service %q started", e.Supervisor, e.Service)
}

func (e EventServiceFailed) String() string {
	what := "failed"
	if e.Panic {
		what = "panicked"
	}
	return fmt.Sprintf("supervisor %q: service %q %s (failure %d): %v", e.Supervisor, e.Service, what, e.Failures, e.Err)
}

func (e EventServiceBackoff) String() string {
	return fmt.Sprintf("supervisor %q: service %q restarts in %s (attempt %d)", e.Supervisor, e.Service, e.Delay, e.Attempt)
}

func (e EventServiceCompleted) String() string {
	return fmt.Sprintf("supervisor %q: service %q completed; not restarting", e.Supervisor, e.Service)
}

func (e EventStopTimeout) String() string {
	return fmt.Sprintf("supervisor %q: service %q did not stop within the stop timeout; still waiting", e.Supervisor, e.Service)
}
