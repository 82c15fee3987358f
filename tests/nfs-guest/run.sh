#!/bin/bash
# tests/nfs-guest/run.sh — run a test script inside a QEMU guest running Debian's kernel, with real
# kernel NFS mounts against an nfs-ganesha server that the harness runs on this host.
#
# Why: the host kernel has no NFS client, so real mounts need a guest kernel. The guest mounts the
# host's root read-only over virtio-9p and chroots into it, so host-built binaries (the driver in
# target/, csi-sanity in /root/go/bin) run inside the guest unchanged. One boot runs a whole suite.
#
# Usage (as root):  tests/nfs-guest/run.sh [GUEST_SCRIPT [ARGS...]]
#   GUEST_SCRIPT  bash script on the host filesystem (default: selftest-guest.sh next to run.sh); it
#                 runs inside the guest as root, cwd = NFS_GUEST_REPO, stdin /dev/null.
#   Exit status   0 if every reported test passed; 1 on any FAIL, no results, non-zero script exit,
#                 or guest timeout; 2 on a setup error (missing root, packages, kernel).
#
# Steps: (1) install missing Debian packages (apt-get; update only if needed), (2) build an initramfs
# (static busybox + virtio/9p/NFS modules) and cache an uncompressed vmlinux (PVH boot, faster under
# TCG), (3) in a private net+mount+pid namespace start rpcbind + ganesha (NFSv3 + v4.0/4.1/4.2,
# export $NFS_GUEST_EXPORT as pseudo path /export, mount path == pseudo path) and boot QEMU once,
# (4) collect results, run the script's optional host check, print a summary.
# Every process of step 3 dies with the namespace; nothing on the host's own network is touched.
#
# Environment of the guest script:
#   NFS_SERVER=10.0.2.2  NFS_SHARE=/export  NFS_PORT  NFS_MOUNT_PORT   (the server as the guest sees it;
#                        10.0.2.2 is QEMU user networking's alias for the namespace's loopback)
#   NFS_GUEST_IP=10.0.2.15           the guest's address (NFSv4.0 mounts want clientaddr=<it>)
#   RESULTS=/run/nfs-guest           writable 9p share (no cache: both sides see files at once);
#                                    the host sees it as $NFS_GUEST_WORK/results
#   NFS_GUEST_DIR, NFS_GUEST_REPO    this directory and the repository root (as host paths)
#   NFS_GUEST_PHASE=guest            see "host phases" below
#   NFS_GUEST_SUITE_TIMEOUT          seconds the script may run before it is killed
#   HOME=/tmp/nfs-guest-home, hostname nfs-guest, plus every variable named in $NFS_GUEST_ENV
#   (e.g. NFS_GUEST_ENV="RUST_LOG CSI_SANITY_FOCUS") and RUST_LOG/RUST_BACKTRACE if set.
#   guest-lib.sh (source "$NFS_GUEST_DIR/guest-lib.sh") has pass/fail/check helpers, nfs_opts and
#   nfs_server (the control protocol below).
#
# Guest filesystem: / is the host root, read-only (9p, cache=loose: host changes made during the run
# are not seen). tmpfs on /tmp, /run, /var/tmp, /dev/shm; proc, sysfs, devtmpfs, devpts, cgroup2.
# Mount points must be created under a tmpfs (a new directory cannot be made on the read-only root).
# Host paths under /tmp, /run or /var/tmp that the guest needs (the repository, the script's
# directory, and any in $NFS_GUEST_KEEP) are bind-mounted back over the tmpfs, read-only.
# Modules not in the initramfs load with `modprobe` from the host root (same kernel version).
#
# Reporting: the script's stdout+stderr go to the console and to $RESULTS/guest.log. Lines
# "PASS <name>" and "FAIL <name> [detail]" at the start of a line are the results; anything else is
# log. Background daemons a script starts should log to a file of their own (e.g. $RESULTS/x.log):
# the harness waits at most 3 s for the log pipe to close after the script exits.
#
# Host phases (optional): if the script contains a line "# nfs-guest: host-phases", run.sh also runs it
# on the host (outside the guest, ganesha not running) with NFS_GUEST_PHASE=host-prepare before the
# boot and NFS_GUEST_PHASE=host-check after it, with EXPORT_DIR (the exported host directory) and
# RESULTS (the results directory as a host path). PASS/FAIL lines of host-check count too.
#
# Server control protocol (for "server down" tests), over the results share:
#   guest: rm -f $RESULTS/ganesha-<op>.ack; create $RESULTS/ganesha-<op> (write a temp name, rename)
#   host:  a loop polling every 0.1 s deletes the request, performs it, writes
#          $RESULTS/ganesha-<op>.ack (temp + rename) containing "ok" or "error: <why>"
#   <op>:  stop    SIGTERM, wait until exited (ganesha needs ~2 s), SIGKILL after 15 s
#          kill    SIGKILL at once (a crash; no clean shutdown)
#          start   start again with the same config and export; ack once NFS answers a NULL call
#          restart stop + start
#   The export directory, ports and rpcbind stay the same across stop/start (rpcbind keeps running).
#   guest-lib.sh's `nfs_server stop|kill|start|restart [timeout_s]` does the guest side.
#
# Knobs (environment of run.sh):
#   NFS_GUEST_WORK     work dir (default: new mktemp -d under $TMPDIR or /tmp); kept after the run
#   NFS_GUEST_EXPORT   exported directory (default: $NFS_GUEST_WORK/export)
#   NFS_GUEST_CACHE    cache of the uncompressed kernel (default /var/tmp/nfs-guest-cache)
#   NFS_PORT=2049 NFS_MOUNT_PORT=20048   ganesha's ports (private namespace, so defaults never clash)
#   NFS_GUEST_TIMEOUT=480   qemu wall-clock limit in seconds; the suite gets this minus 60
#   NFS_GUEST_MEM=1024 NFS_GUEST_SMP=2 NFS_GUEST_ACCEL=auto|tcg|kvm  NFS_GUEST_KVER (kernel version)
#   NFS_GUEST_QUIET=1  do not echo the serial console (still saved in $NFS_GUEST_WORK/serial.log)
#   NFS_GUEST_NO_INSTALL=1  never call apt-get (fail if something is missing)
#   NFS_GUEST_SHARE_NET=1   run ganesha + qemu in the caller's network namespace (no --net unshare):
#                      for a caller that already made its own namespace and serves the guest there
#                      (tests/cluster: the control plane at 10.0.2.2 for the guest's kubelet)
#   NFS_GUEST_NETDEV_OPTS   extra options of qemu's `-netdev user` (e.g. hostfwd=tcp:10.0.2.15:10250-:10250)
set -euo pipefail

now() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }   # ms
el() { local d=$(($(now) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
log() { echo "nfs-guest: $*"; }
die() { echo "nfs-guest: error: $*" >&2; exit 2; }

if [[ ${1:-} == --inner ]]; then
  ###################### inside the private net+mount+pid namespace (pid 1) ######################
  # Inherited: NG_WORK NG_SHARE NG_GANESHA NFS_PORT NFS_MOUNT_PORT NG_QEMU (array as %q string)
  G=$NG_GANESHA R=$NG_SHARE
  mount -t tmpfs -o mode=755 tmpfs /run            # private rpcbind socket; host's /run untouched
  ip link set lo up
  mkdir -p /run/rpcbind
  chown _rpc /run/rpcbind 2>/dev/null || true
  rpcbind -f </dev/null >>"$G/rpcbind.log" 2>&1 &
  for _ in $(seq 100); do [[ -S /run/rpcbind.sock ]] && break; sleep 0.05; done
  [[ -S /run/rpcbind.sock ]] || { echo "nfs-guest: rpcbind did not start"; exit 2; }

  alive() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [[ $s != Z ]]; }
  ganesha_start() {
    local pid lines; lines=$(wc -l 2>/dev/null <"$G/ganesha.log" || echo 0)
    ganesha.nfsd -F -f "$G/ganesha.conf" -L "$G/ganesha.log" -p "$G/ganesha.pid" </dev/null >>"$G/ganesha.out" 2>&1 &
    pid=$!; echo "$pid" >"$G/server.pid"
    for _ in $(seq 300); do                             # 15 s
      alive "$pid" || { echo "ganesha exited:"; tail -n +"$((lines + 1))" "$G/ganesha.log" | grep -E 'CRIT|FATAL|MAJ' | grep -v -E 'DBUS|krb5' | tail -5; return 1; }
      if tail -n +"$((lines + 1))" "$G/ganesha.log" | grep -q 'NFS SERVER INITIALIZED' &&
        rpcinfo -n "$NFS_PORT" -t 127.0.0.1 100003 4 >/dev/null 2>&1; then return 0; fi
      sleep 0.05
    done
    echo "ganesha not ready after 15 s"; return 1
  }
  ganesha_stop() {  # $1 = TERM|KILL
    local pid; pid=$(cat "$G/server.pid" 2>/dev/null) || { echo "not running"; return 1; }
    alive "$pid" || { rm -f "$G/server.pid"; echo "not running"; return 1; }
    kill -"$1" "$pid"
    for _ in $(seq 300); do alive "$pid" || break; sleep 0.05; done
    alive "$pid" && { kill -KILL "$pid"; sleep 0.2; }
    rm -f "$G/server.pid"
  }
  control_loop() {  # the protocol described in the header
    local op req st t0 d l
    while :; do
      for op in stop kill start restart; do
        req=$R/ganesha-$op
        [[ -e $req ]] || continue
        rm -f "$req"; t0=$(now)
        case $op in
          stop) st=$(ganesha_stop TERM 2>&1) ;;
          kill) st=$(ganesha_stop KILL 2>&1) ;;
          start) st=$(ganesha_start 2>&1) ;;
          restart) st=$(ganesha_stop TERM 2>&1 && ganesha_start 2>&1) ;;
        esac && st=ok || st="error: ${st//$'\n'/; }"
        echo "$st" >"$req.ack.tmp" && mv -f "$req.ack.tmp" "$req.ack"
        d=$((t0 - $(cat "$NG_WORK/qemu.start" 2>/dev/null || echo "$t0")))
        printf -v l '[%4d.%03d] [host] ganesha-%s: %s (%ss)' $((d / 1000)) $((d % 1000)) "$op" "$st" "$(el "$t0")"
        echo "$l" >>"$NG_WORK/serial.log"
        [[ ${NFS_GUEST_QUIET:-} == 1 ]] || echo "$l"
      done
      sleep 0.1
    done
  }

  t0=$(now)
  ganesha_start || { echo "nfs-guest: ganesha did not start (log: $G/ganesha.log)"; exit 2; }
  echo "nfs-guest: ganesha ready on ports $NFS_PORT (nfs) / $NFS_MOUNT_PORT (mountd) in $(el "$t0")s"
  control_loop </dev/null &

  qemu=()
  eval "qemu=($NG_QEMU)"
  now >"$NG_WORK/qemu.start"
  set +e
  timeout -k 5 "$NFS_GUEST_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | {
    # timestamp every console line with seconds since qemu start (host clock)
    t0=$(now)
    while IFS= read -r l; do
      l=${l%$'\r'}
      d=$(($(now) - t0)); printf -v l '[%4d.%03d] %s' $((d / 1000)) $((d % 1000)) "$l"
      echo "$l" >>"$NG_WORK/serial.log"
      [[ ${NFS_GUEST_QUIET:-} == 1 ]] || echo "$l"
    done
  }
  rc=${PIPESTATUS[0]}
  set -e
  echo "$rc" >"$NG_WORK/qemu.rc"
  now >"$NG_WORK/qemu.end"
  exit 0    # pid 1 exits: the kernel kills ganesha, rpcbind and the control loop
fi

##################################### host side, phase 1 #####################################
T0=$(now)
[[ $(id -u) == 0 ]] || die "must run as root (ganesha needs real root; namespaces, 9p)"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
SCRIPT=${1:-$HERE/selftest-guest.sh}
[[ $# -gt 0 ]] && shift
ARGS=("$@")
[[ -f $SCRIPT ]] || die "guest script not found: $SCRIPT"
SCRIPT=$(realpath "$SCRIPT")
NAME=$(basename "$SCRIPT")

NFS_PORT=${NFS_PORT:-2049}
NFS_MOUNT_PORT=${NFS_MOUNT_PORT:-20048}
NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-480}
SUITE_TIMEOUT=$((NFS_GUEST_TIMEOUT > 120 ? NFS_GUEST_TIMEOUT - 60 : NFS_GUEST_TIMEOUT / 2))
CACHE=${NFS_GUEST_CACHE:-/var/tmp/nfs-guest-cache}

# ---- (1) packages
PKGS=(nfs-ganesha nfs-ganesha-vfs rpcbind qemu-system-x86 linux-image-amd64 busybox-static cpio kmod
  xz-utils zstd iproute2)
missing=()
for p in "${PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ ${NFS_GUEST_NO_INSTALL:-} == 1 ]] && die "missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -q -y -o DPkg::Lock::Timeout=900 --no-install-recommends)
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    log "apt-get update (no package lists yet)"
    apt-get -q -o DPkg::Lock::Timeout=900 update
  fi
  log "apt-get install ${missing[*]}"
  if ! "${apt[@]}" install "${missing[@]}"; then
    log "install failed; apt-get update and retry once"
    apt-get -q -o DPkg::Lock::Timeout=900 update
    "${apt[@]}" install "${missing[@]}" || die "apt-get install failed"
  fi
else
  log "packages present: ${PKGS[*]}"
fi
for t in qemu-system-x86_64 ganesha.nfsd rpcbind rpcinfo busybox cpio unshare ip timeout; do
  command -v "$t" >/dev/null || die "missing tool after install: $t"
done
[[ -x /bin/busybox ]] || die "/bin/busybox (busybox-static) missing"
T_INSTALL=$(el "$T0")

# ---- (2) kernel + initramfs
if [[ -z ${NFS_GUEST_KVER:-} ]]; then
  for v in $(find /lib/modules -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -rV); do
    [[ -e /boot/vmlinuz-$v ]] && grep -qE '/nfsv4\.ko' "/lib/modules/$v/modules.dep" 2>/dev/null && { NFS_GUEST_KVER=$v; break; }
  done
fi
KVER=${NFS_GUEST_KVER:-}
[[ -n $KVER && -e /boot/vmlinuz-$KVER ]] || die "no Debian kernel with NFS modules in /boot + /lib/modules (linux-image-amd64)"
MODDIR=/lib/modules/$KVER
KERNEL=/boot/vmlinuz-$KVER
# An uncompressed ELF vmlinux boots through PVH: no real-mode setup, no decompressor (seconds under TCG).
if grep -q '^CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null; then
  mkdir -p "$CACHE"
  vml=$CACHE/vmlinux-$KVER
  if [[ ! -s $vml || $vml -ot $KERNEL ]]; then
    tmp=$(mktemp "$vml.XXXXXX")
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$KERNEL" | head -1 | cut -d: -f1 || true)
    if [[ -n $off ]]; then tail -c +"$((off + 1))" "$KERNEL" | xz -dc --single-stream >"$tmp" 2>/dev/null || true; fi
    if [[ $(head -c 4 "$tmp" | od -An -c | tr -d ' ') != 177ELF ]]; then
      off=$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$KERNEL" | head -1 | cut -d: -f1 || true)
      if [[ -n $off ]]; then tail -c +"$((off + 1))" "$KERNEL" | zstd -qdc >"$tmp" 2>/dev/null || true; fi
    fi
    if [[ $(head -c 4 "$tmp" | od -An -c | tr -d ' ') == 177ELF ]]; then mv -f "$tmp" "$vml"; else rm -f "$tmp"; fi
  fi
  [[ -s $vml ]] && KERNEL=$vml
fi

WORK=${NFS_GUEST_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nfs-guest.XXXXXX")}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
EXPORT=${NFS_GUEST_EXPORT:-$WORK/export}
SHARE=$WORK/results G=$WORK/ganesha ST=$WORK/initrd
rm -rf "$SHARE" "$ST" "$G" "$WORK"/serial.log "$WORK"/qemu.* "$WORK"/summary.txt
mkdir -p "$EXPORT" "$SHARE/.harness" "$G/recov" "$ST"/{bin,dev,proc,sys,newroot,results,keep,lib/modules}
EXPORT=$(realpath "$EXPORT")

cp /bin/busybox "$ST/bin/busybox"
declare -A SEEN=()
: >"$ST/modules.load"
add_module() {  # $1 = path relative to $MODDIR; dependencies first (modules.dep order)
  local rel=$1 line d ko
  [[ -n ${SEEN[$rel]:-} ]] && return 0
  SEEN[$rel]=1
  line=$(grep -m1 "^$rel:" "$MODDIR/modules.dep")
  for d in ${line#*:}; do add_module "$d"; done
  ko=$ST/lib/modules/$(basename "${rel%%.ko*}").ko
  case $rel in
    *.ko) cp "$MODDIR/$rel" "$ko" ;;
    *.ko.xz) xz -dc "$MODDIR/$rel" >"$ko" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$ko" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" >"$ko" ;;
  esac
  basename "$ko" >>"$ST/modules.load"
}
for m in virtio_pci virtio_net virtio_rng 9pnet_virtio 9p nfsv3 nfsv4; do
  re=${m//_/[-_]}
  rel=$(grep -m1 -E "/$re\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | cut -d: -f1 || true)
  if [[ -n $rel ]]; then add_module "$rel"
  elif grep -qE "/$re\.ko" "$MODDIR/modules.builtin"; then :
  else die "kernel module $m not found for $KVER"; fi
done

# Host paths the guest's tmpfs mounts would hide but the guest needs (read-only bind mounts).
KEEP=()
for p in "$REPO" "$(dirname "$SCRIPT")" ${NFS_GUEST_KEEP:-}; do
  p=$(realpath -m "$p")
  case $p/ in /tmp/* | /run/* | /var/tmp/*) [[ -e $p ]] && KEEP+=("$p") ;; esac
done
for p in "${KEEP[@]}"; do [[ $p != *[[:space:]]* ]] || die "path with spaces cannot be kept: $p"; done
echo "KEEP='${KEEP[*]}'" >"$SHARE/.harness/guest.conf"

cat >"$ST/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
say() { echo "nfs-guest-init: $*"; }
bail() { say "FATAL: $*"; poweroff -f; }
say "init at uptime $(cut -d' ' -f1 /proc/uptime)s"
for m in $(cat /modules.load); do insmod /lib/modules/$m || say "insmod failed: $m"; done
hostname nfs-guest
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
o=trans=virtio,version=9p2000.L,msize=262144
R=/newroot
mount -t 9p -o $o,ro,cache=loose hostroot $R || bail "cannot mount the host root (9p)"
mount -t 9p -o $o results /results || bail "cannot mount the results share (9p)"
. /results/.harness/guest.conf
i=0; for p in $KEEP; do mkdir -p /keep/$i; mount --bind $R$p /keep/$i; i=$((i + 1)); done
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mkdir -p $R/dev/pts $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd; ln -sf fd/0 $R/dev/stdin; ln -sf fd/1 $R/dev/stdout; ln -sf fd/2 $R/dev/stderr
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts; mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=1777 tmp $R/tmp; mount -t tmpfs -o mode=755 run $R/run
mount -t tmpfs -o mode=1777 vartmp $R/var/tmp
i=0; for p in $KEEP; do mkdir -p $R$p; mount --move /keep/$i $R$p; i=$((i + 1)); done
mkdir -p $R/run/nfs-guest; mount --move /results $R/run/nfs-guest
say "root ready at uptime $(cut -d' ' -f1 /proc/uptime)s"
chroot $R /bin/bash /run/nfs-guest/.harness/launch.sh
sync
poweroff -f
EOF
chmod +x "$ST/init"
(cd "$ST" && find . | cpio -o -H newc --quiet) >"$WORK/initrd.cpio"

# The launcher runs in the guest's chroot (host bash), sets the documented environment.
fwd=()
for v in RUST_LOG RUST_BACKTRACE ${NFS_GUEST_ENV:-}; do [[ -n ${!v+x} ]] && fwd+=("$v=${!v}"); done
{
  echo '#!/bin/bash'
  echo '# generated by tests/nfs-guest/run.sh'
  printf 'export %q\n' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp/nfs-guest-home LANG=C.UTF-8 NFS_SERVER=10.0.2.2 NFS_SHARE=/export \
    NFS_PORT="$NFS_PORT" NFS_MOUNT_PORT="$NFS_MOUNT_PORT" NFS_GUEST_IP=10.0.2.15 \
    RESULTS=/run/nfs-guest NFS_GUEST_DIR="$HERE" NFS_GUEST_REPO="$REPO" NFS_GUEST_PHASE=guest \
    NFS_GUEST_SUITE_TIMEOUT="$SUITE_TIMEOUT" "${fwd[@]}"
  printf 'script=%q\n' "$SCRIPT"
  printf 'args=('; ((${#ARGS[@]} == 0)) || printf '%q ' "${ARGS[@]}"; echo ')'
  cat <<'EOF'
up() { cut -d' ' -f1 /proc/uptime; }
mkdir -p "$HOME"; cd "$NFS_GUEST_REPO" || cd /
echo "nfs-guest: suite start at uptime $(up)s: $script ${args[*]}"
exec {out}> >(exec tee "$RESULTS/guest.log")
tee_pid=$!
timeout -k 10 "$NFS_GUEST_SUITE_TIMEOUT" bash "$script" "${args[@]}" </dev/null >&"$out" 2>&1
rc=$?
exec {out}>&-
# daemons the script left running may hold the pipe open: give tee 3 s, then go on
end=$((SECONDS + 3))
while kill -0 "$tee_pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
[[ $rc == 124 || $rc == 137 ]] && echo "FAIL guest-suite-timeout (${NFS_GUEST_SUITE_TIMEOUT}s)" >>"$RESULTS/guest.log"
echo "$rc" >"$RESULTS/.harness/rc"
echo "nfs-guest: suite end rc=$rc at uptime $(up)s"
EOF
} >"$SHARE/.harness/launch.sh"

# ganesha: NFSv3 + v4.x, one export; mount path == pseudo path so /export works for v3 and v4
cat >"$G/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $NFS_PORT;
    MNT_Port = $NFS_MOUNT_PORT;
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = $G/recov;
    Minor_Versions = 0, 1, 2;
    Only_Numeric_Owners = true;
}
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
    Export_Id = 1;
    Path = $EXPORT;
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    Protocols = 3, 4;
    Transports = TCP;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF

ACCEL=${NFS_GUEST_ACCEL:-auto}
if [[ $ACCEL == auto ]]; then
  # /dev/kvm on these machines is a nested paravirtual KVM (kvm_pvm) that cannot boot Debian's kernel
  if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
QEMU=(qemu-system-x86_64 -accel "$ACCEL" -m "${NFS_GUEST_MEM:-1024}" -smp "${NFS_GUEST_SMP:-2}")
[[ $ACCEL == kvm ]] && QEMU+=(-cpu host)
# shellcheck disable=SC2054  # commas inside qemu arguments
QEMU+=(-nodefaults -no-user-config -display none -serial stdio -monitor none -no-reboot
  -kernel "$KERNEL" -initrd "$WORK/initrd.cpio"
  -append "console=ttyS0 panic=-1 loglevel=6 mitigations=off"
  -netdev "user,id=n0${NFS_GUEST_NETDEV_OPTS:+,$NFS_GUEST_NETDEV_OPTS}" -device virtio-net-pci,netdev=n0,romfile=
  -device virtio-rng-pci
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  -virtfs "local,path=$SHARE,mount_tag=results,security_model=none,multidevs=remap")

run_host_phase() {  # $1 = host-prepare|host-check; prints the script's output and FAIL on error
  grep -q '^# nfs-guest: host-phases' "$SCRIPT" || return 0
  (cd "$REPO" && NFS_GUEST_PHASE=$1 EXPORT_DIR=$EXPORT RESULTS=$SHARE NFS_GUEST_DIR=$HERE NFS_GUEST_REPO=$REPO \
    timeout 120 bash "$SCRIPT" "${ARGS[@]}" </dev/null 2>&1) || echo "FAIL $1-exit-status ($?)"
}
HOST_PREP_OUT=$(run_host_phase host-prepare)
[[ -n $HOST_PREP_OUT ]] && echo "$HOST_PREP_OUT"
T_PREP=$(el "$T0")
log "kernel $KERNEL ($KVER), accel $ACCEL, work $WORK, export $EXPORT, script $NAME"

# ---- (3) ganesha + guest, in private namespaces
T_RUN=$(now)
export NG_WORK=$WORK NG_SHARE=$SHARE NG_GANESHA=$G NFS_PORT NFS_MOUNT_PORT NFS_GUEST_TIMEOUT
NG_QEMU=$(printf '%q ' "${QEMU[@]}")
export NG_QEMU
net_ns=(--net); [[ ${NFS_GUEST_SHARE_NET:-} == 1 ]] && net_ns=()
unshare "${net_ns[@]}" --mount --pid --fork --kill-child --mount-proc --propagation private \
  "$BASH" "$HERE/run.sh" --inner || log "namespace runner exited with $?"
T_QEMU_WALL=$(el "$T_RUN")

# ---- (4) verdict
HOST_CHECK_OUT=$(run_host_phase host-check)
[[ -n $HOST_CHECK_OUT ]] && { echo "--- host check ($NAME)"; echo "$HOST_CHECK_OUT"; }
results=$( { grep -E '^(PASS|FAIL) ' "$SHARE/guest.log" 2>/dev/null || true
  printf '%s\n%s\n' "$HOST_PREP_OUT" "$HOST_CHECK_OUT" | grep -E '^(PASS|FAIL) ' || true; } )
qrc=$(cat "$WORK/qemu.rc" 2>/dev/null || echo none)
grc=$(cat "$SHARE/.harness/rc" 2>/dev/null || echo none)
extra=()
[[ $qrc == 124 || $qrc == 137 ]] && extra+=("FAIL guest-timeout (qemu killed after ${NFS_GUEST_TIMEOUT}s)")
[[ $qrc != 0 && $qrc != 124 && $qrc != 137 ]] && extra+=("FAIL qemu-exit-status ($qrc)")
[[ $grc == none && $qrc == 0 ]] && extra+=("FAIL guest-no-result (guest script never finished; see $WORK/serial.log)")
[[ $grc != none && $grc != 0 && $grc != 124 && $grc != 137 ]] && ! grep -q '^FAIL ' <<<"$results" &&
  extra+=("FAIL guest-script-exit-status ($grc)")
[[ -z $results && ${#extra[@]} == 0 ]] && extra+=("FAIL no-results (the script reported no PASS/FAIL lines)")
for e in "${extra[@]}"; do results+=${results:+$'\n'}$e; done

boot='?' suite='?'
if [[ -f $WORK/serial.log ]]; then
  boot=$(sed -n 's/^\[ *\([0-9.]*\)\] nfs-guest: suite start.*/\1/p' "$WORK/serial.log" | head -1)
  end=$(sed -n 's/^\[ *\([0-9.]*\)\] nfs-guest: suite end.*/\1/p' "$WORK/serial.log" | head -1)
  [[ -n $boot && -n $end ]] && suite=$(awk -v a="$boot" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  boot=${boot:-?}
fi
npass=$(grep -c '^PASS ' <<<"$results" || true)
nfail=$(grep -c '^FAIL ' <<<"$results" || true)
{
  echo "==== nfs-guest summary: $NAME ($WORK)"
  [[ -n $results ]] && echo "$results"
  echo "timing: install/check ${T_INSTALL}s, prep ${T_PREP}s, boot ${boot}s (qemu start -> suite start)," \
    "suite ${suite}s, namespace+qemu ${T_QEMU_WALL}s, total $(el "$T0")s"
  echo "nfs-guest: $npass passed, $nfail failed"
} | tee "$WORK/summary.txt"
rm -f "$WORK/initrd.cpio"
((nfail == 0))
