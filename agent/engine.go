package agent

import (
	"context"
	"io"
	"time"

	"berth/docker"
)

// Engine is what the agent needs from a container backend. The local Docker
// Engine implements it today; a Swarm backend would implement the same verbs
// per challenge service.
type Engine interface {
	Ping(ctx context.Context) (docker.EngineInfo, error)
	Pull(ctx context.Context, ref string, progress func(docker.PullProgress)) (string, error)
	ImageInfo(ctx context.Context, ref string) (docker.ImageDetails, error)
	Tags(ctx context.Context, repository string) ([]string, error)
	EnsureNetwork(ctx context.Context, name string, labels map[string]string) error
	Create(ctx context.Context, spec docker.ContainerSpec) (string, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Inspect(ctx context.Context, idOrName string) (docker.Container, error)
	List(ctx context.Context, labels map[string]string) ([]docker.Container, error)
	Events(ctx context.Context, labels map[string]string) (<-chan docker.Event, <-chan error)
	Logs(ctx context.Context, id string, opts docker.LogOptions) (io.ReadCloser, error)
}

var _ Engine = (*docker.Client)(nil)
