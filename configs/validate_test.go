package configs

import (
	"strings"
	"testing"
	"time"
)

func TestChallengeValidation(t *testing.T) {
	const c = "challenges[0]."
	tests := []struct {
		name, extra, key, msg string
	}{
		{"name uppercase", "name: App", c + "name", "must match"},
		{"name underscore", "name: my_app", c + "name", "must match"},
		{"name leading dash", "name: -app", c + "name", "must match"},
		{"name too long", "name: " + strings.Repeat("a", 64), c + "name", "must match"},
		{"name empty", `name: ""`, c + "name", "is required"},
		{"image tag", "image: ghcr.io/org/app:1.0", c + "image", "put the tag in version"},
		{"image digest", "image: ghcr.io/org/app@sha256:" + strings.Repeat("a", 64), c + "image", "digest in digest"},
		{"image uppercase", "image: ghcr.io/Org/app", c + "image", "lowercase"},
		{"image missing", `image: ""`, c + "image", "is required"},
		{"version empty", `version: ""`, c + "version", "is required"},
		{"version bad constraint", `version: ">>1"`, c + "version", "neither an image tag nor a semver constraint"},
		{"version bad tag", `version: "1.0.0+build"`, c + "version", "not a valid image tag"},
		{"digest short", "digest: sha256:abc", c + "digest", "64 lowercase hex"},
		{"digest uppercase", "digest: sha256:" + strings.Repeat("A", 64), c + "digest", "64 lowercase hex"},
		{"digest algorithm", "digest: md5:" + strings.Repeat("a", 64), c + "digest", "64 lowercase hex"},
		{"pull policy", "pull_policy: sometimes", c + "pull_policy", "must be one of missing, always, never"},
		{"port zero", "port: 0", c + "port", "not a port"},
		{"port high", "port: 65536", c + "port", "not a port"},
		{"env name", "env: {1BAD: x}", c + "env.1BAD", "not a valid environment variable name"},
		{"env name dash", "env: {MY-VAR: x}", c + "env.MY-VAR", "not a valid environment variable name"},
		{"secret name", "secret_env_files: {bad-name: /run/x}", c + "secret_env_files.bad-name", "not a valid environment variable name"},
		{"secret and env", "env: {API_KEY: x}\nsecret_env_files: {API_KEY: /run/secrets/k}", c + "secret_env_files.API_KEY", "also set in env"},
		{"secret empty path", `secret_env_files: {API_KEY: ""}`, c + "secret_env_files.API_KEY", "needs a file path"},
		{"volume host path", "volumes: [{name: /var/run/docker.sock, target: /var/run/docker.sock}]", c + "volumes[0].name", "host bind mounts are refused"},
		{"volume relative host path", "volumes: [{name: ./data, target: /data}]", c + "volumes[0].name", "host bind mounts are refused"},
		{"volume name chars", "volumes: [{name: 'a b', target: /data}]", c + "volumes[0].name", "not a valid volume name"},
		{"volume name missing", "volumes: [{target: /data}]", c + "volumes[0].name", "is required"},
		{"volume target relative", "volumes: [{name: data, target: data}]", c + "volumes[0].target", "absolute"},
		{"volume target missing", "volumes: [{name: data}]", c + "volumes[0].target", "is required"},
		{"volume target root", "volumes: [{name: data, target: /}]", c + "volumes[0].target", "cannot mount over /"},
		{"volume duplicate target", "volumes: [{name: a, target: /data}, {name: b, target: /data/}]", c + "volumes[1].target", "already the target of"},
		{"state export", "state: {export: state}", c + "state.export", "must start with /"},
		{"state import", "state: {import: state}", c + "state.import", "must start with /"},
		{"health path", "health: {path: health}", c + "health.path", "must start with /"},
		{"health interval", "health: {interval: 0s}", c + "health.interval", "greater than 0"},
		{"health timeout", "health: {timeout: 0s}", c + "health.timeout", "greater than 0"},
		{"health failure threshold", "health: {failure_threshold: 0}", c + "health.failure_threshold", "at least 1"},
		{"health success threshold", "health: {success_threshold: 0}", c + "health.success_threshold", "at least 1"},
		{"health start period", "health: {start_period: -1s}", c + "health.start_period", "must not be negative"},
		{"health start interval", "health: {start_interval: 0s}", c + "health.start_interval", "greater than 0"},
		{"restart initial backoff", "restart: {initial_backoff: 0s}", c + "restart.initial_backoff", "greater than 0"},
		{"restart max backoff", "restart: {max_backoff: 0s}", c + "restart.max_backoff", "greater than 0"},
		{"restart max below initial", "restart: {initial_backoff: 10m}", c + "restart.max_backoff", "shorter than initial_backoff"},
		{"restart multiplier", "restart: {multiplier: 0.5}", c + "restart.multiplier", "at least 1"},
		{"restart jitter one", "restart: {jitter: 1}", c + "restart.jitter", "less than 1"},
		{"restart jitter negative", "restart: {jitter: -0.1}", c + "restart.jitter", "less than 1"},
		{"restart reset after", "restart: {reset_after: 0s}", c + "restart.reset_after", "greater than 0"},
		{"restart max restarts", "restart: {max_restarts: -1}", c + "restart.max_restarts", "at least 0"},
		{"restart window", "restart: {window: 0s}", c + "restart.window", "greater than 0"},
		{"restart stop timeout", "restart: {stop_timeout: 0s}", c + "restart.stop_timeout", "greater than 0"},
		{"restart alert after negative", "restart: {alert_after: -1}", c + "restart.alert_after", "at least 0"},
		{"update healthy deadline", "update: {healthy_deadline: 0s}", c + "update.healthy_deadline", "greater than 0"},
		{"update min healthy time", "update: {min_healthy_time: 2m}", c + "update.min_healthy_time", "shorter than healthy_deadline"},
		{"update min healthy negative", "update: {min_healthy_time: -1s}", c + "update.min_healthy_time", "must not be negative"},
		{"update drain timeout", "update: {drain_timeout: -1s}", c + "update.drain_timeout", "must not be negative"},
		{"update rollback window", "update: {rollback_window: -1s}", c + "update.rollback_window", "must not be negative"},
		{"update keep previous", "update: {keep_previous: -1s}", c + "update.keep_previous", "must not be negative"},
		{"update check interval", "update: {check_interval: 0s}", c + "update.check_interval", "greater than 0"},
		{"cpus zero", "resources: {cpus: 0}", c + "resources.cpus", "greater than 0"},
		{"cpus negative", "resources: {cpus: -1}", c + "resources.cpus", "greater than 0"},
		{"memory small", "resources: {memory: 5m}", c + "resources.memory", "below Docker's minimum of 6m"},
		{"pids zero", "resources: {pids: 0}", c + "resources.pids", "at least 1"},
		{"pids unlimited", "resources: {pids: -1}", c + "resources.pids", "at least 1"},
		{"cap_drop lowercase", "security: {cap_drop: [net_raw]}", c + "security.cap_drop[0]", "not a capability name"},
		{"tmpfs relative", "security: {tmpfs: [tmp]}", c + "security.tmpfs[0]", "absolute"},
		{"tmpfs root", "security: {tmpfs: [/]}", c + "security.tmpfs[0]", "cannot mount a tmpfs over /"},
		{"tmpfs twice", "security: {tmpfs: [/tmp, /tmp/]}", c + "security.tmpfs[1]", "listed twice"},
		{"privileged refused", "privileged: true", "challenges[0]", "privileged containers are refused"},
		{"cap_add refused", "security: {cap_add: [SYS_ADMIN]}", c + "security", "adding capabilities is refused"},
		{"network_mode refused", "network_mode: host", "challenges[0]", "host networking is refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := challengeDoc(tt.extra)
			es := parseErrs(t, doc)
			e := wantErr(t, es, tt.key, tt.msg)
			if e.File != "test.yaml" || e.Line < 2 {
				t.Errorf("error %q lacks a position", e)
			}
		})
	}
}

func TestAgentValidation(t *testing.T) {
	tests := []struct {
		name, extra, key, msg string
	}{
		{"id", "id: Agent_1", "agent.id", "must match"},
		{"data_dir", `data_dir: ""`, "agent.data_dir", "is required"},
		{"docker_host no scheme", "docker_host: /var/run/docker.sock", "agent.docker_host", "must look like"},
		{"docker_host scheme", "docker_host: ftp://x", "agent.docker_host", "unsupported scheme"},
		{"docker_host relative socket", "docker_host: unix://docker.sock", "agent.docker_host", "absolute"},
		{"network host", "network: host", "agent.network", "predefined"},
		{"network bridge", "network: bridge", "agent.network", "predefined"},
		{"network chars", "network: 'a b'", "agent.network", "not a valid network name"},
		{"network empty", `network: ""`, "agent.network", "is required"},
		{"reach", "reach: everywhere", "agent.reach", "must be one of published, network"},
		{"api listen", "api: {listen: localhost}", "agent.api.listen", "not host:port"},
		{"api listen port", "api: {listen: 'localhost:99999'}", "agent.api.listen", "invalid port"},
		{"api listen empty", `api: {listen: ""}`, "agent.api.listen", "is required"},
		{"token required any", "api: {listen: ':7070'}", "agent.api.token_file", "a token is required when api.listen is not loopback"},
		{"token required public", "api: {listen: '0.0.0.0:7070'}", "agent.api.token_file", "a token is required"},
		{"token required lan", "api: {listen: '192.168.1.5:7070'}", "agent.api.token_file", "a token is required"},
		{"proxy listen", "proxy: {listen: 7080}", "agent.proxy.listen", "not host:port"},
		{"checkpoint interval", "checkpoint: {interval: 0s}", "agent.checkpoint.interval", "greater than 0"},
		{"checkpoint keep", "checkpoint: {keep: 0}", "agent.checkpoint.keep", "at least 1"},
		{"shutdown", "shutdown: kill", "agent.shutdown", "must be one of leave, stop"},
		{"orphan grace", "orphan_grace: 0s", "agent.orphan_grace", "greater than 0"},
		{"challenge dir empty", `challenge_dirs: [""]`, "agent.challenge_dirs[0]", "must not be empty"},
		{"webhook scheme", "alerts: {webhook_url: 'ftp://x/y'}", "agent.alerts.webhook_url", "http:// or https://"},
		{"webhook no host", "alerts: {webhook_url: 'http://'}", "agent.alerts.webhook_url", "http:// or https://"},
		{"alerts min interval", "alerts: {min_interval: -1s}", "agent.alerts.min_interval", "must not be negative"},
		{"alerts format", "alerts: {format: teams}", "agent.alerts.format", "must be one of json, slack, discord"},
		{"log level", "log: {level: verbose}", "agent.log.level", "must be one of trace, debug, info, warn, error"},
		{"log format", "log: {format: text}", "agent.log.format", "must be one of json, console"},
		{"allowed images", "policy: {allowed_images: [ghcr.io/Org]}", "agent.policy.allowed_images[0]", "lowercase"},
		{"allowed images tag", "policy: {allowed_images: ['ghcr.io/org/app:1']}", "agent.policy.allowed_images[0]", "tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrs(t, agentDoc(tt.extra))
			e := wantErr(t, es, tt.key, tt.msg)
			if e.Line != 2 {
				t.Errorf("error %q: line %d, want 2", e, e.Line)
			}
		})
	}
}

func TestValidVariants(t *testing.T) {
	tests := []struct {
		name, doc string
	}{
		{"empty file", ""},
		{"comments only", "# nothing here\n"},
		{"loopback ipv4", agentDoc("api: {listen: '127.0.0.1:0'}")},
		{"loopback name", agentDoc("api: {listen: 'localhost:7070'}")},
		{"loopback ipv6", agentDoc("api: {listen: '[::1]:7070'}")},
		{"public with token", agentDoc("api: {listen: '0.0.0.0:7070', token_file: /run/secrets/token}")},
		{"docker hosts", agentDoc("docker_host: tcp://10.0.0.2:2376")},
		{"network reach", agentDoc("reach: network\nshutdown: stop\nlog: {level: trace, format: console}")},
		{"webhook", agentDoc("alerts: {webhook_url: 'https://hooks.example.com/x', min_interval: 0s}")},
		{"alerts slack", agentDoc("alerts: {webhook_url: 'https://hooks.slack.com/services/x', format: slack}")},
		{"alerts discord", agentDoc("alerts: {webhook_url: 'https://discord.com/api/webhooks/x', format: discord}")},
		{"alert after zero", challengeDoc("restart: {alert_after: 0}")},
		{"constraint", challengeDoc(`version: ">=1.2 <2"`)},
		{"tilde", challengeDoc(`version: "~1.4.2"`)},
		{"latest", challengeDoc(`version: latest`)},
		{"unquoted float version", challengeDoc(`version: 1.10`)},
		{"digest", challengeDoc("digest: sha256:" + strings.Repeat("ab", 32))},
		{"zeros allowed", challengeDoc("restart: {max_restarts: 0, jitter: 0}\nupdate: {drain_timeout: 0s, min_healthy_time: 0s}\nhealth: {start_period: 0s}")},
		{"volumes", challengeDoc("volumes: [{name: data, target: /data}, {name: data, target: /cache, read_only: true}]")},
		{"caps", challengeDoc("security: {cap_drop: [NET_RAW, CAP_SYS_ADMIN], tmpfs: [], read_only: false}")},
		{"policy admits", "agent: {policy: {allowed_images: [ghcr.io/org]}}\n" + challengeDoc("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustParse(t, tt.doc)
		})
	}
}

func TestVersionKeepsText(t *testing.T) {
	cfg := mustParse(t, challengeDoc("version: 1.10"))
	if got := cfg.Challenges[0].Version; got != "1.10" {
		t.Errorf("version = %q, want the text as written, 1.10", got)
	}
}

func TestPolicyRefusesImage(t *testing.T) {
	doc := "agent:\n  policy:\n    allowed_images: [ghcr.io/org/app]\n" +
		"challenges:\n  - name: ok\n    image: ghcr.io/org/app/worker\n    version: '1'\n" +
		"  - name: bad\n    image: ghcr.io/org/application\n    version: '1'\n"
	es := parseErrs(t, doc)
	e := wantErr(t, es, "challenges[1].image", "not admitted by agent.policy.allowed_images")
	if e.Line != 9 {
		t.Errorf("line = %d, want 9", e.Line)
	}
	if len(es) != 1 {
		t.Errorf("want exactly one error, got:\n%v", es)
	}
}

func TestDuplicateNames(t *testing.T) {
	doc := `challenges:
  - name: app
    image: ghcr.io/org/app
    version: "1"
  - name: other
    image: ghcr.io/org/other
    version: "1"
  - name: app
    image: ghcr.io/org/app2
    version: "1"
`
	es := parseErrs(t, doc)
	e := wantErr(t, es, "challenges[2].name", `duplicate challenge name "app"`)
	if e.Line != 8 || !strings.Contains(e.Msg, "line 2") {
		t.Errorf("error %q: want line 8 naming line 2", e)
	}
}

func TestAllErrorsCollected(t *testing.T) {
	doc := `agent:
  reach: nowhere
challenges:
  - name: Bad
    image: ghcr.io/org/app:1
    version: ""
    port: 0
`
	es := parseErrs(t, doc)
	for _, key := range []string{"agent.reach", "challenges[0].name", "challenges[0].image", "challenges[0].version", "challenges[0].port"} {
		wantErr(t, es, key, "")
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors not in file order:\n%v", es)
		}
	}
}

func TestDefaultsErrorReportedOnce(t *testing.T) {
	doc := `defaults:
  health:
    interval: 0s
challenges:
  - {name: a, image: x/a, version: "1"}
  - {name: b, image: x/b, version: "1"}
  - {name: c, image: x/c, version: "1", health: {interval: -1s}}
`
	es := parseErrs(t, doc)
	if len(es) != 2 {
		t.Fatalf("want 2 errors (defaults and challenge c), got:\n%v", es)
	}
	if e := wantErr(t, es, "defaults.health.interval", "greater than 0"); e.Line != 3 {
		t.Errorf("line = %d, want 3", e.Line)
	}
	if e := wantErr(t, es, "challenges[2].health.interval", "greater than 0"); e.Line != 7 {
		t.Errorf("line = %d, want 7", e.Line)
	}
}

func TestValidateChallenge(t *testing.T) {
	valid := BuiltinDefaults().NewChallenge()
	valid.Name, valid.Image, valid.Version = "app", "ghcr.io/org/app", "^1.2"
	if err := ValidateChallenge(valid); err != nil {
		t.Fatalf("valid challenge: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Challenge)
		want   string
	}{
		{"no file or line", func(c *Challenge) { c.Health.Interval = 0 }, "health.interval: 0s must be greater than 0"},
		{"relative secret", func(c *Challenge) { c.SecretEnvFiles = map[string]string{"K": "rel/k"} }, "secret_env_files.K: \"rel/k\" must be an absolute path"},
		{"zero value", func(c *Challenge) { *c = Challenge{} }, "name: is required"},
		{"bad port", func(c *Challenge) { c.Port = -1 }, "port: -1 is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid.Clone()
			tt.mutate(&c)
			err := ValidateChallenge(c)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			found := false
			for _, l := range lines {
				found = found || l == tt.want || strings.HasPrefix(l, tt.want)
			}
			if !found {
				t.Errorf("error:\n%v\nwant a line starting %q", err, tt.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"a": true, "a-1": true, "0x": true, "": false, "A": false, "-a": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAlertKeysDefaultAndInherit(t *testing.T) {
	cfg := mustParse(t, challengeDoc(""))
	if cfg.Agent.Alerts.Format != AlertFormatJSON {
		t.Errorf("agent.alerts.format = %q, want json by default", cfg.Agent.Alerts.Format)
	}
	if got := cfg.Challenges[0].Restart.AlertAfter; got != 3 {
		t.Errorf("restart.alert_after = %d, want 3 by default", got)
	}
	doc := `agent:
  alerts: {webhook_url: 'https://discord.com/api/webhooks/x', format: discord}
defaults:
  restart: {alert_after: 5}
challenges:
  - {name: a, image: x/a, version: "1"}
  - {name: b, image: x/b, version: "1", restart: {alert_after: 0}}
`
	cfg = mustParse(t, doc)
	if cfg.Agent.Alerts.Format != AlertFormatDiscord || cfg.Agent.Alerts.MinInterval != 10*time.Minute {
		t.Errorf("agent.alerts = %+v, want discord with the default min_interval", cfg.Agent.Alerts)
	}
	if a, b := cfg.Challenges[0].Restart.AlertAfter, cfg.Challenges[1].Restart.AlertAfter; a != 5 || b != 0 {
		t.Errorf("alert_after = %d, %d; want 5 from defaults and 0 as written", a, b)
	}
	es := parseErrs(t, "defaults:\n  restart: {alert_after: -2}\n")
	if e := wantErr(t, es, "defaults.restart.alert_after", "at least 0"); e.Line != 2 {
		t.Errorf("line = %d, want 2", e.Line)
	}
}
