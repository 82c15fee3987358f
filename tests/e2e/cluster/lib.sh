# shellcheck shell=bash
# tests/e2e/cluster/lib.sh — helpers of tests/e2e/cluster/run.sh (sourced inside its namespace): result
# lines, timing, waiting, the node's configuration files, requests to the guest, teardown.
# Expects DIR, REPO, HERE, T0 from run.sh; counters are tests/e2e/lib.sh's.

# shellcheck source=tests/e2e/lib.sh
. "$HERE/../lib.sh"      # pass, fail, skip, check, tally, summary (the one result format)
TIMES=()
# qcheck NAME CMD...: like check, with CMD's output in $DIR/checks.log instead of on stdout
qcheck() { local n=$1; shift; check "$n" "$@" >>"$DIR/checks.log" 2>&1; local rc=$?; tail -n1 "$DIR/checks.log" | grep -E '^(PASS|FAIL) '; return $rc; }
timing() { TIMES+=("$(printf '  %-28s %5d s' "$1" "$2")"); echo "time $1 $2 s"; }
log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*"; }
# kubectl with a deadline on every call (exec/logs go through kubelet and can hang on a broken path)
kubectl() { timeout "${KTIMEOUT:-120}" "$NSC_K8S_BIN/kubectl" "$@"; }

# wait_for SECONDS CMD...: poll every second
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 1; done
}
node_ready() { [[ $(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; }
# pods_ready NS SELECTOR COUNT: COUNT pods match and all are Ready
pods_ready() {
  local ready
  ready=$(kubectl -n "$1" get pods -l "$2" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null)
  [[ $(grep -c True <<<"$ready") == "$3" && $(grep -c . <<<"$ready") == "$3" ]]
}
pod_ready() { [[ $(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; }
gone() { ! kubectl "$@" >/dev/null 2>&1; }

# guest CMDS: run shell commands in the guest (node-guest.sh's request loop); prints the output,
# returns the commands' status
GREQ=0
guest() {
  local n r=$RES/req
  GREQ=$((GREQ + 1)); n=$$-$GREQ
  printf '%s\n' "$@" >"$r/$n.sh.tmp" && mv -f "$r/$n.sh.tmp" "$r/$n.sh"
  wait_for 90 test -e "$r/$n.rc" || { echo "guest request $n: no answer"; return 124; }
  cat "$r/$n.out"
  return "$(cat "$r/$n.rc")"
}

# sign_client NAME SUBJECT: a client cert from the cluster's CA, in $NODE_DIR
sign_client() {
  local pki=$DIR/k8s/pki
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$NODE_DIR/$1.key" 2>/dev/null
  openssl req -new -key "$NODE_DIR/$1.key" -subj "$2" -out "$NODE_DIR/$1.csr" 2>/dev/null
  printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=clientAuth >"$NODE_DIR/$1.ext"
  openssl x509 -req -in "$NODE_DIR/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -sha256 \
    -extfile "$NODE_DIR/$1.ext" -out "$NODE_DIR/$1.crt" 2>/dev/null
  rm -f "$NODE_DIR/$1.csr" "$NODE_DIR/$1.ext"
  cat >"$NODE_DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nsc
  cluster: {server: "https://10.0.2.2:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$NODE_DIR/$1.crt", client-key: "$NODE_DIR/$1.key"}
contexts:
- name: nsc
  context: {cluster: nsc, user: $1}
current-context: nsc
EOF
}

write_node_config() {
  mkdir -p "$NODE_DIR"
  sign_client kubelet "/O=system:nodes/CN=system:node:$NODE"
  sign_client kube-proxy "/CN=system:kube-proxy"
  printf 'NODE_NAME=%q\nPOD_CIDR=%q\n' "$NODE" "$POD_CIDR" >"$NODE_DIR/node.env"
  # containerd: all state on the guest's tmpfs; CNI conf dir writable; the pause image pinned
  cat >"$NODE_DIR/containerd.toml" <<'EOF'
version = 3
root = "/tmp/ctd/root"
state = "/tmp/ctd/state"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.k8s.io/pause:3.10'
[plugins.'io.containerd.cri.v1.runtime'.cni]
  conf_dir = '/tmp/cni/net.d'
  bin_dirs = ['/usr/lib/cni']
EOF
  cat >"$NODE_DIR/cni.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "nsc", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "/tmp/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  # kubelet: a test node — anonymous + AlwaysAllow on 10250 (reachable only inside this test's
  # namespace), evictions effectively off (everything lives on tmpfs in guest RAM)
  cat >"$NODE_DIR/kubelet.yaml" <<'EOF'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
volumePluginDir: /var/lib/kubelet/volume-plugins
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: "20Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 10s
EOF
}

# finish: stop the node (the guest's own checks count too), the control plane; report
finish() {
  local rc=$? n
  if [[ -n ${RES:-} ]]; then
    : >"$RES/stop"
    [[ -n ${GUEST_PID:-} ]] && for _ in $(seq 120); do kill -0 "$GUEST_PID" 2>/dev/null || break; sleep 1; done
    [[ -n ${GUEST_PID:-} ]] && kill -0 "$GUEST_PID" 2>/dev/null && { kill -TERM -- "-$GUEST_PID" 2>/dev/null; fail guest-stopped "the guest did not stop within 120 s"; }
    if [[ -f $DIR/guest/summary.txt ]]; then
      echo "--- guest (node-guest.sh)"
      grep -E '^(PASS|FAIL) |^timing' "$DIR/guest/summary.txt"
      grep -E '^(PASS|FAIL) ' "$DIR/guest/summary.txt" | tally
    fi
  fi
  bash "$REPO/tests/e2e/k8s/cluster.sh" stop "$DIR/k8s" >/dev/null 2>&1
  ((rc == 0 || E2E_FAILED > 0)) || fail script-exit "run.sh exited with $rc"
  echo "--- time report (wall seconds)"
  printf '%s\n' "${TIMES[@]}"
  echo "  total (incl. builds)         $((SECONDS - T0)) s"
  ((E2E_FAILED == 0)) || echo "logs: $DIR (guest: $DIR/guest/results, control plane: $DIR/k8s/logs)"
  summary cluster
}

# first_pod: the seed's storage-less example (redis-sts), end to end through the node
first_pod() {
  kubectl apply -f "$REPO/examples/redis/redis-svc.yaml" -f "$REPO/examples/redis/redis-sts.yaml" >/dev/null
  if wait_for 600 pods_ready default app=redis-sts 2; then pass redis-sts-running; else
    fail redis-sts-running "pods not Ready in 600 s"; kubectl get pods -o wide; kubectl describe pods | tail -40; return 1
  fi
  kubectl get pods -o wide
  qcheck redis-sts-exec-set kubectl exec redis-sts-0 -- redis-cli set greeting hello
  [[ $(kubectl exec redis-sts-0 -- redis-cli get greeting 2>&1) == hello ]] && pass redis-sts-exec-get || fail redis-sts-exec-get "GET greeting did not answer hello"
  kubectl logs redis-sts-0 | grep -q 'Ready to accept connections' && pass kubectl-logs || fail kubectl-logs "no 'Ready to accept connections' in kubectl logs"
  # a pod reaches the apiserver through the kubernetes Service (what in-cluster clients use)
  qcheck pod-reaches-kubernetes-service kubectl exec redis-sts-0 -- sh -c 'nc -w 5 10.0.0.1 443 </dev/null'
  kubectl delete -f "$REPO/examples/redis/redis-sts.yaml" -f "$REPO/examples/redis/redis-svc.yaml" --wait=false >/dev/null
}
