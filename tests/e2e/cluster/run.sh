#!/usr/bin/env bash
# tests/e2e/cluster/run.sh — nfs-subdir-csi run the way users run it: a one-node Kubernetes cluster
# whose node is a real kubelet + containerd in the QEMU guest (the only kernel here with an NFS
# client), the images built by deploy/image/build.sh imported into it, deploy/ applied with
# `kubectl apply -k`, and the seed's Redis StatefulSets writing to ganesha's export.
#
#   bash tests/e2e/cluster/run.sh [WORKDIR]        (root; CI runs it as the `cluster` stage)
#
# Layout: the control plane (tests/e2e/k8s/cluster.sh + kube-scheduler) runs on loopback inside a
# private network namespace made here, together with ganesha and QEMU (tests/e2e/nfs-guest/boot.sh with
# NFS_GUEST_SHARE_NET=1). QEMU's user networking maps the guest's 10.0.2.2 to this namespace's
# loopback, so kubelet, kube-proxy and pods reach the apiserver and ganesha there. The other way,
# the apiserver reaches kubelet (logs, exec, stats) at the node's InternalIP 10.0.2.15:10250,
# which exists in this namespace too (on lo) as a QEMU hostfwd to the guest's 10250. Pods reach
# the apiserver through the `kubernetes` Service (ClusterIP 10.0.0.1:443, kube-proxy in the guest
# DNATs it to the apiserver's advertised 10.0.2.2:<port>; the serving cert covers both).
# Nothing listens outside the namespace; when this script ends the namespace and all in it go.
#
# Output: `PASS <name>` / `FAIL <name>: <why>` / `SKIP <name>: <why>` lines, listings, a time
# report, and last `cluster: N passed, N failed`. Exit 0 only with no failure.
# Env: NSC_CACHE, NSC_DRIVER_BIN (driver binary for the image; default: cargo build --release --locked),
#      NSC_CLUSTER_MEM (guest MiB, default 3072), NSC_CLUSTER_TIMEOUT (guest seconds,
#      default 2400), NSC_CLUSTER_STORY=full|ci (default full; ci = the subset CI keeps, see README).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
export PATH=$PATH:/usr/local/go/bin:$HOME/.cargo/bin

if [[ ${1:-} != --inner ]]; then
  [[ $(id -u) == 0 ]] || { echo "cluster: needs root"; echo "cluster: 0 passed, 1 failed"; exit 1; }
  T0=$SECONDS
  DIR=${1:-$(mktemp -d /tmp/nsc-cluster.XXXXXX)}
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
  echo "cluster: work dir $DIR"
  # the driver image carries the release binary (the Dockerfile's `cargo build --release --locked`)
  t=$SECONDS
  if [[ -z ${NSC_DRIVER_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --locked --bin nfs-subdir-csi) >"$DIR/cargo-release.log" 2>&1 \
      || { tail -20 "$DIR/cargo-release.log"; echo "FAIL build-driver: cargo build --release"; echo "cluster: 0 passed, 1 failed"; exit 1; }
    export NSC_DRIVER_BIN=$REPO/target/release/nfs-subdir-csi
  fi
  echo "time cargo-release $((SECONDS - t)) s"
  out=$(bash "$HERE/build.sh" 2> >(tee "$DIR/build.log" >&2)) \
    || { echo "FAIL build: tests/e2e/cluster/build.sh (log $DIR/build.log)"; echo "cluster: 0 passed, 1 failed"; exit 1; }
  eval "export $(tail -n1 <<<"$out")"
  sed -n 's/.*\] time \(.*\)/time \1/p' "$DIR/build.log"
  # empty mount points on the host root for the guest's tmpfs mounts (its root is this one, read-only)
  mkdir -p /var/lib/kubelet /var/lib/cni
  export NSC_CLUSTER_T0=$T0
  exec unshare --net --mount --pid --fork --kill-child --mount-proc --propagation private \
    "$BASH" "$HERE/run.sh" --inner "$DIR"
fi

############################### inside the test's own namespaces ###############################
DIR=$2
T0=${NSC_CLUSTER_T0:-$SECONDS}
. "$HERE/lib.sh"
ip link set lo up
ip addr add 10.0.2.15/32 dev lo   # the node's InternalIP, forwarded by QEMU to the guest's kubelet
# Connections to it must leave from 127.0.0.1: QEMU shows a forwarded connection to the guest with
# its client's address (loopback becomes 10.0.2.2), and one "from 10.0.2.15" would never be answered.
ip route replace local 10.0.2.15 dev lo table local proto kernel scope host src 127.0.0.1
trap finish EXIT

# ---- control plane
t=$SECONDS
export NSC_CLUSTER_OWNER_PID=$$ NSC_K8S_SCHEDULER=1 NSC_APISERVER_SANS=IP:10.0.2.2
export NSC_APISERVER_ARGS="--advertise-address=10.0.2.2 --endpoint-reconciler-type=lease --kubelet-preferred-address-types=InternalIP"
env_lines=$(bash "$REPO/tests/e2e/k8s/cluster.sh" start "$DIR/k8s" 2>"$DIR/cluster-start.log") \
  || { cat "$DIR/cluster-start.log"; fail control-plane "cluster.sh start failed"; exit 1; }
eval "$env_lines"
. "$DIR/k8s/run/cluster.env"
pass control-plane
timing control-plane $((SECONDS - t))

# ---- node configuration (read by node-guest.sh in the guest)
NODE=nfs-guest NODE_DIR=$DIR/node POD_CIDR=10.88.0.0/16
write_node_config
export CLUSTER_NODE_DIR=$NODE_DIR

# ---- boot the guest (ganesha + QEMU in this namespace)
t=$SECONDS
RES=$DIR/guest/results EXPORT=$DIR/export
mkdir -p "$EXPORT"
NFS_GUEST_SHARE_NET=1 NFS_GUEST_NETDEV_OPTS="hostfwd=tcp:10.0.2.15:10250-:10250" NFS_GUEST_KEEP="$DIR" \
  NFS_GUEST_ENV="CLUSTER_NODE_DIR NSC_CTD_BIN NSC_K8S_BIN NSC_IMAGE_OUT" NFS_GUEST_MEM=${NSC_CLUSTER_MEM:-3072} \
  NFS_GUEST_TIMEOUT=${NSC_CLUSTER_TIMEOUT:-2400} NFS_GUEST_WORK=$DIR/guest NFS_GUEST_EXPORT=$EXPORT NFS_GUEST_QUIET=1 \
  setsid bash "$REPO/tests/e2e/nfs-guest/boot.sh" "$HERE/node-guest.sh" </dev/null >"$DIR/guest.out" 2>&1 &
GUEST_PID=$!
wait_for 600 test -e "$RES/node-started" || { tail -30 "$DIR/guest.out"; fail node-started "the guest did not start the node (see $DIR/guest.out)"; exit 1; }
timing guest-boot-to-kubelet $((SECONDS - t))
t=$SECONDS
if wait_for 300 node_ready; then pass node-ready; else fail node-ready "node $NODE not Ready in 300 s"; kubectl describe node "$NODE" | tail -30; exit 1; fi
timing node-ready $((SECONDS - t))
kubectl get nodes -o wide

# ---- a first pod: the scheduler, kubelet, containerd, CNI and kube-proxy work together
t=$SECONDS
first_pod
timing first-pod $((SECONDS - t))

# ---- deploy/ as users apply it, then the seed's story
STORY=${NSC_CLUSTER_STORY:-full}
. "$HERE/story.sh"
run_story
