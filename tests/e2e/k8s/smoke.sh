#!/usr/bin/env bash
# Smoke test of the loopback control plane (tests/e2e/k8s/cluster.sh): the StatefulSet controller makes
# PVCs from volumeClaimTemplates, the PersistentVolume controller hands them to their (external)
# provisioner and binds a static PV, and server-side dry-run validates manifests.
# Ends with "k8s-smoke: N passed, N failed" (tests/e2e/lib.sh); exits non-zero on failure.
# No `set -e`: a failed check is counted and the script goes on.
#
#   bash tests/e2e/k8s/smoke.sh [workdir]     (default: a fresh mktemp dir, removed after a pass)
set -uo pipefail

NAME=k8s-smoke
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
OWN_DIR=0
if [ $# -ge 1 ]; then mkdir -p "$1"; DIR=$(cd "$1" && pwd); else DIR=$(mktemp -d /tmp/nsc-k8s-smoke.XXXXXX); OWN_DIR=1; fi
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init

log "starting cluster in $DIR/k8s"
start_cluster
K() { kubectl "$@"; }
NS=nsc-smoke

check "namespace created" K create namespace "$NS"

check "StorageClass + StatefulSet applied" K apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: smoke-none
provisioner: example.com/none
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: $NS
spec:
  serviceName: web
  replicas: 2
  # Parallel: with the default OrderedReady the controller waits for pod 0 to be Ready (never,
  # without a kubelet) before it creates pod 1 and its claim.
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: registry.invalid/none:0
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteMany]
      storageClassName: smoke-none
      resources:
        requests: {storage: 100Mi}
EOF

pvcs_created() { K -n "$NS" get pvc data-web-0 data-web-1; }
check "StatefulSet controller created PVCs data-web-0/1" wait_for 60 pvcs_created

provisioner_annotated() {
  local p
  for p in data-web-0 data-web-1; do
    [ "$(K -n "$NS" get pvc "$p" -o jsonpath='{.metadata.annotations.volume\.kubernetes\.io/storage-provisioner}')" = example.com/none ] || return 1
  done
}
check "PV controller handed the claims to provisioner example.com/none" wait_for 60 provisioner_annotated
still_pending() { [ "$(K -n "$NS" get pvc data-web-0 data-web-1 -o jsonpath='{.items[*].status.phase}')" = "Pending Pending" ]; }
check "claims stay Pending (nobody serves example.com/none)" still_pending
K -n "$NS" get pvc -o wide >&2 || true

check "static PV + PVC applied" K apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: smoke-static
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  storageClassName: smoke-manual
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /nonexistent}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: static
  namespace: $NS
spec:
  accessModes: [ReadWriteMany]
  storageClassName: smoke-manual
  resources:
    requests: {storage: 1Gi}
EOF
static_bound() { [ "$(K -n "$NS" get pvc static -o jsonpath='{.status.phase}')" = Bound ]; }
check "PV controller bound the static PV" wait_for 60 static_bound

DRY=$(mktemp)
cat >"$DRY" <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: smoke.example.com
spec:
  attachRequired: false
  podInfoOnMount: false
  volumeLifecycleModes: [Persistent]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
  namespace: $NS
spec:
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
      - {name: c, image: registry.invalid/none:0}
EOF
check "server-side dry-run accepts a valid manifest" K apply --server-side --dry-run=server -f "$DRY"
nothing_created() { [ -z "$(K get csidriver smoke.example.com --ignore-not-found -o name)" ]; }
check "server-side dry-run created nothing" nothing_created
bad_rejected() {
  local out
  sed 's/attachRequired: false/attachRequired: maybe/' "$DRY" >"$DRY.bad"
  out=$(K apply --server-side --dry-run=server -f "$DRY.bad" 2>&1) && return 1
  printf '    %s\n' "$out" >&2
}
check "server-side dry-run rejects an invalid manifest" bad_rejected
rm -f "$DRY" "$DRY.bad"

# The project's own manifests, when present: its namespace for real (a dry-run cannot create the
# namespace the other objects need), then everything through a server-side dry-run.
DEPLOY="$REPO/deploy"
if [ -f "$DEPLOY/kustomization.yaml" ]; then
  deploy_dry_run() {
    if [ -f "$DEPLOY/namespace.yaml" ]; then K apply --server-side -f "$DEPLOY/namespace.yaml" >/dev/null || return 1; fi
    K apply -k "$DEPLOY" --server-side --dry-run=server
  }
  check "deploy/ (kustomize) passes a server-side dry-run" deploy_dry_run
fi

log "smoke done in $(since "$T0")"
