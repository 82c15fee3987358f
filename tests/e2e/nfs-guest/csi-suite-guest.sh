#!/bin/bash
# tests/e2e/nfs-guest/csi-suite-guest.sh — the driver against real kernel NFS mounts, in ONE guest boot:
#   1. csi-sanity against `nfs-subdir-csi serve` with server=10.0.2.2 share=/export, NFSv4.1 and NFSv3
#      (the version picked by the `mountOptions` StorageClass parameter);
#   2. the guest scenarios of tests/e2e/nfs-guest/scenarios/main.rs and its modules over gRPC (StatefulSet story,
#      default NFS version, stale handles on the controller's working mount and on a node target,
#      server down and back, ganesha restart), against the same driver process, plus a
#      controller-only second driver that deletes a volume knowing nothing but its id;
#   2b. before the scenarios, quota-guest.sh: XFS and ext4 with project quotas exported by the
#      guest's kernel NFS server and a driver with --export-path, for the quota scenario;
#   3. host check: the directories of deleted volumes are gone from the export, the trash is empty;
#      the export-fault scenarios' exports (fault-exports.sh): read-only one unchanged, squashing
#      ones hold nothing but the driver's empty state.
# Normally started by tests/e2e/nfs-guest/run.sh, which builds the binaries and calls
#   tests/e2e/nfs-guest/boot.sh tests/e2e/nfs-guest/csi-suite-guest.sh
# Environment (forwarded by csi-suite.sh through NFS_GUEST_ENV):
#   NSC_DRIVER      the driver binary (target/debug/nfs-subdir-csi)
#   NSC_GUEST_TEST  the compiled test binary of tests/e2e/nfs-guest/scenarios/main.rs (empty: part 2 is skipped);
#                   its one test is #[ignore]d, so it runs here with --ignored and NSC_GUEST_SUITE=1
#   CSI_SANITY      csi-sanity binary (empty: part 1 is skipped)
#   NSC_SANITY_VERSIONS  NFS versions for csi-sanity (default "4.1 3")
# nfs-guest: host-phases
# No `set -e`: every check is counted and the suite goes on to the next one.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-helpers.sh
. "${NFS_GUEST_DIR:-$(dirname "$0")}/guest-helpers.sh"

case ${NFS_GUEST_PHASE:-guest} in
  host-prepare)
    # restart-mid-removal (scenarios/removal.rs): a volume directory holding 10,000 files in 1,000
    # directories (NSC_REMOVAL_DIRS directories of 10 files), made here on the export itself
    # (seconds, where the guest would take minutes); the scenario's CreateVolume adopts it.
    if [[ -z ${NSC_GUEST_ONLY:-} || ,$NSC_GUEST_ONLY, == *,restart-mid-removal,* ]]; then
      python3 - "$EXPORT_DIR/pvc-restart-mid-removal" "${NSC_REMOVAL_DIRS:-1000}" <<'PY' || fail "host-prepare-removal-tree"
import os, sys
root = sys.argv[1]
for d in range(int(sys.argv[2])):
    sub = os.path.join(root, f"d{d:04}")
    os.makedirs(sub, exist_ok=True)
    for f in range(10):
        with open(os.path.join(sub, f"f{f}"), "w") as fh:
            fh.write("x" * 100)
PY
    fi
    exit 0 ;;
  host-check)
    # Volumes the guest deleted (one name per line, written by main.rs): gone from the export itself.
    list=$RESULTS/deleted-volumes.txt
    if [[ ! -s $list ]]; then
      fail "host-deleted-volumes-listed" "$list is missing: the guest scenarios did not get that far"
    else
      n=0 left=()
      while read -r name; do
        [[ -n $name ]] || continue
        n=$((n + 1))
        [[ -e $EXPORT_DIR/$name ]] && left+=("$name")
      done <"$list"
      if ((${#left[@]} == 0)); then pass "host-deleted-volume-dirs-gone" "$n checked on $EXPORT_DIR"
      else fail "host-deleted-volume-dirs-gone" "still there: ${left[*]}"; fi
    fi
    # restart-mid-removal: not one file of its 10,000-file tree is left anywhere on the export
    if [[ -z ${NSC_GUEST_ONLY:-} || ,$NSC_GUEST_ONLY, == *,restart-mid-removal,* ]]; then
      n=$(find "$EXPORT_DIR" -path '*/d[0-9][0-9][0-9][0-9]/f[0-9]' | wc -l)
      if ((n == 0)); then pass "host-removal-tree-gone"; else fail "host-removal-tree-gone" "$n files of it left"; fi
    fi
    # Deleted directories go to the trash first and are removed in the background: all done by now.
    trash=$EXPORT_DIR/.nfs-subdir-csi/trash
    if [[ -d $trash ]]; then
      n=$(find "$trash" -mindepth 1 -maxdepth 1 | wc -l)
      if ((n == 0)); then pass "host-trash-empty"; else fail "host-trash-empty" "$n entries left in $trash"; fi
    fi
    # The export-fault scenarios' exports (fault-exports.sh; /export-full was a tmpfs of the
    # namespace, checked from the guest): the read-only one unchanged, the squashing ones left
    # with the driver's empty state only.
    if [[ -n ${NFS_FAULT_DIR:-} && -d $NFS_FAULT_DIR/ro ]]; then
      f=$NFS_FAULT_DIR
      got=$(cd "$f/ro" && find . | sort | tr '\n' ' ')
      if [[ $got == ". ./pvc-ro-kept ./pvc-ro-kept/data " && $(<"$f/ro/pvc-ro-kept/data") == kept ]]; then
        pass "host-export-ro-unchanged"
      else fail "host-export-ro-unchanged" "$got"; fi
      for e in squash anon; do
        [[ -d $f/$e/.nfs-subdir-csi ]] || continue   # the scenario did not run
        left=$(cd "$f/$e" && find . -mindepth 1 -not -path './.nfs-subdir-csi' -not -path './.nfs-subdir-csi/trash' \
          -not -path './.nfs-subdir-csi/volumes' -not -path './locked' | sort | tr '\n' ' ')
        if [[ -z $left ]]; then pass "host-export-$e-nothing-leaked"
        else fail "host-export-$e-nothing-leaked" "left on $f/$e: $left"; fi
      done
    fi
    exit 0 ;;
esac

W=/tmp/nsc
mkdir -p "$W"
SOCK=$W/csi.sock
DRIVER_LOG=$RESULTS/driver.log
echo "csi-suite: kernel $(uname -r), $(nproc) cpus, server $NFS_SERVER:$NFS_SHARE (nfs port $NFS_PORT)"

# Port options the versions need when ganesha is not on 2049 (v3 asks rpcbind; v4 assumes 2049).
port_opts() {  # VERS
  [[ $NFS_PORT == 2049 ]] && return 0
  if [[ $1 == 3 ]]; then echo ",port=$NFS_PORT,mountport=$NFS_MOUNT_PORT"; else echo ",port=$NFS_PORT"; fi
}

start_driver() {  # SOCKET WORKDIR LOG [EXTRA FLAGS...]: start a driver, wait for its socket
  local sock=$1 work=$2 log=$3
  shift 3
  RUST_LOG=${RUST_LOG:-info,nfs_subdir_csi=debug} "$NSC_DRIVER" serve --endpoint "unix://$sock" \
    --working-mount-dir "$work" --nodeid nfs-guest "$@" </dev/null >>"$log" 2>&1 &
  local pid=$! t
  t=$(ms)
  for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.05; done
  if [[ -S $sock ]]; then echo "csi-suite: driver pid $pid on $sock after $(($(ms) - t)) ms" >&2; echo "$pid"
  else echo "csi-suite: driver did not create $sock; log:" >&2; tail -20 "$log" >&2; return 1; fi
}

# ---- 1. csi-sanity, once per NFS version, against the same driver process
# The JUnit report goes through the csi-sanity suite's report.py: its allowlist of skips (only
# capabilities the driver does not advertise) applies here too.
REPORT=$NFS_GUEST_DIR/../csi-sanity/report.py
run_sanity() {  # VERS
  local v=$1 d=/tmp/sanity-v$1 rc t
  mkdir -p "$d"
  {
    echo "server: \"$NFS_SERVER\""
    echo "share: \"$NFS_SHARE\""
    echo "mountOptions: \"nfsvers=$v$(port_opts "$v")\""
  } >"$d/params.yaml"
  echo "csi-suite: csi-sanity NFSv$v: $(tr '\n' ' ' <"$d/params.yaml")"
  t=$(ms)
  timeout "${NSC_SANITY_TIMEOUT:-200}" "$CSI_SANITY" --csi.endpoint "$SOCK" --csi.mountdir "$d/mnt" --csi.stagingdir "$d/stage" \
    --csi.testvolumeparameters "$d/params.yaml" \
    --csi.testvolumesize 1073741824 --csi.testvolumeexpandsize 2147483648 \
    --ginkgo.junit-report "$RESULTS/sanity-v$v.xml" --ginkgo.no-color \
    >"$RESULTS/sanity-v$v.log" 2>&1
  rc=$?
  echo "csi-suite: csi-sanity NFSv$v exited $rc after $(($(ms) - t)) ms (log: sanity-v$v.log)"
  grep -E '^(Ran |SUCCESS|FAIL!)' "$RESULTS/sanity-v$v.log" | sed 's/^/  /'
  if [[ ! -s $RESULTS/sanity-v$v.xml ]]; then
    fail "csi-sanity-nfsv$v" "no junit report; exit $rc"
    tail -30 "$RESULTS/sanity-v$v.log"
  elif ! python3 "$REPORT" "$RESULTS/sanity-v$v.xml" "nfsv$v"; then
    fail "csi-sanity-nfsv$v" "see the specs listed above (sanity-v$v.log)"
  elif ((rc != 0)); then
    fail "csi-sanity-nfsv$v" "csi-sanity exited $rc"
  else
    pass "csi-sanity-nfsv$v"
  fi
}

# soak.sh sources this file for the functions above (start_driver, port_opts, run_sanity) only
[[ ${NSC_SUITE_FUNCTIONS_ONLY:-} == 1 ]] && return 0

if ! DRIVER_PID=$(start_driver "$SOCK" "$W/work" "$DRIVER_LOG"); then
  fail "driver-start"
  exit 1
fi
pass "driver-start"

if [[ -n ${CSI_SANITY:-} ]]; then
  for v in ${NSC_SANITY_VERSIONS:-4.1 3}; do run_sanity "$v"; done
  # csi-sanity must leave no mounts behind
  leftover=$(awk '$2 ~ "^/tmp/sanity-" { print $2 }' /proc/mounts)
  if [[ -z $leftover ]]; then pass "csi-sanity-no-leftover-mounts"; else fail "csi-sanity-no-leftover-mounts" "$leftover"; fi
else
  skip csi-sanity "CSI_SANITY is empty (NSC_SKIP_SANITY=1)"
fi

# ---- 2. scenarios over gRPC (tests/e2e/nfs-guest/scenarios/main.rs)
if [[ -n ${NSC_GUEST_TEST:-} ]]; then
  # shellcheck source-path=SCRIPTDIR source=quota-guest.sh
  . "$NFS_GUEST_DIR/quota-guest.sh"
  [[ -z ${NSC_GUEST_ONLY:-} || ,$NSC_GUEST_ONLY, == *,quota,* ]] && quota_setup
  SOCK2=$W/csi2.sock
  if DRIVER2_PID=$(start_driver "$SOCK2" "$W/work2" "$RESULTS/driver2.log" --roles controller); then
    t=$(ms)
    # The test is #[ignore]d (a plain `cargo test` cannot run it): --ignored runs it here; without
    # NSC_GUEST_SUITE=1 it fails at once.
    NSC_GUEST_SUITE=1 NSC_SOCKET=$SOCK NSC_SOCKET2=$SOCK2 NSC_DRIVER_LOG=$DRIVER_LOG NSC_DRIVER_PID=$DRIVER_PID \
      NSC_PORT_OPTS_4="$(port_opts 4.1)" NSC_PORT_OPTS_3="$(port_opts 3)" \
      timeout 600 "$NSC_GUEST_TEST" --ignored --exact nfs_guest_scenarios --nocapture --test-threads=1 2>&1 |
      tee "$RESULTS/scenarios.log"
    rc=${PIPESTATUS[0]}
    echo "csi-suite: scenarios exited $rc after $(($(ms) - t)) ms"
    ((rc == 0)) || grep -q '^FAIL ' "$RESULTS/guest.log" || fail "scenarios-exit-status" "$rc"
    # exit 0 without the test having run (filtered out, not --ignored) must not pass quietly
    grep -q '^nfs-guest-scenarios: .* passed, .* failed' "$RESULTS/scenarios.log" ||
      fail "scenarios-ran" "the test binary reported no scenario summary; see scenarios.log"
    kill "$DRIVER2_PID" 2>/dev/null
    quota_report
  else
    fail "driver2-start"
  fi
else
  skip scenarios "NSC_GUEST_TEST is empty (NSC_SKIP_SCENARIOS=1)"
fi

# ---- the driver is still the one started first, and stops cleanly
if kill -0 "$DRIVER_PID" 2>/dev/null; then pass "driver-survived-suite"; else fail "driver-survived-suite" "it exited"; fi
kill -TERM "$DRIVER_PID" 2>/dev/null
for _ in $(seq 100); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DRIVER_PID" 2>/dev/null; then fail "driver-stops-on-sigterm"; kill -KILL "$DRIVER_PID"; else pass "driver-stops-on-sigterm"; fi
echo "csi-suite: driver log warnings/errors: $(grep -c -E ' (WARN|ERROR) ' "$DRIVER_LOG") (see driver.log)"
exit 0
