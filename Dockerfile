# berth: a static binary on an empty base image.
#
#   docker build -t berth:1.2.3 --build-arg VERSION=1.2.3 .
#
# GO_IMAGE may name a mirror of the golang image. Hosts that cannot pull
# base images build the binary locally and use Dockerfile.local instead
# (deploy/README.md).

ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/berth ./cmd/berth
# An empty data dir owned by the runtime user: a fresh named volume mounted
# there takes its owner, so berth can write without root.
WORKDIR /out/data

FROM scratch
# For the alert webhook over https; image pulls are done by the engine.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/berth /berth
COPY --from=build --chown=65532:65532 /out/data /var/lib/berth
# Numeric, so no /etc/passwd is needed. Docker socket access comes from the
# socket's group: docker run --group-add <gid> (group_add in compose).
USER 65532:65532
EXPOSE 7070 7080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/berth", "healthcheck"]
ENTRYPOINT ["/berth"]
CMD ["run", "--config", "/etc/berth/berth.yaml"]
