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

declare -a names=() results=() times=()
stage() {   # stage NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  echo; echo "=== $name: $*"
  if "$@"; then results+=(PASS); else results+=(FAIL); fi
  names+=("$name"); times+=($((SECONDS - t0)))
  echo "=== $name: ${results[-1]} in $((SECONDS - t0)) s"
}

stage format        cargo fmt --check
stage clippy        cargo clippy --all-targets --locked -- -D warnings
stage build         cargo build --locked --all-targets
stage cargo-test    cargo test --locked -- --test-threads=2
stage csi-sanity    bash tests/e2e/csi-sanity/run.sh target/debug/nfs-subdir-csi
stage metrics       bash tests/e2e/metrics/run.sh target/debug/nfs-subdir-csi
stage example       cargo run --locked --example lifecycle
stage manifests     bash tests/e2e/manifests/run.sh
stage nfs-guest     bash tests/e2e/nfs-guest/run.sh
stage kubernetes    bash tests/e2e/k8s/run.sh
stage cluster       bash tests/e2e/cluster/run.sh

echo; echo "=== summary"
pass=0; fail=0
for i in "${!names[@]}"; do
  printf '  %-12s %s  %4d s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
  if [ "${results[$i]}" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "stages: $pass passed, $fail failed"
[ "$fail" = 0 ]
