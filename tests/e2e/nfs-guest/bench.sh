#!/bin/bash
# tests/e2e/nfs-guest/bench.sh — build and run the NFS benchmark (not part of CI): the release driver and
# examples/nfs_bench/, then one QEMU guest boot against ganesha with bench-guest.sh (see its
# header for what is measured). Prints the numbers at the end.
# Usage (as root):  bash tests/e2e/nfs-guest/bench.sh
# Knobs: NSC_BENCH_N (sequential pairs, default 200), NSC_BENCH_CONCURRENT_N (calls per
#        throughput mode and round, default 512), NSC_BENCH_ROUNDS (default 3),
#        NSC_BENCH_PARTS ("calls tree-node nfsd"), NSC_BENCH_TREE_ROUNDS (3),
#        NSC_BENCH_TREE_FILES (10000), NSC_BENCH_NODE_N (30), NSC_BENCH_NFSD_CONCURRENT_N (128),
#        NSC_BENCH_NFSD_ROUNDS (1), NSC_BENCH_NODE_LOG (RUST_LOG of part (d)'s driver, warn),
#        NSC_BENCH_NODE_STRACE (1: that driver under strace, see bench-guest.sh),
#        NSC_BENCH_PROFILE (release; "dev" for a quick debug build), and boot.sh's (NFS_GUEST_TIMEOUT,
#        NFS_GUEST_WORK, ...).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
cd "$REPO"
[[ $(id -u) == 0 ]] || { echo "bench: must run as root (ganesha, namespaces, mounts)" >&2; exit 2; }
export PATH=$PATH:$HOME/.cargo/bin
PROFILE=${NSC_BENCH_PROFILE:-release}
OUT=$REPO/target/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --bin nfs-subdir-csi --example nfs_bench --example nfs_bench_tree_node
export NSC_DRIVER=$OUT/nfs-subdir-csi NSC_BENCH_BIN=$OUT/examples/nfs_bench
export NSC_BENCH_TREE_BIN=$OUT/examples/nfs_bench_tree_node
export NSC_BENCH_N=${NSC_BENCH_N:-200} NSC_BENCH_CONCURRENT_N=${NSC_BENCH_CONCURRENT_N:-512}
export NSC_BENCH_ROUNDS=${NSC_BENCH_ROUNDS:-3}
export NFS_GUEST_ENV="${NFS_GUEST_ENV:-} NSC_DRIVER NSC_BENCH_BIN NSC_BENCH_N NSC_BENCH_CONCURRENT_N NSC_BENCH_ROUNDS NSC_BENCH_TREE_BIN"
for v in NSC_BENCH_PARTS NSC_BENCH_TREE_ROUNDS NSC_BENCH_TREE_FILES NSC_BENCH_NODE_N \
  NSC_BENCH_NFSD_CONCURRENT_N NSC_BENCH_NFSD_ROUNDS NSC_BENCH_NODE_LOG NSC_BENCH_NODE_STRACE; do
  if [[ -n ${!v:-} ]]; then export "${v?}" NFS_GUEST_ENV="$NFS_GUEST_ENV $v"; fi
done
# (e) runs the guest's kernel nfsd on XFS (host packages, seen through the guest's 9p root)
export NFS_GUEST_EXTRA_PKGS="${NFS_GUEST_EXTRA_PKGS:-} xfsprogs nfs-kernel-server"
export NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-600}
export NFS_GUEST_WORK=${NFS_GUEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nfs-bench.XXXXXX")}
# (d)'s trees, made on the host in the exported directory (through NFS under TCG it takes longer
# than the run may): per round, rm-R for `rm -rf` and drv-R for the driver, each 20 directories of
# 49 subdirectories with the files spread evenly over the 1,000 directories.
if [[ " ${NSC_BENCH_PARTS:-calls tree-node} " == *" tree-node "* ]]; then
  python3 - "$NFS_GUEST_WORK/export/.bench-trees" "${NSC_BENCH_TREE_ROUNDS:-3}" \
    "${NSC_BENCH_TREE_FILES:-10000}" <<'PY'
import os, shutil, sys
base, rounds, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = max(1, -(-files // 1000))
shutil.rmtree(base, ignore_errors=True)
for r in range(rounds):
    for kind in ("rm", "drv"):
        for t in range(20):
            for d in [""] + [f"dir{d:02}" for d in range(49)]:
                at = os.path.join(base, f"{kind}-{r}", f"top{t:02}", d)
                os.makedirs(at, exist_ok=True)
                for f in range(per):
                    with open(os.path.join(at, f"file{f}"), "wb") as fh:
                        fh.write(b"0123456789")
PY
fi
rc=0
NFS_GUEST_QUIET=${NFS_GUEST_QUIET:-1} bash "$HERE/boot.sh" "$HERE/bench-guest.sh" || rc=$?
echo "==== bench results ($NFS_GUEST_WORK/results/bench.txt; guest log: guest.log there)"
cat "$NFS_GUEST_WORK/results/bench.txt" 2>/dev/null || tail -30 "$NFS_GUEST_WORK/results/guest.log"
exit "$rc"
