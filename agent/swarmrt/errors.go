package swarmrt

import (
	"errors"

	"berth/agent/challenge"
	"berth/docker"
)

// wrap adds the lifecycle's error kinds to an engine error, keeping the
// engine's own for callers that know it.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range []struct{ docker, domain error }{
		{docker.ErrNotFound, challenge.ErrNotFound},
		{docker.ErrConflict, challenge.ErrConflict},
		{docker.ErrRefused, challenge.ErrRefused},
	} {
		if errors.Is(err, k.docker) {
			return &kindError{kind: k.domain, err: err}
		}
	}
	if docker.IsTransient(err) {
		return &kindError{kind: challenge.ErrUnavailable, err: err}
	}
	return err
}

// kindError is an engine error that also matches a lifecycle error kind; its
// text is the engine's alone.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
