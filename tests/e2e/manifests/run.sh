#!/usr/bin/env bash
# tests/e2e/manifests/run.sh — validates the Kubernetes manifests: deploy/*.yaml, deploy/provisioner/*.yaml
# (the sidecar-free mode), the Helm chart deploy/helm/nfs-subdir-csi and
# examples/**/*.yaml.
#
#   bash tests/e2e/manifests/run.sh [--install-only]
#
# Installs what it needs, idempotently, under $NSC_CACHE (tests/e2e/lib.sh; the snapshot CRDs in the
# Go module cache;
# default ${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi):
#   - a Python venv with kubernetes-validate (ships the Kubernetes JSON schemas,
#     so validation works offline once installed) from PyPI;
#   - Helm, built from the Go module proxy with `go install`;
#   - kustomize: `kubectl kustomize` when kubectl is on PATH, else a `kustomize`
#     on PATH, else built with `go install`.
# Then runs tests/e2e/manifests/check_manifests.py, which prints one result line
# per check (tests/e2e/lib.sh) and ends with `manifests: N passed, N failed`.
# Exits non-zero on any failure. A check whose tool is missing (kustomize, or
# the driver binary: run `cargo build` first, the flags and env vars in the
# manifests are checked against its --help) is a SKIP, and a FAIL under CI=true.
#
# Overrides: PYTHON (interpreter for the venv), HELM (a helm binary to use
# instead of building one), KUSTOMIZE (a kustomize command, or "none"),
# NFS_SUBDIR_CSI_BIN (the driver binary to check flags against).
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
HELM_VERSION=v3.22.0
# Helm's default Kubernetes version for `helm template` (the k8s.io modules it
# is built with: v0.37 for Helm 3.22); the Makefile of Helm sets it like this.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37
KUSTOMIZE_VERSION=v5.7.1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/../lib.sh"
CACHE=$NSC_CACHE
mkdir -p "$CACHE/bin"

say() { echo "manifests: $*"; }
die() { echo "manifests: ERROR: $*" >&2; fail manifests-setup "$*"; summary manifests; exit 1; }

# One installer at a time per cache (parallel CI jobs share it).
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

# ---- Python + kubernetes-validate ------------------------------------------
VENV="$CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
have_kv() {
    "$VENV/bin/python" - "$KUBERNETES_VALIDATE_VERSION" 2>/dev/null <<'EOF'
import sys, yaml, kubernetes_validate
sys.exit(0 if kubernetes_validate.__version__ == sys.argv[1] else 1)
EOF
}
if ! have_kv; then
    PY=${PYTHON:-$(command -v python3 || true)}
    [ -n "$PY" ] || die "python3 not found"
    say "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's system python needs python3-venv for this.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "python venv module missing; installing python3-venv with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq python3-venv >/dev/null ||
                { apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq python3-venv >/dev/null; }
            rm -rf "$VENV"
            "$PY" -m venv "$VENV" || die "cannot create a venv with $PY"
        else
            die "cannot create a venv with $PY (install python3-venv)"
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" ||
        die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
    have_kv || die "kubernetes-validate did not install"
fi

# ---- Go (for Helm and, if needed, kustomize) --------------------------------
find_go() {
    if command -v go >/dev/null 2>&1; then command -v go
    elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
    fi
}

# ---- Helm -------------------------------------------------------------------
if [ -n "${HELM:-}" ]; then
    say "using HELM=$HELM"
else
    HELM="$CACHE/bin/helm-$HELM_VERSION"
    if ! "$HELM" version --short >/dev/null 2>&1; then
        GO=$(find_go)
        [ -n "$GO" ] || die "Go is needed to build Helm $HELM_VERSION (or set HELM=/path/to/helm)"
        say "building Helm $HELM_VERSION with $("$GO" version | cut -d' ' -f3) (go install; a few minutes the first time)"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        if ! GOBIN="$tmp" GOFLAGS=-trimpath CGO_ENABLED=0 "$GO" install \
            -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$HELM_K8S_MAJOR -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$HELM_K8S_MAJOR -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR" \
            "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$CACHE/helm-build.log" 2>&1; then
            tail -n 30 "$CACHE/helm-build.log" >&2
            die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (log: $CACHE/helm-build.log)"
        fi
        mv "$tmp/helm" "$HELM"
        rm -rf "$tmp"
        trap - EXIT
    fi
fi
"$HELM" version --short >/dev/null 2>&1 || die "helm at $HELM does not run"

# ---- kustomize (optional) ---------------------------------------------------
if [ -z "${KUSTOMIZE:-}" ]; then
    if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
        KUSTOMIZE="kubectl kustomize"
    elif command -v kustomize >/dev/null 2>&1; then
        KUSTOMIZE=kustomize
    else
        KUSTOMIZE="$CACHE/bin/kustomize-$KUSTOMIZE_VERSION"
        if ! "$KUSTOMIZE" version >/dev/null 2>&1; then
            GO=$(find_go)
            if [ -n "$GO" ]; then
                say "building kustomize $KUSTOMIZE_VERSION (go install)"
                tmp=$(mktemp -d)
                if GOBIN="$tmp" GOFLAGS=-trimpath CGO_ENABLED=0 "$GO" install -ldflags "-s -w" \
                    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >"$CACHE/kustomize-build.log" 2>&1; then
                    mv "$tmp/kustomize" "$KUSTOMIZE"
                else
                    say "could not build kustomize (log: $CACHE/kustomize-build.log); the kustomize checks are a SKIP (a FAIL under CI=true)"
                    KUSTOMIZE=none
                fi
                rm -rf "$tmp"
            else
                KUSTOMIZE=none
            fi
        fi
    fi
fi
[ "$KUSTOMIZE" = none ] && KUSTOMIZE=""

# ---- the snapshot CRDs (external-snapshotter/client/v8 at deploy/'s csi-snapshotter tag) -----
# From the Go module cache (downloaded through the proxy once); snapshots.py validates
# deploy/snapshot/'s VolumeSnapshotClasses against their CRD.
SNAPSHOT_CRDS=""
snap_tag=$(sed -n 's|^ *image: .*/csi-snapshotter:\(v[0-9.]*\)$|\1|p' "$ROOT/deploy/controller.yaml" | head -n1)
GO=$(find_go)
if [ -n "$snap_tag" ] && [ -n "$GO" ]; then
    d=$(cd "$CACHE" && GOFLAGS='' GOTOOLCHAIN=local "$GO" mod download -json \
        "github.com/kubernetes-csi/external-snapshotter/client/v8@$snap_tag" 2>/dev/null | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -d "$d/config/crd" ] && SNAPSHOT_CRDS="$d/config/crd"
fi
[ -n "$SNAPSHOT_CRDS" ] || say "no snapshot CRDs (client/v8@${snap_tag:-?}); that check is a SKIP (a FAIL under CI=true)"

flock -u 9 2>/dev/null || true
# tests/e2e/prefetch.sh installs the tools ahead of this stage on a cold machine
[ "${1:-}" = --install-only ] && { say "tools installed (--install-only)"; exit 0; }

say "helm $("$HELM" version --short 2>/dev/null); kustomize: ${KUSTOMIZE:-none}"
exec "$VENV/bin/python" "$HERE/check_manifests.py" \
    --root "$ROOT" --helm "$HELM" --kustomize "$KUSTOMIZE" --snapshot-crds "$SNAPSHOT_CRDS"
