#!/bin/bash
# tests/e2e/cluster/node-guest.sh — the Kubernetes node, run inside the QEMU guest by
# tests/e2e/nfs-guest/boot.sh on behalf of tests/e2e/cluster/run.sh: containerd v2 (+ runc shim, Debian's
# runc and CNI plugins), the images imported, kubelet joined to the control plane on the host
# (https://10.0.2.2:<port>, QEMU user networking), and kube-proxy. Then it serves the host's
# requests (see below) until the host creates $RESULTS/stop, and stops the node.
#
# Environment (besides run.sh's): CLUSTER_NODE_DIR (configs written by run.sh: containerd.toml,
# cni.conflist, kubelet.yaml, kubelet.kubeconfig, kube-proxy.kubeconfig, node.env), NSC_CTD_BIN,
# NSC_K8S_BIN, NSC_IMAGE_OUT.
#
# Host requests over the results share: the host writes $RESULTS/req/<n>.sh (temp name + rename);
# the guest runs it with bash (60 s limit), writes <n>.out (stdout+stderr) and then <n>.rc.
# All daemons log to $RESULTS/<name>.log.
set -u
. "$NFS_GUEST_DIR/guest-helpers.sh"
N=${CLUSTER_NODE_DIR:?}
. "$N/node.env"                      # NODE_NAME API_SERVER
export PATH=$NSC_CTD_BIN:$NSC_K8S_BIN:$PATH
t0=$(ms)
el() { local d=$(($(ms) - t0)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
say() { echo "node: [$(el) s] $*"; }

# Kernel modules the initramfs does not load: overlay (containerd's snapshotter), bridge + veth
# (CNI), netfilter for CNI masquerading and kube-proxy (iptables-nft). The kernel cannot
# autoload them here (its modprobe helper path is not in the initramfs), so load them now.
mods=(overlay bridge br_netfilter veth nf_conntrack nf_nat nf_tables nft_compat nft_chain_nat
  nft_ct nft_masq nft_nat nft_redir nft_reject_inet nft_fib_inet xt_conntrack xt_MASQUERADE xt_comment
  xt_mark xt_addrtype xt_nat xt_statistic xt_multiport xt_tcpudp xt_set xt_physdev xt_REDIRECT
  iptable_nat iptable_filter iptable_mangle ip6table_nat ip6table_filter ip6table_mangle)
bad=()
for m in "${mods[@]}"; do modprobe "$m" 2>/dev/null || bad+=("$m"); done
say "modules loaded (not available: ${bad[*]:-none})"
check modprobe-overlay-bridge-netfilter modprobe -a overlay bridge br_netfilter veth nf_nat
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

# The guest's init chroots into its root (/newroot in the initramfs) instead of moving it onto the
# initramfs' "/". Then every mount namespace's root is the initramfs, and a process that joins a
# container's namespace (runc exec: `kubectl exec`) lands there instead of in the container's root
# ("chdir to cwd ... no such file or directory"). Move our root mount onto the initramfs' "/", as
# switch_root does: processes keep their roots; setns(2) now finds the container's root on top.
if grep -q ' /newroot ' /proc/1/mountinfo; then
  mount --no-canonicalize --move /proc/1/root/newroot /proc/1/root/ && pass guest-root-moved-onto-initramfs-root \
    || fail guest-root-moved-onto-initramfs-root "mount --move failed"
fi
mount --make-rshared /
for d in /var/lib/kubelet /var/lib/cni /var/log; do mount -t tmpfs -o mode=755 tmpfs "$d" || fail "tmpfs-$d"; done
mount --make-rshared /var/lib/kubelet
mkdir -p /tmp/ctd/root /tmp/ctd/state /tmp/cni/net.d /tmp/cni/ipam /run/containerd "$RESULTS/req"
cp "$N/cni.conflist" /tmp/cni/net.d/10-nsc.conflist

containerd --config "$N/containerd.toml" >"$RESULTS/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 600); do [[ -S /run/containerd/containerd.sock ]] && break; sleep 0.1; done
check containerd-socket test -S /run/containerd/containerd.sock
say "containerd up"
for t in "$NSC_IMAGE_OUT"/*.tar; do
  ctr -n k8s.io images import "$t" >>"$RESULTS/import.log" 2>&1 || fail "image-import $(basename "$t")"
done
ctr -n k8s.io images ls -q >"$RESULTS/images.txt" 2>&1
check images-imported test "$(grep -vc "^sha256:" "$RESULTS/images.txt")" -ge "$(ls "$NSC_IMAGE_OUT"/*.tar | wc -l)"
say "images imported: $(grep -v '^sha256:' "$RESULTS/images.txt" | tr '\n' ' ')"

kubelet --config="$N/kubelet.yaml" --kubeconfig="$N/kubelet.kubeconfig" --hostname-override="$NODE_NAME" \
  --node-ip="$NFS_GUEST_IP" --root-dir=/var/lib/kubelet --cert-dir=/var/lib/kubelet/pki --v=2 \
  >"$RESULTS/kubelet.log" 2>&1 &
kubelet_pid=$!
kube-proxy --kubeconfig="$N/kube-proxy.kubeconfig" --hostname-override="$NODE_NAME" --proxy-mode=iptables \
  --cluster-cidr="$POD_CIDR" --conntrack-max-per-core=0 --metrics-bind-address=127.0.0.1:10249 \
  --healthz-bind-address=127.0.0.1:10256 --v=2 >"$RESULTS/kube-proxy.log" 2>&1 &
proxy_pid=$!
say "kubelet (pid $kubelet_pid) and kube-proxy (pid $proxy_pid) started"
echo started >"$RESULTS/node-started"

# Serve the host's requests until it says stop (or the suite timeout kills us).
n_req=0
while [[ ! -e $RESULTS/stop ]]; do
  for r in "$RESULTS"/req/*.sh; do
    [[ -e $r ]] || continue
    timeout 60 bash "$r" >"${r%.sh}.out.tmp" 2>&1 </dev/null
    echo $? >"${r%.sh}.rc.tmp"
    mv -f "${r%.sh}.out.tmp" "${r%.sh}.out"; mv -f "${r%.sh}.rc.tmp" "${r%.sh}.rc"; rm -f "$r"
    n_req=$((n_req + 1))
  done
  kill -0 "$kubelet_pid" 2>/dev/null || { fail kubelet-exited; break; }
  sleep 0.2
done
say "stop requested after $n_req host requests"
kill -0 "$kubelet_pid" 2>/dev/null && pass kubelet-ran-to-the-end
kill "$kubelet_pid" "$proxy_pid" 2>/dev/null
wait "$kubelet_pid" "$proxy_pid" 2>/dev/null
ctr -n k8s.io tasks ls >"$RESULTS/tasks-at-stop.txt" 2>&1
kill "$ctd_pid" 2>/dev/null; wait "$ctd_pid" 2>/dev/null
say "node stopped"
