package configs

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds config and challenge files; anything larger is not a config.
const MaxFileSize = 1 << 20

var topKeys = []string{"agent", "defaults", "challenges"}

// LoadAll is the one way berth loads its configuration; berth run, berth
// config validate and a reload all use it, so each checks what the others
// load. In order: the file at path is decoded strictly with the built-in
// defaults layered under it, validated and checked against agent.policy
// ([Load]); the BERTH_* variables read through getenv override agent settings
// ([ApplyEnv]; nil means os.Getenv, and a function that always returns ""
// applies none); then the challenge files in agent.challenge_dirs are loaded
// with the defaults, validated, checked against agent.policy and appended to
// Challenges ([LoadChallengeDirs]).
//
// The first step that fails ends the load and nothing is returned with its
// error: [Errors] naming file, line and key, or the error from opening path.
func LoadAll(path string, getenv func(string) string) (*Config, error) {
	cfg, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := ApplyEnv(cfg, getenv); err != nil {
		return nil, err
	}
	dirs, err := LoadChallengeDirs(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Challenges = append(cfg.Challenges, dirs...)
	return cfg, nil
}

// Load reads and parses the config file at path. See [Parse]. It applies
// neither BERTH_* variables nor agent.challenge_dirs; [LoadAll] does.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: "file is larger than 1 MiB; refusing to parse it"}}
	}
	return data, nil
}

// Parse decodes a config file's contents strictly, applies defaults, resolves
// relative paths against filename's directory (left as they are when filename
// is empty) and validates everything. On failure the error is [Errors] holding
// every problem found.
func Parse(filename string, data []byte) (*Config, error) {
	d := newDecoder(filename)
	if len(data) > MaxFileSize {
		d.errs = append(d.errs, &FieldError{File: filename, Msg: "file is larger than 1 MiB; refusing to parse it"})
		return nil, d.result()
	}
	root, ok := d.parse(data)
	if !ok {
		return nil, d.result()
	}
	cfg := Default()
	cfg.Path = filename
	if root != nil {
		d.lines[""] = root.Line
		d.decodeConfig(root, cfg)
	}
	base := baseDir(filename)
	cfg.Agent.DataDir = resolvePath(base, cfg.Agent.DataDir)
	cfg.Agent.API.TokenFile = resolvePath(base, cfg.Agent.API.TokenFile)
	for i, dir := range cfg.Agent.ChallengeDirs {
		cfg.Agent.ChallengeDirs[i] = resolvePath(base, dir)
	}
	for i := range cfg.Challenges {
		resolveSecrets(base, &cfg.Challenges[i])
	}
	d.validateConfig(cfg)
	if err := d.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (d *decoder) decodeConfig(root *yaml.Node, cfg *Config) {
	n := resolveAlias(root)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(root, "", "the file must be a mapping with keys %s, not %s", strings.Join(topKeys, ", "), describe(n))
		return
	}
	var agent, defaults, challenges *yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isMerge(k) {
			d.fail(k, "", "top-level keys must be %s", strings.Join(topKeys, ", "))
			continue
		}
		// x- keys are free space for anchors that challenges merge in.
		if strings.HasPrefix(k.Value, "x-") {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, k.Value, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[k.Value] = k.Line
		switch k.Value {
		case "agent":
			agent = v
		case "defaults":
			defaults = v
		case "challenges":
			challenges = v
		default:
			d.unknown(k, "", topKeys)
		}
	}
	// Defaults must be complete before any challenge inherits them, whatever the key order.
	if agent != nil {
		d.decodeStruct(agent, reflect.ValueOf(&cfg.Agent).Elem(), "agent", 0)
	}
	if defaults != nil {
		d.decodeStruct(defaults, reflect.ValueOf(&cfg.Defaults).Elem(), "defaults", 0)
	}
	if challenges == nil || isNull(challenges) {
		return
	}
	list := resolveAlias(challenges)
	if list.Kind != yaml.SequenceNode {
		d.fail(challenges, "challenges", "must be a list of challenges, not %s", describe(list))
		return
	}
	for i, item := range list.Content {
		key := index("challenges", i)
		d.lines[key] = item.Line
		c := cfg.Defaults.NewChallenge()
		d.decodeStruct(item, reflect.ValueOf(&c).Elem(), key, 0)
		cfg.Challenges = append(cfg.Challenges, c)
	}
}

func (d *decoder) validateConfig(cfg *Config) {
	var c checker
	validateAgent(&c, cfg.Agent, "agent")

	var defs checker
	validateDefaults(&defs, cfg.Defaults, "defaults")
	cfg.Agent.Policy.limitResources(&defs, cfg.Defaults.Resources, "defaults.resources")
	c.errs = append(c.errs, defs.errs...)
	// A bad value in defaults is reported once there, not again for every
	// challenge that inherits it.
	inherited := map[string]bool{}
	for _, e := range defs.errs {
		inherited[strings.TrimPrefix(e.Key, "defaults.")+"\x00"+e.Msg] = true
	}

	first := map[string]int{}
	for i, ch := range cfg.Challenges {
		p := index("challenges", i)
		var cc checker
		validateChallenge(&cc, ch, p)
		validateBackend(&cc, cfg.Agent.Backend, ch, p)
		cfg.Agent.Policy.limitResources(&cc, ch.Resources, join(p, "resources"))
		for _, e := range cc.errs {
			_, own := d.lines[e.Key]
			if !own && inherited[strings.TrimPrefix(e.Key, p+".")+"\x00"+e.Msg] {
				continue
			}
			c.errs = append(c.errs, e)
		}
		if checkImage(ch.Image) == "" && !ImageAllowed(ch.Image, cfg.Agent.Policy.AllowedImages) {
			c.add(join(p, "image"), "%s", policyMsg(ch.Image, cfg.Agent.Policy.AllowedImages))
		}
		if ch.Name == "" {
			continue
		}
		if j, dup := first[ch.Name]; dup {
			prev := join(index("challenges", j), "name")
			c.add(join(p, "name"), "duplicate challenge name %q (first defined at line %d, %s)", ch.Name, d.lineFor(prev), prev)
			continue
		}
		first[ch.Name] = i
	}
	d.adopt(c.errs)
}

// ParseChallenge decodes one challenge (the keys of a challenges entry) from
// data, merges it onto d, resolves relative secret_env_files against
// filename's directory and validates it. Since YAML is a superset of JSON, data
// may be a JSON object too (durations then are strings such as "5s"); with an
// empty filename, errors carry no file and relative paths are refused.
func ParseChallenge(filename string, data []byte, d Defaults) (Challenge, error) {
	c, _, err := parseChallenge(filename, data, d)
	return c, err
}

// LoadChallengeFile reads a file holding one challenge. See [ParseChallenge].
// It does not apply agent.policy; [LoadChallengeDirs] does.
func LoadChallengeFile(path string, d Defaults) (Challenge, error) {
	data, err := readFile(path)
	if err != nil {
		return Challenge{}, err
	}
	return ParseChallenge(path, data, d)
}

func parseChallenge(filename string, data []byte, defs Defaults) (Challenge, map[string]int, error) {
	d := newDecoder(filename)
	if len(data) > MaxFileSize {
		d.errs = append(d.errs, &FieldError{File: filename, Msg: "file is larger than 1 MiB; refusing to parse it"})
		return Challenge{}, nil, d.result()
	}
	root, ok := d.parse(data)
	if !ok {
		return Challenge{}, nil, d.result()
	}
	if isNull(root) {
		line := 1 // an empty file is wrong from its first line
		if root != nil && root.Line > 0 {
			line = root.Line
		}
		d.errs = append(d.errs, &FieldError{File: filename, Line: line, Msg: "file is empty; expected one challenge (name, image, version, ...)"})
		return Challenge{}, nil, d.result()
	}
	d.lines[""] = root.Line
	c := defs.NewChallenge()
	d.decodeStruct(root, reflect.ValueOf(&c).Elem(), "", 0)
	resolveSecrets(baseDir(filename), &c)
	var ch checker
	validateChallenge(&ch, c, "")
	d.adopt(ch.errs)
	if err := d.result(); err != nil {
		return Challenge{}, nil, err
	}
	return c, d.lines, nil
}

// LoadChallengeDirs loads every *.yaml and *.yml file in cfg.Agent.ChallengeDirs
// (sorted by name; dot files skipped) with cfg.Defaults, applies agent.policy
// and refuses names already used by cfg.Challenges or another file. It returns
// only the challenges from the directories, or every problem found and none.
func LoadChallengeDirs(cfg *Config) ([]Challenge, error) {
	var errs Errors
	var out []Challenge
	where := map[string]string{}
	for _, c := range cfg.Challenges {
		where[c.Name] = cmp.Or(cfg.Path, "the config file")
	}
	for _, dir := range cfg.Agent.ChallengeDirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, &FieldError{Msg: fmt.Sprintf("challenge_dirs: %v", err)})
			continue
		}
		for _, e := range entries {
			name := e.Name()
			ext := filepath.Ext(name)
			if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			path := filepath.Join(dir, name)
			data, err := readFile(path)
			if err != nil {
				errs = appendErr(errs, err)
				continue
			}
			c, lines, err := parseChallenge(path, data, cfg.Defaults)
			if err != nil {
				errs = appendErr(errs, err)
				continue
			}
			if !ImageAllowed(c.Image, cfg.Agent.Policy.AllowedImages) {
				errs = append(errs, &FieldError{File: path, Line: lines["image"], Key: "image", Msg: policyMsg(c.Image, cfg.Agent.Policy.AllowedImages)})
				continue
			}
			var bc checker
			if validateBackend(&bc, cfg.Agent.Backend, c, ""); len(bc.errs) > 0 {
				for _, e := range bc.errs {
					errs = append(errs, &FieldError{File: path, Line: lines[e.Key], Key: e.Key, Msg: e.Msg})
				}
				continue
			}
			if over := cfg.Agent.Policy.checkResources(c.Resources); len(over) > 0 {
				for _, e := range over {
					key := join("resources", e.Key)
					errs = append(errs, &FieldError{File: path, Line: cmp.Or(lines[key], lines["resources"]), Key: key, Msg: e.Msg})
				}
				continue
			}
			if prev, dup := where[c.Name]; dup {
				errs = append(errs, &FieldError{File: path, Line: lines["name"], Key: "name", Msg: fmt.Sprintf("duplicate challenge name %q (also defined in %s)", c.Name, prev)})
				continue
			}
			where[c.Name] = path
			out = append(out, c)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func appendErr(errs Errors, err error) Errors {
	if es, ok := err.(Errors); ok {
		return append(errs, es...)
	}
	return append(errs, &FieldError{Msg: err.Error()})
}

// baseDir is the directory relative paths in filename are resolved against;
// "" (no file) leaves them relative, and validation refuses relative secrets.
func baseDir(filename string) string {
	if filename == "" {
		return ""
	}
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

func resolvePath(base, p string) string {
	if base == "" || p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

func resolveSecrets(base string, c *Challenge) {
	for k, v := range c.SecretEnvFiles {
		c.SecretEnvFiles[k] = resolvePath(base, v)
	}
}
