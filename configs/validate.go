package configs

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	networkRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	capRE        = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	httpMethodRE = regexp.MustCompile(`^[A-Z]{1,20}$`)
	// constraintRE is a Swarm placement constraint: node or engine
	// attribute, == or !=, a value.
	constraintRE = regexp.MustCompile(`^(node|engine)\.[A-Za-z0-9_.-]+\s*(==|!=)\s*[^\s=!]+$`)
)

// Smallest limits Docker accepts.
const (
	MinMemory = 6 * MiB
	MinCPUs   = 0.01
)

var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// ValidateChallenge checks a complete spec (defaults already applied) that did
// not come from a file, such as one sent to the admin API. Errors are [Errors]
// rendered as "key: message". It does not apply agent.policy; see
// [PolicyConfig.Check].
func ValidateChallenge(c Challenge) error {
	var ch checker
	validateChallenge(&ch, c, "")
	return ch.errs.err()
}

// ValidName reports whether s is usable as a challenge name or agent id.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func validateChallenge(c *checker, ch Challenge, p string) {
	if !nameRE.MatchString(ch.Name) {
		if ch.Name == "" {
			c.add(join(p, "name"), "is required")
		} else {
			c.add(join(p, "name"), "%q must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits, dashes)", ch.Name)
		}
	}
	if msg := checkImage(ch.Image); msg != "" {
		c.add(join(p, "image"), "%s", msg)
	}
	if msg := checkVersion(ch.Version); msg != "" {
		c.add(join(p, "version"), "%s", msg)
	}
	if msg := checkDigest(ch.Digest); msg != "" {
		c.add(join(p, "digest"), "%s", msg)
	}
	oneOf(c, join(p, "pull_policy"), ch.PullPolicy, PullMissing, PullAlways, PullNever)
	if ch.Port < 1 || ch.Port > 65535 {
		c.add(join(p, "port"), "%d is not a port (1-65535)", ch.Port)
	}
	for _, k := range sortedKeys(ch.Env) {
		if !envNameRE.MatchString(k) {
			c.add(join(join(p, "env"), k), "%q is not a valid environment variable name", k)
		}
		if strings.ContainsRune(ch.Env[k], 0) {
			c.add(join(join(p, "env"), k), "value contains a NUL byte")
		}
	}
	for _, k := range sortedKeys(ch.SecretEnvFiles) {
		key := join(join(p, "secret_env_files"), k)
		if !envNameRE.MatchString(k) {
			c.add(key, "%q is not a valid environment variable name", k)
		}
		if _, dup := ch.Env[k]; dup {
			c.add(key, "%s is also set in env; set it in one place only", k)
		}
		switch f := ch.SecretEnvFiles[k]; {
		case f == "":
			c.add(key, "needs a file path")
		case !filepath.IsAbs(f):
			c.add(key, "%q must be an absolute path (relative paths are only resolved in config files)", f)
		}
	}
	validateVolumes(c, ch.Volumes, join(p, "volumes"))
	validatePlacement(c, ch, p)
	statePath(c, join(join(p, "state"), "export"), ch.State.Export)
	statePath(c, join(join(p, "state"), "import"), ch.State.Import)
	validateSnapshots(c, ch.State, join(p, "state"))
	validateHealth(c, ch.Health, join(p, "health"))
	validateRestart(c, ch.Restart, join(p, "restart"))
	validateUpdate(c, ch.Update, join(p, "update"))
	validateResources(c, ch.Resources, join(p, "resources"))
	validateSecurity(c, ch.Security, join(p, "security"))
}

// MaxReplicas bounds a challenge's replicas on the swarm backend.
const MaxReplicas = 64

func validatePlacement(c *checker, ch Challenge, p string) {
	if ch.Replicas < 0 || ch.Replicas > MaxReplicas {
		c.add(join(p, "replicas"), "%d must be between 1 and %d (0 or unset means 1)", ch.Replicas, MaxReplicas)
	}
	for i, con := range ch.Placement {
		if !constraintRE.MatchString(strings.TrimSpace(con)) {
			c.add(index(join(p, "placement"), i), "%q is not a placement constraint (like node.labels.zone==a, node.role!=manager)", con)
		}
	}
}

// validateBackend refuses settings the configured backend cannot honour.
func validateBackend(c *checker, backend string, ch Challenge, p string) {
	if backend == BackendSwarm {
		return
	}
	if ch.Replicas > 1 {
		c.add(join(p, "replicas"), "%d replicas need agent.backend: swarm (the docker backend runs one container)", ch.Replicas)
	}
	if len(ch.Placement) > 0 {
		c.add(join(p, "placement"), "needs agent.backend: swarm (the docker backend runs on one host)")
	}
}

func validateVolumes(c *checker, vs []Volume, p string) {
	targets := map[string]int{}
	for i, v := range vs {
		vp := index(p, i)
		switch {
		case v.Name == "":
			c.add(join(vp, "name"), "is required")
		case strings.ContainsAny(v.Name, `/\`) || strings.HasPrefix(v.Name, "."):
			c.add(join(vp, "name"), "%q looks like a host path; host bind mounts are refused, use a named volume", v.Name)
		case isDockerSocket(v.Name):
			c.add(join(vp, "name"), "%q: mounting the Docker socket is refused (it gives root on the host)", v.Name)
		case !volumeNameRE.MatchString(v.Name):
			c.add(join(vp, "name"), "%q is not a valid volume name (letters, digits, _ . -)", v.Name)
		}
		if !absPath(c, join(vp, "target"), v.Target) {
			continue
		}
		t := path.Clean(v.Target)
		if isDockerSocket(t) {
			c.add(join(vp, "target"), "%q: mounting the Docker socket is refused (it gives root on the host)", v.Target)
			continue
		}
		if t == "/" {
			c.add(join(vp, "target"), "cannot mount over /")
			continue
		}
		if first, dup := targets[t]; dup {
			c.add(join(vp, "target"), "%q is already the target of %s", v.Target, index(p, first))
			continue
		}
		targets[t] = i
	}
}

// isDockerSocket matches any spelling of the engine's socket; whoever holds
// it is root on the host.
func isDockerSocket(s string) bool {
	return strings.Contains(strings.ToLower(s), "docker.sock")
}

// absPath requires an absolute container path and reports whether it was one.
func absPath(c *checker, key, v string) bool {
	switch {
	case v == "":
		c.add(key, "is required")
	case !strings.HasPrefix(v, "/"):
		c.add(key, "%q must be an absolute path", v)
	default:
		return true
	}
	return false
}

func statePath(c *checker, key, v string) {
	if v != "" && !strings.HasPrefix(v, "/") {
		c.add(key, "%q must start with /", v)
	}
}

func validateSnapshots(c *checker, s State, p string) {
	switch {
	case s.SnapshotInterval < 0:
		c.add(join(p, "snapshot_interval"), "%s must not be negative", s.SnapshotInterval)
	case s.SnapshotInterval > 0 && s.SnapshotInterval < MinSnapshotInterval:
		c.add(join(p, "snapshot_interval"), "%s is shorter than the minimum of %s", s.SnapshotInterval, MinSnapshotInterval)
	case s.SnapshotInterval > 0 && s.Export == "":
		c.add(join(p, "snapshot_interval"), "snapshots need state.export, the path berth GETs the state from")
	}
	if s.Keep < 0 || s.Keep > MaxSnapshotsKept {
		c.add(join(p, "keep"), "%d must be between 1 and %d", s.Keep, MaxSnapshotsKept)
	}
	if s.MaxBytes < 0 || s.MaxBytes > MaxSnapshotBytes {
		c.add(join(p, "max_bytes"), "%s must be between 1 and %s", s.MaxBytes, ByteSize(MaxSnapshotBytes))
	}
}

func validateDefaults(c *checker, d Defaults, p string) {
	validateHealth(c, d.Health, join(p, "health"))
	validateRestart(c, d.Restart, join(p, "restart"))
	validateUpdate(c, d.Update, join(p, "update"))
	validateResources(c, d.Resources, join(p, "resources"))
	validateSecurity(c, d.Security, join(p, "security"))
}

func validateHealth(c *checker, h Health, p string) {
	if !strings.HasPrefix(h.Path, "/") {
		c.add(join(p, "path"), "%q must start with /", h.Path)
	}
	positive(c, join(p, "interval"), h.Interval)
	positive(c, join(p, "timeout"), h.Timeout)
	atLeast(c, join(p, "failure_threshold"), h.FailureThreshold, 1)
	atLeast(c, join(p, "success_threshold"), h.SuccessThreshold, 1)
	nonNegative(c, join(p, "start_period"), h.StartPeriod)
	positive(c, join(p, "start_interval"), h.StartInterval)
}

func validateRestart(c *checker, r Restart, p string) {
	positive(c, join(p, "initial_backoff"), r.InitialBackoff)
	if positive(c, join(p, "max_backoff"), r.MaxBackoff) && r.InitialBackoff > 0 && r.MaxBackoff < r.InitialBackoff {
		c.add(join(p, "max_backoff"), "%s is shorter than initial_backoff %s", r.MaxBackoff, r.InitialBackoff)
	}
	if !(r.Multiplier >= 1) || math.IsInf(r.Multiplier, 0) {
		c.add(join(p, "multiplier"), "%v must be at least 1", r.Multiplier)
	}
	if !(r.Jitter >= 0 && r.Jitter < 1) {
		c.add(join(p, "jitter"), "%v must be at least 0 and less than 1", r.Jitter)
	}
	positive(c, join(p, "reset_after"), r.ResetAfter)
	atLeast(c, join(p, "max_restarts"), r.MaxRestarts, 0)
	positive(c, join(p, "window"), r.Window)
	positive(c, join(p, "stop_timeout"), r.StopTimeout)
	atLeast(c, join(p, "alert_after"), r.AlertAfter, 0)
}

func validateUpdate(c *checker, u Update, p string) {
	deadline := positive(c, join(p, "healthy_deadline"), u.HealthyDeadline)
	if nonNegative(c, join(p, "min_healthy_time"), u.MinHealthyTime) && deadline && u.MinHealthyTime >= u.HealthyDeadline {
		c.add(join(p, "min_healthy_time"), "%s must be shorter than healthy_deadline %s, or no swap can succeed", u.MinHealthyTime, u.HealthyDeadline)
	}
	nonNegative(c, join(p, "drain_timeout"), u.DrainTimeout)
	nonNegative(c, join(p, "rollback_window"), u.RollbackWindow)
	nonNegative(c, join(p, "keep_previous"), u.KeepPrevious)
	positive(c, join(p, "check_interval"), u.CheckInterval)
}

func validateResources(c *checker, r Resources, p string) {
	switch {
	case !(r.CPUs > 0) || math.IsInf(r.CPUs, 0):
		c.add(join(p, "cpus"), "%v must be greater than 0", r.CPUs)
	case r.CPUs < MinCPUs:
		// Below this Docker refuses the limit, and rounding to 0 nano-CPUs would mean no limit.
		c.add(join(p, "cpus"), "%v is below Docker's minimum of %v", r.CPUs, MinCPUs)
	}
	if r.Memory < MinMemory {
		c.add(join(p, "memory"), "%s is below Docker's minimum of %s", r.Memory, ByteSize(MinMemory))
	}
	if r.Pids < 1 {
		c.add(join(p, "pids"), "%d must be at least 1", r.Pids)
	}
}

func validateSecurity(c *checker, s Security, p string) {
	for i, cp := range s.CapDrop {
		if !capRE.MatchString(cp) {
			c.add(index(join(p, "cap_drop"), i), "%q is not a capability name (uppercase, like ALL or NET_RAW)", cp)
		}
	}
	seen := map[string]bool{}
	for i, t := range s.Tmpfs {
		key := index(join(p, "tmpfs"), i)
		if !absPath(c, key, t) {
			continue
		}
		switch clean := path.Clean(t); {
		case clean == "/":
			c.add(key, "cannot mount a tmpfs over /")
		case seen[clean]:
			c.add(key, "%q is listed twice", t)
		default:
			seen[clean] = true
		}
	}
}

func validateAgent(c *checker, a Agent, p string) {
	if !nameRE.MatchString(a.ID) {
		c.add(join(p, "id"), "%q must match ^[a-z0-9][a-z0-9-]{0,62}$", a.ID)
	}
	if a.DataDir == "" {
		c.add(join(p, "data_dir"), "is required")
	}
	if a.DockerHost != "" {
		if msg := checkDockerHost(a.DockerHost); msg != "" {
			c.add(join(p, "docker_host"), "%s", msg)
		}
	}
	switch {
	case a.Network == "":
		c.add(join(p, "network"), "is required")
	case a.Network == "host" || a.Network == "none" || a.Network == "bridge":
		c.add(join(p, "network"), "%q is a predefined Docker network; challenges need a user-defined bridge network", a.Network)
	case !networkRE.MatchString(a.Network):
		c.add(join(p, "network"), "%q is not a valid network name", a.Network)
	}
	oneOf(c, join(p, "reach"), a.Reach, ReachPublished, ReachNetwork)
	oneOf(c, join(p, "backend"), a.Backend, BackendDocker, BackendSwarm)
	apiHost, apiOK := listenAddr(c, join(join(p, "api"), "listen"), a.API.Listen)
	// BERTH_TOKEN is the other way to give the token (it never sits in a file).
	if apiOK && a.API.TokenFile == "" && os.Getenv("BERTH_TOKEN") == "" && !isLoopback(apiHost) {
		c.add(join(join(p, "api"), "token_file"), "a token is required when api.listen is not loopback (%s)", a.API.Listen)
	}
	listenAddr(c, join(join(p, "proxy"), "listen"), a.Proxy.Listen)
	for i, m := range a.Proxy.RetryMethods {
		if !httpMethodRE.MatchString(m) {
			c.add(index(join(join(p, "proxy"), "retry_methods"), i), "%q is not an HTTP method (uppercase, like GET)", m)
		}
	}
	positive(c, join(join(p, "checkpoint"), "interval"), a.Checkpoint.Interval)
	atLeast(c, join(join(p, "checkpoint"), "keep"), a.Checkpoint.Keep, 1)
	oneOf(c, join(p, "shutdown"), a.Shutdown, ShutdownLeave, ShutdownStop)
	positive(c, join(p, "orphan_grace"), a.OrphanGrace)
	for i, d := range a.ChallengeDirs {
		if d == "" {
			c.add(index(join(p, "challenge_dirs"), i), "must not be empty")
		}
	}
	if u := a.Alerts.WebhookURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			c.add(join(join(p, "alerts"), "webhook_url"), "%q must be an http:// or https:// URL", u)
		}
	}
	nonNegative(c, join(join(p, "alerts"), "min_interval"), a.Alerts.MinInterval)
	oneOf(c, join(join(p, "alerts"), "format"), a.Alerts.Format, AlertFormatJSON, AlertFormatSlack, AlertFormatDiscord)
	oneOf(c, join(join(p, "log"), "level"), a.Log.Level, logLevels...)
	oneOf(c, join(join(p, "log"), "format"), a.Log.Format, LogFormatJSON, LogFormatConsole)
	if mc := a.Policy.MaxCPUs; !(mc > 0) || math.IsInf(mc, 0) {
		c.add(join(join(p, "policy"), "max_cpus"), "%v must be greater than 0", mc)
	} else if mc < MinCPUs {
		c.add(join(join(p, "policy"), "max_cpus"), "%v is below Docker's minimum of %v", mc, MinCPUs)
	}
	if a.Policy.MaxMemory < MinMemory {
		c.add(join(join(p, "policy"), "max_memory"), "%s is below Docker's minimum of %s", a.Policy.MaxMemory, ByteSize(MinMemory))
	}
	if a.Policy.MaxPids < 1 {
		c.add(join(join(p, "policy"), "max_pids"), "%d must be at least 1", a.Policy.MaxPids)
	}
	for i, img := range a.Policy.AllowedImages {
		if msg := checkImagePrefix(img); msg != "" {
			c.add(index(join(join(p, "policy"), "allowed_images"), i), "%s", msg)
		}
	}
}

func checkDockerHost(h string) string {
	scheme, rest, ok := strings.Cut(h, "://")
	if !ok || rest == "" {
		return fmt.Sprintf("%q must look like unix:///var/run/docker.sock or tcp://host:2376", h)
	}
	switch scheme {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return fmt.Sprintf("%q: the socket path must be absolute", h)
		}
	case "tcp", "http", "https", "ssh", "npipe":
	default:
		return fmt.Sprintf("%q has unsupported scheme %q (unix, tcp, npipe, ssh)", h, scheme)
	}
	return ""
}

// listenAddr checks a host:port listen address; port 0 (any free port) is allowed.
func listenAddr(c *checker, key, addr string) (host string, ok bool) {
	if addr == "" {
		c.add(key, "is required (host:port)")
		return "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(key, "%q is not host:port", addr)
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.add(key, "%q has an invalid port", addr)
		return "", false
	}
	return host, true
}

// isLoopback treats an empty host as every interface, hence not loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func oneOf(c *checker, key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		c.add(key, "%q must be one of %s", v, strings.Join(allowed, ", "))
	}
}

func positive(c *checker, key string, d time.Duration) bool {
	if d <= 0 {
		c.add(key, "%s must be greater than 0", d)
		return false
	}
	return true
}

func nonNegative(c *checker, key string, d time.Duration) bool {
	if d < 0 {
		c.add(key, "%s must not be negative", d)
		return false
	}
	return true
}

func atLeast(c *checker, key string, n, min int) {
	if n < min {
		c.add(key, "%d must be at least %d", n, min)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
