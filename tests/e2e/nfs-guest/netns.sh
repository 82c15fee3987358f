#!/bin/bash
# tests/e2e/nfs-guest/netns.sh — pid 1 of the private net+mount+pid namespace that boot.sh creates:
# starts rpcbind and ganesha on the namespace's loopback, serves the ganesha control protocol (see
# boot.sh's header) over the results share, and runs QEMU under a timeout with a timestamped console.
# When it exits the kernel kills ganesha, rpcbind and the control loop with the namespace.
#
# Not run by hand: boot.sh starts it through `unshare --net --mount --pid --fork` with, in the
# environment, NG_WORK (boot.sh's work dir), NG_SHARE (the results share), NG_GANESHA (ganesha's
# config/log dir), NG_FAULT (the extra exports' directories, fault-exports.sh), NG_QEMU (the QEMU command line, %q-quoted), NFS_PORT, NFS_MOUNT_PORT,
# NFS_GUEST_TIMEOUT and NFS_GUEST_QUIET. Writes $NG_WORK/{serial.log,qemu.start,qemu.end,qemu.rc}.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
now() { e2e_ms; }
el() { local d=$(($(now) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }

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

# shellcheck source=tests/e2e/nfs-guest/fault-exports.sh
. "$(dirname "${BASH_SOURCE[0]}")/fault-exports.sh"
fault_exports_mount "$NG_FAULT" || { echo "nfs-guest: cannot mount the small filesystem of /export-full"; exit 2; }

t0=$(now)
ganesha_start || { echo "nfs-guest: ganesha did not start (log: $G/ganesha.log)"; exit 2; }
echo "nfs-guest: ganesha ready on ports $NFS_PORT (nfs) / $NFS_MOUNT_PORT (mountd) in $(el "$t0")s"
control_loop </dev/null &
fault_control_loop </dev/null &

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
