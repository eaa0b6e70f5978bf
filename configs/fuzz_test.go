package configs

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// fuzzSeeds are small documents that reach the decoder's corners: merge
// keys, anchors, refused keys, every section and wrong types.
var fuzzSeeds = []string{
	"",
	"agent: {id: a}\n",
	challengeDoc(""),
	challengeDoc("volumes: [{name: data, target: /data}]\nsecret_env_files: {K: k.txt}"),
	challengeDoc("privileged: true"),
	challengeDoc("security: {cap_add: [SYS_ADMIN]}"),
	"x-c: &c {image: x/a, version: '1'}\nchallenges:\n  - <<: *c\n    name: a\n",
	"a: &a [*a]\n",
	"challenges: {}\n",
	"agent:\n  api: {listen: ':0'}\n---\nx: 1\n",
	"defaults: {resources: {memory: 1.5g, cpus: 0.001}}\n",
	"\xff\xfe",
	"a: b: c",
	"challenges:\n  - name: a\n    name: b\n",
}

// checkErrors asserts every problem is an Errors entry that says where it is.
func checkErrors(t *testing.T, file string, err error) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %q (%T) is not Errors", err, err)
	}
	if len(es) == 0 {
		t.Fatal("empty Errors returned as an error")
	}
	for _, e := range es {
		switch {
		case e.Msg == "":
			t.Errorf("error without a message: %#v", e)
		case e.File != file:
			t.Errorf("error %q names file %q, want %q", e, e.File, file)
		case e.Line <= 0 && e.Key == "" && !strings.Contains(e.Msg, "larger than"):
			t.Errorf("error %q has neither a line nor a key", e)
		}
		if s := e.Error(); strings.Contains(s, "goroutine") || strings.Contains(s, ".go:") {
			t.Errorf("error %q leaks internals", s)
		}
	}
}

// normalized treats nil and empty maps and lists alike, as berth does.
func normalized(cfg *Config) *Config {
	out := cfg.Clone()
	out.Path = ""
	for i := range out.Challenges {
		out.Challenges[i] = out.Challenges[i].canonical()
	}
	if len(out.Agent.ChallengeDirs) == 0 {
		out.Agent.ChallengeDirs = nil
	}
	if len(out.Agent.Policy.AllowedImages) == 0 {
		out.Agent.Policy.AllowedImages = nil
	}
	if len(out.Defaults.Security.CapDrop) == 0 {
		out.Defaults.Security.CapDrop = nil
	}
	if len(out.Defaults.Security.Tmpfs) == 0 {
		out.Defaults.Security.Tmpfs = nil
	}
	if len(out.Challenges) == 0 {
		out.Challenges = nil
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, name := range []string{"berth.example.yaml", "demo.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hung := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse of %d bytes hung: %q", len(data), data)) })
		defer hung.Stop()
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if cfg != nil {
				t.Error("Parse returned a config along with an error")
			}
			checkErrors(t, "fuzz.yaml", err)
			return
		}
		// What Parse accepts passes every validation again, alone or via the API path.
		d := newDecoder("")
		d.validateConfig(cfg)
		if err := d.result(); err != nil {
			t.Fatalf("accepted config fails validation:\n%v", err)
		}
		if err := ApplyEnv(cfg, func(string) string { return "" }); err != nil {
			t.Fatalf("accepted config fails ApplyEnv: %v", err)
		}
		for _, c := range cfg.Challenges {
			if err := ValidateChallenge(c); err != nil {
				t.Fatalf("accepted challenge %q fails ValidateChallenge: %v", c.Name, err)
			}
			if err := cfg.Agent.Policy.Check(c.Image); err != nil {
				t.Fatalf("accepted challenge %q fails the policy: %v", c.Name, err)
			}
		}
		// Written back out, it parses to the same config.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		again, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("re-parse of the marshalled config failed:\n%v\n--- marshalled:\n%s", err, out)
		}
		if a, b := normalized(cfg), normalized(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v", a, b)
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		"name: a\nimage: x/a\nversion: '1'\n",
		`{"name": "a", "image": "x/a", "version": "^1.2", "health": {"interval": "5s"}, "resources": {"memory": "64m"}}`,
		"name: a\nimage: x/a\nversion: '1'\nvolumes: [{name: /etc, target: /etc}]\n",
		"name: a\nimage: x/a@sha256:00\nversion: '1'\n",
		"name: a\nimage: x/a\nversion: '1'\nsecret_env_files: {K: rel}\n",
		"[]",
		"null",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fromAPI bool) {
		file := "dir/fuzz.yaml"
		if fromAPI {
			file = "" // specs sent to the admin API have no file
		}
		c, err := ParseChallenge(file, data, BuiltinDefaults())
		if err != nil {
			if !reflect.DeepEqual(c, Challenge{}) {
				t.Error("ParseChallenge returned a spec along with an error")
			}
			checkErrors(t, file, err)
			return
		}
		if err := ValidateChallenge(c); err != nil {
			t.Fatalf("accepted challenge fails ValidateChallenge: %v", err)
		}
		if c.SpecHash() != c.Clone().SpecHash() {
			t.Fatal("spec hash is not stable")
		}
	})
}
