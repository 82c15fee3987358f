#!/bin/bash
# tests/e2e/nfs-guest/snapshot-bench-guest.sh — the snapshot benchmark (not CI) inside the QEMU guest.
# Started by tests/e2e/nfs-guest/snapshot-bench.sh (which builds the release driver and
# examples/snapshot_bench.rs):  tests/e2e/nfs-guest/boot.sh tests/e2e/nfs-guest/snapshot-bench-guest.sh
#
# For each server below, one source volume made through the driver is filled with the mixed tree of
# snapshot-tree.py, then per repetition, on the same export, end to end:
#   copy     CreateSnapshot format=copy until ready_to_use + CreateVolume from it until it is in place
#   tar.zst  the same with format=tar.zst
#   tar.gz   csi-driver-nfs's method on a kernel mount of the same export with the same options:
#            `tar -C <vol> -czf <share>/<snap>/<vol>.tar.gz .` then `tar -xzf` into a new directory
# Servers: ganesha (the harness's, host ext4) over NFSv4.2 and over NFSv4.1; Linux nfsd in the guest
# exporting an XFS filesystem made with reflink=1 on a loop file, mounted over loopback, NFSv4.2;
# nfsd-xfs-4.2-big: the same server with a tree of only the two big files (big/ of the tree), to
# show what cloning gives where per-file round trips do not dominate.
# Before each timed step: sync + drop the guest's caches. Between repetitions the copies are deleted
# and the driver's trash drained (untimed). Per step: NFS op counts (READ WRITE COPY CLONE, all ops)
# of the mount that did the work (/proc/self/mountstats), the copy engine's summary for snapshots
# (driver log), on nfsd the space the step added (df). The first repetition checks the restored
# trees against the source (listing with modes, owners, sizes, links, mtimes; file checksums).
# Probes: does each server take FICLONE (cp --reflink=always; CLONE count)?
# Environment (forwarded by snapshot-bench.sh): NSC_DRIVER NSC_SNAP_BENCH_BIN NSC_SNAP_BENCH_FILES
# NSC_SNAP_BENCH_MIB NSC_SNAP_BENCH_REPS NSC_SNAP_BENCH_SERVERS (NAME or NAME:REPS each),
# NSC_SNAP_BENCH_NFSD_METHODS (default "copy tar.zst tar.gz"), NSC_SNAP_BENCH_TREE (the tree made
# on the host, copied in with cp -a; empty: snapshot-tree.py runs here). Results: $RESULTS/snapshot-bench.txt
# (raw lines "row <server> <rep> <method> <snap_s> <restore_s> <archive_bytes> ...") and the table
# that snapshot-bench-table.py prints from them.
# No `set -e`: every step is reported and the run goes on.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-helpers.sh
. "${NFS_GUEST_DIR:-$(dirname "$0")}/guest-helpers.sh"

W=/tmp/sb
SOCK=$W/csi.sock
OUT=$RESULTS/snapshot-bench.txt
FILES=${NSC_SNAP_BENCH_FILES:-2000} MIB=${NSC_SNAP_BENCH_MIB:-32} REPS_ALL=${NSC_SNAP_BENCH_REPS:-3}
NFSD_METHODS=${NSC_SNAP_BENCH_NFSD_METHODS:-copy tar.zst tar.gz}
SERVERS=${NSC_SNAP_BENCH_SERVERS:-ganesha-4.2 ganesha-4.1 nfsd-xfs-4.2 nfsd-xfs-4.2-big}
BIN=$NSC_SNAP_BENCH_BIN
mkdir -p $W
: >"$OUT"
say() { echo "snapshot-bench: $*"; }
rec() { echo "$*" >>"$OUT"; echo "snapshot-bench: $*"; }
secs() { local d=$(($(ms) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
rec "env kernel=$(uname -r) cpus=$(nproc) mem_mib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024)) files=$FILES big_mib=$MIB reps=$REPS_ALL"

# nfs_ops MOUNTPOINT_PREFIX VERS SERVER: "READ WRITE COPY CLONE TOTAL" op counts of the first NFS
# mount of SERVER below the prefix with that version (mounts sharing a superblock show the same).
nfs_ops() {
  awk -v p="$1" -v v="vers=$2," -v s="$3:" '
    /^device / { if (found) exit; on = index($5, p) == 1 && index($2, s) == 1 && $0 ~ /fstype nfs/; ok = 0; next }
    on && /^[[:space:]]*opts:/ { ok = index($2 ",", v) > 0; if (ok) found = 1; next }
    on && ok && /^[[:space:]]*[A-Z_]+: [0-9]/ { op = $1; sub(":", "", op); n[op] = $2; tot += $2 }
    END { printf "%d %d %d %d %d\n", n["READ"], n["WRITE"], n["COPY"], n["CLONE"], tot }' /proc/self/mountstats
}
# nfs_ops_all MOUNTPOINT_PREFIX VERS SERVER: "OP=count ..." for every op of that mount
nfs_ops_all() {
  awk -v p="$1" -v v="vers=$2," -v s="$3:" '
    /^device / { if (found) exit; on = index($5, p) == 1 && index($2, s) == 1 && $0 ~ /fstype nfs/; ok = 0; next }
    on && /^[[:space:]]*opts:/ { ok = index($2 ",", v) > 0; if (ok) found = 1; next }
    on && ok && /^[[:space:]]*[A-Z_]+: [0-9]/ { op = $1; sub(":", "", op); printf "%s=%s ", op, $2 }' /proc/self/mountstats
}
ops_detail() {  # BEFORE AFTER (nfs_ops_all) → the ops that changed, most first
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); was[kv[1]] = kv[2] }
    n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); d = kv[2] - was[kv[1]]; if (d > 0) print d, kv[1] }
  }' | sort -rn | awk '{ printf "%s=%s ", $2, $1 }'
}
ops_delta() {  # BEFORE AFTER → "read=… write=… copy=… clone=… ops=…"
  local -a a=($1) b=($2)
  echo "read=$((b[0] - a[0])) write=$((b[1] - a[1])) copy=$((b[2] - a[2])) clone=$((b[3] - a[3])) ops=$((b[4] - a[4]))"
}
used_kib() { [[ -n $1 ]] && df -k --output=used "$1" | tail -1 | tr -d ' ' || echo 0; }
# listing DIR: one line per entry, what a restore must keep (mtime to the second; symlink times
# are not compared: through ganesha they do not stick, see scenarios/snapshot.rs)
listing() {
  (cd "$1/tree" && find . \( -type d -printf '%y %p %m %U:%G %Ts\n' \) -o \( -type l -printf '%y %p %l %U:%G\n' \) \
    -o -printf '%y %p %s %m %U:%G %n %Ts\n' | sort)
}
sums() { (cd "$1/tree" && find . -type f -print0 | sort -z | xargs -0 md5sum | md5sum | cut -d' ' -f1); }

# Linux nfsd in the guest: /tmp/sbn (tmpfs, NFSv4 pseudo root) with /tmp/sbn/xfs = XFS reflink=1 on
# a loop file; exported to 127.0.0.1 (the layout of quota-guest.sh).
nfsd_setup() {
  local m lx n=/tmp/sbn
  for m in loop xfs nfsd; do modprobe $m || { fail "nfsd-setup" "modprobe $m"; return 1; }; done
  mkdir -p $n /tmp/sbimg && mount -t tmpfs -o mode=755 tmpfs $n && mkdir -p $n/xfs &&
    truncate -s 1200M /tmp/sbimg/xfs.img && lx=$(losetup -f --show /tmp/sbimg/xfs.img) &&
    mkfs.xfs -q -m reflink=1 "$lx" && mount "$lx" $n/xfs || { fail "nfsd-setup" "xfs"; return 1; }
  mount -t tmpfs tmpfs /var/lib/nfs && mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs &&
    touch /var/lib/nfs/etab /var/lib/nfs/rmtab
  mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd || { fail "nfsd-setup" "nfsd fs"; return 1; }
  mkdir -p /run/rpcbind && { rpcbind -w 2>/dev/null || rpcbind; }
  exportfs -o rw,fsid=0,no_root_squash,no_subtree_check,crossmnt 127.0.0.1:$n &&
    exportfs -o rw,no_root_squash,no_subtree_check,fsid=21 127.0.0.1:$n/xfs &&
    rpc.mountd >>"$RESULTS/nfsd.log" 2>&1 &&
    rpc.nfsd --grace-time 10 --lease-time 10 4 >>"$RESULTS/nfsd.log" 2>&1 || { fail "nfsd-setup" "nfsd"; return 1; }
  pass "nfsd-setup" "$(xfs_info $n/xfs | grep -o 'reflink=[01]')"
}

nfsd_ready=
nfsd_up() { [[ -n $nfsd_ready ]] || { nfsd_setup && nfsd_ready=1; }; }

RUST_LOG=info "$NSC_DRIVER" serve --endpoint "unix://$SOCK" --working-mount-dir "$W/work" \
  --nodeid nfs-guest --roles controller </dev/null >>"$RESULTS/driver.log" 2>&1 &
DRIVER_PID=$!
for _ in $(seq 200); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || { fail "driver-start"; tail -20 "$RESULTS/driver.log"; exit 1; }
export NSC_BENCH_SOCKET=$SOCK

# wait_trash MNT: the driver removes deleted trees in the background; wait until it is done
wait_trash() {
  local t=$(ms)
  while (($(ms) - t < 300000)); do
    [[ -z $(ls -A "$1/.nfs-subdir-csi/trash" 2>/dev/null) ]] && return 0
    sleep 0.5
  done
  say "trash of $1 not empty after 300 s"
}

# bench SERVER_LABEL SERVER SHARE VERS DFPATH
bench() {
  local label=$1 server=$2 share=$3 vers=$4 dfpath=$5 mnt=$W/mnt-$1 mo port="" t vol sub src
  [[ $server == "$NFS_SERVER" && $NFS_PORT != 2049 ]] && port=",port=$NFS_PORT"
  mo="nfsvers=$vers$port"
  export NSC_BENCH_SERVER=$server NSC_BENCH_SHARE=$share
  mkdir -p "$mnt"
  if ! timeout 60 mount -t nfs -o "vers=$vers,addr=$server,proto=tcp$port" "$server:$share" "$mnt"; then
    fail "$label-mount"; return
  fi
  vol=$("$BIN" volume "src-$label" "$mo") || { fail "$label-source-volume"; return; }
  sub=$(cut -d'#' -f4 <<<"$vol") src=$mnt/$sub
  t=$(ms)
  if [[ -n ${NSC_SNAP_BENCH_TREE:-} ]]; then  # made on the host by snapshot-bench.sh (faster than here)
    cp -a --sparse=always "$NSC_SNAP_BENCH_TREE${SUBTREE:-}" "$src/tree" || { fail "$label-fill"; return; }
  else
    python3 "$NFS_GUEST_DIR/snapshot-tree.py" "$src/tree" "$FILES" "$MIB" || { fail "$label-fill"; return; }
  fi
  sync
  rec "tree $label entries=$(find "$src" | wc -l) apparent_kib=$(du -sk --apparent-size "$src" | cut -f1) allocated_kib=$(du -sk "$src" | cut -f1) fill_s=$(secs "$t")"
  local want_list want_sums
  want_list=$(listing "$src") want_sums=$(sums "$src")
  # FICLONE probe on this mount
  local before after err
  before=$(nfs_ops "$mnt" "$vers" "$server")
  err=$(cp --reflink=always "$src/tree/big/random.bin" "$mnt/reflink-probe" 2>&1)
  local prc=$?
  after=$(nfs_ops "$mnt" "$vers" "$server")
  rec "probe $label ficlone rc=$prc $(ops_delta "$before" "$after") ${err:+err=\"${err##*: }\"}"
  rm -f "$mnt/reflink-probe"
  local rep m s r size id rid ops used0 used1 used2 summ okl oks all0 all1 dst
  for rep in $(seq "$REPS"); do
    for m in ${METHODS:-copy tar.zst tar.gz}; do
      cold
      used0=$(used_kib "$dfpath")
      if [[ $m == tar.gz ]]; then
        before=$(nfs_ops "$mnt" "$vers" "$server") all0=$(nfs_ops_all "$mnt" "$vers" "$server")
        mkdir -p "$mnt/gz-$rep"
        t=$(ms)
        tar -C "$src" -czf "$mnt/gz-$rep/$sub.tar.gz" . || fail "$label-$rep-tar-czf"
        sync
        s=$(secs "$t")
        used1=$(used_kib "$dfpath") size=$(stat -c %s "$mnt/gz-$rep/$sub.tar.gz")
        cold
        t=$(ms)
        mkdir "$mnt/gz-restore-$rep" && tar -C "$mnt/gz-restore-$rep" -xzf "$mnt/gz-$rep/$sub.tar.gz" ||
          fail "$label-$rep-tar-xzf"
        sync
        r=$(secs "$t") used2=$(used_kib "$dfpath")
        after=$(nfs_ops "$mnt" "$vers" "$server") all1=$(nfs_ops_all "$mnt" "$vers" "$server")
        ops=$(ops_delta "$before" "$after") summ=- rid=- dst=$mnt/gz-restore-$rep
      else
        before=$(nfs_ops "$W/work" "$vers" "$server") all0=$(nfs_ops_all "$W/work" "$vers" "$server")
        read -r s size id < <("$BIN" snap "$m" "$vol" "snap-$label-$m-$rep") || { fail "$label-$rep-$m-snapshot"; continue; }
        used1=$(used_kib "$dfpath")
        summ=
        [[ $m == copy ]] && summ=$(grep 'snapshot ready' "$RESULTS/driver.log" | tail -1 | grep -o 'cloned: [0-9]*, copy_range: [0-9]*, read_write: [0-9]*' |
          sed 's/cloned/FICLONE/; s/copy_range/copy_file_range/; s/ //g')
        cold
        read -r r rid < <("$BIN" restore "$id" "restore-$label-$m-$rep" "$mo") || { fail "$label-$rep-$m-restore"; continue; }
        used2=$(used_kib "$dfpath")
        after=$(nfs_ops "$W/work" "$vers" "$server") all1=$(nfs_ops_all "$W/work" "$vers" "$server")
        ops=$(ops_delta "$before" "$after") dst=$mnt/$(cut -d'#' -f4 <<<"$rid")
      fi
      rec "row $label $rep $m $s $r $size snap_added_kib=$((used1 - used0)) restore_added_kib=$((used2 - used1)) $ops ${summ:+engine=$summ}"
      if ((rep == 1)); then
        rec "ops $label $m $(ops_detail "$all0" "$all1")"
        okl=$( [[ $(listing "$dst") == "$want_list" ]] && echo same || echo DIFFERENT)
        oks=$( [[ $(sums "$dst") == "$want_sums" ]] && echo same || echo DIFFERENT)
        if [[ $okl$oks == samesame ]]; then pass "$label-$m-restored-tree-equal"
        else
          fail "$label-$m-restored-tree-equal" "listing $okl, data $oks"
          diff <(listing "$src") <(listing "$dst") | head -8
        fi
        [[ -e $src/tree/sparse.img ]] && rec "sparse $label $m restored_sparse_kib=$(du -k "$dst/tree/sparse.img" | cut -f1) source_kib=$(du -k "$src/tree/sparse.img" | cut -f1)"
      fi
      # untimed cleanup, drained before the next step
      if [[ $m == tar.gz ]]; then
        rm -rf "$mnt/gz-$rep" "$mnt/gz-restore-$rep"
      else
        "$BIN" rm-vol "$rid" && "$BIN" rm-snap "$id" || fail "$label-$rep-$m-cleanup"
        wait_trash "$mnt"
      fi
    done
  done
  "$BIN" rm-vol "$vol"
  wait_trash "$mnt"
  umount "$mnt"
}

# each entry of SERVERS is NAME or NAME:REPS (repetitions for that server)
for entry in $SERVERS; do
  srv=${entry%%:*} REPS=$REPS_ALL
  [[ $entry == *:* ]] && REPS=${entry#*:}
  case $srv in
    ganesha-4.2) bench "$srv" "$NFS_SERVER" "$NFS_SHARE" 4.2 "" ;;
    ganesha-4.1) bench "$srv" "$NFS_SERVER" "$NFS_SHARE" 4.1 "" ;;
    nfsd-xfs-4.2) nfsd_up && METHODS=$NFSD_METHODS bench "$srv" 127.0.0.1 /xfs 4.2 /tmp/sbn/xfs ;;
    nfsd-xfs-4.2-big) nfsd_up && [[ -n ${NSC_SNAP_BENCH_TREE:-} ]] &&
      METHODS=$NFSD_METHODS SUBTREE=/big bench "$srv" 127.0.0.1 /xfs 4.2 /tmp/sbn/xfs ;;
    *) fail "unknown-server" "$srv" ;;
  esac
done
grep -c -E ' (WARN|ERROR) ' "$RESULTS/driver.log" | sed 's/^/snapshot-bench: driver log warnings+errors: /'
python3 "$NFS_GUEST_DIR/snapshot-bench-table.py" "$OUT" | tee "$RESULTS/snapshot-bench-table.txt"
kill -TERM "$DRIVER_PID" 2>/dev/null
exit 0
