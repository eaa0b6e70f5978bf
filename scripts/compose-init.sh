#!/usr/bin/env bash
# Prepares the docker-compose.yml deployment, after which `docker compose up -d`,
# `docker compose logs` and `docker compose down` need nothing exported by hand:
#   - .env with DOCKER_GID, the group owning the Docker socket (an existing .env
#     is kept; --force rewrites it);
#   - secrets/berth_token, a random API token, mode 0600 and owned by uid 65532
#     (berth's user in its image) when run as root; an existing token is kept.
# With --build-local it also builds the images without pulling anything:
# berth:latest from a host-built binary (Dockerfile.local) and the demo
# challenge berth-demo/echo:1.0.0 that configs/compose.yaml runs.
set -euo pipefail
cd "$(dirname "$0")/.."

force=false build=false
for arg in "$@"; do
  case $arg in
    --force) force=true ;;
    --build-local) build=true ;;
    *) echo "usage: scripts/compose-init.sh [--force] [--build-local]" >&2; exit 2 ;;
  esac
done

socket=${DOCKER_SOCKET:-/var/run/docker.sock}
if [ ! -S "$socket" ]; then
  echo "compose-init: no Docker socket at $socket (set DOCKER_SOCKET)" >&2
  exit 1
fi
gid=$(stat -c %g "$socket")

if [ -e .env ] && ! $force; then
  echo ".env exists, kept (--force rewrites it)"
  grep -q '^DOCKER_GID=' .env || echo "compose-init: .env has no DOCKER_GID; add DOCKER_GID=$gid" >&2
else
  sed "s/^DOCKER_GID=.*/DOCKER_GID=$gid/" .env.example > .env
  [ "$socket" = /var/run/docker.sock ] || echo "DOCKER_SOCKET=$socket" >> .env
  echo "wrote .env (DOCKER_GID=$gid, the group of $socket)"
fi

token=secrets/berth_token
install -d -m 0700 secrets
if [ -s "$token" ]; then
  echo "$token exists, kept"
else
  (umask 077 && head -c 32 /dev/urandom | base64 > "$token")
  echo "wrote $token (random API token)"
fi
chmod 0600 "$token"
# compose mounts the file as is: berth (uid 65532) must own it to read it at 0600.
if [ "$(id -u)" = 0 ]; then
  chown 65532:65532 "$token"
else
  # Without root, let the socket's group (which berth's container has) read it.
  chgrp "$gid" "$token" && chmod 0640 "$token" ||
    echo "compose-init: run as root, or make $token readable by uid 65532" >&2
fi

# Quiet when it works (no legacy-builder notices); the whole output when not.
quiet_build() {
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "compose-init: docker build $* failed (output above)" >&2
    exit 1
  fi
}

if $build; then
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
  echo "building berth:latest ($version) with Dockerfile.local"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$stage/berth" ./cmd/berth
  cp /etc/ssl/certs/ca-certificates.crt "$stage/"
  mkdir "$stage/data"
  quiet_build -f Dockerfile.local -t berth:latest "$stage"
  echo "building berth-demo/echo:1.0.0"
  mkdir "$stage/echo"
  CGO_ENABLED=0 go build -o "$stage/echo/testchallenge" ./integration/testchallenge
  printf 'FROM scratch\nCOPY testchallenge /testchallenge\nENV VERSION=1.0.0\nEXPOSE 8080\nENTRYPOINT ["/testchallenge"]\n' > "$stage/echo/Dockerfile"
  quiet_build -t berth-demo/echo:1.0.0 "$stage/echo"
fi
echo "next: docker compose up -d   (docker-compose up -d with compose v1)"
