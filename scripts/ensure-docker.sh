#!/usr/bin/env bash
# Makes sure a Docker Engine answers; starts dockerd (Debian's docker.io) when
# running as root on a machine where it is installed but stopped.
set -euo pipefail

ping() { timeout 10 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }

ping && exit 0

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing docker.io" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
  else
    echo "Docker is not reachable and dockerd is not installed; install Docker and start it." >&2
    exit 1
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "Docker is not reachable; start it (sudo systemctl start docker, or sudo dockerd &)." >&2
  exit 1
fi
echo "starting dockerd" >&2
(systemctl start docker 2>/dev/null || true)
if ! ping; then
  nohup dockerd >/tmp/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  ping && exit 0
  sleep 1
done
echo "dockerd did not come up; see /tmp/dockerd.log" >&2
exit 1
