#!/usr/bin/env bash
# Crash-safety chaos run against the real engine: CHAOS_RUNS iterations
# (default 200) of random swaps, rollbacks, container kills and reloads, each
# ending in a SIGKILL of berth and a restart, then the invariant checks.
# CHAOS_SEED replays a run's random choices; CHAOS_LOG_DIR keeps berth's logs.
# c3 runs with a warm standby; CHAOS_STANDBY names another, or "none".
# Extra arguments go to `go test` (e.g. -race).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh
runs=${CHAOS_RUNS:-200}
# About 15 s per iteration at most, plus building and the final checks.
timeout=$(( runs * 20 + 600 ))s
CHAOS_RUNS=$runs exec go test -tags chaos -run '^TestChaos$' -count=1 -timeout "$timeout" "$@" ./integration/ -v
