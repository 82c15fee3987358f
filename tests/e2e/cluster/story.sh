# shellcheck shell=bash
# tests/e2e/cluster/story.sh — deploy/ applied as users apply it (`kubectl apply -k` of the test
# overlay, which only sets the StorageClasses' server/share), then the seed's Redis story on the
# real node: claims bound to pvc-<uid> directories on ganesha's export, data surviving pod
# deletion and scale 0→2, a read-only reader of claim 0, the node plugin restarted under load,
# volume stats through kubelet, and a clean teardown (no directory, PV or mount left).
# Sourced by tests/e2e/cluster/run.sh inside its namespace; uses lib.sh. STORY=ci skips the slower
# middle part (scale 0→2, reader pod, node plugin restart) — see tests/e2e/cluster/README.md.

NS=nfs-subdir-csi
STS=redis-pv-sts
CLAIM0=redis-100m-pvc-$STS-0 CLAIM1=redis-100m-pvc-$STS-1

show() { echo "\$ kubectl get pods,pvc,pv -o wide  ($1)"; kubectl get pods,pvc,pv -o wide 2>&1 | sed 's/^/  /'; }
export_ls() { echo "\$ ls -la <ganesha export>  ($1)"; ls -la "$EXPORT" | sed 's/^/  /'; }
rcli() { kubectl exec "$1" -- redis-cli "${@:2}" 2>&1; }
pod_uid() { kubectl get pod "$1" -o jsonpath='{.metadata.uid}' 2>/dev/null; }
# expect NAME WANT CMD...: PASS when CMD prints exactly WANT
expect() {
  local n=$1 want=$2 got; shift 2
  got=$("$@" 2>&1)
  if [[ $got == "$want" ]]; then pass "$n"; echo "  $* -> $got"; else fail "$n" "$* printed '$got', want '$want'"; fi
}
nfs_mounts_in_guest() { guest "grep -E ' - nfs4? |kubernetes.io~csi' /proc/self/mountinfo || true"; }
csinode_has_driver() { [[ $(kubectl get csinode "$NODE" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null) == *nfs-subdir.csi.rs* ]]; }
node_pod() { kubectl -n $NS get pods -l app.kubernetes.io/component=node -o jsonpath='{.items[0].metadata.name}' 2>/dev/null; }

deploy_driver() {
  local t=$SECONDS
  export_ls "before install"
  qcheck apply-k-overlay kubectl apply -k "$HERE/overlay" || return 1
  kubectl get storageclass nfs-client -o jsonpath='{.parameters}{"\n"}'
  local w1=600 w2=300
  grep -q 'image: .*node-driver-registrar' "$REPO/deploy/node.yaml" && w1=150 w2=60   # sidecar images cannot exist here
  if KTIMEOUT=700 kubectl -n $NS rollout status deployment/nfs-subdir-csi-controller --timeout=${w1}s >>"$DIR/checks.log" 2>&1; then
    pass controller-deployment-available; else fail controller-deployment-available "not available in $w1 s"; fi
  if KTIMEOUT=700 kubectl -n $NS rollout status daemonset/nfs-subdir-csi-node --timeout=${w2}s >>"$DIR/checks.log" 2>&1; then
    pass node-daemonset-ready; else fail node-daemonset-ready "not ready in $w2 s"; fi
  kubectl -n $NS get pods -o jsonpath='{range .items[*]}{.metadata.name}{range .status.containerStatuses[*]}{" "}{.name}={.ready}{end}{"\n"}{end}' | sed 's/^/  containers ready: /' 
  kubectl -n $NS get pods -o wide
  echo "  node pod containers: $(kubectl -n $NS get pods -l app.kubernetes.io/component=node -o jsonpath='{.items[0].spec.containers[*].name}')"
  if wait_for 120 csinode_has_driver; then pass csinode-registered-by-driver
    kubectl get csinode "$NODE" -o jsonpath='{range .spec.drivers[*]}{.name} nodeID={.nodeID}{"\n"}{end}' | sed 's/^/  CSINode: /'
  else fail csinode-registered-by-driver "CSINode $NODE lists no nfs-subdir.csi.rs in 120 s: $(grep -o 'RegisterPlugin error.*' "$RES/kubelet.log" | tail -n1 | cut -c1-300)"; fi
  timing deploy-driver $((SECONDS - t))
}

redis_story() {
  local t=$SECONDS pv dir uid0 i
  kubectl apply -f "$REPO/examples/redis/redis-pv-sts-svc.yaml" -f "$REPO/examples/redis/redis-pv-sts.yaml" >/dev/null
  # claim 0 is made with pod 0 (OrderedReady: claim 1 comes with pod 1, once pod 0 is Ready)
  if wait_for 300 bash -c "[[ \$(kubectl get pvc $CLAIM0 -o jsonpath='{.status.phase}' 2>/dev/null) == Bound ]]"; then
    pass claim0-bound-by-csi-provisioner-in-cluster; else fail claim0-bound-by-csi-provisioner-in-cluster "not Bound in 300 s"; fi
  local podwait=900
  csinode_has_driver || { podwait=240; echo "note: CSINode has no nfs-subdir.csi.rs: kubelet cannot publish the volumes; waiting only ${podwait}s"; }
  if wait_for $podwait pods_ready default app=$STS 2; then pass redis-pv-sts-2-ready; else
    fail redis-pv-sts-2-ready "not 2 Ready pods in $podwait s"; show "redis not ready"; export_ls "claim 0 provisioned"
    kubectl describe pod $STS-0 | tail -12; teardown_story; return 1
  fi
  timing redis-2-pods-ready $((SECONDS - t))
  show "redis-pv-sts running"
  for c in $CLAIM0 $CLAIM1; do
    pv=$(kubectl get pvc "$c" -o jsonpath='{.spec.volumeName}')
    dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}' | cut -d'#' -f4)
    [[ $(kubectl get pvc "$c" -o jsonpath='{.status.phase}') == Bound && $dir == "$pv" && $pv == pvc-$(kubectl get pvc "$c" -o jsonpath='{.metadata.uid}') && -d $EXPORT/$dir ]] \
      && pass "claim-bound-dir-on-export-$c" || fail "claim-bound-dir-on-export-$c" "pv=$pv dir=$dir exists=$([[ -d $EXPORT/$dir ]] && echo yes || echo no)"
  done
  export_ls "claims bound"
  for i in 0 1; do expect "redis-set-$i" OK rcli $STS-$i set who "written-by-pod-$i"; done
  uid0=$(pod_uid $STS-0)
  kubectl delete pod $STS-0 --wait=false >/dev/null
  wait_for 300 bash -c "[[ \$(kubectl get pod $STS-0 -o jsonpath='{.metadata.uid}' 2>/dev/null) != '' && \$(kubectl get pod $STS-0 -o jsonpath='{.metadata.uid}') != $uid0 ]]"
  if wait_for 600 pod_ready default $STS-0; then pass pod0-replaced; else fail pod0-replaced "no Ready replacement in 600 s"; fi
  expect replacement-reads-pod0-value written-by-pod-0 rcli $STS-0 get who
  [[ ${STORY:-full} == ci ]] || scale_reader_restart
  stats_through_kubelet
  teardown_story
  timing redis-story $((SECONDS - t))
}

scale_reader_restart() {
  local t=$SECONDS i np
  kubectl scale statefulset $STS --replicas=0 >/dev/null
  if wait_for 600 gone get pod $STS-0 && wait_for 600 gone get pod $STS-1; then pass scaled-to-0; else fail scaled-to-0 "pods still there after 600 s"; fi
  kubectl scale statefulset $STS --replicas=2 >/dev/null
  if wait_for 900 pods_ready default app=$STS 2; then pass scaled-back-to-2; else fail scaled-back-to-2 "not 2 Ready in 900 s"; fi
  for i in 0 1; do expect "after-scale-0-2-reads-pod$i-value" "written-by-pod-$i" rcli $STS-$i get who; done
  timing scale-0-2 $((SECONDS - t)); t=$SECONDS
  # RWX across pods: a third pod mounts claim 0 read-only and sees Redis's append-only file
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: aof-reader}
spec:
  securityContext: {runAsUser: 999, runAsGroup: 1000}
  containers:
  - name: reader
    image: redis:5-alpine
    command: ["sh", "-c", "sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: $CLAIM0, readOnly: true}
EOF
  if wait_for 600 pod_ready default aof-reader; then pass reader-pod-ready; else fail reader-pod-ready "not Ready in 600 s"; fi
  echo "\$ kubectl exec aof-reader -- ls -l /data/appendonlydir"; kubectl exec aof-reader -- ls -l /data/appendonlydir 2>&1 | sed 's/^/  /'
  kubectl exec aof-reader -- sh -c 'cat /data/appendonlydir/*.incr.aof' 2>/dev/null | grep -q written-by-pod-0 \
    && pass reader-sees-aof-with-pod0-write || fail reader-sees-aof-with-pod0-write "no written-by-pod-0 in /data/appendonlydir/*.incr.aof"
  kubectl exec aof-reader -- touch /data/x >/dev/null 2>&1 && fail reader-mount-read-only "touch /data/x succeeded" || pass reader-mount-read-only
  kubectl delete pod aof-reader --wait=false >/dev/null
  timing reader-pod $((SECONDS - t)); t=$SECONDS
  # the node plugin restarted while Redis runs: Redis keeps its mount, later unmounts still succeed
  np=$(node_pod)
  kubectl -n $NS delete pod "$np" >/dev/null
  expect redis-works-while-node-plugin-gone OK rcli $STS-1 set during-restart yes
  if wait_for 300 pods_ready $NS app.kubernetes.io/component=node 1; then pass node-plugin-back; else fail node-plugin-back "no Ready node pod in 300 s"; fi
  [[ $(node_pod) != "$np" ]] && wait_for 120 csinode_has_driver && pass node-plugin-re-registered || fail node-plugin-re-registered "new pod $(node_pod), CSINode drivers: $(kubectl get csinode "$NODE" -o jsonpath='{.spec.drivers[*].name}')"
  expect redis-reads-after-node-plugin-restart yes rcli $STS-1 get during-restart
  timing node-plugin-restart $((SECONDS - t))
}

stats_through_kubelet() {
  local t=$SECONDS s
  # kubelet calls NodeGetVolumeStats about once a minute and serves it in the summary API
  vol_stats() {
    kubectl get --raw "/api/v1/nodes/$NODE/proxy/stats/summary" 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("pods", []):
    for v in p.get("volume", []):
        if (v.get("pvcRef") or {}).get("name", "").startswith("redis-100m-pvc") and v.get("capacityBytes"):
            print(p["podRef"]["name"], v["pvcRef"]["name"], "capacityBytes=%d usedBytes=%d inodesUsed=%s" % (v["capacityBytes"], v.get("usedBytes", 0), v.get("inodesUsed")))'
  }
  if wait_for 240 bash -c "$(declare -f vol_stats); NODE=$NODE vol_stats | grep -q ."; then
    pass volume-stats-in-kubelet-summary; vol_stats | sed 's/^/  summary: /'
  else fail volume-stats-in-kubelet-summary "no redis-100m-pvc volume with capacityBytes in /stats/summary within 240 s"; fi
  s=$(kubectl get --raw "/api/v1/nodes/$NODE/proxy/metrics" 2>/dev/null | grep '^kubelet_volume_stats_used_bytes' | grep redis-100m-pvc)
  [[ -n $s ]] && { pass volume-stats-in-kubelet-metrics; sed 's/^/  metrics: /' <<<"$s"; } || fail volume-stats-in-kubelet-metrics "no kubelet_volume_stats_used_bytes for the claims"
  timing volume-stats $((SECONDS - t))
}

teardown_story() {
  local t=$SECONDS m left
  kubectl delete statefulset $STS --wait=false >/dev/null
  if wait_for 600 gone get pod $STS-0 && wait_for 600 gone get pod $STS-1 && wait_for 300 gone get pod aof-reader; then pass pods-gone; else fail pods-gone "pods left after 600 s"; fi
  kubectl delete pvc $CLAIM0 $CLAIM1 --wait=false >/dev/null
  if wait_for 300 bash -c "[[ -z \$(kubectl get pv -o name 2>/dev/null) ]]"; then pass pvs-deleted; else fail pvs-deleted "PVs left: $(kubectl get pv -o name | tr '\n' ' ')"; fi
  left=$(cd "$EXPORT" && ls -d pvc-* 2>/dev/null)
  [[ -z $left ]] && pass dirs-gone-from-export || fail dirs-gone-from-export "left: $left"
  show "after deleting the StatefulSet and claims"
  export_ls "after teardown"
  m=$(nfs_mounts_in_guest)
  echo "\$ grep -E ' - nfs4? |kubernetes.io~csi' /proc/self/mountinfo   (in the guest)"; sed 's/^/  /' <<<"${m:-(none)}"
  [[ -z $m ]] && pass no-nfs-or-bind-mount-left-in-guest || fail no-nfs-or-bind-mount-left-in-guest "$(wc -l <<<"$m") mount(s) left"
  timing teardown $((SECONDS - t))
}

run_story() {
  grep -q 'image: .*node-driver-registrar' "$REPO/deploy/node.yaml" &&
    echo "note: deploy/node.yaml still has the node-driver-registrar/livenessprobe sidecars (no image of them can be built here): their containers cannot start"
  deploy_driver
  redis_story
}
