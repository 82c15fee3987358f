# shellcheck shell=bash
# tests/e2e/nfs-guest/guest-helpers.sh — helpers for guest scripts run by boot.sh (see its header).
# Source it from a guest script:  . "$NFS_GUEST_DIR/guest-helpers.sh"
# Needs the environment boot.sh gives the guest: NFS_SERVER NFS_SHARE NFS_PORT NFS_MOUNT_PORT
# NFS_GUEST_IP RESULTS. Brings in tests/e2e/lib.sh: pass/fail/skip/check print the result lines
# boot.sh counts.

# shellcheck source=tests/e2e/lib.sh
. "${NFS_GUEST_DIR:-$(dirname "${BASH_SOURCE[0]}")}/../lib.sh"

# ms: milliseconds since boot, for timing inside the guest.
ms() { local u; read -r u _ </proc/uptime; u=${u/./}; echo $((10#$u * 10)); }

# nfs_opts VERS: kernel text mount options (the data string of mount(2)) that reach the harness's
# ganesha for NFS version VERS (3, 4.0, 4.1, 4.2), without any mount helper:
#   - addr= is always needed: mount(2) does not resolve the host name in the source.
#   - NFSv4 connects to port 2049 unless port= says otherwise (the kernel asks no portmapper for v4).
#   - NFSv3 asks rpcbind on the server for the NFS and MOUNT ports (port=/mountport= optional).
#     nolock is required: without it the kernel starts lockd, which must register with an rpcbind
#     on the client (none in the guest, nor in a node image without one): ECONNREFUSED.
#   - NFSv4.0 works without clientaddr= (the kernel uses the connection's source address).
nfs_opts() {
  local v=$1 o="vers=$1,addr=$NFS_SERVER,proto=tcp"
  [[ $v == 3 ]] && o+=",nolock"
  [[ $v != 3 && $NFS_PORT != 2049 ]] && o+=",port=$NFS_PORT"
  echo "$o"
}

# nfs_server stop|kill|start|restart [TIMEOUT_S]: ask the host to act on ganesha (protocol in
# boot.sh's header) and wait for the acknowledgement. Returns 0 on "ok".
nfs_server() {
  local op=$1 t=${2:-60} req ack st end
  req=$RESULTS/ganesha-$op ack=$RESULTS/ganesha-$op.ack
  case $op in stop | kill | start | restart) ;; *) echo "nfs_server: unknown op $op" >&2; return 2 ;; esac
  rm -f "$ack"
  : >"$req.tmp" && mv -f "$req.tmp" "$req"
  end=$((SECONDS + t))
  while ((SECONDS < end)); do
    if [[ -e $ack ]]; then
      st=$(<"$ack")
      rm -f "$ack"
      [[ $st == ok ]] && return 0
      echo "nfs_server $op: $st" >&2
      return 1
    fi
    sleep 0.1
  done
  rm -f "$req"
  echo "nfs_server $op: no acknowledgement within ${t}s" >&2
  return 1
}
