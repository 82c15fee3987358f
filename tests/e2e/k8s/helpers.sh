# shellcheck shell=bash
# tests/e2e/k8s/helpers.sh — helpers of the k8s scenario scripts (smoke, dry-run, scenario-a/b);
# sourced, not run. Brings in tests/e2e/lib.sh (check, pass, fail, skip, missing_tool, summary).
#
# The sourcing script sets NAME (log prefix and summary label) and HERE, then calls
# `lib_init "$@"`, which sets REPO and DIR (the script's work dir: its first argument, else a fresh
# /tmp/nsc-<NAME>.* removed after a pass). It gets: log, since, check, must, wait_for, spawn, stop_pid, kill_pid, listing,
# mark_ready, resolve_driver, resolve_k8s_bin, start_cluster, snapshot_crds, and a trap that stops whatever was
# spawned and the cluster, and prints "<NAME>: N passed, N failed" (non-zero exit on a failure).
# The scripts run without `set -e`: a failed check is counted and the script goes on (`must` stops).

# shellcheck source=tests/e2e/lib.sh
. "$HERE/../lib.sh"

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$NAME" -1 "$*" >&2; }
since() { local d=$(( $(date +%s%3N) - $1 )); printf '%d.%03ds' $((d / 1000)) $((d % 1000)); }

PIDS=()
LOGS_TO_SHOW=()

lib_finish() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  bash "$HERE/cluster.sh" stop "$DIR/k8s" >/dev/null 2>&1 || true
  # a script that stopped early (`must`, or an error) without a FAIL line still fails
  [ "$rc" -eq 0 ] || [ "$E2E_FAILED" -gt 0 ] || fail "$NAME-exit-status" "the script exited $rc"
  if [ "$E2E_FAILED" -gt 0 ]; then
    log "logs: $DIR/k8s/logs (control plane) and $DIR/*.log"
    for p in "${LOGS_TO_SHOW[@]}"; do
      [ -f "$DIR/$p.log" ] && { echo "--- last lines of $DIR/$p.log" >&2; tail -n 25 "$DIR/$p.log" >&2; }
    done
  elif [ "${OWN_DIR:-0}" = 1 ]; then
    rm -rf "$DIR"
  fi
  summary "$NAME" || exit 1
}

REPO=$(cd "$HERE/../../.." && pwd)

lib_init() {  # [workdir]
  OWN_DIR=0
  if [ $# -ge 1 ]; then
    mkdir -p "$1" && DIR=$(cd "$1" && pwd)
  else
    DIR=$(mktemp -d "/tmp/nsc-$NAME.XXXXXX") && OWN_DIR=1
  fi
  T0=$(date +%s%3N)
  trap lib_finish EXIT
  export NO_COLOR=1
}

# must <name> <command...>: a check whose failure (or any earlier one) makes the rest pointless
must() { check "$@"; [ "$E2E_FAILED" -eq 0 ] || exit 1; }

# The negative checks: an error of kubectl itself (no server, no permission, a typo) must fail
# them, never pass as "nothing there".
# absent <kubectl get args...>: kubectl answers NotFound for the object
absent() {
  local out
  if out=$(kubectl get "$@" -o name 2>&1); then log "still there: $out"; return 1; fi
  case $out in *'(NotFound)'*) return 0 ;; esac
  log "kubectl get $* failed: $out"
  return 1
}
# empty <kubectl args...>: kubectl succeeds and prints nothing
empty() {
  local out
  out=$(kubectl "$@") || { log "kubectl $* failed"; return 1; }
  [ -z "$out" ] || { log "kubectl $*: $out"; return 1; }
}

# wait_for <seconds> <command...>: poll every 0.2 s
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# spawn <name> <cmd...>: start a background process logging to $DIR/<name>.log; it is killed at
# exit, and by a watchdog should this script die without running its trap. Sets SPAWNED.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$DIR/$name.log" 2>&1 &
  SPAWNED=$!
  PIDS+=("$SPAWNED")
  LOGS_TO_SHOW+=("$name")
  local me=$$ pid=$SPAWNED
  (trap '' HUP; while [ -d "/proc/$me" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done; kill -KILL "$pid" 2>/dev/null) \
    </dev/null >/dev/null 2>&1 &
  log "started $name (pid $SPAWNED): $*"
}
# kill_pid <pid>: SIGKILL and reap
kill_pid() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }
# stop_pid <pid>: SIGTERM, wait up to 10 s; true if it exited by itself
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }; sleep 0.1; done
  kill_pid "$1"; return 1
}

# listing <title> <share>: what a user would look at, on stdout
listing() {
  echo "----- $1"
  echo "\$ kubectl get pvc -A -o wide"
  kubectl get pvc -A -o wide 2>&1 | sed 's/^/  /'
  echo "\$ kubectl get pv -o wide"
  kubectl get pv -o wide 2>&1 | sed 's/^/  /'
  echo "\$ find $2 -mindepth 1 -maxdepth 2   (without the driver's state dir)"
  (cd "$2" && find . -mindepth 1 -maxdepth 2 -not -path './.nfs-subdir-csi' -not -path './.nfs-subdir-csi/*' | sort) 2>&1 | sed 's/^/  /'
}

# mark_ready <ns> <pod>: play kubelet, so that an OrderedReady StatefulSet moves on
mark_ready() {
  kubectl -n "$1" get pod "$2" >/dev/null 2>&1 || return 1
  kubectl -n "$1" patch pod "$2" --subresource=status --type=merge -p \
    '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"},{"type":"ContainersReady","status":"True"}]}}'
}

# The driver binary: NSC_DRIVER_BIN, else target/{release,debug}, else cargo build. Sets DRIVER.
resolve_driver() {
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
}

# The Kubernetes binaries (build.sh caches them). Exports NSC_K8S_BIN.
resolve_k8s_bin() {
  if [ -z "${NSC_K8S_BIN:-}" ]; then
    NSC_K8S_BIN=$(bash "$HERE/build.sh" | tail -n1) || exit 1
  fi
  export NSC_K8S_BIN
}

# start_cluster: a fresh control plane in $DIR/k8s owned by this script; exports KUBECONFIG, PATH.
start_cluster() {
  export NSC_CLUSTER_OWNER_PID=$$
  local env
  env=$(bash "$HERE/cluster.sh" start "$DIR/k8s") || { log "cluster start failed"; exit 1; }
  eval "$env"
}

# snapshot_crds: apply the VolumeSnapshot CRDs (and the VolumeGroupSnapshot ones, as upstream's
# kustomization does) from the Go module github.com/kubernetes-csi/external-snapshotter/client/v8
# at the csi-snapshotter tag of deploy/controller.yaml (config/crd: the files
# deploy/snapshot-controller/crd/ fetches from GitHub), downloaded through the module proxy once,
# and wait until the three snapshot.storage.k8s.io ones are Established.
snapshot_crds() {
  local version dir c
  version=$(sed -n 's|^ *image: .*/csi-snapshotter:\(v[0-9.]*\)$|\1|p' "$REPO/deploy/controller.yaml" | head -n1)
  [ -n "$version" ] || { log "no csi-snapshotter image in deploy/controller.yaml"; return 1; }
  dir=$(cd "$DIR" && GOFLAGS='' GOTOOLCHAIN=local PATH="$PATH:/usr/local/go/bin" go mod download -json \
    "github.com/kubernetes-csi/external-snapshotter/client/v8@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/config/crd/kustomization.yaml" ] || { log "no config/crd in client/v8@$version ($dir)"; return 1; }
  kubectl apply -k "$dir/config/crd" >&2 || return 1
  for c in volumesnapshots volumesnapshotcontents volumesnapshotclasses; do
    kubectl wait --for=condition=Established --timeout=60s "crd/$c.snapshot.storage.k8s.io" >&2 || return 1
  done
}
