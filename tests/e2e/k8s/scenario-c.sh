#!/usr/bin/env bash
# Scenario C: taking over from the two tools users run today, on one real (kubelet-less) control
# plane with local shares, then claim labels in CSI-mode subDir templates.
#
#   1. nfs-subdir-external-provisioner's world, made by hand in its exact shapes (facts from
#      kubernetes-sigs/nfs-subdir-external-provisioner, cmd/nfs-subdir-external-provisioner/
#      provisioner.go): StorageClasses with `provisioner: k8s-sigs.io/nfs-subdir-external-provisioner`
#      and its parameters (none = archive; archiveOnDelete "false"; onDelete retain; pathPattern);
#      per claim a PV named pvc-<claim uid> (the name the provisioner library passes), annotation
#      pv.kubernetes.io/provisioned-by (set by sig-storage-lib-external-provisioner), in-tree
#      `nfs: {server: NFS_SERVER, path: NFS_PATH/<dir>}`, reclaim policy and mount options of the
#      class, claimRef to the claim; <dir> = <namespace>-<claim>-<pv name>, or the pathPattern
#      result; a file in each directory. kube-controller-manager binds them.
#   2. `nfs-subdir-csi provisioner --provisioner-name k8s-sigs.io/nfs-subdir-external-provisioner
#      --nfs-server --nfs-path --default-share` takes over: bound claims stay bound, their
#      directories untouched. Deleting claims releases as that provisioner did: archive to
#      archived-<last component> at the export root, delete, retain, a class deleted first
#      (archive: nothing lost), a directory already gone (no error). New claims in its classes
#      bind with its directory names. Rollback as the migration guide gives it: the finalizer
#      loop, after which its PVs are the old provisioner's again.
#   3. CSI mode, run as `--drivername nfs.csi.k8s.io` with csi-provisioner: a csi-driver-nfs PV
#      (facts from kubernetes-csi/csi-driver-nfs pkg/nfs/controllerserver.go: handle
#      server#share-without-slash#subDir#uuid#onDelete, volumeAttributes server/share/subdir/
#      csi.storage.k8s.io/*) with onDelete retain is released without a trip to its server; a
#      class with subDir `${pvc.metadata.labels.team:-shared}/${pvc.metadata.name}` makes
#      <label>/<claim> and shared/<claim>; without a fallback a missing label is a Warning event
#      and no volume; an annotation that tries to climb out is refused.
# Prints the listings before and after; ends with "scenario-c: N passed, N failed".
#
#   bash tests/e2e/k8s/scenario-c.sh [workdir]
# Env: NSC_DRIVER_BIN, NSC_K8S_BIN (as for scenario-a.sh).
set -uo pipefail

NAME=scenario-c
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init "$@"

SHARE="$DIR/export"         # stands for NFS_SERVER:NFS_PATH, as /persistentvolumes did in its pod
OLD=k8s-sigs.io/nfs-subdir-external-provisioner
NFS_SERVER=127.0.0.1 NFS_PATH=/exports
NS=default

resolve_driver
resolve_k8s_bin
[ -x "$NSC_K8S_BIN/csi-provisioner" ] || { log "$NSC_K8S_BIN/csi-provisioner missing"; exit 1; }
start_cluster
mkdir -p "$SHARE"

uid_of() { kubectl -n "$NS" get pvc "$1" -o jsonpath='{.metadata.uid}'; }
volume_of() { kubectl -n "$NS" get pvc "$1" -o jsonpath='{.spec.volumeName}'; }
bound() { [ "$(kubectl -n "$NS" get pvc "$1" -o jsonpath='{.status.phase}')" = Bound ]; }
pvj() { kubectl get pv "$1" -o jsonpath="$2"; }
has_event() { kubectl -n "$NS" get events --field-selector "involvedObject.name=$1" -o jsonpath='{.items[*].reason}' | tr ' ' '\n' | grep -qx "$2"; }
event_note() { kubectl -n "$NS" get events --field-selector "involvedObject.name=$1,reason=$2" -o jsonpath='{.items[*].message}'; }
claim() { # <name> <class> [labels] [annotations]
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1, labels: {${3:-}}, annotations: {${4:-}}}
spec:
  storageClassName: $2
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
EOF
}

# --- 1. its classes, claims, PVs and directories
must "its StorageClasses applied" kubectl apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: old-default}
provisioner: $OLD
reclaimPolicy: Delete
mountOptions: [nfsvers=4.1]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: old-nodelete}
provisioner: $OLD
parameters: {archiveOnDelete: "false"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: old-retain}
provisioner: $OLD
parameters: {onDelete: retain, archiveOnDelete: "false"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: old-pattern}
provisioner: $OLD
parameters: {pathPattern: "\${.PVC.namespace}/\${.PVC.name}", archiveOnDelete: "true"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: old-gone}
provisioner: $OLD
EOF
declare -A DIRS PVS
old_volume() { # <claim> <class> [dir]: its claim, directory with a file, PV
  local uid pv dir
  kubectl -n "$NS" apply -f - <<<"$(claim "$1" "$2")" >/dev/null || return 1
  uid=$(uid_of "$1") pv=pvc-$uid
  dir=${3:-$NS-$1-$pv}
  [ "$1" = missing ] || { mkdir -p "$SHARE/$dir" && echo "data of $1" >"$SHARE/$dir/file"; } || return 1
  DIRS[$1]=$dir PVS[$1]=$pv
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  annotations: {pv.kubernetes.io/provisioned-by: $OLD}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: $2
  mountOptions: $( [ "$2" = old-default ] && echo '[nfsvers=4.1]' || echo '[]')
  claimRef: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: $NS, name: $1, uid: $uid}
  nfs: {server: $NFS_SERVER, path: $NFS_PATH/$dir}
EOF
}
for spec in "keep old-default" "arch old-default" "del old-nodelete" "ret old-retain" \
            "pat old-pattern $NS/pat" "gone old-gone" "missing old-default"; do
  # shellcheck disable=SC2086
  must "its volume for claim ${spec%% *} made" old_volume $spec
done
for c in keep arch del ret pat gone missing; do check "claim $c Bound (to its PV ${PVS[$c]})" wait_for 60 bound "$c"; done
KEEP_SUM=$(cd "$SHARE" && sha256sum "${DIRS[keep]}/file")
listing "its volumes, before the takeover" "$SHARE"

# --- 2. takeover
spawn provisioner env RUST_LOG=info "$DRIVER" provisioner --provisioner-name "$OLD" \
  --default-share "$SHARE" --nfs-server "$NFS_SERVER" --nfs-path "$NFS_PATH" \
  --working-mount-dir "$DIR/work" --leader-elect=false
PROV_PID=$SPAWNED
has_finalizer() { pvj "$1" '{.metadata.finalizers[*]}' | tr ' ' '\n' | grep -qx nfs-subdir.csi.rs/directory; }
for c in keep arch del ret pat gone missing; do
  check "its PV ${PVS[$c]} taken over (directory finalizer added)" wait_for 30 has_finalizer "${PVS[$c]}"
done
check "bound claims stay bound to the same PVs" eval 'bound keep && test "$(volume_of keep)" = "${PVS[keep]}"'
check "class old-gone deleted before its claim" kubectl delete storageclass old-gone
check "claims arch del ret pat gone missing deleted" kubectl -n "$NS" delete pvc arch del ret pat gone missing --wait=false
for c in arch del ret pat gone missing; do check "PV ${PVS[$c]} ($c) deleted" wait_for 60 absent pv "${PVS[$c]}"; done
has() { test -f "$SHARE/$1/file" && grep -qx "data of $2" "$SHARE/$1/file"; }
check "no archiveOnDelete/onDelete: archived to archived-${DIRS[arch]} at the root" eval 'has "archived-${DIRS[arch]}" arch && test ! -e "$SHARE/${DIRS[arch]}"'
check "archiveOnDelete false: directory ${DIRS[del]} deleted" wait_for 30 test ! -e "$SHARE/${DIRS[del]}"
check "onDelete retain: directory ${DIRS[ret]} kept as it was" has "${DIRS[ret]}" ret
check "pathPattern dir $NS/pat archived as archived-pat at the root (its rule)" eval 'has archived-pat pat && test ! -e "$SHARE/$NS/pat"'
check "class deleted first: archived anyway (nothing lost)" has "archived-${DIRS[gone]}" gone
check "directory already gone: PV deleted, no error event" eval '! kubectl get events -A -o jsonpath="{.items[*].reason}" | grep -q VolumeFailedDelete'
check "claim keep: still Bound, directory untouched" eval 'bound keep && test "$(cd "$SHARE" && sha256sum "${DIRS[keep]}/file")" = "$KEEP_SUM"'
must "new claims fresh (old-default) and fresh2 (old-pattern) applied" kubectl -n "$NS" apply -f - <<EOF
$(claim fresh old-default)
$(claim fresh2 old-pattern)
EOF
check "claim fresh Bound" wait_for 60 bound fresh
check "claim fresh2 Bound" wait_for 60 bound fresh2
FRESH=$(volume_of fresh) FRESH_DIR=$NS-fresh-$(volume_of fresh)
check "fresh: its naming $FRESH_DIR, nfs: $NFS_SERVER:$NFS_PATH/$FRESH_DIR, provisioned-by $OLD" eval \
  'test -d "$SHARE/$FRESH_DIR" && test "$(pvj "$FRESH" "{.spec.nfs.server}:{.spec.nfs.path} {.metadata.annotations.pv\.kubernetes\.io/provisioned-by}")" = "$NFS_SERVER:$NFS_PATH/$FRESH_DIR $OLD"'
check "fresh2: pathPattern gave $NS/fresh2" test -d "$SHARE/$NS/fresh2"
listing "after the takeover's deletions, new claims bound" "$SHARE"
check "claim fresh deleted" kubectl -n "$NS" delete pvc fresh --wait=false
check "fresh: its default, archived to archived-$FRESH_DIR" wait_for 60 test -d "$SHARE/archived-$FRESH_DIR"
check "PV $FRESH deleted" wait_for 60 absent pv "$FRESH"
FRESH2=$(volume_of fresh2)
check "fresh2: PV says archive-naming root" test "$(pvj "$FRESH2" '{.metadata.annotations.nfs-subdir\.csi\.rs/archive-naming}')" = root
check "claim fresh2 deleted" kubectl -n "$NS" delete pvc fresh2 --wait=false
check "fresh2 (nested pathPattern): archived to archived-fresh2 at the root, as it names archives" \
  wait_for 60 eval 'test -d "$SHARE/archived-fresh2" && test ! -e "$SHARE/$NS/fresh2" && test ! -e "$SHARE/$NS/archived-fresh2"'
check "PV $FRESH2 deleted" wait_for 60 absent pv "$FRESH2"
check "provisioner stops on SIGTERM" stop_pid "$PROV_PID"
# Rollback, as docs/migrate-from-nfs-subdir-external-provisioner.md gives it: with this
# provisioner stopped, its finalizer comes off every PV (the guide's loop, verbatim in effect), and
# what is left is the old provisioner's world: its PVs in their old shape, claims bound, data as it was.
rollback_finalizers() {
  local pv
  for pv in $(kubectl get pv -o name); do
    if kubectl get "$pv" -o jsonpath='{.metadata.finalizers}' | grep -q nfs-subdir.csi.rs/directory; then
      kubectl patch "$pv" --type=merge -p '{"metadata":{"finalizers":["kubernetes.io/pv-protection"]}}' >/dev/null || return 1
    fi
  done
}
echo "PV finalizers before the rollback: $(kubectl get pv -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.finalizers} {end}')"
check "rollback: the guide's finalizer loop runs" rollback_finalizers
check "rollback: no PV keeps nfs-subdir.csi.rs/directory" eval '! kubectl get pv -o jsonpath="{.items[*].metadata.finalizers}" | grep -q nfs-subdir.csi.rs/directory'
check "rollback: keep's PV is the old provisioner's again (in-tree nfs:, provisioned-by $OLD, only pv-protection)" eval \
  'test "$(pvj "${PVS[keep]}" "{.spec.nfs.path} {.metadata.annotations.pv\.kubernetes\.io/provisioned-by} {.metadata.finalizers}")" = "$NFS_PATH/${DIRS[keep]} $OLD [\"kubernetes.io/pv-protection\"]"'
check "rollback: claim keep still Bound, its data untouched" eval 'bound keep && test "$(cd "$SHARE" && sha256sum "${DIRS[keep]}/file")" = "$KEEP_SUM"'

# --- 3. CSI mode under csi-driver-nfs's name: its PVs, and labels in subDir templates
CSI_SHARE="$DIR/csi-share" SOCK="$DIR/csi.sock"
mkdir -p "$CSI_SHARE"
spawn driver env RUST_LOG=info "$DRIVER" serve --roles=controller --drivername nfs.csi.k8s.io \
  --endpoint "unix://$SOCK" --nodeid scenario-c --working-mount-dir "$DIR/work-csi"
must "driver socket appears" wait_for 30 test -S "$SOCK"
spawn csi-provisioner "$NSC_K8S_BIN/csi-provisioner" --csi-address "$SOCK" --kubeconfig "$KUBECONFIG" \
  --extra-create-metadata --leader-election=false --timeout=30s --v=4
must "CSIDriver nfs.csi.k8s.io and classes applied" kubectl apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: nfs.csi.k8s.io}
spec: {attachRequired: false, volumeLifecycleModes: [Persistent]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-csi}
provisioner: nfs.csi.k8s.io
parameters: {server: $NFS_SERVER, share: /exports, onDelete: retain}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: team}
provisioner: nfs.csi.k8s.io
parameters: {share: $CSI_SHARE, subDir: "\${pvc.metadata.labels.team:-shared}/\${pvc.metadata.name}"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: team-strict}
provisioner: nfs.csi.k8s.io
parameters: {share: $CSI_SHARE, subDir: "\${pvc.metadata.labels.team}/\${pvc.metadata.name}"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: by-annotation}
provisioner: nfs.csi.k8s.io
parameters: {share: $CSI_SHARE, subDir: "\${pvc.metadata.annotations.dir:-x}"}
EOF
# A csi-driver-nfs volume with onDelete retain, as its CreateVolume answered for a class
# {server, share: /exports, onDelete: retain}: the share is written without its leading '/'.
must "claim legacy and its csi-driver-nfs PV made" eval 'kubectl -n "$NS" apply -f - <<<"$(claim legacy nfs-csi)" >/dev/null'
LUID=$(uid_of legacy)
must "csi-driver-nfs PV pvc-$LUID applied" kubectl apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pvc-$LUID
  annotations: {pv.kubernetes.io/provisioned-by: nfs.csi.k8s.io}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: nfs-csi
  claimRef: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: $NS, name: legacy, uid: $LUID}
  csi:
    driver: nfs.csi.k8s.io
    volumeHandle: "$NFS_SERVER#exports#pvc-$LUID##retain"
    volumeAttributes: {server: $NFS_SERVER, share: /exports, subdir: pvc-$LUID, onDelete: retain,
      csi.storage.k8s.io/pv/name: pvc-$LUID, csi.storage.k8s.io/pvc/name: legacy,
      csi.storage.k8s.io/pvc/namespace: $NS}
EOF
check "claim legacy Bound to its csi-driver-nfs PV" wait_for 60 bound legacy
must "claims blue, plain, strict, climb applied" kubectl -n "$NS" apply -f - <<EOF
$(claim blue team 'team: blue')
$(claim plain team)
$(claim strict team-strict)
$(claim climb by-annotation '' 'dir: "../../escape"')
EOF
check "claim blue Bound" wait_for 60 bound blue
check "claim plain Bound" wait_for 60 bound plain
check "label team=blue: directory blue/blue" test -d "$CSI_SHARE/blue/blue"
check "no label, fallback: directory shared/plain" test -d "$CSI_SHARE/shared/plain"
check "no label, no fallback: Warning ProvisioningFailed naming the label" eval \
  'wait_for 60 has_event strict ProvisioningFailed && event_note strict ProvisioningFailed | grep -q "pvc.metadata.labels.team"'
check "annotation ../../escape: Warning ProvisioningFailed" eval \
  'wait_for 60 has_event climb ProvisioningFailed && event_note climb ProvisioningFailed | grep -qi "invalid"'
check "strict and climb stay Pending, nothing made outside the share" eval \
  'test "$(kubectl -n "$NS" get pvc strict climb -o jsonpath="{.items[*].status.phase}")" = "Pending Pending" && test ! -e "$DIR/escape"'
listing "CSI share with label templates" "$CSI_SHARE"
check "claims legacy and blue deleted" kubectl -n "$NS" delete pvc legacy blue --wait=false
check "csi-driver-nfs PV (onDelete retain) deleted, its server never contacted" eval \
  'wait_for 60 absent pv "pvc-$LUID" && grep -q "share not touched" "$DIR/driver.log"'
check "blue: directory blue/blue gone" wait_for 60 test ! -e "$CSI_SHARE/blue/blue"
log "scenario C done in $(since "$T0")"
