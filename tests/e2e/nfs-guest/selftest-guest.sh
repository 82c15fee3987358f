#!/bin/bash
# tests/e2e/nfs-guest/selftest-guest.sh — proves the harness: bare mount(2) of the harness's ganesha export
# for NFSv4.1, 4.0, 4.2 and 3 (busybox mount and a direct mount(2) call: text options straight to the
# kernel, no mount.nfs helper), file I/O seen by the host, which options the non-default-port case
# needs, and the server stop/start protocol with soft mounts.
# Run:  tests/e2e/nfs-guest/boot.sh tests/e2e/nfs-guest/selftest-guest.sh
#       NFS_PORT=12049 NFS_MOUNT_PORT=12048 tests/e2e/nfs-guest/boot.sh   (non-default ports)
# nfs-guest: host-phases
# shellcheck disable=SC2015  # "cond && pass || fail" is fine: pass only echoes
set -uo pipefail
. "${NFS_GUEST_DIR:-$(dirname "$0")}/guest-helpers.sh"

case ${NFS_GUEST_PHASE:-guest} in
  host-prepare)
    mkdir -p "$EXPORT_DIR/selftest"
    echo "written by the host" >"$EXPORT_DIR/selftest/from-host.txt"
    exit 0 ;;
  host-check)
    for v in 4.1 4.0 4.2 3; do
      f=$EXPORT_DIR/selftest/v$v.txt
      if [[ $(cat "$f" 2>/dev/null) == "hello from the guest over NFSv$v" ]]; then pass "host-sees-v$v-file"
      else fail "host-sees-v$v-file" "$f: $(head -c 80 "$f" 2>&1)"; fi
    done
    for v in 4.1 3; do
      f=$EXPORT_DIR/selftest/after-restart-v$v.txt
      if [[ -s $f ]]; then pass "host-sees-v$v-write-after-restart"; else fail "host-sees-v$v-write-after-restart" "$f"; fi
    done
    exit 0 ;;
esac

SRC=$NFS_SERVER:$NFS_SHARE
M=/tmp/mnt
mkdir -p $M
echo "selftest: server $SRC ports nfs=$NFS_PORT mountd=$NFS_MOUNT_PORT, kernel $(uname -r), $(nproc) cpus"

# mount(2) with a text data string, as the driver does through nix (no helper, no option rewriting).
mount2() {  # SOURCE TARGET OPTIONS
  timeout 60 python3 - "$@" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
src, tgt, data = (a.encode() for a in sys.argv[1:4])
if libc.mount(src, tgt, b"nfs", 0, data) != 0:
    e = ctypes.get_errno(); print(f"mount(2): {os.strerror(e)} (errno {e})", file=sys.stderr); sys.exit(1)
PY
}
bbmount() { timeout 60 busybox mount -t nfs -o "$3" "$1" "$2"; }  # busybox passes -o text to mount(2)

mounted_as() {  # TARGET: "<type> <options>" from /proc/mounts
  awk -v t="$1" '$2 == t { print $3, $4 }' /proc/mounts
}

# ---- 1. each version: mount, write, read back, host file visible, umount
for v in 4.1 4.0 4.2 3; do
  d=$M/v$v; mkdir -p "$d"; o=$(nfs_opts "$v")
  t=$(ms)
  if bbmount "$SRC" "$d" "$o"; then
    pass "mount-v$v"
    echo "  busybox mount -t nfs -o $o $SRC: $(($(ms) - t)) ms; /proc/mounts: $(mounted_as "$d")"
    want=nfs4; [[ $v == 3 ]] && want=nfs
    read -r typ opts <<<"$(mounted_as "$d")"
    [[ $typ == "$want" && ,$opts, == *,vers=$v,* ]] && pass "mount-v$v-type" || fail "mount-v$v-type" "$typ $opts"
    echo "hello from the guest over NFSv$v" >"$d/selftest/v$v.txt" &&
      [[ $(cat "$d/selftest/v$v.txt") == "hello from the guest over NFSv$v" ]] &&
      pass "io-v$v" || fail "io-v$v"
    [[ $(cat "$d/selftest/from-host.txt" 2>/dev/null) == "written by the host" ]] &&
      pass "guest-sees-host-file-v$v" || fail "guest-sees-host-file-v$v"
    check "umount-v$v" umount "$d"
  else
    fail "mount-v$v" "busybox mount -o $o"
  fi
done

# ---- 2. the direct mount(2) call, as the driver will make it
for v in 4.1 3; do
  d=$M/m2-v$v; mkdir -p "$d"; o=$(nfs_opts "$v")
  if mount2 "$SRC" "$d" "$o"; then
    pass "mount2-v$v"
    check "mount2-v$v-io" test -s "$d/selftest/from-host.txt"
    umount "$d"
  else fail "mount2-v$v" "$o"; fi
done

# ---- 3. which options are needed (informational: INFO lines, not results)
probe() {  # VERS OPTIONS: try a mount, report, undo
  local d=$M/probe t rc=0 err
  t=$(ms)
  mkdir -p $d
  err=$(mount2 "$SRC" "$d" "$2" 2>&1) || rc=$?
  if ((rc == 0)); then echo "INFO v$1 '$2': mounts ($(($(ms) - t)) ms) as $(mounted_as $d | cut -c1-160)"; umount $d
  else echo "INFO v$1 '$2': fails rc=$rc ($(($(ms) - t)) ms): ${err:-timeout}"; fi
}
probe 3 "vers=3,addr=$NFS_SERVER,nolock"                # ports and mount protocol from rpcbind
probe 3 "vers=3,addr=$NFS_SERVER,proto=tcp"             # without nolock: lockd needs a local rpcbind
probe 3 "vers=3,addr=$NFS_SERVER,port=$NFS_PORT,mountport=$NFS_MOUNT_PORT,mountproto=tcp,nolock"
probe 4.1 "vers=4.1,addr=$NFS_SERVER"                    # port 2049 assumed for v4
probe 4.0 "vers=4.0,addr=$NFS_SERVER,port=$NFS_PORT,clientaddr=$NFS_GUEST_IP"
probe 4 "vers=4,addr=$NFS_SERVER,port=$NFS_PORT"         # negotiates the minor version
probe 4.1 "vers=4.1,addr=nfs-server-by-name"             # addr must be an IP address

# ---- 4. server down / up with soft mounts (the protocol in boot.sh's header)
soft=",soft,timeo=10,retrans=1"
for v in 4.1 3; do
  d=$M/soft-v$v; mkdir -p "$d"
  bbmount "$SRC" "$d" "$(nfs_opts $v)$soft" && pass "soft-mount-v$v" || fail "soft-mount-v$v"
  echo "before the stop" >"$d/selftest/soft-v$v.txt"
done
t=$(ms)
if nfs_server stop; then pass "server-stop"; else fail "server-stop"; fi
echo "  ganesha-stop acknowledged after $(($(ms) - t)) ms"
for v in 4.1 3; do
  # both must fail while the server is down (124 = timed out, else an error such as EIO from the
  # soft mount); statfs and a create always go to the server, whatever the attribute cache holds
  d=$M/soft-v$v t=$(ms) rc1=0 rc2=0
  timeout 5 stat -f "$d" >/dev/null 2>&1 || rc1=$?
  t2=$(ms)
  timeout 5 touch "$d/selftest/new-while-down" 2>/dev/null || rc2=$?
  if ((rc1 != 0)); then pass "server-down-v$v-stat-fails"; else fail "server-down-v$v-stat-fails" "stat -f succeeded"; fi
  if ((rc2 != 0)); then pass "server-down-v$v-touch-fails"; else fail "server-down-v$v-touch-fails" "touch succeeded"; fi
  echo "  v$v while down: stat -f rc=$rc1 after $((t2 - t)) ms, touch rc=$rc2 after $(($(ms) - t2)) ms"
done
t=$(ms)
if nfs_server start; then pass "server-start"; else fail "server-start"; fi
echo "  ganesha-start acknowledged after $(($(ms) - t)) ms"
for v in 4.1 3; do
  d=$M/soft-v$v t=$(ms) ok=
  for i in $(seq 30); do
    timeout 5 sh -c "echo after restart try $i >'$d/selftest/after-restart-v$v.txt'" 2>/dev/null && { ok=1; break; }
    sleep 1
  done
  [[ -n $ok ]] && pass "server-back-v$v" || fail "server-back-v$v"
  echo "  v$v usable again after $(($(ms) - t)) ms ($i tries)"
  [[ $(cat "$d/selftest/soft-v$v.txt" 2>&1) == "before the stop" ]] && pass "no-estale-after-restart-v$v" ||
    fail "no-estale-after-restart-v$v" "$(head -c 80 "$d/selftest/soft-v$v.txt" 2>&1)"
done
# crash (SIGKILL) and restart in one go, then the mount must recover
check server-kill nfs_server kill
check server-start-after-kill nfs_server start
d=$M/soft-v4.1 ok=
for i in $(seq 30); do timeout 5 ls "$d/selftest" >/dev/null 2>&1 && { ok=1; break; }; sleep 1; done
[[ -n $ok ]] && pass "server-back-after-kill-v4.1" || fail "server-back-after-kill-v4.1"
for v in 4.1 3; do check "soft-umount-v$v" timeout 20 umount "$M/soft-v$v"; done
exit 0
