# syntax=docker/dockerfile:1
#
# rpcmesh daemon image: a Rust builder stage, then a small Debian runtime with only the binary,
# run as an unprivileged user. Build (the commit is passed in: .git is not in the context):
#   docker build --build-arg RPCMESH_GIT_COMMIT=$(git rev-parse --short HEAD) -t rpcmesh .
# Usage: docs/operator-guide.md, "Run in a container".

# The workspace's rust-version (Cargo.toml); bookworm matches the runtime's glibc.
ARG RUST_VERSION=1.94
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Read by cli/build.rs for `rpcmesh --version`; "unknown" when not given.
ARG RPCMESH_GIT_COMMIT=
ENV RPCMESH_GIT_COMMIT=${RPCMESH_GIT_COMMIT} \
    CARGO_INCREMENTAL=0
# Cache mounts keep the registry and target between builds; the binary is copied out of the
# cached target, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rpcmesh-cli \
    && install -m 0755 target/release/rpcmesh /usr/local/bin/rpcmesh

FROM debian:bookworm-slim
# The same user and home as the systemd unit (deploy/systemd/rpcmesh.service). A fixed uid, so
# a bind-mounted home can be chowned to it from the host.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/rpcmesh --shell /usr/sbin/nologin rpcmesh \
    && install -d -o rpcmesh -g rpcmesh -m 0700 /var/lib/rpcmesh
COPY --from=builder /usr/local/bin/rpcmesh /usr/local/bin/rpcmesh
USER rpcmesh:rpcmesh
# The home (config.toml, identity.key, store): keep it on a volume, the identity is the
# provider's PeerId. `--home`'s default in the image.
ENV RPCMESH_HOME=/var/lib/rpcmesh
VOLUME ["/var/lib/rpcmesh"]
# 8545 gateway (JSON-RPC over HTTP and WebSocket), 8546 admin API (/metrics, /health, /ready),
# 4001 libp2p over TCP and QUIC. The gateway and admin API bind 127.0.0.1 by default: publish
# them with --rpc-addr 0.0.0.0:8545 / --admin-addr 0.0.0.0:8546 (the admin API then needs its
# token for everything but /health and /metrics).
EXPOSE 8545/tcp 8546/tcp 4001/tcp 4001/udp
# SIGTERM stops the daemon cleanly (store flushed, up to 10 s for in-flight work): give
# `docker stop` more than that with --time 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rpcmesh"]
CMD ["run"]
