#!/usr/bin/env bash
# tests/e2e/prefetch.sh — on a cold machine, build or install the tools of the later stages ahead of
# them: csi-sanity; the manifests stage's kubernetes-validate, Helm and kustomize; the Kubernetes
# commands with the csi-provisioner/csi-snapshotter sidecars and the snapshot-controller (one go build
# for all); the cluster stage's Debian packages and containerd.
# tests/run-all.sh starts it in the background at the lowest CPU priority (nice 19), so it only takes
# the cycles the stages in front leave idle (cargo's serial steps, the guest waiting on NFS round
# trips) and the network time of downloads. Each step is the stage's own script, which takes the
# tool's lock (cache_lock in tests/e2e/lib.sh, the flock of tests/e2e/k8s/build.sh and of the
# manifests installer, dpkg's lock with a timeout): a stage that reaches a tool still being built waits
# for it and then finds it cached, so nothing is built twice. On a warm cache it ends in seconds.
# Output: one `prefetch: <step> <seconds> s` line per step and a closing `prefetch: done` line.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
# shellcheck source=tests/e2e/lib.sh
. "$HERE/lib.sh"
command -v go >/dev/null || { echo "prefetch: no Go on PATH; the stages build their own tools"; exit 0; }

step() {   # step NAME COMMAND...
  local name=$1 t=$SECONDS rc=0
  shift
  "$@" >"$NSC_CACHE/prefetch-$name.log" 2>&1 || rc=$?
  echo "prefetch: $name $((SECONDS - t)) s$([ $rc = 0 ] || echo " (exit $rc; the stage builds it itself: $NSC_CACHE/prefetch-$name.log)")"
}

mkdir -p "$NSC_CACHE"
# Downloads and dpkg beside the builds; the builds in the order the stages need them: csi-sanity
# (csi-sanity, nfs-guest), the manifests tools, then Kubernetes (kubernetes, cluster).
step cluster-packages-containerd bash "$REPO/tests/e2e/cluster/build.sh" --prefetch &
step csi-sanity bash "$REPO/tests/e2e/csi-sanity/install.sh"
step manifest-tools bash "$REPO/tests/e2e/manifests/run.sh" --install-only
step kubernetes env NSC_K8S_BINS="etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy csi-provisioner csi-snapshotter snapshot-controller" \
  bash "$REPO/tests/e2e/k8s/build.sh"
wait
echo "prefetch: done"
