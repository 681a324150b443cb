# syntax=docker/dockerfile:1
#
# The cairn container image: one static binary (no cgo, no libc), CA
# certificates for TLS backends, a non-root user, nothing else: no shell, no
# package manager. The Helm chart in charts/cairn runs it with a read-only
# root filesystem and emptyDirs at /tmp, /cache and /home/cairn.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t cairn .
#
# Without a Docker engine, see docs/kubernetes.md (ko, or go build and any
# OCI builder). internal/charttest's TestImageRecipe runs this file's go
# build line and checks that the result is static.

ARG GO_VERSION=1.26

# Build on the builder's own platform and cross-compile (no emulation).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change reuses the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/cairn ./cmd/cairn
# The user 65532 ("nonroot" in distroless images) with a home for
# ~/.ssh/config; /tmp and /cache exist for runs without the chart's emptyDirs.
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home \
 && echo 'cairn:x:65532:65532:cairn:/home/cairn:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'cairn:x:65532:' > /rootfs/etc/group \
 && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs/ /
# Owned by the user (COPY would make them root's).
COPY --from=build --chown=65532:65532 /rootfs/home/ /home/cairn/
COPY --from=build --chown=65532:65532 /rootfs/home/ /cache/
COPY --from=build /out/cairn /usr/local/bin/cairn
USER 65532:65532
ENV HOME=/home/cairn RESTIC_CACHE_DIR=/cache TMPDIR=/tmp
WORKDIR /home/cairn
ENTRYPOINT ["/usr/local/bin/cairn"]
CMD ["--help"]
