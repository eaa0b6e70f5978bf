package configs

import (
	"strings"
	"testing"
)

// The swarm keys were added to Challenge after containers were running
// with hashes of the older encoding: at their defaults they must hash
// exactly as before, or an upgrade would replace every container.
func TestSpecHashUnchangedBySwarmKeys(t *testing.T) {
	const golden = "6e36a9715c805fc9" // hashBase before replicas and placement existed
	for name, mutate := range map[string]func(*Challenge){
		"unset":           func(*Challenge) {},
		"replicas 1":      func(c *Challenge) { c.Replicas = 1 },
		"empty placement": func(c *Challenge) { c.Placement = []string{} },
	} {
		c := hashBase()
		mutate(&c)
		if got := c.SpecHash(); got != golden {
			t.Errorf("%s: SpecHash = %s, want the pre-swarm %s", name, got, golden)
		}
	}
	for name, mutate := range map[string]func(*Challenge){
		"replicas 2": func(c *Challenge) { c.Replicas = 2 },
		"placement":  func(c *Challenge) { c.Placement = []string{"node.labels.zone==a"} },
	} {
		c := hashBase()
		mutate(&c)
		if c.SpecHash() == golden {
			t.Errorf("%s: SpecHash unchanged; a new placement or scale must swap", name)
		}
	}
}

func TestBackendValidation(t *testing.T) {
	tests := []struct {
		name, doc, key, msg string
	}{
		{"backend", agentDoc("backend: kubernetes"), "agent.backend", "must be one of docker, swarm"},
		{"replicas negative", "agent: {backend: swarm}\n" + challengeDoc("replicas: -1"), "challenges[0].replicas", "between 1 and 64"},
		{"replicas too many", "agent: {backend: swarm}\n" + challengeDoc("replicas: 65"), "challenges[0].replicas", "between 1 and 64"},
		{"constraint no operator", "agent: {backend: swarm}\n" + challengeDoc("placement: [node.labels.zone]"), "challenges[0].placement[0]", "not a placement constraint"},
		{"constraint other object", "agent: {backend: swarm}\n" + challengeDoc("placement: ['host.name==a']"), "challenges[0].placement[0]", "not a placement constraint"},
		{"replicas on docker", challengeDoc("replicas: 2"), "challenges[0].replicas", "need agent.backend: swarm"},
		{"placement on docker", challengeDoc("placement: ['node.role==worker']"), "challenges[0].placement", "needs agent.backend: swarm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, parseErrs(t, tt.doc), tt.key, tt.msg)
		})
	}
}

func TestBackendSwarmAccepted(t *testing.T) {
	cfg := mustParse(t, "agent: {backend: swarm}\n"+challengeDoc("replicas: 3\nplacement: ['node.labels.zone == a', 'node.role!=manager', 'engine.labels.disk==ssd']"))
	if cfg.Agent.Backend != BackendSwarm {
		t.Errorf("backend = %q", cfg.Agent.Backend)
	}
	ch := cfg.Challenges[0]
	if ch.Replicas != 3 || len(ch.Placement) != 3 || !strings.HasPrefix(ch.Placement[0], "node.labels.zone") {
		t.Errorf("replicas %d placement %q", ch.Replicas, ch.Placement)
	}
	if def := mustParse(t, challengeDoc("")); def.Agent.Backend != BackendDocker || def.Challenges[0].Replicas != 0 {
		t.Errorf("defaults: backend %q replicas %d", def.Agent.Backend, def.Challenges[0].Replicas)
	}
}

func TestAPIChallengeSwarmKeysNeedTheSwarmBackend(t *testing.T) {
	cfg := Default()
	ch := cfg.Defaults.NewChallenge()
	ch.Name, ch.Image, ch.Version, ch.Replicas = "app", "x/app", "1.0.0", 2
	wantErr(t, asErrors(t, cfg.CheckAPIChallenge(ch)), "replicas", "need agent.backend: swarm")
	cfg.Agent.Backend = BackendSwarm
	if err := cfg.CheckAPIChallenge(ch); err != nil {
		t.Errorf("2 replicas on the swarm backend: %v", err)
	}
}
