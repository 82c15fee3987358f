#!/bin/bash
# tests/e2e/nfs-guest/bench-guest.sh — benchmark (not CI) inside the QEMU guest against ganesha:
#   (a) CreateVolume + DeleteVolume through the driver (gRPC over its Unix socket; server=10.0.2.2,
#       share=/export, mountOptions nfsvers=4.1), N sequential pairs, median per pair;
#   (b) mkdir(dir, 0777) + rename(dir, trash/dir) directly on a kernel NFS mount of the same export
#       with the same options, interleaved with (a), median per pair;
#   (c) (a)/(b) (DESIGN target <= 1.3x); NFS calls per op type (mountstats) of both, the driver's
#       also step by step (CreateVolume, DeleteVolume, the trash removal after the answer);
#       rounds of 64 concurrent CreateVolume vs 64 concurrent bare mkdirs on the (b) mount (target
#       >= 0.8x) with 64 concurrent Identity.Probe beside them (the gRPC floor);
#   (d) examples/nfs_bench_tree_node (NSC_BENCH_TREE_BIN): a big tree removed by the driver vs
#       `rm -rf`, NodePublishVolume vs mount(2) and bind mount, against a second driver with the
#       controller and node roles and /metrics on 127.0.0.1:29699;
#   (e) (a)-(c) again against the guest's kernel nfsd (XFS, NFSv4.1 over loopback), ROW lines "nfsd".
# NSC_BENCH_PARTS (default "calls tree-node nfsd") picks the parts: "calls" is (a)-(c),
# "tree-node" (d), "nfsd" (e; NSC_BENCH_NFSD_CONCURRENT_N, default 128, NSC_BENCH_NFSD_ROUNDS, 1).
# Started by tests/e2e/nfs-guest/bench.sh, which builds the release driver and examples/nfs_bench/:
#   tests/e2e/nfs-guest/boot.sh tests/e2e/nfs-guest/bench-guest.sh
# Environment (forwarded through NFS_GUEST_ENV): NSC_DRIVER, NSC_BENCH_BIN, NSC_BENCH_N,
# NSC_BENCH_CONCURRENT_N, NSC_BENCH_ROUNDS, NSC_BENCH_TREE_BIN, NSC_BENCH_PARTS and (d)'s knobs
# (NSC_BENCH_TREE_*, NSC_BENCH_NODE_N, NSC_BENCH_NODE_LOG, NSC_BENCH_NODE_STRACE). The numbers go to the console and to $RESULTS/bench.txt.
# No `set -e`: every check is counted and the script goes on to the next one.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-helpers.sh
. "${NFS_GUEST_DIR:-$(dirname "$0")}/guest-helpers.sh"

W=/tmp/nsc-bench
mkdir -p "$W/mnt"
SOCK=$W/csi.sock
port=
[[ $NFS_PORT != 2049 ]] && port=",port=$NFS_PORT"
echo "bench: kernel $(uname -r), $(nproc) cpus, server $NFS_SERVER:$NFS_SHARE (nfs port $NFS_PORT)"

# (b)'s mount: the same export, the options the driver derives from nfsvers=4.1 (vers, addr, port)
if ! timeout 60 busybox mount -t nfs -o "$(nfs_opts 4.1)" "$NFS_SERVER:$NFS_SHARE" "$W/mnt"; then
  fail "bench-mount"
  exit 1
fi
echo "bench: (b) mount: $(awk -v d="$W/mnt" '$2 == d { print $1, $4 }' /proc/mounts)"

RUST_LOG=warn "$NSC_DRIVER" serve --endpoint "unix://$SOCK" --working-mount-dir "$W/work" \
  --nodeid nfs-guest --roles controller </dev/null >>"$RESULTS/driver.log" 2>&1 &
DRIVER_PID=$!
for _ in $(seq 200); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "bench-driver-start"; tail -20 "$RESULTS/driver.log"; exit 1; }

PARTS=" ${NSC_BENCH_PARTS:-calls tree-node nfsd} "
: >"$RESULTS/bench.txt"
rc=0
if [[ $PARTS == *" calls "* ]]; then
  NSC_BENCH_SOCKET=$SOCK NSC_BENCH_MOUNT=$W/mnt NSC_BENCH_WORKDIR=$W/work \
    NSC_BENCH_SERVER=$NFS_SERVER NSC_BENCH_SHARE=$NFS_SHARE \
    NSC_BENCH_MOUNT_OPTIONS="nfsvers=4.1$port" \
    timeout "$((NFS_GUEST_SUITE_TIMEOUT - 30))" "$NSC_BENCH_BIN" 2>&1 | tee -a "$RESULTS/bench.txt"
  rc=${PIPESTATUS[0]}
fi
if [[ $PARTS == *" tree-node "* && -n ${NSC_BENCH_TREE_BIN:-} ]]; then
  SOCK2=$W/csi-node.sock
  # NSC_BENCH_NODE_STRACE=1: the driver runs under strace (timed syscalls of every thread, in the
  # guest's /tmp, copied to $RESULTS/driver2.strace at the end), to see where a publish spends its
  # time; its figures are then not comparable.
  tracer=()
  [[ -n ${NSC_BENCH_NODE_STRACE:-} ]] && tracer=(strace -f -tt -T -o "$W/driver2.strace")
  RUST_LOG=${NSC_BENCH_NODE_LOG:-warn} "${tracer[@]}" "$NSC_DRIVER" serve --endpoint "unix://$SOCK2" --working-mount-dir "$W/work2" \
    --nodeid nfs-guest --roles controller,node --http-address 127.0.0.1:29699 </dev/null \
    >>"$RESULTS/driver2.log" 2>&1 &
  DRIVER2_PID=$!
  for _ in $(seq 200); do [[ -S $SOCK2 ]] && break; sleep 0.05; done
  echo "bench: (d) uptime $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  NSC_BENCH_SOCKET=$SOCK2 NSC_BENCH_METRICS_PORT=29699 NSC_BENCH_MOUNT=$W/mnt \
    NSC_BENCH_WORKDIR=$W/work2 NSC_BENCH_SERVER=$NFS_SERVER NSC_BENCH_SHARE=$NFS_SHARE \
    NSC_BENCH_MOUNT_OPTIONS="nfsvers=4.1$port" \
    timeout "$((NFS_GUEST_SUITE_TIMEOUT - 30))" "$NSC_BENCH_TREE_BIN" 2>&1 | tee -a "$RESULTS/bench.txt"
  rc2=${PIPESTATUS[0]}
  if ((rc2 == 0)); then pass "bench-tree-node-ran"; else fail "bench-tree-node-ran" "exit $rc2"; fi
  kill -TERM "$DRIVER2_PID" 2>/dev/null
  [[ -n ${NSC_BENCH_NODE_STRACE:-} ]] && { sleep 1; cp "$W/driver2.strace" "$RESULTS/" 2>/dev/null; }
fi
# (e) (a)-(c) against the guest's kernel nfsd (XFS on a loop file, NFSv4.1 over loopback; atomic
# change_info, so no ACCESS revalidation: the call count users of kernel NFS servers see), with a
# driver of its own (its own working mount, so the counts are of this server alone).
if [[ $PARTS == *" nfsd "* ]]; then
  n=/tmp/bnfsd
  nfsd_ok=1
  for m in loop xfs nfsd; do modprobe $m || nfsd_ok=0; done
  if ((nfsd_ok)) && mkdir -p $n /tmp/bnfsd-img && mount -t tmpfs -o mode=755 tmpfs $n && mkdir -p $n/xfs &&
    truncate -s 300M /tmp/bnfsd-img/xfs.img && lx=$(losetup -f --show /tmp/bnfsd-img/xfs.img) &&
    mkfs.xfs -q "$lx" && mount "$lx" $n/xfs && mount -t tmpfs tmpfs /var/lib/nfs &&
    mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs && touch /var/lib/nfs/etab /var/lib/nfs/rmtab &&
    { mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs 2>/dev/null; mount -t nfsd nfsd /proc/fs/nfsd; } &&
    { [[ -S /run/rpcbind.sock ]] || { mkdir -p /run/rpcbind && { rpcbind -w 2>/dev/null || rpcbind; }; }; } &&
    exportfs -o rw,fsid=0,no_root_squash,no_subtree_check,crossmnt 127.0.0.1:$n &&
    exportfs -o rw,no_root_squash,no_subtree_check,fsid=31 127.0.0.1:$n/xfs &&
    rpc.mountd >>"$RESULTS/nfsd.log" 2>&1 && rpc.nfsd --grace-time 10 --lease-time 10 4 >>"$RESULTS/nfsd.log" 2>&1 &&
    mkdir -p "$W/mnt-nfsd" && timeout 60 mount -t nfs -o vers=4.1,addr=127.0.0.1,proto=tcp 127.0.0.1:/xfs "$W/mnt-nfsd"; then
    pass "bench-nfsd-setup"
    SOCK3=$W/csi-nfsd.sock
    RUST_LOG=warn "$NSC_DRIVER" serve --endpoint "unix://$SOCK3" --working-mount-dir "$W/work-nfsd" \
      --nodeid nfs-guest --roles controller </dev/null >>"$RESULTS/driver3.log" 2>&1 &
    DRIVER3_PID=$!
    for _ in $(seq 200); do [[ -S $SOCK3 ]] && break; sleep 0.05; done
    NSC_BENCH_ROW=nfsd NSC_BENCH_SOCKET=$SOCK3 NSC_BENCH_MOUNT=$W/mnt-nfsd NSC_BENCH_WORKDIR=$W/work-nfsd \
      NSC_BENCH_SERVER=127.0.0.1 NSC_BENCH_SHARE=/xfs NSC_BENCH_MOUNT_OPTIONS=nfsvers=4.1 \
      NSC_BENCH_CONCURRENT_N=${NSC_BENCH_NFSD_CONCURRENT_N:-128} NSC_BENCH_ROUNDS=${NSC_BENCH_NFSD_ROUNDS:-1} \
      timeout "$((NFS_GUEST_SUITE_TIMEOUT - 30))" "$NSC_BENCH_BIN" 2>&1 | sed 's/^/nfsd: /; s/^nfsd: ROW /ROW /' |
      tee -a "$RESULTS/bench.txt"
    rc3=${PIPESTATUS[0]}
    if ((rc3 == 0)); then pass "bench-nfsd-ran"; else fail "bench-nfsd-ran" "exit $rc3"; fi
    kill -TERM "$DRIVER3_PID" 2>/dev/null
  else
    fail "bench-nfsd-setup" "see $RESULTS/nfsd.log"
  fi
fi
echo "bench: driver's working mount: $(awk -v d="$W/work" 'index($2, d) == 1 { print $1, $4 }' /proc/mounts)"
if ((rc == 0)); then pass "bench-ran"; else fail "bench-ran" "exit $rc"; fi
kill -TERM "$DRIVER_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
umount "$W/mnt" 2>/dev/null
exit 0
