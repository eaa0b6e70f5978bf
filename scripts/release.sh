#!/usr/bin/env bash
# Builds static release binaries of berth into dist/:
#   dist/berth-<version>-linux-amd64, dist/berth-<version>-linux-arm64, dist/SHA256SUMS
# The version is `git describe --tags --always --dirty` (override with VERSION=...)
# and is what `berth version` and GET /v1/health report.
# Check a download with: (cd dist && sha256sum -c SHA256SUMS)
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty)}
platforms=${PLATFORMS:-"linux/amd64 linux/arm64"}

rm -rf dist
mkdir -p dist
for p in $platforms; do
  os=${p%/*}
  arch=${p#*/}
  out="dist/berth-$version-$os-$arch"
  echo "building $out"
  # -buildvcs=auto: record the VCS revision (berth version) even where
  # GOFLAGS turns it off, and still build outside a git checkout.
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=auto \
    -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/berth
done
(cd dist && sha256sum berth-* > SHA256SUMS)
cat dist/SHA256SUMS
