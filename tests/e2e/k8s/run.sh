#!/usr/bin/env bash
# tests/e2e/k8s/run.sh — the entry point of the Kubernetes suite (CI runs this): builds what is missing (the
# control-plane binaries through build.sh, cached; the driver with cargo), then runs, each on its
# own throwaway cluster:
#   smoke.sh       the harness itself
#   dry-run.sh     server-side dry run of every manifest in deploy/ and examples/; then rbac.sh:
#                  each mode's ServiceAccounts hold exactly their expected permissions
#   scenario-a.sh  CSI path: driver + csi-provisioner + examples/redis
#   scenario-b.sh  `nfs-subdir-csi provisioner`: kube-rs, Lease, crash and takeover
#   scenario-c.sh  taking over nfs-subdir-external-provisioner and csi-driver-nfs; label templates
#   scenario-d.sh  VolumeSnapshots: csi-snapshotter + snapshot-controller, restores, clones
# and ends with one line per stage, the wall times, and "k8s: N passed, N failed" (the checks of
# all stages added up). Exits non-zero if any check or stage failed.
#
#   bash tests/e2e/k8s/run.sh [workdir]     (default: a fresh mktemp dir; kept only on failure)
# Env: NSC_DRIVER_BIN (skip the cargo build and use this binary), NSC_K8S_BIN, NSC_K8S_STAGES
#      (space-separated subset of: smoke dry-run scenario-a scenario-b scenario-c scenario-d).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/../lib.sh"
if [ $# -ge 1 ]; then mkdir -p "$1"; WORK=$(cd "$1" && pwd); OWN=0; else WORK=$(mktemp -d /tmp/nsc-k8s-all.XXXXXX); OWN=1; fi
export PATH=$PATH:/usr/local/go/bin:$HOME/.cargo/bin
export CARGO_TERM_COLOR=never NO_COLOR=1
STAGES=${NSC_K8S_STAGES:-smoke dry-run scenario-a scenario-b scenario-c scenario-d}
T0=$SECONDS
log() { printf '[k8s %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
setup_failed() { fail "$1" "$2"; summary k8s || exit 1; }

declare -a names=() results=() times=()

t=$SECONDS
if [ -z "${NSC_K8S_BIN:-}" ]; then
  NSC_K8S_BIN=$(bash "$HERE/build.sh" | tail -n1) || setup_failed build-k8s "build.sh failed"
  names+=(build-k8s) times+=($((SECONDS - t))) results+=(ok)
  [ -x "$NSC_K8S_BIN/kube-apiserver" ] || setup_failed build-k8s "no kube-apiserver in $NSC_K8S_BIN"
fi
export NSC_K8S_BIN
if [ -z "${NSC_DRIVER_BIN:-}" ]; then
  t=$SECONDS
  log "cargo build --locked --bin nfs-subdir-csi"
  (cd "$REPO" && cargo build --locked --bin nfs-subdir-csi) || setup_failed build-driver "cargo build failed"
  names+=(build-driver) results+=(ok) times+=($((SECONDS - t)))
  export NSC_DRIVER_BIN="$REPO/target/debug/nfs-subdir-csi"
fi
"$NSC_DRIVER_BIN" provisioner --help >/dev/null || setup_failed driver-binary "$NSC_DRIVER_BIN has no provisioner command"

for stage in $STAGES; do
  script="$HERE/$stage.sh"
  t=$SECONDS
  echo; echo "=== k8s $stage"
  rc=0
  bash "$script" "$WORK/$stage" 2>&1 | tee "$WORK/$stage.out" || rc=$?
  # the stage's closing line (tests/e2e/lib.sh): "<name>: N passed, N failed"
  counts=$(grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed$' "$WORK/$stage.out" | tail -n1 || true)
  p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$counts")
  f=$(sed -n 's/.*passed, \([0-9]*\) failed.*/\1/p' <<<"$counts")
  k=$(sed -n 's/^[a-z0-9-]*: \([0-9]*\) skipped$/\1/p' "$WORK/$stage.out" | tail -n1)
  p=${p:-0} f=${f:-0} k=${k:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then   # died before counting
    echo "FAIL k8s-$stage-exit-status: $stage.sh exited $rc without a FAIL line"
    f=1
  fi
  E2E_PASSED=$((E2E_PASSED + p)) E2E_FAILED=$((E2E_FAILED + f)) E2E_SKIPPED=$((E2E_SKIPPED + k))
  names+=("$stage") times+=($((SECONDS - t)))
  if [ "$rc" -eq 0 ]; then results+=("ok $p/$((p + f))"); else results+=("FAIL $f of $((p + f))"); fi
done

echo; echo "=== k8s summary"
for i in "${!names[@]}"; do
  printf '  %-13s %-12s %4d s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
echo "  wall time     $((SECONDS - T0)) s"
if [ "$E2E_FAILED" -eq 0 ] && [ "$OWN" = 1 ]; then rm -rf "$WORK"; else echo "  work dir      $WORK"; fi
summary k8s
