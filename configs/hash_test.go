package configs

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func hashBase() Challenge {
	c := BuiltinDefaults().NewChallenge()
	c.Name, c.Image, c.Version = "app", "ghcr.io/org/app", "1.0.0"
	c.Env = map[string]string{"A": "1", "B": "2"}
	return c
}

func TestSpecHashStable(t *testing.T) {
	c := hashBase()
	h := c.SpecHash()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(h) {
		t.Fatalf("hash %q is not 16 hex digits", h)
	}
	for range 20 {
		if again := hashBase().SpecHash(); again != h {
			t.Fatalf("hash changed between calls: %s then %s", h, again)
		}
	}
	// Pinned so a change to the encoding, which would relabel every running
	// container as out of date, is noticed.
	const golden = "6e36a9715c805fc9"
	if h != golden {
		t.Errorf("SpecHash = %s, want %s", h, golden)
	}
	empty := c.Clone()
	empty.Env = nil
	emptier := c.Clone()
	emptier.Env = map[string]string{}
	if empty.SpecHash() != emptier.SpecHash() {
		t.Errorf("nil and empty env hash differently")
	}
}

func TestSpecHashChanges(t *testing.T) {
	base := hashBase().SpecHash()
	tests := []struct {
		name   string
		mutate func(*Challenge)
	}{
		{"name", func(c *Challenge) { c.Name = "app2" }},
		{"image", func(c *Challenge) { c.Image = "ghcr.io/org/app2" }},
		{"version", func(c *Challenge) { c.Version = "1.0.1" }},
		{"digest", func(c *Challenge) { c.Digest = "sha256:00" }},
		{"pull_policy", func(c *Challenge) { c.PullPolicy = PullAlways }},
		{"port", func(c *Challenge) { c.Port = 9000 }},
		{"env value", func(c *Challenge) { c.Env["A"] = "x" }},
		{"env key", func(c *Challenge) { c.Env["C"] = "3" }},
		{"secret", func(c *Challenge) { c.SecretEnvFiles = map[string]string{"K": "/k"} }},
		{"volume", func(c *Challenge) { c.Volumes = []Volume{{Name: "d", Target: "/d"}} }},
		{"state", func(c *Challenge) { c.State.AcrossMajor = true }},
		{"health", func(c *Challenge) { c.Health.Path = "/hz" }},
		{"restart", func(c *Challenge) { c.Restart.Jitter = 0.3 }},
		{"update", func(c *Challenge) { c.Update.Auto = AutoSwap }},
		{"resources", func(c *Challenge) { c.Resources.Memory = 2 * GiB }},
		{"security", func(c *Challenge) { c.Security.Tmpfs = []string{"/tmp", "/run"} }},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		c := hashBase()
		tt.mutate(&c)
		h := c.SpecHash()
		if prev, dup := seen[h]; dup {
			t.Errorf("changing %s gives the same hash as %s", tt.name, prev)
		}
		seen[h] = tt.name
	}
}

func TestChallengeJSONRoundTrip(t *testing.T) {
	c := hashBase()
	c.SecretEnvFiles = map[string]string{"K": "/run/k"}
	c.Volumes = []Volume{{Name: "d", Target: "/d", ReadOnly: true}}
	c.State = State{Export: "/s", Import: "/s", AcrossMajor: true}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Challenge
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) || back.SpecHash() != c.SpecHash() {
		t.Errorf("round trip changed the spec:\n%+v\n%+v", c, back)
	}
	for _, key := range []string{`"pull_policy"`, `"secret_env_files"`, `"failure_threshold"`, `"no_new_privileges"`, `"across_major"`, `"read_only"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON lacks %s: %s", key, data)
		}
	}
}

// A partial JSON spec decoded onto NewChallenge keeps the defaults it omits.
func TestPartialJSONOntoDefaults(t *testing.T) {
	c := BuiltinDefaults().NewChallenge()
	if err := json.Unmarshal([]byte(`{"name":"a","image":"x/a","version":"1","health":{"path":"/hz"},"resources":{"memory":"256m"}}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Health.Path != "/hz" || c.Health.Interval != 5*time.Second || c.Resources.Memory != 256*MiB || c.Resources.Pids != 512 {
		t.Errorf("partial spec = %+v", c)
	}
	if err := ValidateChallenge(c); err != nil {
		t.Error(err)
	}
}

func TestParseChallengeJSON(t *testing.T) {
	c, err := ParseChallenge("", []byte(`{"name": "a", "image": "x/a", "version": "^1", "health": {"interval": "3s"}}`), BuiltinDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.Interval != 3*time.Second || c.Health.Timeout != 2*time.Second {
		t.Errorf("health = %+v", c.Health)
	}
	_, err = ParseChallenge("", []byte(`{"name": "a", "image": "x/a", "version": "1", "secret_env_files": {"K": "rel"}}`), BuiltinDefaults())
	if err == nil || !strings.HasPrefix(err.Error(), "line 1: secret_env_files.K: ") {
		t.Errorf("relative secret over the API: %v", err)
	}
}

// restart.alert_after steers only the alerter: changing it must not swap a
// running challenge, nor may its arrival relabel one.
func TestSpecHashIgnoresAlertAfter(t *testing.T) {
	base := hashBase()
	for _, n := range []int{0, 3, 7} {
		c := hashBase()
		c.Restart.AlertAfter = n
		if c.SpecHash() != base.SpecHash() {
			t.Errorf("alert_after %d changes the spec hash", n)
		}
	}
}
