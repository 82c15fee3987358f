#!/usr/bin/env bash
# tests/e2e/cluster/build.sh — everything the one-node cluster test needs, built or cached, nothing
# downloaded outside the package registries:
#   - Debian packages for the node: runc, containernetworking-plugins, iptables (+ image tools);
#   - the control plane + node binaries of Kubernetes from tests/e2e/k8s/build.sh's scratch module
#     (etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy);
#   - containerd v2 + ctr + containerd-shim-runc-v2 from the Go module proxy, cached under
#     $NSC_CACHE/containerd-<version>/bin;
#   - the images (deploy/image/build.sh: driver, csi-provisioner, csi-snapshotter, pause, redis) in
#     $NSC_CACHE/images.
# Prints `NAME SECONDS` timing lines on stderr and, last on stdout, shell assignments:
#   NSC_K8S_BIN=... NSC_CTD_BIN=... NSC_IMAGE_OUT=...
#
# Env: NSC_CACHE, CONTAINERD_VERSION (default v2.4.2), NSC_GO_P (default 2), NSC_DRIVER_BIN,
#      NSC_CLUSTER_NO_INSTALL=1 (never apt-get).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"   # NSC_CACHE, cache_lock
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
export PATH=$PATH:/usr/local/go/bin
log() { printf '[cluster-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
timed() { local n=$1 t=$SECONDS; shift; "$@"; log "time $n $((SECONDS - t)) s"; }

# ---- Debian packages (the node's runc and CNI plugins, iptables for kube-proxy, image tools)
packages() {
  local pkgs=(runc containernetworking-plugins iptables umoci skopeo gcc libc6-dev bc) missing=() p
  for p in "${pkgs[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [ "${NSC_CLUSTER_NO_INSTALL:-}" = 1 ] && die "missing packages: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt-get -q -o DPkg::Lock::Timeout=900 update >&2
  DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=900 --no-install-recommends \
    install "${missing[@]}" >&2 || die "apt-get install failed"
}

# ---- containerd v2 from the Go module proxy (no replace directives: go install works)
containerd() {
  local bin=$NSC_CACHE/containerd-$CONTAINERD_VERSION/bin stamp
  cache_lock containerd 7
  stamp="github.com/containerd/containerd/v2@$CONTAINERD_VERSION $(go env GOVERSION)"
  if [ -x "$bin/containerd" ] && [ -x "$bin/ctr" ] && [ -x "$bin/containerd-shim-runc-v2" ] &&
    [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "containerd: cached ($stamp)"
  else
    log "building containerd, ctr, containerd-shim-runc-v2 $CONTAINERD_VERSION"
    mkdir -p "$bin"
    GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN=$bin GOFLAGS="-p=${NSC_GO_P:-2} -trimpath -buildvcs=false" \
      go install -ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" -tags "no_btrfs no_devmapper no_zfs" \
      "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
      || die "go install containerd $CONTAINERD_VERSION failed"
    echo "$stamp" >"$bin/.stamp"
  fi
  exec 7>&-
  NSC_CTD_BIN=$bin
}

k8s() {
  NSC_K8S_BIN=$(NSC_K8S_BINS="etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy" \
    bash "$REPO/tests/e2e/k8s/build.sh" | tail -n1) || die "tests/e2e/k8s/build.sh failed"
}

images() {
  export NSC_IMAGE_OUT=${NSC_IMAGE_OUT:-$NSC_CACHE/images}
  bash "$REPO/deploy/image/build.sh" driver provisioner snapshotter pause redis >&2 || die "deploy/image/build.sh failed"
}

command -v go >/dev/null || die "go not found (need Go >= 1.26)"
timed packages packages
timed containerd containerd
# tests/e2e/prefetch.sh: only what needs no driver binary, ahead of the stage on a cold machine
[ "${1:-}" = --prefetch ] && exit 0
timed kubernetes k8s
timed images images
echo "NSC_K8S_BIN='$NSC_K8S_BIN' NSC_CTD_BIN='$NSC_CTD_BIN' NSC_IMAGE_OUT='$NSC_IMAGE_OUT'"
