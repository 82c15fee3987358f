# shellcheck shell=bash
# tests/e2e/nfs-guest/quota-guest.sh — sourced by csi-suite-guest.sh inside the guest: the filesystems
# and the kernel NFS server the quota scenario (scenarios/quota.rs) needs, and a driver that reaches
# them. quota_setup makes, on a tmpfs at /tmp/q (the NFSv4 pseudo root, fsid=0): an XFS loop
# filesystem mounted prjquota at /tmp/q/xfs, an ext4 one made with -O quota,project and mounted
# prjquota at /tmp/q/ext4, and /tmp/q/plain (tmpfs: no project quotas); exports them with the
# kernel nfsd at 127.0.0.1 (rpcbind, exportfs, rpc.mountd, rpc.nfsd), the XFS one with ganesha too
# (127.0.0.1:12049, /gxfs), and starts a driver on
# $W/csi-quota.sock with --export-path for each. On success it exports NSC_QUOTA_SOCKET,
# NSC_QUOTA_ROOT and NSC_QUOTA_SERVER for the scenario; every step prints PASS/FAIL.
# Needs (host packages, seen through the guest's 9p root): xfsprogs, e2fsprogs, nfs-kernel-server,
# rpcbind (run.sh asks boot.sh to install them). Uses W, RESULTS and start_driver of the suite.

quota_step() {  # NAME RC DETAIL: PASS or FAIL by the status of the step just run
  if (($2 == 0)); then pass "$1" "$3"; else fail "$1" "exit $2; $3"; return 1; fi
}

quota_setup() {
  local t q=/tmp/q img=/tmp/qimg lx le m
  t=$(ms)
  for m in loop xfs ext4 quota_v2 quota_tree nfsd; do
    modprobe "$m" 2>>"$RESULTS/quota-setup.log" || { fail "quota-setup-modprobe-$m" "see quota-setup.log"; return 1; }
  done
  mkdir -p $q $img && mount -t tmpfs -o mode=755 tmpfs $q && mkdir -p $q/xfs $q/ext4 $q/plain || {
    fail "quota-setup-tmpfs"; return 1; }
  chmod 777 $q/plain
  truncate -s 300M $img/xfs.img && truncate -s 256M $img/ext4.img
  lx=$(losetup -f --show $img/xfs.img) && mkfs.xfs -q "$lx" && mount -o prjquota,discard,allocsize=64k "$lx" $q/xfs
  quota_step quota-setup-xfs-prjquota $? "$(grep " $q/xfs " /proc/mounts)" || return 1
  le=$(losetup -f --show $img/ext4.img) && mkfs.ext4 -q -O quota,project "$le" &&
    mount -o prjquota,discard "$le" $q/ext4
  quota_step quota-setup-ext4-prjquota $? "$(grep " $q/ext4 " /proc/mounts)" || return 1
  # the kernel NFS server: its state on a tmpfs (the root is read-only), exports on the command line;
  # a 10 s NFSv4 grace period (the shortest; the default 90 s made the first file create wait)
  mount -t tmpfs tmpfs /var/lib/nfs && mkdir -p /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs &&
    touch /var/lib/nfs/etab /var/lib/nfs/rmtab
  mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd || { fail "quota-setup-nfsd-fs"; return 1; }
  mkdir -p /run/rpcbind && { rpcbind -w 2>>"$RESULTS/quota-setup.log" || rpcbind; }
  exportfs -o rw,fsid=0,no_root_squash,no_subtree_check,crossmnt 127.0.0.1:$q &&
    exportfs -o rw,no_root_squash,no_subtree_check,fsid=11 127.0.0.1:$q/xfs &&
    exportfs -o rw,no_root_squash,no_subtree_check,fsid=12 127.0.0.1:$q/ext4 &&
    rpc.mountd >>"$RESULTS/quota-setup.log" 2>&1 &&
    rpc.nfsd --grace-time 10 --lease-time 10 4 >>"$RESULTS/quota-setup.log" 2>&1
  quota_step quota-setup-kernel-nfsd $? "see quota-setup.log" || return 1
  quota_ganesha $q/xfs
  if ! QUOTA_PID=$(start_driver "$W/csi-quota.sock" "$W/work-quota" "$RESULTS/driver-quota.log" \
    --export-path "127.0.0.1:/xfs=$q/xfs" --export-path "127.0.0.1:/ext4=$q/ext4" \
    --export-path "127.0.0.1:/plain=$q/plain" --export-path "127.0.0.1:/gxfs=$q/xfs"); then
    fail "quota-setup-driver-start"; return 1
  fi
  pass "quota-setup" "$(($(ms) - t)) ms: xfs, ext4 and plain exported by nfsd at 127.0.0.1"
  export NSC_QUOTA_SOCKET=$W/csi-quota.sock NSC_QUOTA_ROOT=$q NSC_QUOTA_SERVER=127.0.0.1
}

# nfs-ganesha on the same XFS filesystem, NFSv4 only, port 12049, pseudo path /gxfs (it writes as a
# process through the filesystem, so the project quota must hold for it too). Its rpcbind
# registration clashes with the kernel nfsd's and fails, which NFSv4 does not need (the kernel's
# NFSv4 client asks no portmapper). Exports NSC_QUOTA_GANESHA_PORT once it answers.
quota_ganesha() {  # DIR
  local g=/tmp/qg
  mkdir -p $g/recov
  cat >$g/ganesha.conf <<EOF
NFS_CORE_PARAM { NFS_Port = 12049; Protocols = 4; Enable_NLM = false;
  Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = $g/recov; Minor_Versions = 1, 2;
  Only_Numeric_Owners = true; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT { Export_Id = 7; Path = $1; Pseudo = /gxfs; Access_Type = RW; Squash = No_Root_Squash;
  SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; } }
LOG { Default_Log_Level = EVENT; }
EOF
  ganesha.nfsd -F -f $g/ganesha.conf -L "$RESULTS/ganesha-quota.log" -p $g/pid </dev/null \
    >>"$RESULTS/quota-setup.log" 2>&1 &
  for _ in $(seq 200); do
    if grep -q 'NFS SERVER INITIALIZED' "$RESULTS/ganesha-quota.log" 2>/dev/null; then
      pass quota-setup-ganesha-on-xfs "port 12049, /gxfs"
      export NSC_QUOTA_GANESHA_PORT=12049
      return 0
    fi
    sleep 0.1
  done
  fail quota-setup-ganesha-on-xfs "not ready in 20 s; see ganesha-quota.log"
}

# After the scenario: what xfs_quota and the claims say (for the log), then the driver stops.
quota_report() {
  [[ -n ${QUOTA_PID:-} ]] || return 0
  echo "csi-suite: quota report after the scenario:"
  xfs_quota -x -c 'report -p -b -n' /tmp/q/xfs 2>&1 | sed 's/^/  /' | head -20
  kill "$QUOTA_PID" 2>/dev/null
  [[ -s /tmp/qg/pid ]] && kill "$(cat /tmp/qg/pid)" 2>/dev/null
}
