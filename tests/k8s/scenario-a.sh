#!/usr/bin/env bash
# Scenario A: the user story on a real (kubelet-less) control plane with a local share.
#   nfs-subdir-csi serve --roles=controller --default-share <share>  +  csi-provisioner sidecar
#   deploy/csidriver.yaml, a test copy of StorageClass nfs-client with parameters {share: <share>}
#   kubectl apply -f examples/redis/redis-pv-sts.yaml -> both claims Bound -> <share>/pvc-<uuid> exist
#   delete the StatefulSet and the claims -> PVs deleted -> directories gone.
# Prints PASS or FAIL last; exits non-zero on failure.
#
#   bash tests/k8s/scenario-a.sh [workdir]
# Env: NSC_DRIVER_BIN (default: target/release/nfs-subdir-csi, else target/debug/nfs-subdir-csi,
#      else `cargo build` it), NSC_K8S_BIN (binaries; default built/cached by build.sh).
#
# No kubelet runs here, so Pods never become Ready. The example StatefulSet uses the default
# OrderedReady policy, under which the controller creates pod 1 (and its claim) only once pod 0 is
# Running and Ready; the script marks pod 0 Ready through the status subresource, as a kubelet
# would, so that the unmodified example produces both claims.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
T0=$(date +%s%3N)
log() { printf '[scenario-a %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
since() { local d=$(( $(date +%s%3N) - $1 )); printf '%d.%03ds' $((d / 1000)) $((d % 1000)); }

OWN_DIR=0
if [ $# -ge 1 ]; then mkdir -p "$1"; DIR=$(cd "$1" && pwd); else DIR=$(mktemp -d /tmp/nsc-scenario-a.XXXXXX); OWN_DIR=1; fi
SHARE="$DIR/share"
SOCK="$DIR/csi.sock"
PASSED=0 FAILED=0
PIDS=()

finish() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  bash "$HERE/cluster.sh" stop "$DIR/k8s" || true
  if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    log "logs: $DIR/k8s/logs (control plane), $DIR/driver.log, $DIR/csi-provisioner.log"
    tail -n 30 "$DIR/driver.log" "$DIR/csi-provisioner.log" >&2 2>/dev/null || true
  elif [ "$OWN_DIR" = 1 ]; then
    rm -rf "$DIR"
  fi
  echo "scenario-a: $PASSED passed, $FAILED failed"
  if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then echo PASS; else echo FAIL; exit 1; fi
}
trap finish EXIT

check() {
  local name=$1 t; shift
  t=$(date +%s%3N)
  if "$@"; then
    PASSED=$((PASSED + 1)); log "ok   $name ($(since "$t"))"
  else
    FAILED=$((FAILED + 1)); log "FAIL $name ($(since "$t"))"
  fi
}
must() { check "$@"; [ "$FAILED" -eq 0 ] || exit 1; }
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# spawn <name> <cmd...>: start a background process logging to $DIR/<name>.log; it is killed at
# exit, and by a watchdog should this script die without running its trap.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$DIR/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  (trap '' HUP; while [ -d "/proc/$$" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done; kill -KILL "$pid" 2>/dev/null) \
    </dev/null >/dev/null 2>&1 &
  log "started $name (pid $pid): $*"
}

# --- binaries
DRIVER=${NSC_DRIVER_BIN:-}
if [ -z "$DRIVER" ]; then
  for c in "$REPO/target/release/nfs-subdir-csi" "$REPO/target/debug/nfs-subdir-csi"; do
    [ -x "$c" ] && { DRIVER=$c; break; }
  done
fi
if [ -z "$DRIVER" ]; then
  log "no driver binary; cargo build --bin nfs-subdir-csi"
  (cd "$REPO" && cargo build --bin nfs-subdir-csi) || exit 1
  DRIVER="$REPO/target/debug/nfs-subdir-csi"
fi
log "driver: $DRIVER"
if [ -z "${NSC_K8S_BIN:-}" ]; then
  NSC_K8S_BIN=$(bash "$HERE/build.sh" | tail -n1) || exit 1
  export NSC_K8S_BIN
fi
[ -x "$NSC_K8S_BIN/csi-provisioner" ] || { log "$NSC_K8S_BIN/csi-provisioner missing"; exit 1; }

# --- control plane, driver, sidecar
export NSC_CLUSTER_OWNER_PID=$$
ENV=$(bash "$HERE/cluster.sh" start "$DIR/k8s") || { log "cluster start failed"; exit 1; }
eval "$ENV"
K() { kubectl "$@"; }

mkdir -p "$SHARE"
rm -f "$SOCK"
spawn driver env NO_COLOR=1 "$DRIVER" serve --roles=controller --endpoint "unix://$SOCK" --default-share "$SHARE" \
  --nodeid scenario-a --working-mount-dir "$DIR/work"
DRIVER_PID=${PIDS[-1]}
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
must "StorageClass nfs-client (local share) applied" K apply -f - <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs-client
provisioner: $DRIVER_NAME
parameters:
  share: $SHARE
reclaimPolicy: Delete
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
mark_ready() {
  K -n "$NS" get pod "$1" >/dev/null 2>&1 || return 1
  K -n "$NS" patch pod "$1" --subresource=status --type=merge -p \
    '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"},{"type":"ContainersReady","status":"True"}]}}'
}
check "pod $STS-0 marked Ready" wait_for 30 mark_ready "$STS-0"
check "claim $PVC1 created and Bound" wait_for 90 bound "$PVC1"
K -n "$NS" get pvc -o wide >&2 || true
K get pv -o wide >&2 || true

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
log "share contents: $(cd "$SHARE" && ls -A | tr '\n' ' ')"

# --- delete: the StatefulSet keeps its claims (default retention policy), so delete them too.
check "StatefulSet deleted" K -n "$NS" delete -f "$REPO/examples/redis/redis-pv-sts.yaml" --wait=true --timeout=60s
# Pods have no kubelet to confirm termination: remove them outright so the claims are released.
K -n "$NS" delete pod -l app=$STS --grace-period=0 --force --ignore-not-found >/dev/null 2>&1 || true
check "claims deleted" K -n "$NS" delete pvc "$PVC0" "$PVC1" --ignore-not-found --wait=true --timeout=60s
pv_gone() { ! K get pv "$1" >/dev/null 2>&1; }
for pv in "${PVS[@]}"; do
  check "PV $pv deleted" wait_for 90 pv_gone "$pv"
  check "directory $SHARE/$pv removed" wait_for 30 test ! -e "$SHARE/$pv"
done
log "share contents after delete: $(cd "$SHARE" && ls -A | tr '\n' ' ')"
log "scenario A done in $(since "$T0")"
