#!/bin/bash
# tests/e2e/nfs-guest/boot.sh — run a test script inside a QEMU guest running Debian's kernel, with real
# kernel NFS mounts against an nfs-ganesha server that the harness runs on this host.
#
# Why: the host kernel has no NFS client, so real mounts need a guest kernel. The guest mounts the
# host's root read-only over virtio-9p and chroots into it, so host-built binaries (the driver in
# target/, csi-sanity in /root/go/bin) run inside the guest unchanged. One boot runs a whole suite.
#
# Usage (as root):  tests/e2e/nfs-guest/boot.sh [GUEST_SCRIPT [ARGS...]]
#   GUEST_SCRIPT  bash script on the host filesystem (default: selftest-guest.sh next to boot.sh); it
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
# The parts, each a file of its own: boot.sh (this: host side, steps 1, 2 and 4), netns.sh (pid 1 of
# the private namespace: rpcbind, ganesha, its control loop, QEMU), init.sh (the initramfs's /init),
# launch.sh (runs the guest script inside the guest), guest-helpers.sh (for guest scripts).
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
#   guest-helpers.sh (source "$NFS_GUEST_DIR/guest-helpers.sh") has tests/e2e/lib.sh's pass/fail/check
#   helpers, nfs_opts and nfs_server (the control protocol below).
#
# Guest filesystem: / is the host root, read-only (9p, cache=loose: host changes made during the run
# are not seen). tmpfs on /tmp, /run, /var/tmp, /dev/shm; proc, sysfs, devtmpfs, devpts, cgroup2.
# Mount points must be created under a tmpfs (a new directory cannot be made on the read-only root).
# Host paths under /tmp, /run or /var/tmp that the guest needs (the repository, the script's
# directory, and any in $NFS_GUEST_KEEP) are bind-mounted back over the tmpfs, read-only.
# Modules not in the initramfs load with `modprobe` from the host root (same kernel version).
#
# Reporting: the script's stdout+stderr go to the console and to $RESULTS/guest.log. Lines
# "PASS <name>", "FAIL <name>: <why>" and "SKIP <name>: <why>" at the start of a line are the results
# (tests/e2e/lib.sh); anything else is
# log. Background daemons a script starts should log to a file of their own (e.g. $RESULTS/x.log):
# the harness waits at most 3 s for the log pipe to close after the script exits.
#
# Host phases (optional): if the script contains a line "# nfs-guest: host-phases", boot.sh also runs it
# on the host (outside the guest, ganesha not running) with NFS_GUEST_PHASE=host-prepare before the
# boot and NFS_GUEST_PHASE=host-check after it, with EXPORT_DIR (the exported host directory) and
# RESULTS (the results directory as a host path) and NFS_FAULT_DIR (the extra exports'
# directories, fault-exports.sh). Result lines of host-check count too.
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
#   guest-helpers.sh's `nfs_server stop|kill|start|restart [timeout_s]` does the guest side.
#
# Knobs (environment of boot.sh):
#   NFS_GUEST_WORK     work dir (default: new mktemp -d under $TMPDIR or /tmp); kept after the run
#   NFS_GUEST_EXPORT   exported directory (default: $NFS_GUEST_WORK/export)
#   NSC_CACHE          the suites' cache (tests/e2e/lib.sh); the uncompressed kernel goes to nfs-guest/
#   NFS_PORT=2049 NFS_MOUNT_PORT=20048   ganesha's ports (private namespace, so defaults never clash)
#   NFS_GUEST_TIMEOUT=480   qemu wall-clock limit in seconds; the suite gets this minus 60
#   NFS_GUEST_EXTRA_PKGS    more Debian packages the guest script needs (installed like the others)
#   NFS_GUEST_MEM=1024 NFS_GUEST_SMP=2 NFS_GUEST_ACCEL=auto|tcg|kvm  NFS_GUEST_KVER (kernel version)
#   NFS_GUEST_QUIET=1  do not echo the serial console (still saved in $NFS_GUEST_WORK/serial.log)
#   NFS_GUEST_NO_INSTALL=1  never call apt-get (fail if something is missing)
#   NFS_GUEST_SHARE_NET=1   run ganesha + qemu in the caller's network namespace (no --net unshare):
#                      for a caller that already made its own namespace and serves the guest there
#                      (tests/cluster: the control plane at 10.0.2.2 for the guest's kubelet)
#   NFS_GUEST_NETDEV_OPTS   extra options of qemu's `-netdev user` (e.g. hostfwd=tcp:10.0.2.15:10250-:10250)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
# shellcheck source=tests/e2e/lib.sh
. "$HERE/../lib.sh"
now() { e2e_ms; }
el() { local d=$(($(now) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
log() { echo "nfs-guest: $*"; }
die() { echo "nfs-guest: error: $*" >&2; exit 2; }

T0=$(now)
[[ $(id -u) == 0 ]] || die "must run as root (ganesha needs real root; namespaces, 9p)"
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
CACHE=$NSC_CACHE/nfs-guest

# ---- (1) packages
PKGS=(nfs-ganesha nfs-ganesha-vfs rpcbind qemu-system-x86 linux-image-amd64 busybox-static cpio kmod
  xz-utils zstd iproute2)
# shellcheck disable=SC2206  # a list of package names
PKGS+=(${NFS_GUEST_EXTRA_PKGS:-})
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
# the extra exports of the export-fault scenarios (full, read-only, root_squash, all_squash)
# shellcheck source=tests/e2e/nfs-guest/fault-exports.sh
. "$HERE/fault-exports.sh"
FAULT=$WORK/fault
fault_exports_prepare "$FAULT"

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

cp "$HERE/init.sh" "$ST/init"
chmod +x "$ST/init"
(cd "$ST" && find . | cpio -o -H newc --quiet) >"$WORK/initrd.cpio"

# The launcher (launch.sh) runs in the guest's chroot; env.sh gives it the documented environment.
fwd=()
for v in RUST_LOG RUST_BACKTRACE ${NFS_GUEST_ENV:-}; do [[ -n ${!v+x} ]] && fwd+=("$v=${!v}"); done
{
  echo '# generated by tests/e2e/nfs-guest/boot.sh; sourced by launch.sh'
  printf 'export %q\n' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp/nfs-guest-home LANG=C.UTF-8 NFS_SERVER=10.0.2.2 NFS_SHARE=/export \
    NFS_PORT="$NFS_PORT" NFS_MOUNT_PORT="$NFS_MOUNT_PORT" NFS_GUEST_IP=10.0.2.15 \
    RESULTS=/run/nfs-guest NFS_GUEST_DIR="$HERE" NFS_GUEST_REPO="$REPO" NFS_GUEST_PHASE=guest \
    NFS_GUEST_SUITE_TIMEOUT="$SUITE_TIMEOUT" "${fwd[@]}"
  printf 'script=%q\n' "$SCRIPT"
  printf 'args=('; ((${#ARGS[@]} == 0)) || printf '%q ' "${ARGS[@]}"; echo ')'
} >"$SHARE/.harness/env.sh"
cp "$HERE/launch.sh" "$SHARE/.harness/launch.sh"

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
fault_exports_conf "$FAULT" >>"$G/ganesha.conf"

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
  -append "console=ttyS0 panic=-1 loglevel=6 mitigations=off no_timer_check"
  -netdev "user,id=n0${NFS_GUEST_NETDEV_OPTS:+,$NFS_GUEST_NETDEV_OPTS}" -device virtio-net-pci,netdev=n0,romfile=
  -device virtio-rng-pci
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  -virtfs "local,path=$SHARE,mount_tag=results,security_model=none,multidevs=remap")

run_host_phase() {  # $1 = host-prepare|host-check; prints the script's output and FAIL on error
  grep -q '^# nfs-guest: host-phases' "$SCRIPT" || return 0
  (cd "$REPO" && NFS_GUEST_PHASE=$1 EXPORT_DIR=$EXPORT NFS_FAULT_DIR=$FAULT RESULTS=$SHARE NFS_GUEST_DIR=$HERE NFS_GUEST_REPO=$REPO \
    timeout 120 bash "$SCRIPT" "${ARGS[@]}" </dev/null 2>&1) || echo "FAIL $1-exit-status: $?"
}
HOST_PREP_OUT=$(run_host_phase host-prepare)
[[ -n $HOST_PREP_OUT ]] && echo "$HOST_PREP_OUT"
T_PREP=$(el "$T0")
log "kernel $KERNEL ($KVER), accel $ACCEL, work $WORK, export $EXPORT, script $NAME"

# ---- (3) ganesha + guest, in private namespaces
T_RUN=$(now)
export NG_WORK=$WORK NG_SHARE=$SHARE NG_GANESHA=$G NG_FAULT=$FAULT NFS_PORT NFS_MOUNT_PORT NFS_GUEST_TIMEOUT
NG_QEMU=$(printf '%q ' "${QEMU[@]}")
export NG_QEMU
net_ns=(--net); [[ ${NFS_GUEST_SHARE_NET:-} == 1 ]] && net_ns=()
unshare "${net_ns[@]}" --mount --pid --fork --kill-child --mount-proc --propagation private \
  "$BASH" "$HERE/netns.sh" || log "namespace runner exited with $?"
T_QEMU_WALL=$(el "$T_RUN")

# ---- (4) verdict
HOST_CHECK_OUT=$(run_host_phase host-check)
[[ -n $HOST_CHECK_OUT ]] && { echo "--- host check ($NAME)"; echo "$HOST_CHECK_OUT"; }
results=$( { grep -E '^(PASS|FAIL|SKIP) ' "$SHARE/guest.log" 2>/dev/null || true
  printf '%s\n%s\n' "$HOST_PREP_OUT" "$HOST_CHECK_OUT" | grep -E '^(PASS|FAIL|SKIP) ' || true; } )
qrc=$(cat "$WORK/qemu.rc" 2>/dev/null || echo none)
grc=$(cat "$SHARE/.harness/rc" 2>/dev/null || echo none)
extra=()
[[ $qrc == 124 || $qrc == 137 ]] && extra+=("FAIL guest-timeout: qemu killed after ${NFS_GUEST_TIMEOUT}s")
[[ $qrc != 0 && $qrc != 124 && $qrc != 137 ]] && extra+=("FAIL qemu-exit-status: $qrc")
[[ $grc == none && $qrc == 0 ]] && extra+=("FAIL guest-no-result: the guest script never finished; see $WORK/serial.log")
[[ $grc != none && $grc != 0 && $grc != 124 && $grc != 137 ]] && ! grep -q '^FAIL ' <<<"$results" &&
  extra+=("FAIL guest-script-exit-status: $grc")
[[ -z $results && ${#extra[@]} == 0 ]] && extra+=("FAIL no-results: the script reported no PASS/FAIL lines")
for e in "${extra[@]}"; do results+=${results:+$'\n'}$e; done

boot='?' suite='?'
if [[ -f $WORK/serial.log ]]; then
  boot=$(sed -n 's/^\[ *\([0-9.]*\)\] nfs-guest: suite start.*/\1/p' "$WORK/serial.log" | head -1)
  end=$(sed -n 's/^\[ *\([0-9.]*\)\] nfs-guest: suite end.*/\1/p' "$WORK/serial.log" | head -1)
  [[ -n $boot && -n $end ]] && suite=$(awk -v a="$boot" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  boot=${boot:-?}
fi
tally <<<"$results"
rm -f "$WORK/initrd.cpio"
{
  echo "==== nfs-guest summary: $NAME ($WORK)"
  [[ -n $results ]] && echo "$results"
  echo "timing: install/check ${T_INSTALL}s, prep ${T_PREP}s, boot ${boot}s (qemu start -> suite start)," \
    "suite ${suite}s, namespace+qemu ${T_QEMU_WALL}s, total $(el "$T0")s"
  summary nfs-guest
} | tee "$WORK/summary.txt"   # pipefail: the status is summary's (non-zero on any FAIL)
