package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBuiltinDefaultsApplied(t *testing.T) {
	cfg := mustParse(t, challengeDoc(""))
	wantAgent := Agent{
		ID: "default", DataDir: abs(t, "data"), Network: "berth", Reach: "published", Backend: "docker",
		API:        APIConfig{Listen: "127.0.0.1:7070"},
		Proxy:      ProxyConfig{Listen: "127.0.0.1:7080", RetryMethods: []string{"GET", "HEAD", "OPTIONS"}},
		Checkpoint: CheckpointConfig{Interval: 5 * time.Minute, Keep: 10},
		Shutdown:   "leave", OrphanGrace: time.Minute,
		Alerts: AlertsConfig{MinInterval: 10 * time.Minute, Format: "json"},
		Log:    LogConfig{Level: "info", Format: "json"},
		Policy: BuiltinPolicy(),
	}
	if !reflect.DeepEqual(cfg.Agent, wantAgent) {
		t.Errorf("agent =\n%+v\nwant\n%+v", cfg.Agent, wantAgent)
	}
	want := Challenge{
		Name: "app", Image: "ghcr.io/org/app", Version: "1.0.0", PullPolicy: "missing", Port: 8080,
		Health: Health{Path: "/health", Interval: 5 * time.Second, Timeout: 2 * time.Second, FailureThreshold: 3,
			SuccessThreshold: 1, StartPeriod: 60 * time.Second, StartInterval: 250 * time.Millisecond},
		Restart: Restart{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Minute, Multiplier: 2, Jitter: 0.2,
			ResetAfter: 10 * time.Minute, OnUnhealthy: true, MaxRestarts: 0, Window: time.Hour, StopTimeout: 10 * time.Second, AlertAfter: 3},
		Update: Update{HealthyDeadline: 2 * time.Minute, MinHealthyTime: 10 * time.Second, DrainTimeout: time.Hour,
			AutoRollback: true, RollbackWindow: 5 * time.Minute, KeepPrevious: time.Hour, Auto: AutoOff, CheckInterval: 5 * time.Minute, PruneImages: new(true)},
		Resources: Resources{CPUs: 1, Memory: GiB, Pids: 512},
		Security:  Security{ReadOnly: true, CapDrop: []string{"ALL"}, NoNewPrivileges: true, Tmpfs: []string{"/tmp"}},
	}
	if got := cfg.Challenges[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("challenge =\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(cfg.Defaults, BuiltinDefaults()) {
		t.Errorf("defaults = %+v, want built-in", cfg.Defaults)
	}
	if cfg.Path != "test.yaml" {
		t.Errorf("Path = %q", cfg.Path)
	}
}

func abs(tb testing.TB, rel string) string {
	tb.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestFieldByFieldMerge(t *testing.T) {
	// challenges come before defaults on purpose: key order must not matter.
	doc := `challenges:
  - name: a
    image: x/a
    version: "1"
    health: {path: /healthz, timeout: 1s}
    restart: {max_restarts: 5}
    resources: {memory: 256m}
    security: {cap_drop: [NET_RAW]}
  - name: b
    image: x/b
    version: "1"
defaults:
  health: {interval: 10s, timeout: 3s}
  restart: {window: 2h}
  resources: {cpus: 0.5}
`
	cfg := mustParse(t, doc)
	a, b := cfg.Challenges[0], cfg.Challenges[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"a.health.path", a.Health.Path, "/healthz"},
		{"a.health.timeout (challenge)", a.Health.Timeout, time.Second},
		{"a.health.interval (defaults)", a.Health.Interval, 10 * time.Second},
		{"a.health.failure_threshold (built-in)", a.Health.FailureThreshold, 3},
		{"a.restart.max_restarts", a.Restart.MaxRestarts, 5},
		{"a.restart.window (defaults)", a.Restart.Window, 2 * time.Hour},
		{"a.restart.multiplier (built-in)", a.Restart.Multiplier, 2.0},
		{"a.resources.memory", a.Resources.Memory, 256 * MiB},
		{"a.resources.cpus (defaults)", a.Resources.CPUs, 0.5},
		{"a.resources.pids (built-in)", a.Resources.Pids, int64(512)},
		{"a.security.cap_drop replaced", a.Security.CapDrop, []string{"NET_RAW"}},
		{"a.security.tmpfs (built-in)", a.Security.Tmpfs, []string{"/tmp"}},
		{"b.health.path (built-in)", b.Health.Path, "/health"},
		{"b.health.timeout (defaults)", b.Health.Timeout, 3 * time.Second},
		{"b.restart.max_restarts (built-in)", b.Restart.MaxRestarts, 0},
		{"b.security.cap_drop (built-in)", b.Security.CapDrop, []string{"ALL"}},
		{"defaults.health.path (built-in)", cfg.Defaults.Health.Path, "/health"},
		{"defaults.health.interval", cfg.Defaults.Health.Interval, 10 * time.Second},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestNoSharedMapsOrSlices(t *testing.T) {
	doc := `x-common: &common
  image: x/app
  version: "1"
  env: {A: "1"}
challenges:
  - {<<: *common, name: a}
  - {<<: *common, name: b}
`
	cfg := mustParse(t, doc)
	a, b := &cfg.Challenges[0], &cfg.Challenges[1]
	a.Env["A"] = "changed"
	a.Security.CapDrop[0] = "CHANGED"
	a.Security.Tmpfs[0] = "/changed"
	if b.Env["A"] != "1" {
		t.Errorf("challenges share an env map")
	}
	if b.Security.CapDrop[0] != "ALL" || cfg.Defaults.Security.CapDrop[0] != "ALL" {
		t.Errorf("challenges share cap_drop with each other or defaults")
	}
	if b.Security.Tmpfs[0] != "/tmp" || cfg.Defaults.Security.Tmpfs[0] != "/tmp" {
		t.Errorf("challenges share tmpfs with each other or defaults")
	}
	if again := BuiltinDefaults(); again.Security.CapDrop[0] != "ALL" {
		t.Errorf("built-in defaults were mutated")
	}
	c := cfg.Clone()
	c.Challenges[1].Env["A"] = "clone"
	c.Agent.ChallengeDirs = append(c.Agent.ChallengeDirs, "x")
	if b.Env["A"] != "1" || len(cfg.Agent.ChallengeDirs) != 0 {
		t.Errorf("Config.Clone shares state")
	}
}

func TestMergeKeys(t *testing.T) {
	doc := `x-base: &base
  image: ghcr.io/org/app
  version: "1"
  health: {path: /ready}
x-fast: &fast
  health: {interval: 1s}
  port: 9000
challenges:
  - <<: [*base, *fast]
    name: a
    port: 9001
`
	cfg := mustParse(t, doc)
	c := cfg.Challenges[0]
	// Explicit keys win over merges, and merges layer field by field like defaults.
	if c.Health.Path != "/ready" || c.Health.Interval != time.Second || c.Port != 9001 || c.Image != "ghcr.io/org/app" {
		t.Errorf("merged challenge = %+v", c)
	}
	if c.Health.Timeout != 2*time.Second {
		t.Errorf("health.timeout = %v, want the built-in default", c.Health.Timeout)
	}
}

func TestMergeKeyBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {name: a}\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("challenges:\n  - {<<: *a20, image: x/y, version: '1'}\n")
	es := parseErrs(t, b.String())
	wantErr(t, es, "challenges[0]", "merge keys")
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		key  string
		msg  string
	}{
		{"unknown top key", "agnet:\n  id: x\n", 1, "", `unknown key "agnet", did you mean "agent"? (valid keys: agent, defaults, challenges)`},
		{"unknown nested key", challengeDoc("health:\n  path: /h\n  intervall: 5s"), 7, "challenges[0].health", `unknown key "intervall", did you mean "interval"?`},
		{"unknown key lists valid keys", agentDoc("foo: 1"), 2, "agent", `unknown key "foo" (valid keys: id, data_dir, docker_host, network, reach, backend, api, proxy, checkpoint, shutdown, orphan_grace, challenge_dirs, alerts, log, policy)`},
		{"did you mean transposition", agentDoc("shutdwon: stop"), 2, "agent", `did you mean "shutdown"?`},
		{"bad duration", challengeDoc("health:\n  interval: fast"), 6, "challenges[0].health.interval", `"fast" is not a duration (use Go syntax like 5s, 250ms)`},
		{"duration without unit", agentDoc("orphan_grace: 60"), 2, "agent.orphan_grace", `"60" is not a duration`},
		{"bad int", challengeDoc("port: http"), 5, "challenges[0].port", `"http" is not a whole number`},
		{"int overflow", challengeDoc("port: 99999999999999999999"), 5, "challenges[0].port", "not a whole number"},
		{"bad float", challengeDoc("resources: {cpus: lots}"), 5, "challenges[0].resources.cpus", `"lots" is not a number`},
		{"nan", challengeDoc("resources: {cpus: .nan}"), 5, "challenges[0].resources.cpus", "not a number"},
		{"bad bool", challengeDoc("restart: {on_unhealthy: maybe}"), 5, "challenges[0].restart.on_unhealthy", "not a boolean"},
		{"bad size", challengeDoc("resources: {memory: 1zb}"), 5, "challenges[0].resources.memory", "unknown unit"},
		{"list for string", challengeDoc("image: [a, b]"), 4, "challenges[0].image", "must be a string, not a list"},
		{"scalar for list", challengeDoc("security: {cap_drop: ALL}"), 5, "challenges[0].security.cap_drop", "must be a list"},
		{"list for map", challengeDoc("env: [A=1]"), 5, "challenges[0].env", "must be a mapping of NAME: value"},
		{"scalar for section", challengeDoc("health: 5s"), 5, "challenges[0].health", "must be a mapping with keys path, interval"},
		{"challenges not a list", "challenges: {name: a}\n", 1, "challenges", "must be a list of challenges"},
		{"top level list", "- a\n- b\n", 1, "", "the file must be a mapping"},
		{"duplicate key", agentDoc("id: a\nid: b"), 3, "agent.id", "set twice (first at line 2)"},
		{"duplicate top key", "agent: {}\nagent: {}\n", 2, "agent", "set twice"},
		{"duplicate env key", challengeDoc("env:\n  A: 1\n  A: 2"), 7, "challenges[0].env.A", "set twice"},
		{"syntax error", "agent:\n  id: x\n  bad\n", 3, "", "invalid YAML: could not find expected ':'"},
		{"tab indentation", "agent:\n\tid: x\n", 2, "", "invalid YAML"},
		{"second document", "agent: {}\n---\nagent: {}\n", 2, "", "second YAML document"},
		{"mapping key", "agent:\n  ? [a]\n  : b\n", 2, "agent", "keys must be plain strings"},
		{"bad merge", challengeDoc("<<: 5"), 5, "challenges[0]", "merge key (<<) must refer to a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrs(t, tt.doc)
			e := wantErr(t, es, tt.key, tt.msg)
			if e.Line != tt.line || e.File != "test.yaml" {
				t.Errorf("error %q at %s:%d, want test.yaml:%d", e.Msg, e.File, e.Line, tt.line)
			}
		})
	}
}

func TestDecodeErrorNotRepeatedByValidation(t *testing.T) {
	es := parseErrs(t, challengeDoc("version: [1, 2]"))
	if len(es) != 1 {
		t.Errorf("want only the type error, got:\n%v", es)
	}
}

func TestErrorFormat(t *testing.T) {
	es := parseErrs(t, challengeDoc("health:\n  interval: fast"))
	want := `test.yaml:6: challenges[0].health.interval: "fast" is not a duration (use Go syntax like 5s, 250ms)`
	if es.Error() != want {
		t.Errorf("got  %s\nwant %s", es.Error(), want)
	}
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "f.yaml", Line: 3, Key: "k", Msg: "m"}, "f.yaml:3: k: m"},
		{FieldError{File: "f.yaml", Key: "k", Msg: "m"}, "f.yaml: k: m"},
		{FieldError{File: "f.yaml", Line: 3, Msg: "m"}, "f.yaml:3: m"},
		{FieldError{Key: "k", Msg: "m"}, "k: m"},
		{FieldError{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	joined := Errors{{Key: "a", Msg: "x"}, {Key: "b", Msg: "y"}}.Error()
	if joined != "a: x\nb: y" {
		t.Errorf("Errors.Error() = %q", joined)
	}
	var fe *FieldError
	if !errors.As(error(Errors{{Key: "a", Msg: "x"}}), &fe) || fe.Key != "a" {
		t.Errorf("errors.As(Errors, *FieldError) failed")
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "berth.yaml")
	writeFile(t, path, `agent:
  data_dir: ./state
  challenge_dirs: [challenges.d, /abs/dir]
  api: {listen: "0.0.0.0:7070", token_file: secrets/token}
challenges:
  - name: app
    image: x/app
    version: "1"
    secret_env_files: {KEY: secrets/key, ABS: /run/secrets/abs}
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "etc")
	checks := []struct{ name, got, want string }{
		{"data_dir", cfg.Agent.DataDir, filepath.Join(base, "state")},
		{"challenge_dirs[0]", cfg.Agent.ChallengeDirs[0], filepath.Join(base, "challenges.d")},
		{"challenge_dirs[1]", cfg.Agent.ChallengeDirs[1], "/abs/dir"},
		{"token_file", cfg.Agent.API.TokenFile, filepath.Join(base, "secrets", "token")},
		{"secret KEY", cfg.Challenges[0].SecretEnvFiles["KEY"], filepath.Join(base, "secrets", "key")},
		{"secret ABS", cfg.Challenges[0].SecretEnvFiles["ABS"], "/run/secrets/abs"},
		{"path", cfg.Path, path},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	writeFile(t, big, "# "+strings.Repeat("x", MaxFileSize)+"\n")
	_, err := Load(big)
	if err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("big file: %v", err)
	}
	if _, err := Parse("big.yaml", make([]byte, MaxFileSize+1)); err == nil {
		t.Errorf("Parse accepted more than MaxFileSize")
	}
}

func TestExampleFilesParse(t *testing.T) {
	for _, f := range []string{"berth.example.yaml", "demo.yaml"} {
		t.Run(f, func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Challenges) != 1 {
				t.Fatalf("want one challenge, got %d", len(cfg.Challenges))
			}
		})
	}
	demo, err := Load("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := demo.Challenges[0]
	if c.Name != "demo" || c.Image != "berth-demo/echo" || c.Version != "1.0.0" || c.PullPolicy != PullNever || c.Port != 8080 || c.Health.Path != "/health" {
		t.Errorf("demo challenge = %+v", c)
	}
	if demo.Agent.DataDir != abs(t, "data-demo") {
		t.Errorf("demo data_dir = %q", demo.Agent.DataDir)
	}
}

// The example documents every key: each one the decoder knows must appear in it.
func TestExampleMentionsEveryKey(t *testing.T) {
	data, err := os.ReadFile("berth.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var walk func(reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(tp reflect.Type) {
		if seen[tp] {
			return
		}
		seen[tp] = true
		for _, f := range fieldsOf(tp) {
			if !strings.Contains(text, f.name+":") {
				t.Errorf("berth.example.yaml does not mention %q (%s)", f.name, tp.Name())
			}
			ft := tp.Field(f.index).Type
			for ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	for _, name := range EnvVars() {
		if !strings.Contains(text, name) {
			t.Errorf("berth.example.yaml does not document %s", name)
		}
	}
}

func TestLoadChallengeFile(t *testing.T) {
	dir := t.TempDir()
	defs := BuiltinDefaults()
	defs.Health.Interval = 7 * time.Second

	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "name: app\nimage: x/app\nversion: '1'\nhealth: {path: /hz}\nsecret_env_files: {K: k.txt}\n")
	c, err := LoadChallengeFile(good, defs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.Path != "/hz" || c.Health.Interval != 7*time.Second || c.Health.Timeout != 2*time.Second {
		t.Errorf("health = %+v", c.Health)
	}
	if c.SecretEnvFiles["K"] != filepath.Join(dir, "k.txt") {
		t.Errorf("secret path = %q", c.SecretEnvFiles["K"])
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: app\nimage: x/app\nversion: '1'\nhealth:\n  interval: soon\nport: 0\nextra: 1\n")
	_, err = LoadChallengeFile(bad, defs)
	es := asErrors(t, err)
	want := []string{
		bad + `:5: health.interval: "soon" is not a duration (use Go syntax like 5s, 250ms)`,
		bad + `:6: port: 0 is not a port (1-65535)`,
		bad + `:7: unknown key "extra"`,
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), es)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, es[i], w)
		}
	}

	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "# nothing\n")
	if _, err := LoadChallengeFile(empty, defs); err == nil || !strings.Contains(err.Error(), "expected one challenge") {
		t.Errorf("empty file: %v", err)
	}
}

func TestLoadChallengeDirs(t *testing.T) {
	dir := t.TempDir()
	cdir := filepath.Join(dir, "challenges.d")
	writeFile(t, filepath.Join(cdir, "b.yaml"), "name: b\nimage: ghcr.io/org/b\nversion: '2'\n")
	writeFile(t, filepath.Join(cdir, "a.yml"), "name: a\nimage: ghcr.io/org/a\nversion: '1'\n")
	writeFile(t, filepath.Join(cdir, "notes.txt"), "ignored")
	writeFile(t, filepath.Join(cdir, ".hidden.yaml"), "ignored: true")
	cfgPath := filepath.Join(dir, "berth.yaml")
	writeFile(t, cfgPath, "agent:\n  challenge_dirs: [challenges.d]\n  policy: {allowed_images: [ghcr.io/org]}\n"+
		"defaults: {health: {path: /ready}}\n"+
		"challenges:\n  - {name: main, image: ghcr.io/org/main, version: '1'}\n")
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadChallengeDirs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || got[0].Health.Path != "/ready" {
		t.Fatalf("challenges = %+v", got)
	}

	writeFile(t, filepath.Join(cdir, "c.yaml"), "name: main\nimage: ghcr.io/org/c\nversion: '1'\n")
	writeFile(t, filepath.Join(cdir, "d.yaml"), "name: d\n\nimage: docker.io/evil/d\nversion: '1'\n")
	writeFile(t, filepath.Join(cdir, "e.yaml"), "name: e\nimage: ghcr.io/org/e\nversion: '1'\nport: -1\n")
	got, err = LoadChallengeDirs(cfg)
	if got != nil {
		t.Errorf("got challenges along with errors: %+v", got)
	}
	es := asErrors(t, err)
	if e := wantErr(t, es, "name", `duplicate challenge name "main"`); e.File != filepath.Join(cdir, "c.yaml") || e.Line != 1 {
		t.Errorf("duplicate at %s:%d", e.File, e.Line)
	}
	if e := wantErr(t, es, "image", "not admitted"); e.File != filepath.Join(cdir, "d.yaml") || e.Line != 3 {
		t.Errorf("policy at %s:%d", e.File, e.Line)
	}
	wantErr(t, es, "port", "not a port")

	cfg.Agent.ChallengeDirs = []string{filepath.Join(dir, "nope")}
	if _, err := LoadChallengeDirs(cfg); err == nil || !strings.Contains(err.Error(), "challenge_dirs") {
		t.Errorf("missing dir: %v", err)
	}
}
