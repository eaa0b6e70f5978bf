#!/usr/bin/env bash
# Runs berth supervising a demo challenge built locally (no registry needed).
# Try, in another shell:
#   curl -s http://127.0.0.1:7080/demo/version
#   curl -s http://127.0.0.1:7070/v1/challenges
#   docker kill berth-demo-demo-a     # berth starts it again
# Ctrl-C stops berth; the challenge container keeps running (shutdown: leave).
# scripts/demo.sh clean removes the demo container, network, image and data.
set -euo pipefail
cd "$(dirname "$0")/.."

image=berth-demo/echo:1.0.0

if [ "${1:-}" = clean ]; then
  docker rm -f berth-demo-demo-a >/dev/null 2>&1 || true
  docker network rm berth >/dev/null 2>&1 || true
  docker rmi "$image" >/dev/null 2>&1 || true
  rm -rf configs/data-demo
  echo "demo removed"
  exit 0
fi

scripts/ensure-docker.sh

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "building the demo challenge image $image (FROM scratch, static Go binary)"
CGO_ENABLED=0 go build -o "$build/testchallenge" ./integration/testchallenge
cat > "$build/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY testchallenge /testchallenge
ENV VERSION=1.0.0
EXPOSE 8080
ENTRYPOINT ["/testchallenge"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$build" >/dev/null 2>&1

go build -o "$build/berth" ./cmd/berth
echo "starting berth: stable endpoint http://127.0.0.1:7080/demo/, admin API http://127.0.0.1:7070"
exec "$build/berth" run --config configs/demo.yaml "$@"
