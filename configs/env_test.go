package configs

import (
	"strings"
	"testing"
)

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"BERTH_AGENT_ID":       "node-7",
		"BERTH_DATA_DIR":       "/var/lib/berth",
		"BERTH_DOCKER_HOST":    "tcp://10.0.0.2:2376",
		"BERTH_NETWORK":        "challenges",
		"BERTH_REACH":          "network",
		"BERTH_API_LISTEN":     "0.0.0.0:7070",
		"BERTH_API_TOKEN_FILE": "/run/secrets/token",
		"BERTH_PROXY_LISTEN":   "0.0.0.0:7080",
		"BERTH_LOG_LEVEL":      "debug",
		"BERTH_LOG_FORMAT":     "console",
		"BERTH_BACKEND":        "swarm",
	}
	cfg := mustParse(t, agentDoc("id: from-file\nnetwork: file-net"))
	if err := ApplyEnv(cfg, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	a := cfg.Agent
	got := map[string]string{
		"BERTH_AGENT_ID": a.ID, "BERTH_DATA_DIR": a.DataDir, "BERTH_DOCKER_HOST": a.DockerHost,
		"BERTH_NETWORK": a.Network, "BERTH_REACH": a.Reach, "BERTH_API_LISTEN": a.API.Listen,
		"BERTH_API_TOKEN_FILE": a.API.TokenFile, "BERTH_PROXY_LISTEN": a.Proxy.Listen,
		"BERTH_LOG_LEVEL": a.Log.Level, "BERTH_LOG_FORMAT": a.Log.Format,
		"BERTH_BACKEND": a.Backend,
	}
	for k, want := range env {
		if got[k] != want {
			t.Errorf("%s: got %q, want %q", k, got[k], want)
		}
	}
	if len(EnvVars()) != len(env) {
		t.Errorf("EnvVars() = %v, the test covers %d", EnvVars(), len(env))
	}
}

func TestApplyEnvEmptyIgnored(t *testing.T) {
	cfg := mustParse(t, agentDoc("id: from-file"))
	if err := ApplyEnv(cfg, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.ID != "from-file" {
		t.Errorf("id = %q", cfg.Agent.ID)
	}
}

func TestApplyEnvValidates(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"BERTH_REACH": "anywhere"}, `agent.reach: "anywhere" must be one of published, network (from BERTH_REACH)`},
		{map[string]string{"BERTH_AGENT_ID": "Bad!"}, `(from BERTH_AGENT_ID)`},
		{map[string]string{"BERTH_LOG_LEVEL": "loud"}, `agent.log.level`},
		{map[string]string{"BERTH_API_LISTEN": ":7070"}, `agent.api.token_file: a token is required when api.listen is not loopback (:7070) (from BERTH_API_LISTEN)`},
	}
	for _, tt := range tests {
		cfg := mustParse(t, "")
		err := ApplyEnv(cfg, func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: error %v, want it to contain %q", tt.env, err, tt.want)
		}
	}
}
