#!/usr/bin/env bash
# Scenario B: the same user story with `nfs-subdir-csi provisioner` (kube-rs, no CSI sidecars) on a
# real (kubelet-less) control plane and a local share, run with least-privilege RBAC through
# ServiceAccount tokens.
#
#   1. A provisioner whose RBAC lacks `create persistentvolumes` makes claim 0's directory, fails
#      on the PV (Warning event on the claim), and is killed with SIGKILL half way.
#   2. Two replicas start at once: one takes the Lease and finishes the job; the other only
#      waits. Both claims of examples/redis/redis-pv-sts.yaml become Bound to PVs named
#      pvc-<claim uid>, with exactly one directory each (nothing duplicated by the restart).
#   3. The in-tree `nfs:` source (volumeSource: nfs, and by default with --nfs-server: an old
#      nfs-subdir-external-provisioner class without volumeSource), its
#      pathPattern + archiveOnDelete, a Retain class, and a class with a bad parameter.
#   4. The claims are deleted and the leader is SIGKILLed at once: the other replica takes over,
#      PVs and directories go (the archived one is renamed), the Retain volume and its directory
#      stay, and no PV is left behind.
#      A claim with dataSource PersistentVolumeClaim is a clone holding the source's files; a
#      VolumeSnapshot source, a missing source and a smaller clone get a Warning and stay Pending.
#   5. SIGTERM releases the Lease.
# Prints the claim/PV/directory listings before and after deletion; ends with
# "scenario-b: N passed, N failed" (tests/e2e/lib.sh). No `set -e`: a failed check is counted.
#
#   bash tests/e2e/k8s/scenario-b.sh [workdir]
# Env: NSC_DRIVER_BIN, NSC_K8S_BIN (as for scenario-a.sh).
set -uo pipefail

NAME=scenario-b
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init "$@"

SHARE="$DIR/share"
SYS=nsc-system          # namespace of the provisioner's ServiceAccounts and Lease
PROV=nfs-subdir.csi.rs  # provisioner and driver name
LEASE=$PROV
NS=default
STS=redis-pv-sts
PVC0=redis-100m-pvc-$STS-0 PVC1=redis-100m-pvc-$STS-1
NFS_SERVER=127.0.0.1 NFS_PATH=/exports   # how nodes would reach $SHARE over NFS (nfs: PVs)

resolve_driver
resolve_k8s_bin
start_cluster
mkdir -p "$SHARE"

# --- RBAC: what the provisioner needs, and a crippled copy without `create persistentvolumes`.
rbac() { # <name> <pv verbs>
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: $1, namespace: $SYS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $1}
rules:
- {apiGroups: [""], resources: [persistentvolumeclaims], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [persistentvolumeclaims/status], verbs: [patch]}
- {apiGroups: [""], resources: [persistentvolumes], verbs: [$2]}
- {apiGroups: [storage.k8s.io], resources: [storageclasses], verbs: [get, list, watch]}
- {apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $1}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $1}
subjects: [{kind: ServiceAccount, name: $1, namespace: $SYS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $1-lease, namespace: $SYS}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $1-lease, namespace: $SYS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $1-lease}
subjects: [{kind: ServiceAccount, name: $1, namespace: $SYS}]
EOF
}
# kubeconfig_for <sa>: a kubeconfig with a token of that ServiceAccount
kubeconfig_for() {
  local token server ca
  token=$(kubectl -n "$SYS" create token "$1" --duration=2h) || return 1
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  (umask 077; cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: nsc, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: $1, user: {token: "$token"}}]
contexts: [{name: nsc, context: {cluster: nsc, user: $1}}]
current-context: nsc
EOF
  )
}
must "namespace $SYS created" kubectl create namespace "$SYS"
must "RBAC applied (full and crippled)" kubectl apply -f - <<EOF
$(rbac nsc-provisioner "get, list, watch, create, delete, patch")
---
$(rbac nsc-provisioner-no-create "get, list, watch, delete, patch")
EOF
must "ServiceAccount kubeconfigs written" kubeconfig_for nsc-provisioner
must "crippled kubeconfig written" kubeconfig_for nsc-provisioner-no-create

# provisioner <name> <sa> [flags...]: one replica, as a Deployment would run it
provisioner() {
  local name=$1 sa=$2; shift 2
  spawn "$name" env KUBECONFIG="$DIR/$sa.kubeconfig" RUST_LOG=info "$DRIVER" provisioner \
    --default-share "$SHARE" --nfs-server "$NFS_SERVER" --nfs-path "$NFS_PATH" \
    --working-mount-dir "$DIR/work" --leader-election-namespace "$SYS" \
    --leader-election-identity "$name" --leader-election-lease-duration 6 \
    --leader-election-renew-deadline 4 --leader-election-retry-period 1 "$@"
}
volume_dirs() { (cd "$SHARE" && find . -mindepth 1 -maxdepth 2 -type d -name 'pvc-*' | sort); }
n_volume_dirs() { volume_dirs | grep -c . ; }
uid_of() { kubectl -n "$NS" get pvc "$1" -o jsonpath='{.metadata.uid}'; }
volume_of() { kubectl -n "$NS" get pvc "$1" -o jsonpath='{.spec.volumeName}'; }
bound() { [ "$(kubectl -n "$NS" get pvc "$1" -o jsonpath='{.status.phase}')" = Bound ]; }
reasons() { kubectl -n "$NS" get events --field-selector "involvedObject.name=$1" -o jsonpath='{.items[*].reason}'; }
has_event() { reasons "$1" | tr ' ' '\n' | grep -qx "$2"; }
event_note() { kubectl -n "$NS" get events --field-selector "involvedObject.name=$1,reason=$2" -o jsonpath='{.items[*].message}'; }
pvj() { kubectl get pv "$1" -o jsonpath="$2"; }

# --- 1. half way: directory made, PV refused, provisioner killed
provisioner p0 nsc-provisioner-no-create
P0=$SPAWNED
must "StorageClass nfs-client (provisioner $PROV, default share, CSI source) applied" kubectl apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-client}
provisioner: $PROV
parameters: {volumeSource: csi}
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
must "examples/redis/redis-pv-sts.yaml applied" kubectl -n "$NS" apply -f "$REPO/examples/redis/redis-pv-sts.yaml"
must "claim $PVC0 created" wait_for 60 kubectl -n "$NS" get pvc "$PVC0"
UID0=$(uid_of "$PVC0")
check "crippled provisioner made directory pvc-$UID0" wait_for 60 test -d "$SHARE/pvc-$UID0"
check "Warning ProvisioningFailed on $PVC0 (PV create forbidden)" wait_for 30 has_event "$PVC0" ProvisioningFailed
log "  event: $(event_note "$PVC0" ProvisioningFailed | cut -c1-200)"
check "no PV exists yet" empty get pv -o name
kill_pid "$P0"
log "p0 killed with SIGKILL"

# --- 2. two replicas at once; only the Lease holder acts
provisioner r1 nsc-provisioner; R1=$SPAWNED
provisioner r2 nsc-provisioner; R2=$SPAWNED
check "claim $PVC0 Bound after the restart" wait_for 90 bound "$PVC0"
check "pod $STS-0 marked Ready" wait_for 30 mark_ready "$NS" "$STS-0"
check "claim $PVC1 created and Bound" wait_for 90 bound "$PVC1"
UID1=$(uid_of "$PVC1")
check "$PVC0 bound to pvc-<its uid>" test "$(volume_of "$PVC0")" = "pvc-$UID0"
check "$PVC1 bound to pvc-<its uid>" test "$(volume_of "$PVC1")" = "pvc-$UID1"
check "directories pvc-$UID0 and pvc-$UID1 exist" test -d "$SHARE/pvc-$UID0" -a -d "$SHARE/pvc-$UID1"
check "exactly two volume directories (none duplicated by the restart)" test "$(n_volume_dirs)" -eq 2
pv_ok() { # <pv> <claim> <uid>
  local pv=$1
  [ "$(pvj "$pv" '{.spec.csi.driver}')" = "$PROV" ] &&
  [ "$(pvj "$pv" '{.spec.csi.volumeHandle}')" = "$(pvj "$pv" '{.metadata.annotations.nfs-subdir\.csi\.rs/volume-id}')" ] &&
  [ "$(pvj "$pv" '{.metadata.annotations.pv\.kubernetes\.io/provisioned-by}')" = "$PROV" ] &&
  [ "$(pvj "$pv" '{.spec.persistentVolumeReclaimPolicy}')" = Delete ] &&
  [ "$(pvj "$pv" '{.spec.claimRef.name}/{.spec.claimRef.uid}')" = "$2/$3" ] &&
  [ "$(pvj "$pv" '{.spec.capacity.storage} {.spec.accessModes[*]} {.spec.storageClassName}')" = "100Mi ReadWriteMany nfs-client" ] &&
  pvj "$pv" '{.metadata.finalizers[*]}' | tr ' ' '\n' | grep -qx nfs-subdir.csi.rs/directory
}
check "PV pvc-$UID0: CSI $PROV, handle = id annotation, claimRef uid, Delete, 100Mi RWX, finalizer" pv_ok "pvc-$UID0" "$PVC0" "$UID0"
check "PV pvc-$UID1: likewise" pv_ok "pvc-$UID1" "$PVC1" "$UID1"
check "Normal ProvisioningSucceeded on $PVC0 and $PVC1" eval 'has_event "$PVC0" ProvisioningSucceeded && has_event "$PVC1" ProvisioningSucceeded'
LEADER=$(kubectl -n "$SYS" get lease "$LEASE" -o jsonpath='{.spec.holderIdentity}')
case "$LEADER" in r1) LP=$R1 FOLLOWER=r2 FP=$R2 ;; r2) LP=$R2 FOLLOWER=r1 FP=$R1 ;; *) LP= FOLLOWER= FP= ;; esac
check "Lease $SYS/$LEASE held by one replica (${LEADER:-none})" test -n "$FOLLOWER"
acted() { grep -q 'provisioned\|PV deleted\|finalizer removed' "$DIR/$1.log"; }
check "only the leader acted ($LEADER provisioned, $FOLLOWER did nothing)" eval 'acted "$LEADER" && ! acted "$FOLLOWER"'
check "the follower waits for leadership" grep -q "waiting for leadership" "$DIR/$FOLLOWER.log"

# --- 3. nfs: source, nfs-subdir-external-provisioner parameters, Retain, a bad parameter
must "StorageClasses nfs-intree, nfs-compat, nfs-retain, nfs-grow, nfs-bad applied" kubectl apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-intree}
provisioner: $PROV
parameters: {volumeSource: nfs}
mountOptions: [nfsvers=4.1]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-compat}
provisioner: $PROV
parameters:
  pathPattern: "\${.PVC.namespace}/\${.PVC.annotations.nfs.io/storage-path}"
  archiveOnDelete: "true"
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-retain}
provisioner: $PROV
reclaimPolicy: Retain
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-grow}
provisioner: $PROV
parameters: {volumeSource: csi}
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-bad}
provisioner: $PROV
parameters: {color: blue}
EOF
claim() { # <name> <class> [annotation]
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $1
  annotations: {${3:-}}
spec:
  storageClassName: $2
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
EOF
}
must "claims intree, compat, kept, bad applied" kubectl -n "$NS" apply -f - <<EOF
$(claim intree nfs-intree)
$(claim compat nfs-compat '"nfs.io/storage-path": my-data')
$(claim kept nfs-retain)
$(claim grow nfs-grow)
$(claim bad nfs-bad)
EOF
for c in intree compat kept grow; do check "claim $c Bound" wait_for 60 bound "$c"; done
PV_INTREE=$(volume_of intree) PV_COMPAT=$(volume_of compat) PV_KEPT=$(volume_of kept)
check "intree: nfs: source $NFS_SERVER:$NFS_PATH/$PV_INTREE, class mountOptions" test \
  "$(pvj "$PV_INTREE" '{.spec.nfs.server}:{.spec.nfs.path} {.spec.csi.driver} {.spec.mountOptions[*]}')" = "$NFS_SERVER:$NFS_PATH/$PV_INTREE  nfsvers=4.1"
check "intree: directory $PV_INTREE exists" test -d "$SHARE/$PV_INTREE"
check "compat (no volumeSource): nfs: source by default; pathPattern gave default/my-data, PV path $NFS_PATH/default/my-data" eval \
  'test -d "$SHARE/default/my-data" && test "$(pvj "$PV_COMPAT" "{.spec.nfs.path}")" = "$NFS_PATH/default/my-data"'
no_finalizer() { ! pvj "$1" '{.metadata.finalizers[*]}' | tr ' ' '\n' | grep -qx nfs-subdir.csi.rs/directory; }
check "kept: reclaim Retain, no directory finalizer, directory exists" eval \
  'test "$(pvj "$PV_KEPT" "{.spec.persistentVolumeReclaimPolicy}")" = Retain && no_finalizer "$PV_KEPT" && test -d "$SHARE/$PV_KEPT"'
check "bad: Warning ProvisioningFailed names the unknown parameter" eval \
  'wait_for 30 has_event bad ProvisioningFailed && event_note bad ProvisioningFailed | grep -q "unknown parameter"'
check "bad: claim stays Pending with no PV" test "$(kubectl -n "$NS" get pvc bad -o jsonpath='{.status.phase}/{.spec.volumeName}')" = "Pending/"
# resize (no external-resizer here): the provisioner expands the volume and sets both sizes
PV_GROW=$(volume_of grow)
check "grow: claim's request raised 1Gi -> 2Gi" kubectl -n "$NS" patch pvc grow --type=merge \
  -p '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}'
grown() { [ "$(pvj "$PV_GROW" '{.spec.capacity.storage}')/$(kubectl -n "$NS" get pvc grow -o jsonpath='{.status.capacity.storage}')" = 2Gi/2Gi ]; }
check "grow: PV capacity and claim status.capacity 2Gi" wait_for 60 grown
check "grow: Normal VolumeResizeSuccessful on the claim" wait_for 30 has_event grow VolumeResizeSuccessful
# (a record is a symlink whose target is "<version> <bytes> <volume id>")
check "grow: the volume's record says 2Gi" eval 'readlink "$SHARE/.nfs-subdir-csi/volumes/$PV_GROW" | grep -q " 2147483648 "'
# clones (dataSource PersistentVolumeClaim): the source's files copied, never an empty volume;
# a VolumeSnapshot source, a missing source and a smaller clone: Warning event, claim Pending
mkdir -p "$SHARE/$PV_INTREE/sub" && echo "redis data" >"$SHARE/$PV_INTREE/sub/dump.rdb" \
  && ln -s sub/dump.rdb "$SHARE/$PV_INTREE/link" && head -c 300000 /dev/urandom >"$SHARE/$PV_INTREE/big"
from() { # <name> <request> <kind> <source> [apiGroup]
  printf 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: %s}\nspec:\n' "$1"
  printf '  storageClassName: nfs-intree\n  accessModes: [ReadWriteMany]\n'
  printf '  resources: {requests: {storage: %s}}\n  dataSource: {kind: %s, name: %s%s}\n---\n' \
    "$2" "$3" "$4" "${5:+, apiGroup: $5}"
}
must "claims clone, fromsnap, fromnone, small applied" kubectl -n "$NS" apply -f - <<EOF
$(from clone 2Gi PersistentVolumeClaim intree)
$(from fromsnap 1Gi VolumeSnapshot snap-1 snapshot.storage.k8s.io)
$(from fromnone 1Gi PersistentVolumeClaim no-such-claim)
$(from small 512Mi PersistentVolumeClaim intree)
EOF
check "clone: Bound" wait_for 60 bound clone
PV_CLONE=$(volume_of clone)
tree_of() { (cd "$SHARE/$1" && find . -printf '%p %y %m %s %l\n' | sort && cat sub/dump.rdb big | md5sum); }
check "clone: $PV_CLONE holds the same files as $PV_INTREE (names, types, modes, sizes, data)" \
  eval 'test -n "$PV_CLONE" && test "$(tree_of "$PV_CLONE")" = "$(tree_of "$PV_INTREE")"'
check "clone: nothing left in the restore area" eval 'test -z "$(ls -A "$SHARE/.nfs-subdir-csi/restore")"'
check "fromsnap: Warning says provisioner mode does not restore snapshots" eval \
  'wait_for 30 has_event fromsnap ProvisioningFailed && event_note fromsnap ProvisioningFailed | grep -q "does not restore snapshots"'
check "fromnone: Warning says the source claim does not exist" eval \
  'wait_for 30 has_event fromnone ProvisioningFailed && event_note fromnone ProvisioningFailed | grep -q "no-such-claim does not exist"'
check "small: Warning says a clone must be at least as large as its source" eval \
  'wait_for 30 has_event small ProvisioningFailed && event_note small ProvisioningFailed | grep -q "at least as large"'
for c in fromsnap fromnone small; do
  check "$c: stays Pending with no PV" test "$(kubectl -n "$NS" get pvc "$c" -o jsonpath='{.status.phase}/{.spec.volumeName}')" = "Pending/"
done
listing "before deletion" "$SHARE"

# --- 4. delete everything; SIGKILL the leader at once; the other replica finishes
check "StatefulSet deleted" kubectl -n "$NS" delete -f "$REPO/examples/redis/redis-pv-sts.yaml" --wait=true --timeout=60s
kubectl -n "$NS" delete pod -l app=$STS --grace-period=0 --force --ignore-not-found >/dev/null 2>&1 || true
check "claims deleted" kubectl -n "$NS" delete pvc "$PVC0" "$PVC1" intree compat kept grow bad \
  clone fromsnap fromnone small --wait=false
kill_pid "$LP"
log "leader $LEADER killed with SIGKILL right after the claims were deleted"
for pv in "pvc-$UID0" "pvc-$UID1" "$PV_INTREE" "$PV_COMPAT" "$PV_GROW" "$PV_CLONE"; do
  check "PV $pv deleted" wait_for 90 absent pv "$pv"
done
check "directories pvc-$UID0, pvc-$UID1, $PV_INTREE removed" wait_for 30 eval \
  'test ! -e "$SHARE/pvc-$UID0" -a ! -e "$SHARE/pvc-$UID1" -a ! -e "$SHARE/$PV_INTREE"'
# nfs-subdir-external-provisioner archives a pathPattern directory at the export's root as
# archived-<last component>; a claim made in its classes is archived the same way (scenario C).
check "compat directory archived as archived-my-data at the root, as nfs-subdir-external-provisioner does" eval 'test ! -e "$SHARE/default/my-data" -a -d "$SHARE/archived-my-data"'
released() { [ "$(pvj "$PV_KEPT" '{.status.phase}')" = Released ]; }
check "Retain: PV $PV_KEPT stays (Released), directory stays" eval 'wait_for 30 released && test -d "$SHARE/$PV_KEPT"'
check "no PV leaked: only $PV_KEPT is left" test "$(kubectl get pv -o jsonpath='{.items[*].metadata.name}')" = "$PV_KEPT"
check "the follower $FOLLOWER took over" grep -q "became the leader" "$DIR/$FOLLOWER.log"
check "$FOLLOWER holds the Lease" test "$(kubectl -n "$SYS" get lease "$LEASE" -o jsonpath='{.spec.holderIdentity}')" = "$FOLLOWER"
listing "after deletion" "$SHARE"

# --- 5. a graceful stop hands the Lease back
check "SIGTERM stops $FOLLOWER" stop_pid "$FP"
check "the Lease is released" empty -n "$SYS" get lease "$LEASE" -o jsonpath='{.spec.holderIdentity}'
log "scenario B done in $(since "$T0")"
