# syntax=docker/dockerfile:1
#
# Image for nfs-subdir-csi, used by both the controller Deployment and the node
# DaemonSet (deploy/). Build from the repository root:
#
#   docker build -t ghcr.io/nfs-subdir-csi/nfs-subdir-csi:0.1.0 .
#
# (ghcr.io/nfs-subdir-csi is a placeholder registry: push wherever you pull
# from and set the image in deploy/ or the chart's image.repository.)
# No container engine exists on the project's build machine, so this file is not
# built in CI; see deploy/README.md.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# proto/csi.proto is compiled in build.rs by protox (pure Rust): no protoc needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src

# The cache mounts keep the registry and target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/nfs-subdir-csi /out/nfs-subdir-csi

# ---- runtime ----------------------------------------------------------------
# distroless/cc: glibc + libgcc and CA certificates, no shell, no package
# manager. Debian 12 based, the same glibc as the bookworm builder. No
# nfs-common: the node plugin mounts NFS with mount(2) itself, and the kernel
# does the NFS protocol work. Runs as root: mount(2) needs CAP_SYS_ADMIN, which
# the manifests grant (privileged node plugin, SYS_ADMIN for the controller).
FROM gcr.io/distroless/cc-debian12
LABEL org.opencontainers.image.title="nfs-subdir-csi" \
      org.opencontainers.image.description="CSI driver: one directory per PVC on an existing NFS export" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/nfs-subdir-csi /usr/local/bin/nfs-subdir-csi
USER 0:0
ENTRYPOINT ["/usr/local/bin/nfs-subdir-csi"]
CMD ["serve"]
