// Package supervisor runs a tree of long-lived services and restarts the ones that
// fail.
//
// A Service implements Serve(ctx) error and returns only once it has fully stopped.
// A Supervisor is itself a Service, so trees nest. Each Supervisor keeps all of its
// state in one owner goroutine (the one running Serve); Add, Remove and Services talk
// to it by messages.
//
// Backoff is kept per service: a service that keeps failing waits longer and longer,
// but never delays the start or restart of its siblings. A failure count resets once
// the service has run for Spec.ResetAfter without failing.
//
// Time comes from an injected Clock so that tests can use FakeClock instead of
// sleeping. The package reports what happens through typed Events passed to
// Spec.EventHook and has no logging dependency. It imports the standard library only.
package supervisor
