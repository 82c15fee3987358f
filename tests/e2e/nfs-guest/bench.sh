#!/bin/bash
# tests/e2e/nfs-guest/bench.sh — build and run the NFS benchmark (not part of CI): the release driver and
# examples/nfs_bench/, then one QEMU guest boot against ganesha with bench-guest.sh (see its
# header for what is measured). Prints the numbers at the end.
# Usage (as root):  bash tests/e2e/nfs-guest/bench.sh
# Knobs: NSC_BENCH_N (sequential pairs, default 200), NSC_BENCH_CONCURRENT_N (calls per
#        throughput mode and round, default 512), NSC_BENCH_ROUNDS (default 3), and boot.sh's
#        (NFS_GUEST_TIMEOUT, NFS_GUEST_WORK, ...).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
cd "$REPO"
[[ $(id -u) == 0 ]] || { echo "bench: must run as root (ganesha, namespaces, mounts)" >&2; exit 2; }
export PATH=$PATH:$HOME/.cargo/bin
cargo build --release --bin nfs-subdir-csi --example nfs_bench
export NSC_DRIVER=$REPO/target/release/nfs-subdir-csi NSC_BENCH_BIN=$REPO/target/release/examples/nfs_bench
export NSC_BENCH_N=${NSC_BENCH_N:-200} NSC_BENCH_CONCURRENT_N=${NSC_BENCH_CONCURRENT_N:-512}
export NSC_BENCH_ROUNDS=${NSC_BENCH_ROUNDS:-3}
export NFS_GUEST_ENV="${NFS_GUEST_ENV:-} NSC_DRIVER NSC_BENCH_BIN NSC_BENCH_N NSC_BENCH_CONCURRENT_N NSC_BENCH_ROUNDS"
export NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-600}
export NFS_GUEST_WORK=${NFS_GUEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nfs-bench.XXXXXX")}
rc=0
NFS_GUEST_QUIET=${NFS_GUEST_QUIET:-1} bash "$HERE/boot.sh" "$HERE/bench-guest.sh" || rc=$?
echo "==== bench results ($NFS_GUEST_WORK/results/bench.txt; guest log: guest.log there)"
cat "$NFS_GUEST_WORK/results/bench.txt" 2>/dev/null || tail -30 "$NFS_GUEST_WORK/results/guest.log"
exit "$rc"
