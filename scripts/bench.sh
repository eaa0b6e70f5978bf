#!/usr/bin/env bash
# Benchmarks berth against the tools validators would otherwise use (Docker's
# restart policy, HEALTHCHECK + an autoheal loop, stop-first recreation) on
# this machine, and writes bench/results.json and BENCHMARKS.md.
#
#   scripts/bench.sh                 # full run (scales 10,50,100,200; 60 s steady windows)
#   BENCH_QUICK=1 scripts/bench.sh   # quick run (< ~15 min on 2 cores)
#   BENCH_SCALES=10,50 scripts/bench.sh
#   BENCH_SWARM=only scripts/bench.sh   # only the Swarm backend rows (root; ~3 min)
#   BENCH_SWARM=0 scripts/bench.sh      # the full run without them
#
# The Swarm rows (swap failed requests, crash outage, recovery after a worker
# loss) run integration/swarm_bench_test.go on a two-node swarm: this engine
# and a second dockerd in a network namespace, both left as found. They are
# written to bench/swarm.json and bench/swarm.md, which a full run appends to
# BENCHMARKS.md.
#
# Builds berth, the harness and the images locally (no registry), and removes
# every container, network and image it made, and every berth it started,
# on exit, including failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-docker.sh

# swarm_rows runs the Swarm backend benchmark and prints its table.
swarm_rows() {
  if [ "$(id -u)" != 0 ]; then
    echo "swarm rows skipped: a second engine in a network namespace needs root" >&2
    return 0
  fi
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then
    echo "swarm rows skipped: the engine is already in a swarm" >&2
    return 0
  fi
  mkdir -p bench
  echo "swarm backend: two-node swarm benchmark"
  BERTH_SWARM_BENCH=1 BERTH_SWARM_BENCH_OUT="$PWD/bench/swarm.json" BERTH_SWARM_BENCH_MD="$PWD/bench/swarm.md" \
    go test -count=1 -timeout 20m -run '^TestSwarmBenchmark$' ./integration/
  cat bench/swarm.md
  if [ -f BENCHMARKS.md ] && [ "${BENCH_SWARM:-}" != only ]; then
    printf '\n' >> BENCHMARKS.md
    cat bench/swarm.md >> BENCHMARKS.md
  fi
}

if [ "${BENCH_SWARM:-}" = only ]; then
  swarm_rows
  exit 0
fi

run_id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
repo="berth-bench-$run_id/challenge"
hc_image="berth-bench-$run_id/challenge-hc:1.0.0"
label="io.berth.bench=$run_id"

cleanup() {
  set +e
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      kill -TERM "$pid" 2>/dev/null
    done < "$work/pids"
    sleep 1
    while read -r pid; do
      kill -KILL "$pid" 2>/dev/null
    done < "$work/pids"
  fi
  # Containers: the baselines carry the run label; berth's carry agent ids bb<run>-*.
  ids=$(docker ps -aq --filter "label=$label")
  ids="$ids $(docker ps -a --filter label=io.berth.agent --format '{{.ID}} {{.Label "io.berth.agent"}}' | awk -v p="bb$run_id-" 'index($2, p) == 1 {print $1}')"
  ids=$(echo $ids)
  [ -n "$ids" ] && docker rm -f -v $ids >/dev/null
  nets=$(docker network ls -q --filter "name=bb-$run_id-")
  [ -n "$nets" ] && docker network rm $nets >/dev/null
  vols=$(docker volume ls -q --filter "label=$label")
  [ -n "$vols" ] && docker volume rm $vols >/dev/null
  imgs=$(docker images -q "berth-bench-$run_id/*" | sort -u)
  [ -n "$imgs" ] && docker rmi -f $imgs >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench run $run_id, scratch dir $work"
echo "building berth, the harness, the test challenge and the probe"
go build -o "$work/berth" ./cmd/berth
go build -o "$work/harness" ./bench/harness
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/img/testchallenge" ./integration/testchallenge
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/img/probe" ./bench/probe

build_image() { # tag version [healthcheck]
  {
    echo "FROM scratch"
    echo "COPY testchallenge /testchallenge"
    [ -n "${3:-}" ] && echo "COPY probe /probe" && echo 'HEALTHCHECK CMD ["/probe","http://127.0.0.1:8080/health"]'
    echo "ENV VERSION=$2"
    echo "LABEL $label"
    echo "EXPOSE 8080/tcp"
    echo 'ENTRYPOINT ["/testchallenge"]'
  } > "$work/img/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$1" "$work/img" >/dev/null
}
echo "building images $repo:1.0.0, $repo:1.1.0 and $hc_image (FROM scratch)"
build_image "$repo:1.0.0" 1.0.0
build_image "$repo:1.1.0" 1.1.0
build_image "$hc_image" 1.0.0 hc

mkdir -p bench
"$work/harness" \
  -berth "$work/berth" -repo "$repo" -hc-image "$hc_image" \
  -run-id "$run_id" -work "$work" -clk-tck "$(getconf CLK_TCK)" \
  -out bench/results.json -md BENCHMARKS.md

if [ "${BENCH_SWARM:-1}" != 0 ]; then
  swarm_rows
fi
