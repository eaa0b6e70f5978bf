package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// Kinds of engine errors callers act on; match with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("docker engine unavailable")
	ErrRefused     = errors.New("refused by policy")
)

// Error carries the operation and the classified kind of an engine error.
type Error struct {
	Op   string
	Kind error // one of the Err* sentinels, or nil when unclassified
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("docker %s: %v", e.Op, e.Err) }

func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// classify wraps an SDK error once so every caller can use errors.Is.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller's context ended; keep the context error visible.
	case cerrdefs.IsNotFound(err):
		kind = ErrNotFound
	case cerrdefs.IsConflict(err):
		kind = ErrConflict
	case isConnectionError(err):
		kind = ErrUnavailable
	}
	return &Error{Op: op, Kind: kind, Err: err}
}

// IsTransient reports whether retrying the same call later may succeed.
func IsTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func isConnectionError(err error) bool {
	if client.IsErrConnectionFailed(err) || cerrdefs.IsUnavailable(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
