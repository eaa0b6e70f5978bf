package docker

import (
	"context"

	"github.com/docker/docker/api/types/image"
)

// RemoveImage untags ref and deletes its layers no other image needs. It
// never forces: while any container, running or stopped, uses the image the
// engine refuses, and the error wraps ErrConflict.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	ctx, cancel := c.call(ctx, "image_remove")
	defer cancel()
	_, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	return classify("remove image "+ref, err)
}
