package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// Service is a unit of work kept running by a Supervisor.
//
// Serve runs until ctx is cancelled or the service fails. It must return only once
// the service has really stopped: every goroutine it started has exited, so that a
// restart never overlaps with the previous run.
//
// How the supervisor reads the return value:
//   - nil while ctx is still live: the service completed; it is removed, not restarted.
//   - an error wrapping ErrDoNotRestart: removed, not restarted.
//   - any other error, or a panic: a failure; restarted after the service's backoff.
//   - anything after ctx was cancelled: a normal stop (a panic is still reported).
type Service interface {
	Serve(ctx context.Context) error
}

// ServiceFunc adapts a function to the Service interface.
type ServiceFunc func(ctx context.Context) error

// Serve calls f(ctx).
func (f ServiceFunc) Serve(ctx context.Context) error { return f(ctx) }

// ErrDoNotRestart, wrapped in the error a service returns, removes the service from
// its supervisor instead of restarting it.
var ErrDoNotRestart = errors.New("supervisor: do not restart")

// ServiceID identifies one service added to a Supervisor. IDs are never reused
// within a Supervisor, so a stale ID cannot remove a newer service of the same name.
type ServiceID uint64

// result is what a finished run reports to the owner goroutine.
type result struct {
	id        ServiceID
	err       error
	panicked  bool
	stack     string
	cancelled bool // the run's ctx was done when Serve returned: a stop, not a failure
}

// run executes one Serve call of a service and always reports exactly one result,
// even when Serve panics or calls runtime.Goexit, so the owner never waits forever.
func run(ctx context.Context, id ServiceID, svc Service, results chan<- result) {
	r := result{id: id}
	returned := false
	defer func() {
		if !returned {
			r.err = panicError(recover())
			r.panicked = true
			r.stack = string(debug.Stack())
		}
		r.cancelled = ctx.Err() != nil
		results <- r
	}()
	r.err = svc.Serve(ctx)
	returned = true
}

// panicError turns a recovered value into an error; a nil value means the
// goroutine is unwinding through runtime.Goexit.
func panicError(v any) error {
	switch v := v.(type) {
	case nil:
		return errors.New("supervisor: service called runtime.Goexit")
	case error:
		return fmt.Errorf("supervisor: service panicked: %w", v)
	default:
		return fmt.Errorf("supervisor: service panicked: %v", v)
	}
}
