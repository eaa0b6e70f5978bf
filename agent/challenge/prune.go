package challenge

import (
	"context"
	"errors"
	"time"
)

// pruneTimeout bounds one image removal; the engine answers in seconds.
const pruneTimeout = time.Minute

// pruneImage removes ref, the image of a previous instance just removed,
// when update.prune_images is on. The runtime keeps an image any instance
// still uses (another challenge's, or a stopped one), so nothing running or
// kept for a rollback loses its image.
func (c *Owner) pruneImage(ctx context.Context, ref string) {
	if ref == "" || !c.spec.Update.Prunes() || (c.current != nil && c.current.Image == ref) {
		return
	}
	rt, jobs := c.Runtime, c.jobs
	c.goJob(func() {
		pruneCtx, cancel := context.WithTimeout(ctx, pruneTimeout)
		defer cancel()
		report(ctx, jobs, msgImagePruned{ref: ref, err: rt.RemoveImage(pruneCtx, ref)})
	})
}

func (c *Owner) onImagePruned(m msgImagePruned) {
	switch {
	case m.err == nil:
		c.logf(LevelInfo, "removed the previous version's image", nil, F(FieldImage, m.ref))
	case errors.Is(m.err, ErrConflict):
		c.logf(LevelDebug, "previous version's image still in use; kept", nil, F(FieldImage, m.ref))
	case errors.Is(m.err, ErrNotFound):
	default:
		c.logf(LevelWarn, "remove the previous version's image", m.err, F(FieldImage, m.ref))
	}
}
