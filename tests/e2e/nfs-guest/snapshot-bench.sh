#!/bin/bash
# tests/e2e/nfs-guest/snapshot-bench.sh — the snapshot benchmark (not part of CI): builds the release
# driver and examples/snapshot_bench.rs, boots the QEMU guest once with snapshot-bench-guest.sh (see
# its header for what is measured: the driver's `copy` and `tar.zst` snapshots + restores against
# csi-driver-nfs's `tar czf` + `tar xzf` on ganesha NFSv4.2, NFSv4.1 and on Linux nfsd over XFS
# with reflink), and prints the table (snapshot-bench-table.py) with the host's load before and after.
# Usage (as root):  nice bash tests/e2e/nfs-guest/snapshot-bench.sh
# Knobs: NSC_SNAP_BENCH_FILES (small files, default 2000), NSC_SNAP_BENCH_MIB (size of each of the two
#        big files, default 32), NSC_SNAP_BENCH_REPS (default 3), NSC_SNAP_BENCH_SERVERS (default
#        "ganesha-4.2 ganesha-4.1 nfsd-xfs-4.2 nfsd-xfs-4.2-big"; NAME:REPS sets one server's repetitions),
#        NSC_SNAP_BENCH_NFSD_METHODS (default "copy tar.zst tar.gz"), NSC_SNAP_BENCH_DEV=1 (build
#        with the dev profile, opt-level 3 for this crate, tar and zstd, instead of --release),
#        NSC_DRIVER + NSC_SNAP_BENCH_BIN (both set: these binaries, no build; e.g. to compare two
#        builds), and boot.sh's (NFS_GUEST_TIMEOUT, NFS_GUEST_WORK, ...).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
cd "$REPO"
[[ $(id -u) == 0 ]] || { echo "snapshot-bench: must run as root (ganesha, namespaces, mounts)" >&2; exit 2; }
export PATH=$PATH:$HOME/.cargo/bin
if [[ -n ${NSC_DRIVER:-} && -n ${NSC_SNAP_BENCH_BIN:-} ]]; then
  out=
elif [[ ${NSC_SNAP_BENCH_DEV:-} == 1 ]]; then
  # the dev profile's warm dependencies, with the data paths (this crate, tar, zstd) at opt-level 3:
  # minutes instead of the release build's hour on a loaded 2-core machine
  opt=()
  for p in nfs-subdir-csi tar zstd zstd-safe zstd-sys; do opt+=(--config "profile.dev.package.$p.opt-level=3"); done
  cargo build "${opt[@]}" --bin nfs-subdir-csi --example snapshot_bench
  out=$REPO/target/debug
else
  cargo build --release --bin nfs-subdir-csi --example snapshot_bench
  out=$REPO/target/release
fi
[[ -z $out ]] || export NSC_DRIVER=$out/nfs-subdir-csi NSC_SNAP_BENCH_BIN=$out/examples/snapshot_bench
export NSC_SNAP_BENCH_FILES=${NSC_SNAP_BENCH_FILES:-2000} NSC_SNAP_BENCH_MIB=${NSC_SNAP_BENCH_MIB:-32}
export NSC_SNAP_BENCH_REPS=${NSC_SNAP_BENCH_REPS:-3}
export NSC_SNAP_BENCH_SERVERS=${NSC_SNAP_BENCH_SERVERS:-ganesha-4.2 ganesha-4.1 nfsd-xfs-4.2 nfsd-xfs-4.2-big}
export NSC_SNAP_BENCH_NFSD_METHODS=${NSC_SNAP_BENCH_NFSD_METHODS:-copy tar.zst tar.gz}
export NFS_GUEST_ENV="${NFS_GUEST_ENV:-} NSC_DRIVER NSC_SNAP_BENCH_BIN NSC_SNAP_BENCH_FILES NSC_SNAP_BENCH_MIB NSC_SNAP_BENCH_REPS NSC_SNAP_BENCH_SERVERS NSC_SNAP_BENCH_NFSD_METHODS"
export NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-3000}
# the nfsd case: an XFS image on the guest's tmpfs (hence the memory), nfsd from the host's packages
export NFS_GUEST_EXTRA_PKGS="${NFS_GUEST_EXTRA_PKGS:-} xfsprogs nfs-kernel-server"
export NFS_GUEST_MEM=${NFS_GUEST_MEM:-2560}
export NFS_GUEST_WORK=${NFS_GUEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nfs-snapbench.XXXXXX")}
# the mixed tree, made once on the host (python under TCG takes minutes); the guest copies it in
rm -rf "$NFS_GUEST_WORK/tree" && mkdir -p "$NFS_GUEST_WORK/tree"
python3 "$HERE/snapshot-tree.py" "$NFS_GUEST_WORK/tree/t" "$NSC_SNAP_BENCH_FILES" "$NSC_SNAP_BENCH_MIB"
export NSC_SNAP_BENCH_TREE=$NFS_GUEST_WORK/tree/t NFS_GUEST_KEEP="${NFS_GUEST_KEEP:-} $NFS_GUEST_WORK/tree"
export NFS_GUEST_ENV="$NFS_GUEST_ENV NSC_SNAP_BENCH_TREE"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rc=0
NFS_GUEST_QUIET=${NFS_GUEST_QUIET:-1} bash "$HERE/boot.sh" "$HERE/snapshot-bench-guest.sh" || rc=$?
R=$NFS_GUEST_WORK/results
echo "==== snapshot benchmark ($R/snapshot-bench.txt; guest log: $R/guest.log)"
cat "$R/snapshot-bench-table.txt" 2>/dev/null || tail -30 "$R/guest.log"
echo "host: $(nproc) cpus; load average before $load0, after $(cut -d' ' -f1-3 /proc/loadavg)"
# the exported trees (several hundred MiB of copies) are not worth keeping
rm -rf "$NFS_GUEST_WORK/export" "$NFS_GUEST_WORK/tree"
exit "$rc"
