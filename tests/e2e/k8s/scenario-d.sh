#!/usr/bin/env bash
# Scenario D: VolumeSnapshots, restores and clones through Kubernetes, on a real (kubelet-less)
# control plane with a local share (a host directory: files are written and compared directly).
#   nfs-subdir-csi serve --roles=controller  +  csi-provisioner  +  csi-snapshotter (the args of
#   deploy/controller.yaml), both as the ServiceAccount of deploy/rbac.yaml; snapshot-controller
#   (the args of deploy/snapshot-controller/deployment.yaml) as the ServiceAccount of
#   deploy/snapshot-controller/rbac.yaml; the snapshot CRDs from the Go module
#   github.com/kubernetes-csi/external-snapshotter/client/v8 at the csi-snapshotter's tag
#   (config/crd; the same files deploy/snapshot-controller/crd/ fetches); the VolumeSnapshotClasses
#   of deploy/snapshot/ as they are; an Immediate StorageClass on the share.
#   1. claim src, files written into its directory -> VolumeSnapshot (format copy) ReadyToUse, its
#      directory under .nfs-subdir-csi/snapshots/; the source then changes.
#   2. claim from the VolumeSnapshot -> Bound, the files as they were at the snapshot.
#   3. claim from claim src (clone) -> Bound, the files as they are now.
#   4. claim src deleted (PV and directory go) -> the snapshot stays ReadyToUse; another restore
#      -> the same files.
#   5. format tar.zst (class nfs-subdir-csi-tar-zst): snapshot of the clone -> restore -> same files.
#   6. VolumeSnapshots deleted -> contents and snapshot directories gone; claims deleted -> no PV,
#      no pvc-* directory left.
# Ends with "scenario-d: N passed, N failed" (tests/e2e/lib.sh). No `set -e`.
#
#   bash tests/e2e/k8s/scenario-d.sh [workdir]
# Env: NSC_DRIVER_BIN, NSC_K8S_BIN (as scenario-a.sh).
set -uo pipefail

NAME=scenario-d
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init "$@"
SHARE="$DIR/share"
SOCK="$DIR/csi.sock"
NS=nfs-subdir-csi          # deploy/'s namespace (its ServiceAccounts and Lease)
SNAPS="$SHARE/.nfs-subdir-csi/snapshots"

resolve_driver
resolve_k8s_bin
for b in csi-provisioner csi-snapshotter snapshot-controller; do
  [ -x "$NSC_K8S_BIN/$b" ] || { fail "$NAME-binaries" "$NSC_K8S_BIN/$b missing (tests/e2e/k8s/build.sh)"; exit 1; }
done
VERSION=$(sed -n 's|^ *image: .*/csi-snapshotter:\(v[0-9.]*\)$|\1|p' "$REPO/deploy/controller.yaml" | head -n1)
[ -n "$VERSION" ] || { fail "$NAME-version" "no csi-snapshotter image in deploy/controller.yaml"; exit 1; }

start_cluster
K() { kubectl "$@"; }

# --- the snapshot CRDs from the Go module cache (helpers.sh)
must "snapshot CRDs of client/v8@$VERSION (Go module) applied and Established" snapshot_crds

# --- deploy/'s objects and accounts
must "deploy/namespace.yaml, csidriver.yaml, rbac.yaml applied" K apply -f "$REPO/deploy/namespace.yaml" \
  -f "$REPO/deploy/csidriver.yaml" -f "$REPO/deploy/rbac.yaml"
must "deploy/snapshot-controller/rbac.yaml applied" K apply -f "$REPO/deploy/snapshot-controller/rbac.yaml"
must "deploy/snapshot/ (VolumeSnapshotClasses) applied" K apply -k "$REPO/deploy/snapshot"
DRIVER_NAME=$(sed -n 's/^  name: *//p' "$REPO/deploy/csidriver.yaml" | head -n1)

# kubeconfig_for <ns> <sa>: $DIR/<sa>.kubeconfig with a token of that ServiceAccount
kubeconfig_for() {
  local token server ca
  token=$(K -n "$1" create token "$2" --duration=2h) || return 1
  server=$(K config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(K config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  (umask 077; cat >"$DIR/$2.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: nsc, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: $2, user: {token: "$token"}}]
contexts: [{name: nsc, context: {cluster: nsc, user: $2}}]
current-context: nsc
EOF
  )
}
must "token of $NS/nfs-subdir-csi-controller" kubeconfig_for "$NS" nfs-subdir-csi-controller
must "token of kube-system/snapshot-controller" kubeconfig_for kube-system snapshot-controller

# args_of <file> <container> <pod namespace>: the container's args, one a line, as the pod would
# run them ($(POD_NAMESPACE) expanded, the socket path ours)
args_of() {
  K create --dry-run=client -f "$1" -o json | python3 -c '
import json, sys
obj = json.load(sys.stdin)
for c in obj["spec"]["template"]["spec"]["containers"]:
    if c["name"] == sys.argv[1]:
        for a in c.get("args") or []:
            print(a.replace("$(POD_NAMESPACE)", sys.argv[2]).replace("/csi/csi.sock", sys.argv[3]))
' "$2" "$3" "$SOCK"
}
mapfile -t SNAPSHOTTER_ARGS < <(args_of "$REPO/deploy/controller.yaml" csi-snapshotter "$NS")
mapfile -t PROVISIONER_ARGS < <(args_of "$REPO/deploy/controller.yaml" csi-provisioner "$NS")
mapfile -t CONTROLLER_ARGS < <(args_of "$REPO/deploy/snapshot-controller/deployment.yaml" snapshot-controller kube-system)
must "sidecar args read from deploy/ (${#PROVISIONER_ARGS[@]}, ${#SNAPSHOTTER_ARGS[@]}, ${#CONTROLLER_ARGS[@]})" \
  test "${#SNAPSHOTTER_ARGS[@]}" -gt 0 -a "${#PROVISIONER_ARGS[@]}" -gt 0 -a "${#CONTROLLER_ARGS[@]}" -gt 0

# --- driver and the three controllers
mkdir -p "$SHARE"
rm -f "$SOCK"
spawn driver env NO_COLOR=1 "$DRIVER" serve --roles=controller --endpoint "unix://$SOCK" --default-share "$SHARE" \
  --nodeid "$NAME" --working-mount-dir "$DIR/work"
DRIVER_PID=$SPAWNED
socket_ready() {
  local end=$(( $(date +%s) + 30 ))
  until [ -S "$SOCK" ]; do
    kill -0 "$DRIVER_PID" 2>/dev/null || { log "driver exited: $(tail -n 5 "$DIR/driver.log")"; return 1; }
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}
must "driver socket appears" socket_ready
CTRL_KC="$DIR/nfs-subdir-csi-controller.kubeconfig"
spawn csi-provisioner "$NSC_K8S_BIN/csi-provisioner" --kubeconfig "$CTRL_KC" "${PROVISIONER_ARGS[@]}" --v=4
spawn csi-snapshotter "$NSC_K8S_BIN/csi-snapshotter" --kubeconfig "$CTRL_KC" "${SNAPSHOTTER_ARGS[@]}" --v=4
spawn snapshot-controller "$NSC_K8S_BIN/snapshot-controller" --kubeconfig "$DIR/snapshot-controller.kubeconfig" \
  "${CONTROLLER_ARGS[@]}" --v=4

must "StorageClass nfs-snap (local share, Immediate) applied" K apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs-snap
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

# claim <name> [dataSource kind] [dataSource name]
claim() {
  local src=""
  [ $# -ge 3 ] && src="  dataSource: {kind: $2, name: $3$([ "$2" = VolumeSnapshot ] && echo ', apiGroup: snapshot.storage.k8s.io')}"
  K -n default apply -f - <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $1
spec:
  storageClassName: nfs-snap
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
$src
EOF
}
# snapshot <name> <claim> <class>
snapshot() {
  K -n default apply -f - <<EOF
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $1
spec:
  volumeSnapshotClassName: $3
  source: {persistentVolumeClaimName: $2}
EOF
}
bound() { [ "$(K -n default get pvc "$1" -o jsonpath='{.status.phase}')" = Bound ]; }
ready() { [ "$(K -n default get volumesnapshot "$1" -o jsonpath='{.status.readyToUse}')" = true ]; }
dir_of() { echo "$SHARE/$(K -n default get pvc "$1" -o jsonpath='{.spec.volumeName}')"; }
# tree <dir>: path, type, mode, owner, size, link target and content hash of every entry (no times: the
# tar.zst format keeps seconds only, and the claim directories' own times differ)
tree() {
  (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %s %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}
same_tree() { # <dir> <want file>
  if ! diff <(tree "$1") "$2" >"$DIR/diff.out" 2>&1; then log "tree of $1 differs: $(head -n 10 "$DIR/diff.out")"; return 1; fi
}
snap_dir() { # <volumesnapshot>: its directory on the share, from the content's snapshot handle
  local content handle
  content=$(K -n default get volumesnapshot "$1" -o jsonpath='{.status.boundVolumeSnapshotContentName}') || return 1
  handle=$(K get volumesnapshotcontent "$content" -o jsonpath='{.status.snapshotHandle}') || return 1
  [ -n "$handle" ] && echo "$SNAPS/$(cut -d'#' -f4 <<<"$handle")"
}

# --- 1. source claim with files; snapshot (copy)
t=$(date +%s%3N)
must "claim src applied" claim src
check "claim src Bound" wait_for 90 bound src
SRC=$(dir_of src)
must "directory $SRC exists" test -d "$SRC"
mkdir -p "$SRC/sub/deeper"
echo "first version" >"$SRC/a.txt"
head -c 1048576 /dev/urandom >"$SRC/sub/random.bin"
printf 'x%.0s' $(seq 1 5000) >"$SRC/sub/deeper/x.txt"
ln -s ../a.txt "$SRC/sub/link"
ln "$SRC/a.txt" "$SRC/sub/hardlink"
chmod 0640 "$SRC/sub/random.bin"; chmod 0750 "$SRC/sub/deeper"
chown 1234:5678 "$SRC/sub/deeper/x.txt"
tree "$SRC" >"$DIR/at-snapshot.tree"
log "source tree ($(grep -c . "$DIR/at-snapshot.tree") lines) written into $SRC"

must "VolumeSnapshot snap-copy (class nfs-subdir-csi) applied" snapshot snap-copy src nfs-subdir-csi
check "VolumeSnapshot snap-copy ReadyToUse" wait_for 120 ready snap-copy
log "snapshot ready $(since "$t") after the claim was applied"
SNAP_COPY=$(snap_dir snap-copy)
check "snapshot directory $SNAP_COPY on the share (meta.json, data/)" \
  test -f "$SNAP_COPY/meta.json" -a -d "$SNAP_COPY/data"
check "the VolumeSnapshot's content names driver $DRIVER_NAME, deletionPolicy Delete" eval \
  'c=$(K -n default get volumesnapshot snap-copy -o jsonpath="{.status.boundVolumeSnapshotContentName}");
   test "$(K get volumesnapshotcontent "$c" -o jsonpath="{.spec.driver} {.spec.deletionPolicy}")" = "$DRIVER_NAME Delete"'
# the source moves on after the snapshot
echo "second version" >"$SRC/a.txt"
echo new >"$SRC/added.txt"
rm "$SRC/sub/deeper/x.txt"
tree "$SRC" >"$DIR/now.tree"
check "the source changed after the snapshot" eval '! cmp -s "$DIR/at-snapshot.tree" "$DIR/now.tree"'

# --- 2. restore; 3. clone
must "claim restore-1 (dataSource VolumeSnapshot snap-copy) applied" claim restore-1 VolumeSnapshot snap-copy
must "claim clone-1 (dataSource PersistentVolumeClaim src) applied" claim clone-1 PersistentVolumeClaim src
check "claim restore-1 Bound" wait_for 120 bound restore-1
check "claim clone-1 Bound" wait_for 120 bound clone-1
check "restore-1 holds the files as they were at the snapshot" same_tree "$(dir_of restore-1)" "$DIR/at-snapshot.tree"
check "clone-1 holds the files of src as they are now" same_tree "$(dir_of clone-1)" "$DIR/now.tree"
check "restore-1 and clone-1 are new directories" eval \
  'test "$(dir_of restore-1)" != "$SRC" -a "$(dir_of clone-1)" != "$SRC" -a "$(dir_of restore-1)" != "$(dir_of clone-1)"'

# --- 4. the source goes; the snapshot stays restorable
SRC_PV=$(K -n default get pvc src -o jsonpath='{.spec.volumeName}')
check "claim src deleted" K -n default delete pvc src --wait=true --timeout=60s
check "PV $SRC_PV deleted" wait_for 90 absent pv "$SRC_PV"
check "directory of src removed" wait_for 30 test ! -e "$SRC"
check "VolumeSnapshot snap-copy still ReadyToUse" ready snap-copy
must "claim restore-2 (from snap-copy, source gone) applied" claim restore-2 VolumeSnapshot snap-copy
check "claim restore-2 Bound" wait_for 120 bound restore-2
check "restore-2 holds the files as they were at the snapshot" same_tree "$(dir_of restore-2)" "$DIR/at-snapshot.tree"

# --- 5. format tar.zst
must "VolumeSnapshot snap-tar (class nfs-subdir-csi-tar-zst) of clone-1 applied" \
  snapshot snap-tar clone-1 nfs-subdir-csi-tar-zst
check "VolumeSnapshot snap-tar ReadyToUse" wait_for 120 ready snap-tar
SNAP_TAR=$(snap_dir snap-tar)
check "snapshot $SNAP_TAR is one archive (data.tar.zst)" test -f "$SNAP_TAR/data.tar.zst" -a ! -e "$SNAP_TAR/data"
must "claim restore-tar (from snap-tar) applied" claim restore-tar VolumeSnapshot snap-tar
check "claim restore-tar Bound" wait_for 120 bound restore-tar
check "restore-tar holds the files of clone-1" same_tree "$(dir_of restore-tar)" "$DIR/now.tree"
listing "with snapshots" "$SHARE"
echo "\$ kubectl get volumesnapshot,volumesnapshotcontent"
K -n default get volumesnapshot -o wide 2>&1 | sed 's/^/  /'
K get volumesnapshotcontent 2>&1 | sed 's/^/  /'
echo "\$ ls $SNAPS"
ls -l "$SNAPS" 2>&1 | sed 's/^/  /'

# --- 6. deleting the VolumeSnapshots removes the snapshots from the share
for s in snap-copy snap-tar; do
  content=$(K -n default get volumesnapshot "$s" -o jsonpath='{.status.boundVolumeSnapshotContentName}')
  dir=$(snap_dir "$s")
  check "VolumeSnapshot $s deleted" K -n default delete volumesnapshot "$s" --wait=true --timeout=60s
  check "VolumeSnapshotContent of $s deleted" wait_for 60 absent volumesnapshotcontent "$content"
  check "snapshot directory ${dir#"$SHARE"/} removed from the share" wait_for 30 test -n "$dir" -a ! -e "$dir"
done
check "no snapshot left on the share" eval 'test -z "$(ls -A "$SNAPS")"'
PVS=$(K get pv -o jsonpath='{.items[*].metadata.name}')
check "claims deleted" K -n default delete pvc restore-1 clone-1 restore-2 restore-tar --wait=true --timeout=60s
check "no PV left" wait_for 90 empty get pv -o name
check "no pvc-* directory left on the share" eval 'test -z "$(cd "$SHARE" && ls -d pvc-* 2>/dev/null)"'
log "  PVs were: $PVS"
check "csi-snapshotter logged no RBAC denial" eval '! grep -i forbidden "$DIR/csi-snapshotter.log"'
check "snapshot-controller logged no RBAC denial" eval '! grep -i forbidden "$DIR/snapshot-controller.log"'
check "csi-provisioner logged no RBAC denial" eval '! grep -i forbidden "$DIR/csi-provisioner.log"'
listing "after deletion" "$SHARE"
log "scenario D done in $(since "$T0")"
