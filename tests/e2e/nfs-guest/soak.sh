#!/bin/bash
# tests/e2e/nfs-guest/soak.sh — the soak (not part of CI): csi-sanity run NSC_SOAK_RUNS times (20) in
# a row against ONE driver process on real kernel NFS mounts, in ONE guest boot, cycling through
# NSC_SANITY_VERSIONS ("4.1 3"). Prints every run's totals, the sum, the slowest run, and the
# driver's thread and open-file counts after each run (a leak shows as a climb).
#
# Usage (as root, on the host):  nice bash tests/e2e/nfs-guest/soak.sh
#   The same file is the guest script: on the host (no NFS_GUEST_PHASE) it builds the driver, finds
#   csi-sanity (../csi-sanity/install.sh) and boots the guest with itself (boot.sh); in the guest it
#   sources csi-suite-guest.sh for start_driver / run_sanity and loops.
# Knobs: NSC_SOAK_RUNS (20), NSC_SANITY_VERSIONS ("4.1 3"), NSC_SANITY_TIMEOUT (400 s per run),
#   NFS_GUEST_TIMEOUT (default: 420 s per run + 300 s), and boot.sh's knobs (NFS_GUEST_WORK, NFS_GUEST_QUIET, ...).
# Ends with boot.sh's "nfs-guest: N passed, N failed" (one PASS per clean run); exit 0 only if
# every run passed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
RUNS=${NSC_SOAK_RUNS:-20}

if [[ -z ${NFS_GUEST_PHASE:-} ]]; then
  # ---- host: build, then one guest boot running this file
  set -e
  REPO=$(cd "$HERE/../../.." && pwd -P)
  cd "$REPO"
  [[ $(id -u) == 0 ]] || { echo "soak: must run as root (ganesha, namespaces, mounts)" >&2; exit 2; }
  export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin
  cargo build --bin nfs-subdir-csi
  export NSC_DRIVER=${NSC_DRIVER:-$REPO/target/debug/nfs-subdir-csi}
  export CSI_SANITY=${CSI_SANITY:-$(bash "$HERE/../csi-sanity/install.sh" | tail -n1)}
  [[ -x $CSI_SANITY ]] || { echo "soak: no csi-sanity binary at '$CSI_SANITY'" >&2; exit 2; }
  export NSC_SOAK_RUNS=$RUNS NSC_SANITY_VERSIONS=${NSC_SANITY_VERSIONS:-4.1 3}
  # one run takes ~130 s under TCG on a loaded 2-core machine; csi-suite-guest.sh's 200 s limit
  # cut a run short there once: the soak judges the driver, not the machine's load
  export NSC_SANITY_TIMEOUT=${NSC_SANITY_TIMEOUT:-400}
  export NFS_GUEST_KEEP="${NFS_GUEST_KEEP:-} $(dirname "$CSI_SANITY")"
  export NFS_GUEST_ENV="${NFS_GUEST_ENV:-} NSC_DRIVER CSI_SANITY NSC_SANITY_VERSIONS NSC_SOAK_RUNS NSC_SANITY_TIMEOUT"
  export NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-$((RUNS * 420 + 300))}
  echo "soak: $RUNS csi-sanity runs (NFS versions cycled: $NSC_SANITY_VERSIONS), guest limit ${NFS_GUEST_TIMEOUT}s"
  exec bash "$HERE/boot.sh" "$HERE/soak.sh"
fi

# ---- guest: one driver, RUNS csi-sanity runs
# shellcheck source-path=SCRIPTDIR source=csi-suite-guest.sh
NSC_SUITE_FUNCTIONS_ONLY=1 . "$NFS_GUEST_DIR/csi-suite-guest.sh"
if ! DRIVER_PID=$(start_driver "$SOCK" "$W/work" "$DRIVER_LOG"); then
  fail "soak-driver-start"
  exit 1
fi
read -ra versions <<<"${NSC_SANITY_VERSIONS:-4.1 3}"
threads() { find "/proc/$DRIVER_PID/task" -mindepth 1 -maxdepth 1 | wc -l; }
fds() { find "/proc/$DRIVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
echo "soak: driver pid $DRIVER_PID: $(threads) threads, $(fds) open files before run 1"
sum_ran=0 sum_passed=0 sum_failed=0 sum_skipped=0 sum_ms=0 bad=0 slow_ms=0 slow=none
T0=$(ms)
for ((i = 1; i <= RUNS; i++)); do
  v=${versions[$(((i - 1) % ${#versions[@]}))]}
  t=$(ms)
  out=$(run_sanity "$v" 2>&1)
  took=$(($(ms) - t))
  log=$(printf '%s/soak-%02d-v%s.log' "$RESULTS" "$i" "$v")
  cp "$RESULTS/sanity-v$v.log" "$log" 2>/dev/null
  # ginkgo's totals: "Ran 70 of 95 Specs in 41.2 seconds", "SUCCESS! -- 70 Passed | 0 Failed | 0 Pending | 25 Skipped"
  ran=$(sed -n 's/^Ran \([0-9]*\) of.*/\1/p' "$log" 2>/dev/null | tail -1)
  read -r passed failed skipped < <(sed -n 's/.*-- \([0-9]*\) Passed | \([0-9]*\) Failed | [0-9]* Pending | \([0-9]*\) Skipped.*/\1 \2 \3/p' \
    "$log" 2>/dev/null | tail -1)
  ran=${ran:-0} passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
  verdict=ok
  if grep -q '^FAIL ' <<<"$out" || ((failed > 0 || ran == 0)); then verdict=FAILED bad=$((bad + 1)); fi
  mounts=$(awk '$2 ~ "^/tmp/sanity-" { n++ } END { print n + 0 }' /proc/mounts)
  printf 'soak: run %2d/%d NFSv%-3s %s: ran %s, passed %s, failed %s, skipped %s, %d.%03d s; driver %s threads, %s fds; %s leftover mounts\n' \
    "$i" "$RUNS" "$v" "$verdict" "$ran" "$passed" "$failed" "$skipped" $((took / 1000)) $((took % 1000)) \
    "$(threads)" "$(fds)" "$mounts"
  [[ $verdict == ok ]] || { echo "$out" | sed 's/^/    /'; }
  sum_ran=$((sum_ran + ran)) sum_passed=$((sum_passed + passed)) sum_failed=$((sum_failed + failed))
  sum_skipped=$((sum_skipped + skipped)) sum_ms=$((sum_ms + took))
  ((took > slow_ms)) && { slow_ms=$took; slow="run $i (NFSv$v)"; }
  if [[ $verdict == ok && $mounts == 0 ]]; then pass "soak-run-$i-nfsv$v"
  else fail "soak-run-$i-nfsv$v" "$verdict, $mounts leftover mounts (log: $(basename "$log"))"; fi
done
printf 'soak: SUM %d runs: ran %d specs, passed %d, failed %d, skipped %d; %d run(s) with a failure (flakes); csi-sanity time %d.%03d s, wall %d s; slowest %s %d.%03d s\n' \
  "$RUNS" "$sum_ran" "$sum_passed" "$sum_failed" "$sum_skipped" "$bad" $((sum_ms / 1000)) $((sum_ms % 1000)) \
  $((($(ms) - T0) / 1000)) "$slow" $((slow_ms / 1000)) $((slow_ms % 1000))
if kill -0 "$DRIVER_PID" 2>/dev/null; then pass "soak-driver-survived"; else fail "soak-driver-survived" "it exited"; fi
kill -TERM "$DRIVER_PID" 2>/dev/null
echo "soak: driver log warnings/errors: $(grep -c -E ' (WARN|ERROR) ' "$DRIVER_LOG")"
exit 0
