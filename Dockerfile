# syntax=docker/dockerfile:1
#
# origin-discovery container image: a release build on Debian 12 (glibc), run from
# distroless `cc-debian12:nonroot` (glibc + libgcc, no shell, no package manager).
# TLS to the apiserver is rustls, so no OpenSSL is needed at run time.
#
#   docker build -t origin-discovery:0.1.0 .
#   docker run --rm origin-discovery:0.1.0 --help
#
# The Helm chart runs it as UID/GID 65532 (distroless `nonroot`) with a read-only root
# filesystem; keep USER below in step with the chart's securityContext.
# (No Docker engine exists on the dev machines: this file is not built in CI there.)

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin origin-discovery \
 && install -D -m 0755 target/release/origin-discovery /out/origin-discovery

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/origin-discovery /usr/local/bin/origin-discovery
USER 65532:65532
# 8080: public API (HTTP, WebSocket, SSE). 9090: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/origin-discovery"]
CMD ["run"]
