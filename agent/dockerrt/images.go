package dockerrt

import (
	"context"

	"berth/agent/challenge"
	"berth/docker"
)

// Images is the part of a runtime that speaks to the engine itself rather
// than to instances: ping, registry tags and local images. The Swarm runtime
// shares it, since its manager's engine pulls and lists images the same way.
type Images struct{ Engine *docker.Client }

func (i Images) Ping(ctx context.Context) error {
	_, err := i.Engine.Ping(ctx)
	return wrap(err)
}

func (i Images) Tags(ctx context.Context, image string) ([]string, error) {
	tags, err := i.Engine.Tags(ctx, image)
	return tags, wrap(err)
}

func (i Images) LocalImage(ctx context.Context, ref string) (string, error) {
	info, err := i.Engine.ImageInfo(ctx, ref)
	if err != nil {
		return "", wrap(err)
	}
	return info.RepoDigest(ref), nil
}

func (i Images) Pull(ctx context.Context, ref string, progress func(challenge.PullProgress)) (string, error) {
	digest, err := i.Engine.Pull(ctx, ref, func(p docker.PullProgress) {
		progress(challenge.PullProgress{Status: p.Status, Current: p.Current, Total: p.Total})
	})
	return digest, wrap(err)
}
