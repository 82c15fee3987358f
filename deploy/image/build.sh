#!/usr/bin/env bash
# deploy/image/build.sh — build the container images without a container engine or a base image
# pull: rootfs from Debian packages (`apt-get download` + `dpkg-deb -x`), layers and config by
# umoci, written by skopeo as docker-archive tarballs that `docker load`, `podman load` and
# `ctr images import` all accept.
#
#   deploy/image/build.sh [TARGET...]      TARGET: driver provisioner snapshotter pause redis (default: all)
#
# Targets and the tags they carry (so deploy/ and examples/ need no edit):
#   driver       ghcr.io/nfs-subdir-csi/nfs-subdir-csi:<Cargo version>  target/release/nfs-subdir-csi
#                (`cargo build --release --locked`, the command the Dockerfile runs) on libc6 +
#                libgcc-s1 + ca-certificates (what distroless/cc holds); entrypoint, cmd, user and
#                labels are read from the Dockerfile's runtime stage.
#   provisioner  the csi-provisioner image:tag deploy/controller.yaml names, built from the Go module
#                proxy at exactly that tag (never a relabelled other version).
#   snapshotter  the csi-snapshotter image:tag deploy/controller.yaml names, the binary from
#                tests/e2e/k8s/build.sh (external-snapshotter/v8 at exactly that tag, from the Go
#                module proxy, cached under $NSC_CACHE/k8s-<version>/bin).
#   pause        registry.k8s.io/pause:3.10, a static C pause (pause.c), for pod sandboxes (tests).
#   redis        docker.io/library/redis:5-alpine (tests): Debian 12's Redis 7 (redis-server +
#                redis-tools + busybox-static for a shell) under the tag the seed's manifests use.
#
# Output: $NSC_IMAGE_OUT (default $NSC_CACHE/images) / <target>.tar, plus <target>.key (hash of
# every input: this script, the binary or source version, the Debian package versions, the tag).
# A target whose key is unchanged is not rebuilt. Prints one line per image with its sizes.
#
# Env: NSC_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi), NSC_IMAGE_OUT,
#      NSC_DRIVER_BIN (default target/release/nfs-subdir-csi, brought up to date by cargo first),
#      NSC_GO_P (go build -p, default 2).
# Needs root (umoci unpack keeps file owners), apt lists, and: umoci skopeo dpkg-deb go gcc.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NSC_CACHE=${NSC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi}
OUT=${NSC_IMAGE_OUT:-$NSC_CACHE/images}
TARGETS=${*:-driver provisioner snapshotter pause redis}
ARCH=$(dpkg --print-architecture)

log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (umoci unpack/repack keep file owners)"
for t in umoci skopeo dpkg-deb apt-get sha256sum; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install umoci skopeo)"
done
mkdir -p "$OUT" "$NSC_CACHE/debs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nsc-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SELF_SUM=$(cat "$HERE/build.sh" "$HERE/pause.c" | sha256sum | cut -c1-64)

# pkg_versions PKG...: "name=version" of the candidate of each package (what apt-get download takes)
pkg_versions() {
  local out p v
  out=$(LC_ALL=C apt-cache policy "$@")      # one call: apt-cache is slow to start
  for p in "$@"; do
    v=$(awk -v p="$p:" '$0 == p { f = 1; next } f && /^  Candidate: / { print $2; exit }' <<<"$out")
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "no candidate version for Debian package $p (apt-get update?)"
    echo "$p=$v"
  done
}

# unpack_debs ROOTFS NAME=VERSION...: download (cached under $NSC_CACHE/debs) and extract, no scripts
unpack_debs() {
  local root=$1 pv deb; shift
  for pv in "$@"; do
    deb=$(ls "$NSC_CACHE/debs/${pv%%=*}_"*"${pv#*=}"*".deb" 2>/dev/null | head -n1 || true)
    # version strings with an epoch ("5:7.0.15") appear in file names as "7.0.15" (or %3a)
    if [ -z "$deb" ]; then
      local v=${pv#*=}; v=${v#*:}
      deb=$(ls "$NSC_CACHE/debs/${pv%%=*}_${v}_"*.deb 2>/dev/null | head -n1 || true)
    fi
    if [ -z "$deb" ]; then
      (cd "$NSC_CACHE/debs" && apt-get download -q "$pv" >/dev/null 2>"$WORK/apt.err") \
        || { cat "$WORK/apt.err" >&2; die "apt-get download $pv"; }
      local v=${pv#*=}; v=${v#*:}
      deb=$(ls "$NSC_CACHE/debs/${pv%%=*}_"*"$v"_*.deb | head -n1)
    fi
    dpkg-deb -x "$deb" "$root"
  done
}

# slim ROOTFS: drop docs/manuals/locales but keep every package's copyright file
slim() {
  local r=$1
  find "$r/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
  find "$r/usr/share/doc" -type l -delete 2>/dev/null || true
  rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/lintian" "$r/usr/share/locale" \
    "$r/usr/share/bug" "$r/usr/share/bash-completion" "$r/etc/init.d" "$r/etc/logrotate.d" \
    "$r/lib/systemd" "$r/usr/lib/systemd" "$r/etc/default"
  # iconv modules: 8 MB nobody here loads (no image program calls iconv_open)
  rm -rf "$r/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/gconv"
}

# base_files ROOTFS: the few files distroless adds to its packages (users, tmp, CA bundle)
base_files() {
  local r=$1
  mkdir -p "$r/etc" "$r/tmp" "$r/root" "$r/etc/ssl/certs"
  chmod 1777 "$r/tmp"; chmod 700 "$r/root"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'redis:x:999:1000:redis:/data:/sbin/nologin' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'redis:x:1000:' 'nogroup:x:65534:' >"$r/etc/group"
  echo 'hosts: files dns' >"$r/etc/nsswitch.conf"
  # update-ca-certificates (a maintainer script we do not run) concatenates the enabled PEMs
  if [ -d "$r/usr/share/ca-certificates/mozilla" ]; then
    find "$r/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat >"$r/etc/ssl/certs/ca-certificates.crt"
  fi
}

# check_libs ROOTFS BIN...: every shared library each binary needs resolves inside the rootfs
check_libs() {
  local r=$1 b out; shift
  for b in "$@"; do
    out=$(chroot "$r" /lib64/ld-linux-x86-64.so.2 --list "$b" 2>&1) || die "cannot load $b in the image: $out"
    ! grep -q 'not found' <<<"$out" || die "missing libraries for $b: $(grep 'not found' <<<"$out" | tr -s '\t\n' ' ')"
  done
}

# pack NAME TAG ROOTFS CONFIG-ARGS...: one-layer image → $OUT/NAME.tar
pack() {
  local name=$1 tag=$2 root=$3 oci=$WORK/oci-$1 b=$WORK/bundle-$1; shift 3
  umoci init --layout "$oci"
  umoci new --image "$oci:$name"
  umoci unpack --image "$oci:$name" "$b" >/dev/null
  cp -a "$root"/. "$b/rootfs/"
  umoci repack --image "$oci:$name" "$b"
  umoci config --image "$oci:$name" --os linux --architecture "$ARCH" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  umoci gc --layout "$oci"
  rm -f "$OUT/$name.tar.tmp"
  skopeo --insecure-policy copy -q "oci:$oci:$name" "docker-archive:$OUT/$name.tar.tmp:$tag"
  mv -f "$OUT/$name.tar.tmp" "$OUT/$name.tar"
}

# fresh NAME KEY: true when $OUT/NAME.tar was built from the same inputs
fresh() { [ -s "$OUT/$1.tar" ] && [ "$(cat "$OUT/$1.key" 2>/dev/null)" = "$2" ]; }
report() {  # NAME TAG: uncompressed archive size and gzip'd size (what a registry would store)
  local bytes gz
  if [ "$OUT/$1.size" -nt "$OUT/$1.tar" ]; then gz=$(cat "$OUT/$1.size"); else
    gz=$(gzip -1 -c "$OUT/$1.tar" | wc -c); echo "$gz" >"$OUT/$1.size"
  fi
  bytes=$(stat -c %s "$OUT/$1.tar")
  printf 'image %-12s %-58s %6.1f MB (%.1f MB gzip)  %s\n' "$1" "$2" "$(echo "$bytes / 1000000" | bc -l)" \
    "$(echo "$gz / 1000000" | bc -l)" "$OUT/$1.tar"
}

# ---------------------------------------------------------------------------------------- driver
build_driver() {
  local version tag bin key entry cmd user labels=() l
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
  tag=ghcr.io/nfs-subdir-csi/nfs-subdir-csi:$version
  grep -rq "image: $tag\$" "$REPO/deploy/controller.yaml" || log "note: deploy/controller.yaml does not name $tag"
  bin=${NSC_DRIVER_BIN:-}
  if [ -z "$bin" ]; then
    # Always through cargo (a no-op when nothing changed), so a stale binary is never packaged.
    log "building the driver: cargo build --release --locked"
    (cd "$REPO" && cargo build --release --locked) || die "cargo build --release failed"
    bin=$REPO/target/release/nfs-subdir-csi
  fi
  local pkgs; mapfile -t pkgs < <(pkg_versions libc6 libgcc-s1 gcc-12-base ca-certificates)
  key=$(printf '%s\n' "$SELF_SUM" "$(sha256sum <"$bin")" "${pkgs[@]}" "$tag" "$(cat "$REPO/Dockerfile")" | sha256sum | cut -c1-64)
  if fresh driver "$key"; then log "driver: cached"; report driver "$tag"; return; fi
  # The Dockerfile's runtime stage: LABEL key="value" pairs, ENTRYPOINT/CMD exec form, USER.
  local df; df=$(sed -n '/^FROM gcr.io\/distroless/,$p' "$REPO/Dockerfile")
  while IFS= read -r l; do labels+=(--config.label "$l"); done \
    < <(grep -o '[a-z][a-z0-9.]*="[^"]*"' <<<"$df" | sed 's/"//g')
  [ ${#labels[@]} -gt 0 ] || die "no LABEL found in the Dockerfile's runtime stage"
  entry=$(sed -n 's/^ENTRYPOINT \["\(.*\)"\]/\1/p' <<<"$df")
  cmd=$(sed -n 's/^CMD \["\(.*\)"\]/\1/p' <<<"$df")
  user=$(sed -n 's/^USER //p' <<<"$df")
  [ -n "$entry" ] && [ -n "$cmd" ] || die "cannot read ENTRYPOINT/CMD from the Dockerfile"
  local r=$WORK/rootfs-driver; mkdir -p "$r"
  unpack_debs "$r" "${pkgs[@]}"
  slim "$r"; base_files "$r"
  install -D -m 0755 "$bin" "$r$entry"
  check_libs "$r" "$entry"
  pack driver "$tag" "$r" --config.entrypoint "$entry" --config.cmd "$cmd" --config.user "${user:-0:0}" \
    --config.workingdir / "${labels[@]}"
  echo "$key" >"$OUT/driver.key"
  report driver "$tag"
}

# ----------------------------------------------------------------------------------- provisioner
build_provisioner() {
  local ref version module dir bin key
  ref=$(sed -n 's/^ *image: \(.*\/csi-provisioner:.*\)$/\1/p' "$REPO/deploy/controller.yaml" | head -n1)
  [ -n "$ref" ] || die "no csi-provisioner image in deploy/controller.yaml"
  version=${ref##*:}
  local major=${version#v}; major=${major%%.*}
  module=github.com/kubernetes-csi/external-provisioner/v$major
  dir=$NSC_CACHE/csi-provisioner-$version
  bin=$dir/bin/csi-provisioner
  local stamp; stamp="$module@$version $(go env GOVERSION)"
  if [ ! -x "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building csi-provisioner $module@$version from the Go module proxy"
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-p=${NSC_GO_P:-2} -trimpath -buildvcs=false -mod=mod"
    mkdir -p "$dir/bin"
    if [ ! -f "$dir/src/go.mod" ]; then
      local src; src=$(cd "$dir" && GOFLAGS='' go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
      [ -n "$src" ] && [ -f "$src/go.mod" ] || die "cannot download $module@$version"
      rm -rf "$dir/src.tmp" && cp -r "$src" "$dir/src.tmp" && chmod -R u+w "$dir/src.tmp" && mv "$dir/src.tmp" "$dir/src"
    fi
    (cd "$dir/src" && go build -ldflags="-s -w -X main.version=$version" -o "$bin.tmp" ./cmd/csi-provisioner) \
      || die "go build csi-provisioner $version failed"
    mv -f "$bin.tmp" "$bin"; echo "$stamp" >"$bin.stamp"
  fi
  local pkgs; mapfile -t pkgs < <(pkg_versions ca-certificates)
  key=$(printf '%s\n' "$SELF_SUM" "$(sha256sum <"$bin")" "${pkgs[@]}" "$ref" | sha256sum | cut -c1-64)
  if fresh provisioner "$key"; then log "provisioner: cached"; report provisioner "$ref"; return; fi
  # upstream's image: the static binary on distroless/static (no libc), entrypoint the binary
  local r=$WORK/rootfs-provisioner; mkdir -p "$r"
  unpack_debs "$r" "${pkgs[@]}"
  slim "$r"; base_files "$r"
  install -D -m 0755 "$bin" "$r/csi-provisioner"
  pack provisioner "$ref" "$r" --config.entrypoint /csi-provisioner --config.user 0:0 \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.source=https://$module"
  echo "$key" >"$OUT/provisioner.key"
  report provisioner "$ref"
}

# ----------------------------------------------------------------------------------- snapshotter
build_snapshotter() {
  local ref version bin key
  ref=$(sed -n 's/^ *image: \(.*\/csi-snapshotter:.*\)$/\1/p' "$REPO/deploy/controller.yaml" | head -n1)
  [ -n "$ref" ] || die "no csi-snapshotter image in deploy/controller.yaml"
  version=${ref##*:}
  # tests/e2e/k8s/build.sh builds it at that tag (SNAPSHOTTER_VERSION defaults to it), cached
  bin=$(SNAPSHOTTER_VERSION=$version NSC_K8S_BINS=csi-snapshotter NSC_CACHE=$NSC_CACHE \
    bash "$REPO/tests/e2e/k8s/build.sh" | tail -n1)/csi-snapshotter
  [ -x "$bin" ] || die "tests/e2e/k8s/build.sh built no csi-snapshotter"
  local pkgs; mapfile -t pkgs < <(pkg_versions ca-certificates)
  key=$(printf '%s\n' "$SELF_SUM" "$(sha256sum <"$bin")" "${pkgs[@]}" "$ref" | sha256sum | cut -c1-64)
  if fresh snapshotter "$key"; then log "snapshotter: cached"; report snapshotter "$ref"; return; fi
  # upstream's image: the static binary on distroless/static, entrypoint the binary
  local r=$WORK/rootfs-snapshotter; mkdir -p "$r"
  unpack_debs "$r" "${pkgs[@]}"
  slim "$r"; base_files "$r"
  install -D -m 0755 "$bin" "$r/csi-snapshotter"
  pack snapshotter "$ref" "$r" --config.entrypoint /csi-snapshotter --config.user 0:0 \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.source=https://github.com/kubernetes-csi/external-snapshotter"
  echo "$key" >"$OUT/snapshotter.key"
  report snapshotter "$ref"
}

# ----------------------------------------------------------------------------------------- pause
build_pause() {
  local tag=registry.k8s.io/pause:3.10 key
  key=$(printf '%s\n' "$SELF_SUM" "$(gcc --version | head -n1)" "$tag" | sha256sum | cut -c1-64)
  if fresh pause "$key"; then log "pause: cached"; report pause "$tag"; return; fi
  local r=$WORK/rootfs-pause; mkdir -p "$r"
  gcc -static -O2 -s -o "$r/pause" "$HERE/pause.c" || die "gcc -static pause.c (libc6-dev installed?)"
  pack pause "$tag" "$r" --config.entrypoint /pause --config.user 65535:65535
  echo "$key" >"$OUT/pause.key"
  report pause "$tag"
}

# ----------------------------------------------------------------------------------------- redis
build_redis() {
  local tag=docker.io/library/redis:5-alpine key
  local pkgs; mapfile -t pkgs < <(pkg_versions redis-server redis-tools libc6 libgcc-s1 gcc-12-base libatomic1 \
    libjemalloc2 libstdc++6 liblzf1 libssl3 libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 \
    libzstd1 busybox-static)
  key=$(printf '%s\n' "$SELF_SUM" "${pkgs[@]}" "$tag" | sha256sum | cut -c1-64)
  if fresh redis "$key"; then log "redis: cached"; report redis "$tag"; return; fi
  local r=$WORK/rootfs-redis; mkdir -p "$r"
  unpack_debs "$r" "${pkgs[@]}"
  slim "$r"; base_files "$r"
  rm -rf "$r/etc/redis"       # no config file: redis-server's built-in defaults, as upstream's image
  chroot "$r" /bin/busybox --install -s /bin
  mkdir -p "$r/data"; chown 999:1000 "$r/data"
  check_libs "$r" /usr/bin/redis-server /usr/bin/redis-cli
  chroot "$r" /usr/bin/redis-server --version >/dev/null || die "redis-server does not run in its rootfs"
  # upstream's entrypoint adds --protected-mode no when started without a config file; so do we
  pack redis "$tag" "$r" --config.entrypoint /usr/bin/redis-server --config.entrypoint --protected-mode \
    --config.entrypoint no --config.workingdir /data --config.user 0:0 \
    --config.label "org.opencontainers.image.description=Debian 12 redis-server ${pkgs[0]#*=} under the seed's redis:5-alpine tag (test fixture)"
  echo "$key" >"$OUT/redis.key"
  report redis "$tag"
}

for t in $TARGETS; do
  case $t in
    driver | provisioner | snapshotter | pause | redis) t0=$SECONDS; "build_$t"; log "$t: $((SECONDS - t0)) s" ;;
    *) die "unknown target $t (driver provisioner snapshotter pause redis)" ;;
  esac
done
