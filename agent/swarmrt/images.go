package swarmrt

import (
	"context"
	"fmt"
	"strings"

	"berth/agent/challenge"
)

// RemoveImage removes ref from the manager's engine unless a service of
// the swarm, of any scale, still names it: a service kept with no task for
// a rollback has no container to make the engine refuse. Other nodes keep
// their copy; Swarm does not remove images.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	svcs, err := r.engine.ListServices(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	for _, s := range svcs {
		if sameImage(s.Image, ref) {
			return fmt.Errorf("image %s: service %s uses it: %w", ref, s.Name, challenge.ErrConflict)
		}
	}
	return wrap(r.engine.RemoveImage(ctx, ref))
}

// sameImage compares a service's image (repo:tag, possibly @digest) with ref.
func sameImage(image, ref string) bool {
	if image == ref {
		return true
	}
	name, _, _ := strings.Cut(image, "@")
	return name == ref || strings.HasPrefix(image, ref+"@")
}
