package configs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestPolicyMaximaBoundConfigSpecs: agent.policy.max_cpus, max_memory and
// max_pids bound the defaults, every challenge and challenge_dirs files.
func TestPolicyMaximaBoundConfigSpecs(t *testing.T) {
	policy := "agent:\n  policy: {max_cpus: 2, max_memory: 512m, max_pids: 100}\n"
	tests := []struct{ name, doc, key, msg string }{
		{"challenge cpus", policy + challengeDoc("resources: {cpus: 2.5}"), "challenges[0].resources.cpus", "above agent.policy.max_cpus"},
		{"challenge memory", policy + challengeDoc("resources: {memory: 1g}"), "challenges[0].resources.memory", "above agent.policy.max_memory"},
		{"challenge pids", policy + challengeDoc("resources: {pids: 101}"), "challenges[0].resources.pids", "above agent.policy.max_pids"},
		{"defaults memory", policy + "defaults: {resources: {memory: 1g}}\n", "defaults.resources.memory", "above agent.policy.max_memory"},
		{"max_cpus zero", agentDoc("policy: {max_cpus: 0}"), "agent.policy.max_cpus", "greater than 0"},
		{"max_memory tiny", agentDoc("policy: {max_memory: 1m}"), "agent.policy.max_memory", "below Docker's minimum"},
		{"max_pids zero", agentDoc("policy: {max_pids: 0}"), "agent.policy.max_pids", "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, parseErrs(t, tt.doc), tt.key, tt.msg)
		})
	}
	cfg := mustParse(t, policy+"defaults: {resources: {memory: 256m, pids: 50}}\n"+challengeDoc("resources: {cpus: 2, memory: 512m, pids: 100}"))
	if p := cfg.Agent.Policy; p.MaxCPUs != 2 || p.MaxMemory != 512*MiB || p.MaxPids != 100 {
		t.Fatalf("policy = %+v", p)
	}
	def := BuiltinAgent().Policy
	if def.MaxCPUs != float64(runtime.NumCPU()) || def.MaxPids != DefaultMaxPids || def.MaxMemory < MinMemory {
		t.Fatalf("built-in maxima = %+v", def)
	}
	d := Default()
	if msg := d.Agent.Policy.checkResources(d.Defaults.Resources); len(msg) != 0 && runtime.NumCPU() >= 1 {
		t.Fatalf("built-in defaults exceed the built-in maxima: %v", msg)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte("name: big\nimage: x/big\nversion: \"1\"\nresources: {pids: 500}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = mustParse(t, "agent:\n  policy: {max_pids: 100}\n  challenge_dirs: ["+dir+"]\ndefaults: {resources: {pids: 50}}\n")
	_, err := LoadChallengeDirs(cfg)
	if err == nil || !strings.Contains(err.Error(), "above agent.policy.max_pids") {
		t.Fatalf("LoadChallengeDirs = %v, want the pids maximum refused", err)
	}
}

// TestCheckAPIChallenge: what only the operator's files may do.
func TestCheckAPIChallenge(t *testing.T) {
	cfg := Default()
	cfg.Defaults.Security.CapDrop = []string{"NET_RAW", "SYS_ADMIN"}
	base := cfg.Defaults.NewChallenge()
	base.Name, base.Image, base.Version = "app", "x/app", "1.0.0"
	if err := cfg.CheckAPIChallenge(base); err != nil {
		t.Fatalf("a spec on the defaults is refused: %v", err)
	}
	tests := []struct {
		name  string
		spoil func(*Challenge)
		key   string
	}{
		{"secret file", func(c *Challenge) { c.SecretEnvFiles = map[string]string{"K": "/etc/shadow"} }, "secret_env_files.K"},
		{"cap kept", func(c *Challenge) { c.Security.CapDrop = []string{"net_raw"} }, "security.cap_drop"},
		{"read_only", func(c *Challenge) { c.Security.ReadOnly = false }, "security.read_only"},
		{"no_new_privileges", func(c *Challenge) { c.Security.NoNewPrivileges = false }, "security.no_new_privileges"},
		{"tmpfs added", func(c *Challenge) { c.Security.Tmpfs = append(c.Security.Tmpfs, "/var") }, "security.tmpfs[1]"},
		{"cpus", func(c *Challenge) { c.Resources.CPUs = 1e6 }, "resources.cpus"},
		{"invalid", func(c *Challenge) { c.Port = 0 }, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base.Clone()
			tt.spoil(&c)
			err := cfg.CheckAPIChallenge(c)
			if err == nil {
				t.Fatal("accepted")
			}
			wantErr(t, asErrors(t, err), tt.key, "")
		})
	}
	for name, tighten := range map[string]func(*Challenge){
		"drop ALL":        func(c *Challenge) { c.Security.CapDrop = []string{"ALL"} },
		"drop more":       func(c *Challenge) { c.Security.CapDrop = []string{"CAP_NET_RAW", "SYS_ADMIN", "CHOWN"} },
		"no tmpfs":        func(c *Challenge) { c.Security.Tmpfs = nil },
		"tmpfs same path": func(c *Challenge) { c.Security.Tmpfs = []string{"/tmp/"} },
	} {
		c := base.Clone()
		tighten(&c)
		if err := cfg.CheckAPIChallenge(c); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}
