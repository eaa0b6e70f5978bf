#!/usr/bin/env bash
# Runs berth supervising a demo challenge built locally (no registry needed).
# Two versions of the demo image are built, 1.0.0 (running) and 1.1.0. Try, in
# another shell:
#   curl -s http://127.0.0.1:7080/demo/version
#   curl -s http://127.0.0.1:7070/v1/challenges
#   go run ./cmd/berth swap demo 1.1.0 --wait --drain   # blue-green swap to 1.1.0
#   go run ./cmd/berth rollback demo --wait             # back to 1.0.0
#   docker kill berth-demo-demo-a                       # berth starts it again
# Ctrl-C stops berth; the challenge container keeps running (shutdown: leave).
# scripts/demo.sh clean removes the demo containers, network, images and data.
# scripts/demo.sh build only builds the two images (e.g. to try a systemd
# install with the demo challenge, deploy/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

repo=berth-demo/echo
versions="1.0.0 1.1.0"

if [ "${1:-}" = clean ]; then
  docker rm -f berth-demo-demo-a berth-demo-demo-b >/dev/null 2>&1 || true
  docker network rm berth >/dev/null 2>&1 || true
  for v in $versions; do docker rmi "$repo:$v" >/dev/null 2>&1 || true; done
  rm -rf configs/data-demo
  echo "demo removed"
  exit 0
fi

scripts/ensure-docker.sh

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

CGO_ENABLED=0 go build -o "$build/testchallenge" ./integration/testchallenge
for v in $versions; do
  echo "building the demo challenge image $repo:$v (FROM scratch, static Go binary)"
  cat > "$build/Dockerfile" <<DOCKERFILE
FROM scratch
COPY testchallenge /testchallenge
ENV VERSION=$v
EXPOSE 8080
ENTRYPOINT ["/testchallenge"]
DOCKERFILE
  # Quiet when it works; the whole build output when it does not.
  if ! out=$(DOCKER_BUILDKIT=0 docker build -t "$repo:$v" "$build" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "demo: building $repo:$v failed (output above)" >&2
    exit 1
  fi
done
if [ "${1:-}" = build ]; then
  echo "built $repo:${versions// /, $repo:}"
  exit 0
fi

go build -o "$build/berth" ./cmd/berth
echo "starting berth: stable endpoint http://127.0.0.1:7080/demo/, admin API http://127.0.0.1:7070"
# Not exec: the EXIT trap must still remove $build once berth stops. berth
# gets SIGINT from the terminal itself; a SIGTERM to this script is passed on.
"$build/berth" run --config configs/demo.yaml "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM
trap '' INT
status=0
wait "$pid" || status=$?
# wait returns early when a trapped signal arrives; wait for berth itself.
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || status=$?; done
exit "$status"
