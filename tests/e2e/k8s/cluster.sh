#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager,
# no kubelet (Pods stay Pending; Deployments, StatefulSets, PVCs, PVs and binding all work).
#
#   cluster.sh start <dir>   generate certs, start everything, wait until ready, print env
#   cluster.sh env <dir>     print `export KUBECONFIG=... PATH=...` lines (use with eval)
#   cluster.sh stop <dir>    stop everything, remove state; logs stay in <dir>/logs
#   cluster.sh status <dir>  exit 0 if running
#
# Everything runs under one supervisor in its own PID namespace (`unshare --pid --fork
# --kill-child`): when the supervisor goes, the kernel kills every process in the namespace, so
# nothing outlives `stop`. If NSC_CLUSTER_OWNER_PID is set at start, the cluster also tears itself
# down once that process is gone (so a killed test script cannot leak a cluster).
#
# Env: NSC_K8S_BIN (dir with the binaries; default: built/cached by build.sh next to this file),
#      NSC_K8S_READY_TIMEOUT (seconds, default 120), NSC_CLUSTER_OWNER_PID,
#      NSC_NO_PIDNS=1 (skip the PID namespace; stop then kills the supervisor's process group),
#      NSC_K8S_SCHEDULER=1 (also run kube-scheduler, for clusters with a real kubelet: tests/e2e/cluster),
#      NSC_APISERVER_SANS (extra subjectAltName entries for the serving cert, e.g. "IP:10.0.2.2"),
#      NSC_APISERVER_ARGS (extra kube-apiserver flags, word-split; later flags override earlier ones).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVICE_CIDR=${NSC_SERVICE_CIDR:-10.0.0.0/24}   # API allocation only: no kube-proxy, no traffic

log() { printf '[k8s-cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%03ds' $((d / 1000)) $((d % 1000)); }

usage() { echo "usage: $0 start|stop|env|status <dir>" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# helpers

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

gen_certs() { # <pki dir>
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    ec ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=nfs-subdir-csi-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out ca.crt 2>/dev/null
    # sign <name> <subject> <extensions...>
    sign() {
      local n=$1 subj=$2; shift 2
      ec "$n.key"
      openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr" 2>/dev/null
      printf '%s\n' "$@" >"$n.ext"
      openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 \
        -extfile "$n.ext" -out "$n.crt" 2>/dev/null
      rm -f "$n.csr" "$n.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${SERVICE_CIDR%.*/*}.1${NSC_APISERVER_SANS:+,$NSC_APISERVER_SANS}"
    client=("basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth")
    sign admin "/O=system:masters/CN=nsc-admin" "${client[@]}"
    sign kcm "/CN=system:kube-controller-manager" "${client[@]}"
    sign scheduler "/CN=system:kube-scheduler" "${client[@]}"
    # service-account token signing key pair
    ec sa.key
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() ( # <out> <server> <pki> <user>
  out=$1 server=$2 pki=$3 user=$4
  umask 077
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nsc
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: nsc
  context: {cluster: nsc, user: $user}
current-context: nsc
EOF
)

load_env() { # <dir>
  [ -f "$1/run/cluster.env" ] || die "no cluster in $1 (missing run/cluster.env)"
  # shellcheck disable=SC1091
  . "$1/run/cluster.env"
}

# pid of the supervisor (PID 1 of the namespace, as seen from here) given the launcher's pid
supervisor_pid() {
  local l=$1 c
  c=$(cat "/proc/$l/task/$l/children" 2>/dev/null || pgrep -P "$l" || true)
  echo "${c%% *}"
}

# GET /health on etcd's client port, with bash's /dev/tcp (no curl needed)
etcd_healthy() (
  { exec 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT"; } 2>/dev/null || exit 1
  printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  timeout 2 cat <&3 | grep -q '"health":"true"'
)

is_running() { [ -f "$1/run/launcher.pid" ] && kill -0 "$(cat "$1/run/launcher.pid")" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# supervisor: runs inside the PID namespace, starts the components, exits when any of them does

supervise() {
  local dir=$1
  load_env "$dir"
  local pki="$dir/pki" logs="$dir/logs"
  declare -A pids=()
  stopping=0
  teardown() {
    stopping=1
    local n
    for n in kube-scheduler kube-controller-manager kube-apiserver etcd owner-watch; do
      [ -n "${pids[$n]:-}" ] && kill -TERM "${pids[$n]}" 2>/dev/null || true
    done
    for _ in $(seq 1 20); do
      jobs -pr | grep -q . || break
      sleep 0.1
    done
    echo "supervisor: stopped"
    exit 0 # as PID 1, our exit makes the kernel SIGKILL whatever is left in the namespace
  }
  trap teardown TERM INT HUP
  # alive_or_die <name...>: during startup, give up as soon as a component (or the owner) is gone
  alive_or_die() {
    local n
    for n in "$@" ${pids[owner-watch]:+owner-watch}; do
      kill -0 "${pids[$n]}" 2>/dev/null || { echo "supervisor: $n exited during startup"; teardown; }
    done
  }

  if [ -n "${OWNER_PID:-}" ]; then
    # /proc is the parent namespace's, so host pids are visible there
    (while [ -d "/proc/$OWNER_PID" ]; do sleep 1; done; echo "supervisor: owner $OWNER_PID gone") &
    pids[owner-watch]=$!
  fi

  "$NSC_K8S_BIN/etcd" --name nsc --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "nsc=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --unsafe-no-fsync --quota-backend-bytes=$((1 << 30)) --log-level warn \
    >"$logs/etcd.log" 2>&1 &
  pids[etcd]=$!
  # etcd serves clients only once it has elected itself leader
  until etcd_healthy; do alive_or_die etcd; sleep 0.1; done
  echo "supervisor: etcd healthy" 

  "$NSC_K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --cert-dir "$pki" \
    --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --endpoint-reconciler-type none \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling=false \
    ${APISERVER_ARGS:-} >"$logs/kube-apiserver.log" 2>&1 &
  pids[kube-apiserver]=$!
  # kube-controller-manager exits at once if the apiserver does not answer: start it afterwards
  until KUBECONFIG="$dir/run/kcm.kubeconfig" "$NSC_K8S_BIN/kubectl" get --raw /readyz >/dev/null 2>&1; do
    alive_or_die etcd kube-apiserver; sleep 0.2
  done
  echo "supervisor: kube-apiserver ready" 

  "$NSC_K8S_BIN/kube-controller-manager" \
    --kubeconfig "$dir/run/kcm.kubeconfig" \
    --authentication-kubeconfig "$dir/run/kcm.kubeconfig" --authorization-kubeconfig "$dir/run/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --controllers '*' --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --cluster-name nsc --leader-elect=false --profiling=false \
    --flex-volume-plugin-dir "$dir/run/flexvolume" \
    >"$logs/kube-controller-manager.log" 2>&1 &
  pids[kube-controller-manager]=$!
  if [ "${SCHEDULER:-}" = 1 ]; then
    "$NSC_K8S_BIN/kube-scheduler" --kubeconfig "$dir/run/scheduler.kubeconfig" \
      --authentication-kubeconfig "$dir/run/scheduler.kubeconfig" --authorization-kubeconfig "$dir/run/scheduler.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false \
      >"$logs/kube-scheduler.log" 2>&1 &
    pids[kube-scheduler]=$!
  fi

  echo "supervisor: started etcd=${pids[etcd]} kube-apiserver=${pids[kube-apiserver]} kube-controller-manager=${pids[kube-controller-manager]} (namespace pids)" 
  local rc=0
  wait -n || rc=$?
  [ "$stopping" = 1 ] && exit 0
  local n
  for n in "${!pids[@]}"; do
    kill -0 "${pids[$n]}" 2>/dev/null || echo "supervisor: $n exited (rc=$rc); tearing down" 
  done
  teardown
}

# ---------------------------------------------------------------------------------------------

cmd_start() {
  local dir=$1 t0 t
  t0=$(now_ms)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if is_running "$dir"; then die "a cluster is already running in $dir"; fi
  rm -rf "$dir/run" "$dir/pki" "$dir/etcd"
  mkdir -p "$dir/run" "$dir/logs"
  rm -f "$dir"/logs/*.log

  local bin=${NSC_K8S_BIN:-}
  if [ -z "$bin" ]; then
    log "ensuring binaries (tests/e2e/k8s/build.sh; a no-op when cached)"
    bin=$(bash "$HERE/build.sh" | tail -n1) || die "build.sh failed"
  fi
  local b
  for b in etcd kube-apiserver kube-controller-manager kubectl ${NSC_K8S_SCHEDULER:+kube-scheduler}; do
    [ -x "$bin/$b" ] || die "$bin/$b missing"
  done

  t=$(now_ms)
  gen_certs "$dir/pki"
  log "certificates generated in $(since "$t") ($dir/pki)"

  local etcd_port etcd_peer api_port kcm_port sched_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port); kcm_port=$(free_port); sched_port=$(free_port)
  cat >"$dir/run/cluster.env" <<EOF
NSC_K8S_BIN='$bin'
ETCD_PORT=$etcd_port
ETCD_PEER_PORT=$etcd_peer
API_PORT=$api_port
KCM_PORT=$kcm_port
SCHED_PORT=$sched_port
SCHEDULER='${NSC_K8S_SCHEDULER:-}'
APISERVER_ARGS='${NSC_APISERVER_ARGS:-}'
SERVICE_CIDR='$SERVICE_CIDR'
OWNER_PID='${NSC_CLUSTER_OWNER_PID:-}'
EOF
  write_kubeconfig "$dir/kubeconfig" "https://127.0.0.1:$api_port" "$dir/pki" admin
  write_kubeconfig "$dir/run/kcm.kubeconfig" "https://127.0.0.1:$api_port" "$dir/pki" kcm
  write_kubeconfig "$dir/run/scheduler.kubeconfig" "https://127.0.0.1:$api_port" "$dir/pki" scheduler
  log "ports: etcd=$etcd_port/$etcd_peer apiserver=$api_port kcm=$kcm_port"

  # Launch the supervisor detached (own session), in its own PID namespace when we can.
  local launcher=()
  if [ -z "${NSC_NO_PIDNS:-}" ] && unshare --pid --fork --kill-child true 2>/dev/null; then
    launcher=(unshare --pid --fork --kill-child)
    echo pidns >"$dir/run/mode"
  else
    log "no PID namespace (NSC_NO_PIDNS set or unshare --pid refused); using a process group"
    echo pgrp >"$dir/run/mode"
  fi
  setsid "${launcher[@]}" bash "$HERE/cluster.sh" _supervise "$dir" </dev/null >>"$dir/logs/supervisor.log" 2>&1 &
  echo $! >"$dir/run/launcher.pid"

  export KUBECONFIG="$dir/kubeconfig"
  local deadline=$(( $(date +%s) + ${NSC_K8S_READY_TIMEOUT:-120} ))
  t=$(now_ms)
  until "$bin/kubectl" get --raw /readyz >/dev/null 2>&1; do
    if ! is_running "$dir"; then
      tail -n 20 "$dir"/logs/*.log >&2 || true
      die "control plane exited before becoming ready (logs in $dir/logs)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$dir"/logs/*.log >&2 || true
      cmd_stop "$dir"
      die "kube-apiserver not ready within ${NSC_K8S_READY_TIMEOUT:-120}s"
    fi
    sleep 0.2
  done
  log "kube-apiserver /readyz ok after $(since "$t")"

  # kube-controller-manager is working once its serviceaccount controller made `default/default`.
  t=$(now_ms)
  until "$bin/kubectl" -n default get serviceaccount default >/dev/null 2>&1; do
    if ! is_running "$dir" || [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$dir/logs/kube-controller-manager.log" >&2 || true
      cmd_stop "$dir"
      die "kube-controller-manager did not create default/default in time"
    fi
    sleep 0.2
  done
  log "kube-controller-manager running (default ServiceAccount exists) after $(since "$t")"
  log "cluster up in $(since "$t0"): $("$bin/kubectl" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | tail -n1) at https://127.0.0.1:$api_port"
  cmd_env "$dir"
}

cmd_env() {
  local dir
  dir=$(cd "$1" && pwd) || die "no such dir $1"
  load_env "$dir"
  echo "export KUBECONFIG='$dir/kubeconfig'"
  echo "export NSC_K8S_BIN='$NSC_K8S_BIN'"
  echo "export PATH='$NSC_K8S_BIN':\"\$PATH\""
}

cmd_stop() {
  local dir=$1 t l s mode
  [ -d "$dir" ] || { log "nothing to stop in $dir"; return 0; }
  dir=$(cd "$dir" && pwd)
  t=$(now_ms)
  if [ -f "$dir/run/launcher.pid" ]; then
    l=$(cat "$dir/run/launcher.pid")
    mode=$(cat "$dir/run/mode" 2>/dev/null || echo pgrp)
    if kill -0 "$l" 2>/dev/null; then
      if [ "$mode" = pidns ]; then
        s=$(supervisor_pid "$l")
        [ -n "$s" ] && kill -TERM "$s" 2>/dev/null || true
      else
        kill -TERM -- "-$l" 2>/dev/null || true
      fi
      for _ in $(seq 1 100); do kill -0 "$l" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$l" 2>/dev/null; then
        log "graceful stop timed out; killing"
        if [ "$mode" = pidns ]; then
          s=$(supervisor_pid "$l"); [ -n "$s" ] && kill -KILL "$s" 2>/dev/null || true
          kill -KILL "$l" 2>/dev/null || true
        else
          kill -KILL -- "-$l" 2>/dev/null || true
        fi
        for _ in $(seq 1 50); do kill -0 "$l" 2>/dev/null || break; sleep 0.1; done
      fi
    fi
    if [ "$mode" = pgrp ]; then kill -KILL -- "-$l" 2>/dev/null || true; fi
  fi
  rm -rf "$dir/run" "$dir/pki" "$dir/etcd" "$dir/kubeconfig"
  log "stopped in $(since "$t"); logs kept in $dir/logs"
}

[ $# -ge 2 ] || usage
case "$1" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  env) cmd_env "$2" ;;
  status) d=$(cd "$2" 2>/dev/null && pwd) && is_running "$d" ;;
  _supervise) supervise "$2" ;;
  *) usage ;;
esac
