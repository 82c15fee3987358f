#!/usr/bin/env bash
# Builds a Kubernetes control plane for tests from source, through the Go module proxy only (no
# prebuilt binaries): etcd, kube-apiserver, kube-controller-manager, kubectl, the csi-provisioner
# and csi-snapshotter sidecars and the snapshot-controller. Binaries are cached under $NSC_CACHE/k8s-<version>/bin; a rerun with the same versions
# is a no-op. Prints the bin directory on its last line of stdout.
#
# Why scratch modules: k8s.io/kubernetes (and external-provisioner, and etcd's server) carry replace
# directives, so `go install pkg@version` refuses them. We create a module that requires
# k8s.io/kubernetes and pins every k8s.io/* staging module to the matching v0.x with its own replace
# directives, and build the commands from there. etcd is built in the same module at the exact
# version Kubernetes' go.mod requires (the version its CI runs against). external-provisioner's
# source is copied out of the module cache and built with its own go.mod/go.sum. So is
# external-snapshotter's, whose go.mod replaces its client/v8 module with ./client: a nested module is
# not in the parent's zip, so the client/v8 module at the same tag is copied there (upstream's tree).
#
# Env knobs:
#   K8S_VERSION          (default v1.37.2)  k8s.io/kubernetes version
#   PROVISIONER_MODULE   (default github.com/kubernetes-csi/external-provisioner/v6)
#   PROVISIONER_VERSION  (default: the tag deploy/controller.yaml runs, so the tests exercise what
#                        users deploy, and the image build in deploy/image reuses this Go build cache)
#   SNAPSHOTTER_VERSION  (default: the csi-snapshotter tag deploy/controller.yaml runs) the
#                        github.com/kubernetes-csi/external-snapshotter/v8 version of csi-snapshotter
#                        and snapshot-controller (the CRDs come from client/v8 at the same version:
#                        the source tree's client/config/crd, see snapshot_crds in helpers.sh)
#   NSC_CACHE            cache root (tests/e2e/lib.sh; default ${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi)
#   NSC_GO_P             go build -p (default 2; the machine has 2 cores shared with cargo)
#   NSC_K8S_BINS         space-separated subset to build (default: the seven above; tests/e2e/cluster
#                        adds kube-scheduler, kubelet and kube-proxy, from the same scratch module)
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
PROVISIONER_MODULE=${PROVISIONER_MODULE:-github.com/kubernetes-csi/external-provisioner/v6}
if [ -z "${PROVISIONER_VERSION:-}" ]; then
  PROVISIONER_VERSION=$(sed -n 's|^ *image: .*/csi-provisioner:\(v[0-9.]*\)$|\1|p' \
    "$(dirname "${BASH_SOURCE[0]}")/../../../deploy/controller.yaml" | head -n1)
  [ -n "$PROVISIONER_VERSION" ] || { echo "build.sh: no csi-provisioner tag in deploy/controller.yaml" >&2; exit 2; }
fi
SNAPSHOTTER_MODULE=github.com/kubernetes-csi/external-snapshotter/v8
if [ -z "${SNAPSHOTTER_VERSION:-}" ]; then
  SNAPSHOTTER_VERSION=$(sed -n 's|^ *image: .*/csi-snapshotter:\(v[0-9.]*\)$|\1|p' \
    "$(dirname "${BASH_SOURCE[0]}")/../../../deploy/controller.yaml" | head -n1)
  [ -n "$SNAPSHOTTER_VERSION" ] || { echo "build.sh: no csi-snapshotter tag in deploy/controller.yaml" >&2; exit 2; }
fi
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"   # NSC_CACHE
ROOT="$NSC_CACHE/k8s-$K8S_VERSION"
BIN="$ROOT/bin"
SRC="$ROOT/src"
WANT=${NSC_K8S_BINS:-"etcd kube-apiserver kube-controller-manager kubectl csi-provisioner csi-snapshotter snapshot-controller"}

# Never fetch a Go toolchain (that is a prebuilt binary); use the one on PATH.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-p=${NSC_GO_P:-2} -trimpath -buildvcs=false -mod=mod"
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

log() { printf '[k8s-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
command -v go >/dev/null || die "go not found (need Go >= 1.26 on PATH or /usr/local/go/bin)"

T0=$(date +%s)
mkdir -p "$BIN" "$SRC"
# One build at a time per cache (tests may start in parallel).
exec 9>"$ROOT/.lock"
if ! flock -n 9; then log "waiting for another build.sh on $ROOT"; flock 9; fi

# stamp NAME  -> the string that identifies how NAME was built
stamp_of() {
  case "$1" in
    csi-provisioner) echo "$PROVISIONER_MODULE@$PROVISIONER_VERSION $(go env GOVERSION)" ;;
    csi-snapshotter|snapshot-controller) echo "$SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION $(go env GOVERSION)" ;;
    *) echo "k8s.io/kubernetes@$K8S_VERSION $(go env GOVERSION)" ;;
  esac
}
is_fresh() { [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.stamp" ] && [ "$(cat "$BIN/.$1.stamp")" = "$(stamp_of "$1")" ]; }

todo_k8s=() todo_prov=0 todo_snap=()
for b in $WANT; do
  if is_fresh "$b"; then log "$b: cached ($(cat "$BIN/.$b.stamp"))"; continue; fi
  case "$b" in
    etcd|kube-apiserver|kube-controller-manager|kubectl|kube-scheduler|kubelet|kube-proxy) todo_k8s+=("$b") ;;
    csi-provisioner) todo_prov=1 ;;
    csi-snapshotter|snapshot-controller) todo_snap+=("$b") ;;
    *) die "unknown binary $b" ;;
  esac
done

if [ ${#todo_k8s[@]} -gt 0 ]; then
  MOD="$SRC/kubernetes"
  mkdir -p "$MOD"
  log "fetching k8s.io/kubernetes@$K8S_VERSION go.mod"
  kdir=$(cd "$MOD" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$kdir" ] && [ -f "$kdir/go.mod" ] || die "cannot download k8s.io/kubernetes@$K8S_VERSION"
  staging_ver="v0.${K8S_VERSION#v1.}"
  etcd_ver=$(awk '$1=="go.etcd.io/etcd/api/v3"{print $2; exit}' "$kdir/go.mod")
  [ -n "$etcd_ver" ] || die "no go.etcd.io/etcd/api/v3 requirement in kubernetes go.mod"
  log "staging modules pinned to $staging_ver, etcd server $etcd_ver"
  # The scratch go.mod: the requirement, one replace per staging module, and the commands as tools.
  {
    echo "// Generated by tests/e2e/k8s/build.sh; scratch module to build Kubernetes $K8S_VERSION commands."
    echo "module nsc.invalid/k8s-build"
    echo
    echo "go $(awk '$1=="go"{print $2; exit}' "$kdir/go.mod")"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $etcd_ver"
    echo ")"
    echo
    echo "replace ("
    sed -n 's|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$|\t\1 => \1 '"$staging_ver"'|p' "$kdir/go.mod"
    echo ")"
    echo
    echo "tool ("
    echo "	go.etcd.io/etcd/server/v3"
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
    echo "	k8s.io/kubernetes/cmd/kube-scheduler"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo "	k8s.io/kubernetes/cmd/kubelet"
    echo "	k8s.io/kubernetes/cmd/kube-proxy"
    echo ")"
  } >"$MOD/go.mod.new"
  if ! cmp -s "$MOD/go.mod.new" "$MOD/go.mod.gen" 2>/dev/null; then
    cp "$MOD/go.mod.new" "$MOD/go.mod"
    rm -f "$MOD/go.sum"
    log "resolving module graph (go mod tidy; downloads sources on a cold cache)"
    t=$(date +%s)
    (cd "$MOD" && go mod tidy) || die "go mod tidy failed in $MOD"
    cp "$MOD/go.mod.new" "$MOD/go.mod.gen"
    log "module graph resolved in $(( $(date +%s) - t ))s"
  fi
  rm -f "$MOD/go.mod.new"

  major=${K8S_VERSION#v}; minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
  ld="-s -w"
  for k in client-go/pkg/version component-base/version; do
    ld+=" -X k8s.io/$k.gitVersion=$K8S_VERSION -X k8s.io/$k.gitMajor=$major -X k8s.io/$k.gitMinor=$minor"
    ld+=" -X k8s.io/$k.gitTreeState=clean -X k8s.io/$k.buildDate=1970-01-01T00:00:00Z"
  done
  # One `go build` for every command still missing: the packages they share compile once and the
  # links run in parallel (-p). etcd's server package is named after its directory, hence the rename.
  pkgs=()
  for b in "${todo_k8s[@]}"; do
    case "$b" in
      etcd) pkgs+=(go.etcd.io/etcd/server/v3) ;;
      *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
    esac
  done
  log "building ${todo_k8s[*]}"
  t=$(date +%s)
  out="$BIN/.build.tmp"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$MOD" && go build -ldflags="$ld" -o "$out/" "${pkgs[@]}") || die "go build ${pkgs[*]} failed"
  for b in "${todo_k8s[@]}"; do
    src=$b; [ "$b" = etcd ] && src=server
    mv "$out/$src" "$BIN/$b"
    stamp_of "$b" >"$BIN/.$b.stamp"
  done
  rmdir "$out"
  log "built ${todo_k8s[*]} in $(( $(date +%s) - t ))s"
fi

if [ "$todo_prov" = 1 ]; then
  PDIR="$SRC/csi-provisioner-$PROVISIONER_VERSION"
  if [ ! -f "$PDIR/go.mod" ]; then
    log "fetching $PROVISIONER_MODULE@$PROVISIONER_VERSION source"
    pdir=$(cd "$SRC" && GOFLAGS='' go mod download -json "$PROVISIONER_MODULE@$PROVISIONER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -n "$pdir" ] && [ -f "$pdir/go.mod" ] || die "cannot download $PROVISIONER_MODULE@$PROVISIONER_VERSION"
    rm -rf "$PDIR.tmp" && cp -r "$pdir" "$PDIR.tmp" && chmod -R u+w "$PDIR.tmp" && mv "$PDIR.tmp" "$PDIR"
  fi
  log "building csi-provisioner ($PROVISIONER_MODULE@$PROVISIONER_VERSION)"
  t=$(date +%s)
  (cd "$PDIR" && go build -ldflags="-s -w -X main.version=$PROVISIONER_VERSION" -o "$BIN/csi-provisioner.tmp" ./cmd/csi-provisioner) \
    || die "go build csi-provisioner failed"
  mv "$BIN/csi-provisioner.tmp" "$BIN/csi-provisioner"
  stamp_of csi-provisioner >"$BIN/.csi-provisioner.stamp"
  log "built csi-provisioner in $(( $(date +%s) - t ))s ($(du -h "$BIN/csi-provisioner" | cut -f1))"
fi

if [ ${#todo_snap[@]} -gt 0 ]; then
  SDIR="$SRC/external-snapshotter-$SNAPSHOTTER_VERSION"
  if [ ! -f "$SDIR/go.mod" ] || [ ! -f "$SDIR/client/go.mod" ]; then
    log "fetching $SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION and its client/v8 source"
    dl() { (cd "$SRC" && GOFLAGS='' go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }
    sdir=$(dl "$SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION")
    cdir=$(dl "${SNAPSHOTTER_MODULE%/v8}/client/v8@$SNAPSHOTTER_VERSION")
    [ -n "$sdir" ] && [ -f "$sdir/go.mod" ] || die "cannot download $SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION"
    [ -n "$cdir" ] && [ -f "$cdir/go.mod" ] || die "cannot download ${SNAPSHOTTER_MODULE%/v8}/client/v8@$SNAPSHOTTER_VERSION"
    rm -rf "$SDIR.tmp" && cp -r "$sdir" "$SDIR.tmp" && cp -r "$cdir" "$SDIR.tmp/client" \
      && chmod -R u+w "$SDIR.tmp" && mv "$SDIR.tmp" "$SDIR"
  fi
  log "building ${todo_snap[*]} ($SNAPSHOTTER_MODULE@$SNAPSHOTTER_VERSION)"
  t=$(date +%s)
  out="$BIN/.build.tmp"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$SDIR" && go build -ldflags="-s -w -X main.version=$SNAPSHOTTER_VERSION" -o "$out/" "${todo_snap[@]/#/./cmd/}") \
    || die "go build ${todo_snap[*]} failed"
  for b in "${todo_snap[@]}"; do
    mv "$out/$b" "$BIN/$b"
    stamp_of "$b" >"$BIN/.$b.stamp"
  done
  rmdir "$out"
  log "built ${todo_snap[*]} in $(( $(date +%s) - t ))s"
fi

log "done in $(( $(date +%s) - T0 ))s; binaries in $BIN"
echo "$BIN"
