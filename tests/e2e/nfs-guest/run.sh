#!/bin/bash
# tests/e2e/nfs-guest/run.sh — the nfs-guest suite: the driver against real kernel NFS mounts.
#
# Builds what the guest runs (the driver, the scenario test binary of scenarios/main.rs, csi-sanity
# if missing), then boots the QEMU guest once (boot.sh, which installs its Debian packages and runs
# ganesha in a private network namespace) with csi-suite-guest.sh: csi-sanity for NFSv4.1 and
# NFSv3, the StatefulSet story, server down/up, stale handles.
# Ends with "nfs-guest: N passed, N failed" (tests/e2e/lib.sh); exit status 0 only if nothing failed.
#
# Usage (as root):  bash tests/e2e/nfs-guest/run.sh
# Knobs: CSI_SANITY (binary; default: the one ../csi-sanity/install.sh pins and builds),
#        NSC_SANITY_VERSIONS ("4.1 3"), NSC_SKIP_SANITY=1,
#        NSC_SKIP_SCENARIOS=1, NSC_GUEST_ONLY (comma list of scenarios: story, default-version,
#        working-estale, node-stale-target, csi-driver-nfs, snapshot, server-down, server-restart,
#        export-full, export-ro, export-squash, restart-mid-removal, slow-server, partition, quota),
#        and boot.sh's knobs (NFS_GUEST_TIMEOUT, NFS_GUEST_WORK, NFS_GUEST_QUIET, ...).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
cd "$REPO"
[[ $(id -u) == 0 ]] || { echo "csi-suite: must run as root (ganesha, namespaces, mounts)" >&2; exit 2; }
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin
say() { echo "csi-suite: $*"; }
T0=$SECONDS

# ---- the driver and the scenario binary (host builds; the guest sees the host root read-only)
locked=()
[[ -n ${CI:-} ]] && locked=(--locked)
say "cargo build (driver) and cargo test --no-run (tests/e2e/nfs-guest/scenarios/main.rs)"
cargo build "${locked[@]}" --bin nfs-subdir-csi
NSC_DRIVER=$REPO/target/debug/nfs-subdir-csi
NSC_GUEST_TEST=
if [[ ${NSC_SKIP_SCENARIOS:-} != 1 ]]; then
  NSC_GUEST_TEST=$(cargo test "${locked[@]}" --test nfs-guest --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "nfs-guest":
        print(m["executable"])')
  [[ -x $NSC_GUEST_TEST ]] || { say "cannot find the nfs-guest test binary"; exit 2; }
fi

# ---- csi-sanity at the version ../csi-sanity/install.sh pins (CSI_SANITY: another binary)
if [[ ${NSC_SKIP_SANITY:-} == 1 ]]; then
  CSI_SANITY=
else
  CSI_SANITY=${CSI_SANITY:-$(bash "$HERE/../csi-sanity/install.sh" | tail -n1)}
  [[ -x $CSI_SANITY ]] || { say "no csi-sanity binary at '$CSI_SANITY'"; exit 2; }
  say "csi-sanity: $CSI_SANITY"
  # the guest hides /tmp, /run and /var/tmp behind its own tmpfs: keep the binary's directory
  export NFS_GUEST_KEEP="${NFS_GUEST_KEEP:-} $(dirname "$CSI_SANITY")"
fi

# ---- one guest boot
export NSC_DRIVER NSC_GUEST_TEST CSI_SANITY NSC_SANITY_VERSIONS=${NSC_SANITY_VERSIONS:-4.1 3}
export NSC_GUEST_ONLY=${NSC_GUEST_ONLY:-}
export NFS_GUEST_ENV="${NFS_GUEST_ENV:-} NSC_DRIVER NSC_GUEST_TEST CSI_SANITY NSC_SANITY_VERSIONS NSC_GUEST_ONLY"
# the restart-mid-removal scenario's tree: NSC_REMOVAL_DIRS directories of 10 files (default 1000)
[[ -n ${NSC_REMOVAL_DIRS:-} ]] && export NSC_REMOVAL_DIRS NFS_GUEST_ENV="$NFS_GUEST_ENV NSC_REMOVAL_DIRS"
export NFS_GUEST_TIMEOUT=${NFS_GUEST_TIMEOUT:-900}   # a hang costs CI at most 15 min
# the quota scenario: XFS/ext4 loop filesystems exported by the guest's kernel NFS server (their
# images live on the guest's tmpfs, hence the memory)
export NFS_GUEST_EXTRA_PKGS="${NFS_GUEST_EXTRA_PKGS:-} xfsprogs e2fsprogs nfs-kernel-server"
export NFS_GUEST_MEM=${NFS_GUEST_MEM:-1536}
say "booting the guest (host preparation took $((SECONDS - T0)) s)"
# boot.sh ends with the summary line "nfs-guest: N passed, N failed" and the exit status
exec bash "$HERE/boot.sh" "$HERE/csi-suite-guest.sh"
