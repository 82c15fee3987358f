#!/usr/bin/env bash
# Every test of nfs-subdir-csi, in one command (CI runs exactly this through .ci/run).
# Needs root (real mounts, network namespaces, ganesha). Installs what it needs: Debian packages
# through the stages' own scripts, csi-sanity and the Kubernetes binaries from the Go module proxy.
# Each stage prints its own output; the end is a summary with one line per stage and a total.
# The end-to-end stages are tests/e2e/<suite>/run.sh (map: tests/README.md); each prints PASS/FAIL
# lines and "<suite>: N passed, N failed" (tests/e2e/lib.sh).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin
export CARGO_TERM_COLOR=never
[ "$(id -u)" = 0 ] || { echo "run-all: needs root (real mounts, namespaces, ganesha)"; exit 2; }

# A clean clone needs roughly 25 GB free (debug build ~8 GB, Go builds of Kubernetes, the QEMU guest,
# images); say so up front instead of failing deep inside a linker with ENOSPC.
free_gb=$(df -Pk "$repo" | awk 'NR==2 {print int($4 / 1048576)}')
echo "run-all: $free_gb GB free on $(df -P "$repo" | awk 'NR==2 {print $6}'), $(nproc) CPUs"
[ "$free_gb" -ge 25 ] || echo "run-all: WARNING: less than 25 GB free; builds may fail with 'No space left on device'"

# Whole-run budget: CI stops a run at 90 min and then lands nothing, so every stage gets at most its own
# budget and never more than what is left of 85 min; a stage past its budget is killed and FAILs.
run_budget=${NSC_RUN_BUDGET:-5100}
declare -a names=() results=() times=()
build_ok=1
stage() {   # stage NAME BUDGET_SECONDS NEEDS_BUILD(0|1) COMMAND...
  local name=$1 budget=$2 needs_build=$3; shift 3
  local t0=$SECONDS left=$((run_budget - SECONDS)) rc=0
  [ "$budget" -le "$left" ] || budget=$left
  echo; echo "=== $name: $*"
  if [ "$needs_build" = 1 ] && [ "$build_ok" = 0 ]; then
    echo "=== $name: not run: the build stage failed, so there is no binary to test"
    rc=1
  elif [ "$budget" -le 0 ]; then
    echo "=== $name: not run: the run's ${run_budget} s budget is spent"
    rc=1
  else
    timeout --kill-after=30 "$budget" "$@" || rc=$?
    [ $rc -ne 124 ] || echo "=== $name: killed after its budget of $budget s"
  fi
  if [ $rc = 0 ]; then results+=(PASS); else results+=(FAIL); fi
  names+=("$name"); times+=($((SECONDS - t0)))
  echo "=== $name: ${results[-1]} in $((SECONDS - t0)) s"
}

# A cold machine spends much of the run building Go tools (Kubernetes, containerd, the sidecars, Helm,
# csi-sanity) and installing packages. tests/e2e/prefetch.sh starts them now, in the background at the
# lowest CPU and I/O priority, so they use what the stages in front leave idle; the stages wait on the
# same locks and find the tools built. On a warm cache it is done in seconds.
prefetch_log=$(mktemp /tmp/nsc-prefetch.XXXXXX)
setsid nice -n 19 ionice -c 3 bash tests/e2e/prefetch.sh >"$prefetch_log" 2>&1 &
prefetch_pid=$!
trap 'kill -- -$prefetch_pid 2>/dev/null; rm -f "$prefetch_log"' EXIT

stage format      60 0 cargo fmt --check
stage clippy     900 0 cargo clippy --all-targets --locked -- -D warnings
stage build      900 0 cargo build --locked --all-targets
[ "${results[-1]}" = PASS ] || build_ok=0
stage cargo-test 900 1 cargo test --locked -- --test-threads=2
stage csi-sanity 600 1 bash tests/e2e/csi-sanity/run.sh target/debug/nfs-subdir-csi
stage metrics    300 1 bash tests/e2e/metrics/run.sh target/debug/nfs-subdir-csi
stage example    300 1 cargo run --locked --example lifecycle
stage manifests  900 0 bash tests/e2e/manifests/run.sh
stage nfs-guest 1200 1 bash tests/e2e/nfs-guest/run.sh
stage kubernetes 1800 1 bash tests/e2e/k8s/run.sh
stage cluster   2400 1 bash tests/e2e/cluster/run.sh

echo; echo "=== prefetch (tests/e2e/prefetch.sh, background)"
cat "$prefetch_log"
echo; echo "=== summary"
pass=0; fail=0
for i in "${!names[@]}"; do
  printf '  %-12s %s  %4d s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
  if [ "${results[$i]}" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "stages: $pass passed, $fail failed in $SECONDS s"
[ "$fail" = 0 ]
