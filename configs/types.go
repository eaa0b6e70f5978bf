package configs

import (
	"maps"
	"runtime"
	"slices"
	"time"
)

// Config is a whole berth configuration file after defaults were applied.
type Config struct {
	Agent      Agent       `yaml:"agent" json:"agent"`
	Defaults   Defaults    `yaml:"defaults" json:"defaults"`
	Challenges []Challenge `yaml:"challenges" json:"challenges"`
	Path       string      `yaml:"-" json:"path,omitempty"` // file it was loaded from
}

// Agent holds the settings of the berth process itself.
type Agent struct {
	ID         string `yaml:"id" json:"id"`
	DataDir    string `yaml:"data_dir" json:"data_dir"`
	DockerHost string `yaml:"docker_host" json:"docker_host"`
	Network    string `yaml:"network" json:"network"`
	Reach      string `yaml:"reach" json:"reach"` // ReachPublished or ReachNetwork
	// Backend runs challenges as containers on one engine (BackendDocker)
	// or as services of the Swarm the engine manages (BackendSwarm).
	Backend       string           `yaml:"backend" json:"backend"`
	API           APIConfig        `yaml:"api" json:"api"`
	Proxy         ProxyConfig      `yaml:"proxy" json:"proxy"`
	Checkpoint    CheckpointConfig `yaml:"checkpoint" json:"checkpoint"`
	Shutdown      string           `yaml:"shutdown" json:"shutdown"` // ShutdownLeave or ShutdownStop
	OrphanGrace   time.Duration    `yaml:"orphan_grace" json:"orphan_grace"`
	ChallengeDirs []string         `yaml:"challenge_dirs" json:"challenge_dirs"`
	Alerts        AlertsConfig     `yaml:"alerts" json:"alerts"`
	Log           LogConfig        `yaml:"log" json:"log"`
	Policy        PolicyConfig     `yaml:"policy" json:"policy"`
}

// APIConfig configures the admin API listener.
type APIConfig struct {
	Listen    string `yaml:"listen" json:"listen"`
	TokenFile string `yaml:"token_file" json:"token_file"`
}

// ProxyConfig configures the stable-endpoint reverse proxy.
type ProxyConfig struct {
	Listen string `yaml:"listen" json:"listen"`
	// RetryMethods are retried once on another container when the first
	// failed before any response byte reached the client.
	RetryMethods []string `yaml:"retry_methods" json:"retry_methods"`
}

// CheckpointConfig configures periodic store checkpoints.
type CheckpointConfig struct {
	Interval time.Duration `yaml:"interval" json:"interval"`
	Keep     int           `yaml:"keep" json:"keep"`
}

// AlertsConfig configures the alert webhook.
type AlertsConfig struct {
	WebhookURL  string        `yaml:"webhook_url" json:"webhook_url"`
	MinInterval time.Duration `yaml:"min_interval" json:"min_interval"`
	Format      string        `yaml:"format" json:"format"` // json, slack or discord: the body's shape
}

// LogConfig configures berth's own log output.
type LogConfig struct {
	Level  string `yaml:"level" json:"level"`
	Format string `yaml:"format" json:"format"` // "json" or "console"
}

// PolicyConfig restricts what challenges may run.
type PolicyConfig struct {
	// AllowedImages are repository prefixes matched on path boundaries; empty admits any image.
	AllowedImages []string `yaml:"allowed_images" json:"allowed_images"`
	// MaxCPUs, MaxMemory and MaxPids bound every challenge's resources,
	// whether it comes from the config, challenge_dirs or the admin API.
	MaxCPUs   float64  `yaml:"max_cpus" json:"max_cpus"`
	MaxMemory ByteSize `yaml:"max_memory" json:"max_memory"`
	MaxPids   int64    `yaml:"max_pids" json:"max_pids"`
}

// Defaults are applied to every challenge; each challenge may override any field.
type Defaults struct {
	Health    Health    `yaml:"health" json:"health"`
	Restart   Restart   `yaml:"restart" json:"restart"`
	Update    Update    `yaml:"update" json:"update"`
	Resources Resources `yaml:"resources" json:"resources"`
	Security  Security  `yaml:"security" json:"security"`
}

// Health configures HTTP health probing.
type Health struct {
	Path             string        `yaml:"path" json:"path"`
	Interval         time.Duration `yaml:"interval" json:"interval"`
	Timeout          time.Duration `yaml:"timeout" json:"timeout"`
	FailureThreshold int           `yaml:"failure_threshold" json:"failure_threshold"`
	SuccessThreshold int           `yaml:"success_threshold" json:"success_threshold"`
	StartPeriod      time.Duration `yaml:"start_period" json:"start_period"`
	StartInterval    time.Duration `yaml:"start_interval" json:"start_interval"`
}

// Restart configures the restart backoff and give-up policy.
type Restart struct {
	InitialBackoff time.Duration `yaml:"initial_backoff" json:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff" json:"max_backoff"`
	Multiplier     float64       `yaml:"multiplier" json:"multiplier"`
	Jitter         float64       `yaml:"jitter" json:"jitter"`
	ResetAfter     time.Duration `yaml:"reset_after" json:"reset_after"`
	OnUnhealthy    bool          `yaml:"on_unhealthy" json:"on_unhealthy"`
	MaxRestarts    int           `yaml:"max_restarts" json:"max_restarts"` // 0 = never give up
	Window         time.Duration `yaml:"window" json:"window"`
	StopTimeout    time.Duration `yaml:"stop_timeout" json:"stop_timeout"`
	// AlertAfter restarts within Window raise a crash_loop alert; 0 = never.
	// It steers only the alerter, so SpecHash leaves it out: changing it
	// swaps nothing, and adding it relabelled no running container.
	AlertAfter int `yaml:"alert_after" json:"alert_after,omitempty"`
}

// Update configures blue-green swaps and auto-updates.
type Update struct {
	HealthyDeadline time.Duration `yaml:"healthy_deadline" json:"healthy_deadline"`
	MinHealthyTime  time.Duration `yaml:"min_healthy_time" json:"min_healthy_time"`
	DrainTimeout    time.Duration `yaml:"drain_timeout" json:"drain_timeout"`
	AutoRollback    bool          `yaml:"auto_rollback" json:"auto_rollback"`
	RollbackWindow  time.Duration `yaml:"rollback_window" json:"rollback_window"`
	KeepPrevious    time.Duration `yaml:"keep_previous" json:"keep_previous"`
	Auto            AutoUpdate    `yaml:"auto" json:"auto"`
	CheckInterval   time.Duration `yaml:"check_interval" json:"check_interval"`
	// PruneImages removes an old version's image once its kept instance is
	// gone; nil means on. It steers only cleanup, so SpecHash leaves it out.
	PruneImages *bool `yaml:"prune_images" json:"prune_images,omitempty"`
}

// Prunes says whether old images are removed after keep_previous.
func (u Update) Prunes() bool { return u.PruneImages == nil || *u.PruneImages }

// Resources are container limits.
type Resources struct {
	CPUs   float64  `yaml:"cpus" json:"cpus"`
	Memory ByteSize `yaml:"memory" json:"memory"`
	Pids   int64    `yaml:"pids" json:"pids"`
}

// Security is container hardening.
type Security struct {
	ReadOnly        bool     `yaml:"read_only" json:"read_only"`
	CapDrop         []string `yaml:"cap_drop" json:"cap_drop"`
	NoNewPrivileges bool     `yaml:"no_new_privileges" json:"no_new_privileges"`
	Tmpfs           []string `yaml:"tmpfs" json:"tmpfs"` // absolute mount points
}

// Challenge is the desired spec of one supervised challenge.
type Challenge struct {
	Name       string            `yaml:"name" json:"name"`
	Image      string            `yaml:"image" json:"image"`     // repository without tag or digest
	Version    string            `yaml:"version" json:"version"` // exact tag or semver constraint
	Digest     string            `yaml:"digest" json:"digest"`   // optional sha256:… pin
	PullPolicy string            `yaml:"pull_policy" json:"pull_policy"`
	Port       int               `yaml:"port" json:"port"`
	Env        map[string]string `yaml:"env" json:"env"`
	// SecretEnvFiles maps env names to files whose contents become the value; never logged.
	SecretEnvFiles map[string]string `yaml:"secret_env_files" json:"secret_env_files"`
	Volumes        []Volume          `yaml:"volumes" json:"volumes"`
	State          State             `yaml:"state" json:"state"`
	Health         Health            `yaml:"health" json:"health"`
	Restart        Restart           `yaml:"restart" json:"restart"`
	Update         Update            `yaml:"update" json:"update"`
	Resources      Resources         `yaml:"resources" json:"resources"`
	Security       Security          `yaml:"security" json:"security"`
	// Standby keeps a second healthy container of the same version ready to
	// take over at once. It adds a container, not a change to one, so
	// SpecHash leaves it out.
	Standby bool `yaml:"standby" json:"standby,omitempty"`
	// Replicas and Placement apply on the swarm backend only. Zero
	// replicas means one; both are left out of the JSON (and so of
	// SpecHash) at their defaults, so adding them relabelled nothing.
	Replicas  int      `yaml:"replicas" json:"replicas,omitempty"`
	Placement []string `yaml:"placement" json:"placement,omitempty"` // Swarm constraints, e.g. node.labels.zone==a
}

// Volume is a named Docker volume mounted into the challenge.
type Volume struct {
	Name     string `yaml:"name" json:"name"`
	Target   string `yaml:"target" json:"target"`
	ReadOnly bool   `yaml:"read_only" json:"read_only"`
}

// State configures the challenge's state: handed over during swaps, and
// with snapshot_interval kept in snapshots that survive crashes.
type State struct {
	Export      string `yaml:"export" json:"export"` // GET path on the old container
	Import      string `yaml:"import" json:"import"` // POST path on the new container
	AcrossMajor bool   `yaml:"across_major" json:"across_major"`
	// The keys below steer only berth, not the container, so SpecHash leaves
	// them out: changing them recreates nothing.
	//
	// SnapshotInterval > 0 exports the state that often while healthy.
	SnapshotInterval time.Duration `yaml:"snapshot_interval" json:"snapshot_interval,omitempty"`
	// Keep is how many snapshots are kept; 0 means DefaultSnapshotsKept.
	Keep int `yaml:"keep" json:"keep,omitempty"`
	// Restore imports the newest usable snapshot into every new container
	// before it serves; nil means on.
	Restore *bool `yaml:"restore" json:"restore,omitempty"`
	// MaxBytes caps one export; 0 means MaxSnapshotBytes.
	MaxBytes ByteSize `yaml:"max_bytes" json:"max_bytes,omitempty"`
}

// Snapshot limits: the store holds at most MaxSnapshotBytes per snapshot
// and MaxSnapshotsKept per challenge.
const (
	DefaultSnapshotsKept = 5
	MaxSnapshotsKept     = 100
	MaxSnapshotBytes     = 16 * MiB
	MinSnapshotInterval  = 100 * time.Millisecond
)

// Restores says whether new containers get the newest snapshot: on unless
// turned off, and only with an import path.
func (s State) Restores() bool { return s.Import != "" && (s.Restore == nil || *s.Restore) }

// Kept is how many snapshots are kept.
func (s State) Kept() int {
	if s.Keep <= 0 {
		return DefaultSnapshotsKept
	}
	return s.Keep
}

// ExportLimit caps one export in bytes.
func (s State) ExportLimit() int64 {
	if s.MaxBytes <= 0 || s.MaxBytes > MaxSnapshotBytes {
		return int64(MaxSnapshotBytes)
	}
	return int64(s.MaxBytes)
}

// Enumerated values.
const (
	ReachPublished = "published"
	ReachNetwork   = "network"

	BackendDocker = "docker"
	BackendSwarm  = "swarm"

	ShutdownLeave = "leave"
	ShutdownStop  = "stop"

	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"

	LogFormatJSON    = "json"
	LogFormatConsole = "console"

	AlertFormatJSON    = "json"
	AlertFormatSlack   = "slack"
	AlertFormatDiscord = "discord"
)

// Built-in challenge defaults that live outside Defaults.
const (
	DefaultPort       = 8080
	DefaultPullPolicy = PullMissing
)

// Built-in policy maxima besides the host's CPU count and memory.
const (
	DefaultMaxPids = 4096
	// fallbackMaxMemory applies where the host's memory cannot be read.
	fallbackMaxMemory = 8 * GiB
)

// BuiltinPolicy is agent.policy when the file does not set it: any image, at
// most the host's CPUs and memory and 4096 processes per challenge.
func BuiltinPolicy() PolicyConfig {
	mem := hostMemory()
	if mem < MinMemory {
		mem = fallbackMaxMemory
	}
	return PolicyConfig{MaxCPUs: float64(max(runtime.NumCPU(), 1)), MaxMemory: mem, MaxPids: DefaultMaxPids}
}

// BuiltinAgent returns the agent settings used when the file does not set them.
func BuiltinAgent() Agent {
	return Agent{
		ID:          "default",
		DataDir:     "./data",
		Network:     "berth",
		Reach:       ReachPublished,
		Backend:     BackendDocker,
		API:         APIConfig{Listen: "127.0.0.1:7070"},
		Proxy:       ProxyConfig{Listen: "127.0.0.1:7080", RetryMethods: []string{"GET", "HEAD", "OPTIONS"}},
		Checkpoint:  CheckpointConfig{Interval: 5 * time.Minute, Keep: 10},
		Shutdown:    ShutdownLeave,
		OrphanGrace: time.Minute,
		Alerts:      AlertsConfig{MinInterval: 10 * time.Minute, Format: AlertFormatJSON},
		Log:         LogConfig{Level: "info", Format: LogFormatJSON},
		Policy:      BuiltinPolicy(),
	}
}

// BuiltinDefaults returns the challenge defaults used when the file does not set them.
func BuiltinDefaults() Defaults {
	return Defaults{
		Health: Health{
			Path:             "/health",
			Interval:         5 * time.Second,
			Timeout:          2 * time.Second,
			FailureThreshold: 3,
			SuccessThreshold: 1,
			StartPeriod:      60 * time.Second,
			StartInterval:    250 * time.Millisecond,
		},
		Restart: Restart{
			InitialBackoff: 200 * time.Millisecond,
			MaxBackoff:     5 * time.Minute,
			Multiplier:     2,
			Jitter:         0.2,
			ResetAfter:     10 * time.Minute,
			OnUnhealthy:    true,
			MaxRestarts:    0,
			Window:         time.Hour,
			StopTimeout:    10 * time.Second,
			AlertAfter:     3,
		},
		Update: Update{
			HealthyDeadline: 2 * time.Minute,
			MinHealthyTime:  10 * time.Second,
			DrainTimeout:    time.Hour,
			AutoRollback:    true,
			RollbackWindow:  5 * time.Minute,
			KeepPrevious:    time.Hour,
			Auto:            AutoOff,
			CheckInterval:   5 * time.Minute,
			PruneImages:     new(true),
		},
		Resources: Resources{CPUs: 1, Memory: 1 << 30, Pids: 512},
		Security: Security{
			ReadOnly:        true,
			CapDrop:         []string{"ALL"},
			NoNewPrivileges: true,
			Tmpfs:           []string{"/tmp"},
		},
	}
}

// Default returns a configuration made only of built-in values.
func Default() *Config {
	return &Config{Agent: BuiltinAgent(), Defaults: BuiltinDefaults()}
}

// NewChallenge returns a challenge spec pre-filled from d, ready to have a
// partial spec (YAML or JSON) decoded on top of it.
func (d Defaults) NewChallenge() Challenge {
	d = d.Clone()
	return Challenge{
		PullPolicy: DefaultPullPolicy,
		Port:       DefaultPort,
		Health:     d.Health,
		Restart:    d.Restart,
		Update:     d.Update,
		Resources:  d.Resources,
		Security:   d.Security,
	}
}

// Clone returns a deep copy.
func (d Defaults) Clone() Defaults {
	d.Security = d.Security.Clone()
	return d
}

// Clone returns a deep copy.
func (s Security) Clone() Security {
	s.CapDrop = slices.Clone(s.CapDrop)
	s.Tmpfs = slices.Clone(s.Tmpfs)
	return s
}

// Clone returns a deep copy, so the copy never shares maps or slices with c.
func (c Challenge) Clone() Challenge {
	c.Env = maps.Clone(c.Env)
	c.SecretEnvFiles = maps.Clone(c.SecretEnvFiles)
	c.Volumes = slices.Clone(c.Volumes)
	c.Placement = slices.Clone(c.Placement)
	c.Security = c.Security.Clone()
	return c
}

// Clone returns a deep copy.
func (a Agent) Clone() Agent {
	a.ChallengeDirs = slices.Clone(a.ChallengeDirs)
	a.Policy.AllowedImages = slices.Clone(a.Policy.AllowedImages)
	return a
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	out := *c
	out.Agent = c.Agent.Clone()
	out.Defaults = c.Defaults.Clone()
	out.Challenges = make([]Challenge, len(c.Challenges))
	for i, ch := range c.Challenges {
		out.Challenges[i] = ch.Clone()
	}
	return &out
}

// Challenge returns the challenge named name.
func (c *Config) Challenge(name string) (Challenge, bool) {
	for _, ch := range c.Challenges {
		if ch.Name == name {
			return ch, true
		}
	}
	return Challenge{}, false
}
