package agent

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/agent/dockerrt"
	"berth/agent/swarmrt"
	"berth/configs"
	"berth/docker"
)

// newRuntime is the runtime agent.backend names. The swarm backend must
// find a manager now: berth refuses to start on any other node.
func newRuntime(engine *docker.Client, agent configs.Agent, log zerolog.Logger) (challenge.Runtime, error) {
	if agent.Backend != configs.BackendSwarm {
		return dockerrt.New(engine, agent), nil
	}
	rt := swarmrt.New(engine, agent)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	warnings, err := rt.CheckManager(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn().Str("backend", agent.Backend).Msg(w)
	}
	return rt, nil
}
