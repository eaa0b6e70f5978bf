// Package configs defines berth's configuration: the types other packages code
// against, YAML loading with built-in defaults, and validation whose errors name
// the file, line and key.
//
// # Loading and merging
//
// [LoadAll] is the whole load that berth run, berth config validate and
// reloads share: the file, then the BERTH_* overrides, then the files in
// agent.challenge_dirs. The steps are exported on their own too.
//
// [Load] reads a file (at most 1 MiB) and [Parse] decodes it strictly: unknown
// keys, duplicate keys and values of the wrong type are errors, each carrying
// the line and dotted key (for example challenges[0].health.interval). Top-level
// keys starting with "x-" are ignored so they can hold YAML anchors that
// challenges reuse with merge keys (<<: *common); merged mappings layer field
// by field, like defaults do.
//
// Values are layered field by field: the built-in defaults (see
// [BuiltinDefaults] and [BuiltinAgent]), then the file's defaults section, then
// each challenge entry. A challenge that sets only health.path keeps every other
// health default. Lists and maps given in a layer replace the inherited value
// whole; they are never appended to and never shared between challenges.
//
// # Paths
//
// Relative paths in agent.data_dir, agent.challenge_dirs, agent.api.token_file
// and challenges[].secret_env_files are resolved against the directory of the
// file that holds them, so a config works the same whatever the working
// directory of the process. Specs arriving through the admin API cannot name
// host files at all: [Config.CheckAPIChallenge] refuses secret_env_files there.
//
// # Environment
//
// [ApplyEnv] lets non-empty environment variables override agent settings after
// loading (relative paths in them are taken as given, i.e. relative to the
// working directory):
//
//	BERTH_AGENT_ID        agent.id
//	BERTH_DATA_DIR        agent.data_dir
//	BERTH_DOCKER_HOST     agent.docker_host
//	BERTH_NETWORK         agent.network
//	BERTH_REACH           agent.reach
//	BERTH_BACKEND         agent.backend
//	BERTH_API_LISTEN      agent.api.listen
//	BERTH_API_TOKEN_FILE  agent.api.token_file
//	BERTH_PROXY_LISTEN    agent.proxy.listen
//	BERTH_LOG_LEVEL       agent.log.level
//	BERTH_LOG_FORMAT      agent.log.format
//
// # Refused settings
//
// Docker options that would weaken a challenge's isolation are refused by
// name wherever they appear, with the reason instead of "unknown key":
// privileged, cap_add, network_mode, host_network, pid, pid_mode, ipc,
// ipc_mode, uts, uts_mode, userns_mode, binds, bind, mounts, volumes_from,
// devices, device_cgroup_rules, security_opt and cgroup_parent. Volumes are
// named volumes only: a name that looks like a path, or any mention of
// docker.sock in a name or target, is refused. Resource limits cannot be
// switched off (pids >= 1, memory >= 6m, cpus >= 0.01).
//
// agent.policy.allowed_images prefixes match whole path components after
// normalising both sides (Docker Hub short names, index.docker.io, host case),
// so ghcr.io/org/app admits ghcr.io/org/app/x but not ghcr.io/org/application.
// agent.policy.max_cpus, max_memory and max_pids bound the resources of the
// defaults and of every challenge (default: the host's CPU count and memory,
// and 4096 processes). Specs from the admin API must also keep the defaults'
// hardening: they may tighten security but not relax it.
//
// # Errors
//
// Every loading and validation failure is returned as [Errors], a list of
// [FieldError] rendered one per line as "file:line: key: message". All problems
// are reported at once, not just the first.
//
// Validation is pure: it never touches the file system, Docker or a registry.
// Token and secret files are read by the code that uses them.
package configs
