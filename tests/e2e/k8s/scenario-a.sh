#!/usr/bin/env bash
# Scenario A: the user story on a real (kubelet-less) control plane with a local share.
#   nfs-subdir-csi serve --roles=controller --default-share <share>  +  csi-provisioner sidecar
#   deploy/csidriver.yaml, a test copy of StorageClass nfs-client with parameters {share: <share>}
#   kubectl apply -f examples/redis/redis-pv-sts.yaml -> both claims Bound -> <share>/pvc-<uuid> exist
#   delete the StatefulSet and the claims -> PVs deleted -> directories gone.
#   A claim of the Retain class (nfs-client-retain) keeps its PV (Released) and its directory.
#   The claim/PV/directory listings before and after deletion go to stdout.
#   Sentinels in a provisioner Secret's values and in a refused parameter's value appear in no
#   event, PV or line of the driver's debug log.
# Ends with "<name>: N passed, N failed" (tests/e2e/lib.sh); exits non-zero on failure.
# No `set -e`: a failed check is counted and the script goes on.
#
#   bash tests/e2e/k8s/scenario-a.sh [workdir]
# Env: NSC_DRIVER_BIN (default: target/release/nfs-subdir-csi, else target/debug/nfs-subdir-csi,
#      else `cargo build` it), NSC_K8S_BIN (binaries; default built/cached by build.sh).
#
# No kubelet runs here, so Pods never become Ready. The example StatefulSet uses the default
# OrderedReady policy, under which the controller creates pod 1 (and its claim) only once pod 0 is
# Running and Ready; the script marks pod 0 Ready through the status subresource, as a kubelet
# would, so that the unmodified example produces both claims.
set -uo pipefail

NAME=scenario-a
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init "$@"
SHARE="$DIR/share"
SOCK="$DIR/csi.sock"

resolve_driver
resolve_k8s_bin
[ -x "$NSC_K8S_BIN/csi-provisioner" ] || { log "$NSC_K8S_BIN/csi-provisioner missing"; exit 1; }

# --- control plane, driver, sidecar
start_cluster
K() { kubectl "$@"; }

mkdir -p "$SHARE"
rm -f "$SOCK"
spawn driver env NO_COLOR=1 RUST_LOG=debug "$DRIVER" serve --roles=controller --endpoint "unix://$SOCK" --default-share "$SHARE" \
  --nodeid scenario-a --working-mount-dir "$DIR/work"
DRIVER_PID=$SPAWNED
socket_ready() { # fails at once if the driver died
  local end=$(( $(date +%s) + 30 ))
  until [ -S "$SOCK" ]; do
    kill -0 "$DRIVER_PID" 2>/dev/null || { log "driver exited: $(tail -n 5 "$DIR/driver.log")"; return 1; }
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}
must "driver socket appears" socket_ready
spawn csi-provisioner "$NSC_K8S_BIN/csi-provisioner" --csi-address "$SOCK" --kubeconfig "$KUBECONFIG" \
  --extra-create-metadata --leader-election=false --timeout=30s --v=4

DRIVER_NAME=$(sed -n 's/^  name: *//p' "$REPO/deploy/csidriver.yaml" | head -n1)
must "CSIDriver from deploy/ applied" K apply -f "$REPO/deploy/csidriver.yaml"
# deploy/storageclasses.yaml names an NFS server; the test copy keeps class name, provisioner and
# policies, and points at the local share instead.
must "StorageClasses nfs-client and nfs-client-retain (local share) applied" K apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs-client
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs-client-retain
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
reclaimPolicy: Retain
volumeBindingMode: Immediate
EOF

NS=default
STS=redis-pv-sts
CLAIM=redis-100m-pvc
PVC0=$CLAIM-$STS-0 PVC1=$CLAIM-$STS-1
must "examples/redis/redis-pv-sts.yaml applied" K -n "$NS" apply -f "$REPO/examples/redis/redis-pv-sts.yaml"

bound() { [ "$(K -n "$NS" get pvc "$1" -o jsonpath='{.status.phase}')" = Bound ]; }
check "claim $PVC0 created and Bound" wait_for 90 bound "$PVC0"

# Play kubelet for pod 0 so that OrderedReady moves on to pod 1.
check "pod $STS-0 marked Ready" wait_for 30 mark_ready "$NS" "$STS-0"
check "claim $PVC1 created and Bound" wait_for 90 bound "$PVC1"

PVS=()
for c in "$PVC0" "$PVC1"; do
  pv=$(K -n "$NS" get pvc "$c" -o jsonpath='{.spec.volumeName}' 2>/dev/null)
  [ -n "$pv" ] && PVS+=("$pv")
done
pv_is_ours() {
  [ "$(K get pv "$1" -o jsonpath='{.spec.csi.driver}')" = "$DRIVER_NAME" ] \
    && [ "$(K get pv "$1" -o jsonpath='{.spec.persistentVolumeReclaimPolicy}')" = Delete ]
}
for pv in "${PVS[@]}"; do
  check "PV $pv is a $DRIVER_NAME CSI volume, reclaim Delete" pv_is_ours "$pv"
  check "directory $SHARE/$pv exists" test -d "$SHARE/$pv"
  log "  volumeHandle: $(K get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}')"
done
check "two volumes provisioned" test "${#PVS[@]}" -eq 2
named_by_uid() { [ "$(K -n "$NS" get pvc "$1" -o jsonpath='pvc-{.metadata.uid}')" = "$(K -n "$NS" get pvc "$1" -o jsonpath='{.spec.volumeName}')" ]; }
check "PVs are named pvc-<claim uid>" eval 'named_by_uid "$PVC0" && named_by_uid "$PVC1"'

# --- the Retain class: deleting the claim leaves the PV (Released) and the directory
must "claim kept (nfs-client-retain) applied" K -n "$NS" apply -f - <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: kept
spec:
  storageClassName: nfs-client-retain
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
EOF
check "claim kept Bound" wait_for 90 bound kept
KEPT=$(K -n "$NS" get pvc kept -o jsonpath='{.spec.volumeName}')
check "PV $KEPT has reclaim Retain and directory $SHARE/$KEPT exists" eval \
  'test "$(K get pv "$KEPT" -o jsonpath="{.spec.persistentVolumeReclaimPolicy}")" = Retain -a -d "$SHARE/$KEPT"'
listing "before deletion" "$SHARE"

# --- secrets and parameter values stay out of events and the driver's log (issue 14). A class
# passes a Secret as csi-provisioner's provisioner and deleter secret; another class has a
# parameter the driver refuses, whose value is a sentinel too (the refusal names the key only).
SENTINEL=SENTINEL-k8s-$RANDOM$RANDOM
must "Secret and classes with sentinels applied" K apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata: {name: nsc-sentinel, namespace: default}
stringData:
  password: $SENTINEL-password
  token: $SENTINEL-token
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-client-secret}
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
  csi.storage.k8s.io/provisioner-secret-name: nsc-sentinel
  csi.storage.k8s.io/provisioner-secret-namespace: default
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-client-bad-param}
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
  notAParameter: $SENTINEL-param
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: with-secret, namespace: default}
spec:
  storageClassName: nfs-client-secret
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad-param, namespace: default}
spec:
  storageClassName: nfs-client-bad-param
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
EOF
check "claim with-secret (provisioner secret) Bound" wait_for 90 bound with-secret
refused() { K -n "$NS" get events --field-selector involvedObject.name=bad-param -o jsonpath='{.items[*].message}' | grep -q notAParameter; }
check "claim bad-param: ProvisioningFailed event names the parameter" wait_for 60 refused
SECRET_PV=$(K -n "$NS" get pvc with-secret -o jsonpath='{.spec.volumeName}')
check "claims with-secret and bad-param deleted" K -n "$NS" delete pvc with-secret bad-param --wait=true --timeout=60s
[ -n "$SECRET_PV" ] && check "PV $SECRET_PV (deleted with the secret) gone" wait_for 90 absent pv "$SECRET_PV"
no_sentinel() {
  local where
  for where in "events:$(K get events -A -o yaml)" "driver log:$(cat "$DIR/driver.log")" \
    "PVs:$(K get pv -o yaml)"; do
    case $where in *"$SENTINEL"*) log "sentinel found in ${where%%:*}"; return 1 ;; esac
  done
}
check "sentinels (2 secret values, 1 parameter value) in no event, PV or driver log line (RUST_LOG=debug)" no_sentinel

# --- delete: the StatefulSet keeps its claims (default retention policy), so delete them too.
check "StatefulSet deleted" K -n "$NS" delete -f "$REPO/examples/redis/redis-pv-sts.yaml" --wait=true --timeout=60s
# Pods have no kubelet to confirm termination: remove them outright so the claims are released.
K -n "$NS" delete pod -l app=$STS --grace-period=0 --force --ignore-not-found >/dev/null 2>&1 || true
check "claims deleted" K -n "$NS" delete pvc "$PVC0" "$PVC1" kept --ignore-not-found --wait=true --timeout=60s
for pv in "${PVS[@]}"; do
  check "PV $pv deleted" wait_for 90 absent pv "$pv"
  check "directory $SHARE/$pv removed" wait_for 30 test ! -e "$SHARE/$pv"
done
released() { [ "$(K get pv "$KEPT" -o jsonpath='{.status.phase}')" = Released ]; }
check "Retain: PV $KEPT stays Released" wait_for 30 released
sleep 2 # give a wrong delete the time to happen
check "Retain: directory $SHARE/$KEPT stays" test -d "$SHARE/$KEPT"
check "no other PV is left" test "$(K get pv -o jsonpath='{.items[*].metadata.name}')" = "$KEPT"
listing "after deletion" "$SHARE"
log "scenario A done in $(since "$T0")"
