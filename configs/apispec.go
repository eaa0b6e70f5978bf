package configs

import (
	"path"
	"slices"
	"strings"
)

// CheckAPIChallenge checks a complete spec that came over the admin API, or
// one stored from there and loaded again: it must be valid, admitted by
// agent.policy (images and resource maxima), and may not do what only the
// operator's files may: name files on berth's host (secret_env_files) or
// relax the hardening of cfg's defaults (security). Errors are [Errors].
func (cfg *Config) CheckAPIChallenge(ch Challenge) error {
	var c checker
	validateChallenge(&c, ch, "")
	validateBackend(&c, cfg.Agent.Backend, ch, "")
	if checkImage(ch.Image) == "" && !ImageAllowed(ch.Image, cfg.Agent.Policy.AllowedImages) {
		c.add("image", "%s", policyMsg(ch.Image, cfg.Agent.Policy.AllowedImages))
	}
	cfg.Agent.Policy.limitResources(&c, ch.Resources, "resources")
	apiRestrictions(&c, ch, cfg.Defaults.Security)
	return c.errs.err()
}

// CheckResources refuses resources above the policy maxima; keys are
// relative to the resources block ("cpus", "memory", "pids").
func (p PolicyConfig) CheckResources(r Resources) error {
	var c checker
	p.limitResources(&c, r, "")
	return c.errs.err()
}

func (p PolicyConfig) checkResources(r Resources) Errors {
	var c checker
	p.limitResources(&c, r, "")
	return c.errs
}

func (p PolicyConfig) limitResources(c *checker, r Resources, prefix string) {
	if p.MaxCPUs > 0 && r.CPUs > p.MaxCPUs {
		c.add(join(prefix, "cpus"), "%v is above agent.policy.max_cpus %v", r.CPUs, p.MaxCPUs)
	}
	if p.MaxMemory > 0 && r.Memory > p.MaxMemory {
		c.add(join(prefix, "memory"), "%s is above agent.policy.max_memory %s", r.Memory, p.MaxMemory)
	}
	if p.MaxPids > 0 && r.Pids > p.MaxPids {
		c.add(join(prefix, "pids"), "%d is above agent.policy.max_pids %d", r.Pids, p.MaxPids)
	}
}

const configOnly = "only the config file or challenge_dirs may"

// apiRestrictions refuses what an API spec may not do relative to the
// config's default hardening d. Tightening is always allowed.
func apiRestrictions(c *checker, ch Challenge, d Security) {
	for _, k := range sortedKeys(ch.SecretEnvFiles) {
		c.add(join("secret_env_files", k), "the admin API cannot name files on berth's host; %s set secret_env_files", configOnly)
	}
	s := ch.Security
	if d.ReadOnly && !s.ReadOnly {
		c.add("security.read_only", "false would relax the default read-only root filesystem; %s do that", configOnly)
	}
	if d.NoNewPrivileges && !s.NoNewPrivileges {
		c.add("security.no_new_privileges", "false would relax the default; %s do that", configOnly)
	}
	dropped := map[string]bool{}
	for _, cp := range s.CapDrop {
		dropped[normalizeCap(cp)] = true
	}
	var kept []string
	for _, cp := range d.CapDrop {
		if n := normalizeCap(cp); !dropped["ALL"] && !dropped[n] {
			kept = append(kept, n)
		}
	}
	if len(kept) > 0 {
		c.add("security.cap_drop", "must still drop %s as the defaults do; %s keep capabilities", strings.Join(kept, ", "), configOnly)
	}
	allowed := make([]string, 0, len(d.Tmpfs))
	for _, t := range d.Tmpfs {
		allowed = append(allowed, path.Clean(t))
	}
	for i, t := range s.Tmpfs {
		if strings.HasPrefix(t, "/") && !slices.Contains(allowed, path.Clean(t)) {
			c.add(index("security.tmpfs", i), "%q is not a tmpfs of the defaults (%s); %s add writable mounts", t, strings.Join(allowed, ", "), configOnly)
		}
	}
}

// normalizeCap spells a capability as Docker does: upper case, no CAP_ prefix.
func normalizeCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
}
