package configs

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadAll runs the whole pipeline over files written to a temporary
// directory: the config file is berth.yaml, challenge_dirs is challenges.d.
func TestLoadAll(t *testing.T) {
	const dirsAndPolicy = "agent:\n  challenge_dirs: [challenges.d]\n  policy: {allowed_images: [ghcr.io/org]}\n"
	// where names the file an error must carry, relative to the directory.
	type failure struct{ where, key, msg string }
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
		check func(t *testing.T, cfg *Config)
		err   *failure
		line  int // of err; 0 = none expected
	}{
		{
			name:  "env override applied",
			files: map[string]string{"berth.yaml": "agent: {id: from-file, network: file-net}\n"},
			env:   map[string]string{"BERTH_AGENT_ID": "node-7", "BERTH_API_LISTEN": "127.0.0.1:9999"},
			check: func(t *testing.T, cfg *Config) {
				if cfg.Agent.ID != "node-7" || cfg.Agent.API.Listen != "127.0.0.1:9999" {
					t.Errorf("agent id %q, api.listen %q: the environment was not applied", cfg.Agent.ID, cfg.Agent.API.Listen)
				}
				if cfg.Agent.Network != "file-net" {
					t.Errorf("network = %q, want the file's value", cfg.Agent.Network)
				}
			},
		},
		{
			name:  "no environment keeps the file",
			files: map[string]string{"berth.yaml": "agent: {id: from-file}\n"},
			check: func(t *testing.T, cfg *Config) {
				if cfg.Agent.ID != "from-file" {
					t.Errorf("agent id = %q, want from-file", cfg.Agent.ID)
				}
			},
		},
		{
			name: "challenge_dirs appended with the defaults",
			files: map[string]string{
				"berth.yaml": dirsAndPolicy + "defaults: {health: {path: /ready}}\n" +
					"challenges:\n  - {name: main, image: ghcr.io/org/main, version: '1'}\n",
				"challenges.d/b.yaml": "name: b\nimage: ghcr.io/org/b\nversion: '2'\n",
				"challenges.d/a.yml":  "name: a\nimage: ghcr.io/org/a\nversion: '1'\n",
			},
			check: func(t *testing.T, cfg *Config) {
				var names []string
				for _, c := range cfg.Challenges {
					names = append(names, c.Name)
					if c.Health.Path != "/ready" {
						t.Errorf("%s: health.path = %q, want the defaults' /ready", c.Name, c.Health.Path)
					}
				}
				if strings.Join(names, ",") != "main,a,b" {
					t.Errorf("challenges = %v, want main, a, b", names)
				}
			},
		},
		{
			name: "policy violation in a dir file refused",
			files: map[string]string{
				"berth.yaml":          dirsAndPolicy,
				"challenges.d/d.yaml": "name: d\n\nimage: docker.io/evil/d\nversion: '1'\n",
			},
			err:  &failure{"challenges.d/d.yaml", "image", "not admitted by agent.policy.allowed_images"},
			line: 3,
		},
		{
			name: "resource maximum in a dir file refused",
			files: map[string]string{
				"berth.yaml":          "agent:\n  challenge_dirs: [challenges.d]\n  policy: {max_pids: 100}\ndefaults: {resources: {pids: 50}}\n",
				"challenges.d/p.yaml": "name: p\nimage: ghcr.io/org/p\nversion: '1'\nresources:\n  pids: 500\n",
			},
			err:  &failure{"challenges.d/p.yaml", "resources.pids", "100"},
			line: 5,
		},
		{
			name:  "unknown key in the file",
			files: map[string]string{"berth.yaml": "agent:\n  id: a\n  netwrok: x\n"},
			err:   &failure{"berth.yaml", "agent", `unknown key "netwrok", did you mean "network"?`},
			line:  3,
		},
		{
			name: "unknown key in a dir file",
			files: map[string]string{
				"berth.yaml":          dirsAndPolicy,
				"challenges.d/u.yaml": "name: u\nimage: ghcr.io/org/u\nversion: '1'\nprivileged: true\n",
			},
			err:  &failure{"challenges.d/u.yaml", "", `unknown key "privileged"`},
			line: 4,
		},
		{
			name:  "invalid value from the environment names the variable",
			files: map[string]string{"berth.yaml": "agent: {id: a}\n"},
			env:   map[string]string{"BERTH_REACH": "anywhere"},
			err:   &failure{"", "agent.reach", "(from BERTH_REACH)"},
		},
		{
			name:  "file errors come before the environment and the dirs",
			files: map[string]string{"berth.yaml": "agent:\n  challenge_dirs: [missing.d]\n  reach: nowhere\n"},
			env:   map[string]string{"BERTH_REACH": "also-bad"},
			err:   &failure{"berth.yaml", "agent.reach", `"nowhere"`},
			line:  3,
		},
		{
			name: "swarm keys in challenge_dirs need the swarm backend",
			files: map[string]string{
				"berth.yaml":          dirsAndPolicy,
				"challenges.d/p.yaml": "name: p\nimage: ghcr.io/org/p\nversion: '1'\nplacement: ['node.role==worker']\n",
			},
			err:  &failure{"challenges.d/p.yaml", "placement", "needs agent.backend: swarm"},
			line: 4,
		},
		{
			name:  "missing challenge dir",
			files: map[string]string{"berth.yaml": "agent: {challenge_dirs: [missing.d]}\n"},
			err:   &failure{"", "", "challenge_dirs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			cfg, err := LoadAll(filepath.Join(dir, "berth.yaml"), func(k string) string { return tt.env[k] })
			if tt.err == nil {
				if err != nil {
					t.Fatalf("LoadAll: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			if cfg != nil {
				t.Errorf("LoadAll returned a config along with an error")
			}
			if err == nil {
				t.Fatalf("LoadAll: no error, want %s: %s", tt.err.key, tt.err.msg)
			}
			e := wantErr(t, asErrors(t, err), tt.err.key, tt.err.msg)
			want := ""
			if tt.err.where != "" {
				want = filepath.Join(dir, tt.err.where)
			}
			if e.File != want || e.Line != tt.line {
				t.Errorf("error at %s:%d, want %s:%d (%v)", e.File, e.Line, want, tt.line, e)
			}
		})
	}
}

func TestLoadAllMissingFile(t *testing.T) {
	cfg, err := LoadAll(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if cfg != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadAll = %v, %v; want fs.ErrNotExist", cfg, err)
	}
}
