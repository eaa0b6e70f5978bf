package configs

import (
	"fmt"
	"os"
)

// envOverrides lists the BERTH_* variables that override agent settings.
var envOverrides = []struct {
	name, key string
	set       func(*Agent, string)
}{
	{"BERTH_AGENT_ID", "agent.id", func(a *Agent, v string) { a.ID = v }},
	{"BERTH_DATA_DIR", "agent.data_dir", func(a *Agent, v string) { a.DataDir = v }},
	{"BERTH_DOCKER_HOST", "agent.docker_host", func(a *Agent, v string) { a.DockerHost = v }},
	{"BERTH_NETWORK", "agent.network", func(a *Agent, v string) { a.Network = v }},
	{"BERTH_REACH", "agent.reach", func(a *Agent, v string) { a.Reach = v }},
	{"BERTH_BACKEND", "agent.backend", func(a *Agent, v string) { a.Backend = v }},
	{"BERTH_API_LISTEN", "agent.api.listen", func(a *Agent, v string) { a.API.Listen = v }},
	{"BERTH_API_TOKEN_FILE", "agent.api.token_file", func(a *Agent, v string) { a.API.TokenFile = v }},
	{"BERTH_PROXY_LISTEN", "agent.proxy.listen", func(a *Agent, v string) { a.Proxy.Listen = v }},
	{"BERTH_LOG_LEVEL", "agent.log.level", func(a *Agent, v string) { a.Log.Level = v }},
	{"BERTH_LOG_FORMAT", "agent.log.format", func(a *Agent, v string) { a.Log.Format = v }},
}

// EnvVars returns the names of the environment variables [ApplyEnv] reads.
func EnvVars() []string {
	names := make([]string, len(envOverrides))
	for i, e := range envOverrides {
		names[i] = e.name
	}
	return names
}

// ApplyEnv overrides agent settings from non-empty BERTH_* variables (listed in
// the package documentation) and validates the agent section again. getenv is
// usually os.Getenv; nil means os.Getenv. Paths are taken as given. Errors
// about a value that came from the environment name the variable.
func ApplyEnv(cfg *Config, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	from := map[string]string{}
	for _, e := range envOverrides {
		if v := getenv(e.name); v != "" {
			e.set(&cfg.Agent, v)
			from[e.key] = e.name
		}
	}
	var c checker
	validateAgent(&c, cfg.Agent, "agent")
	for _, e := range c.errs {
		key := e.Key
		if key == "agent.api.token_file" {
			key = "agent.api.listen" // the token is demanded because of the listen address
		}
		if name, ok := from[key]; ok {
			e.Msg += fmt.Sprintf(" (from %s)", name)
		} else {
			e.File = cfg.Path
		}
	}
	return c.errs.err()
}
