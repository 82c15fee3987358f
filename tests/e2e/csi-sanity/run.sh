#!/usr/bin/env bash
# tests/e2e/csi-sanity/run.sh — csi-sanity against `nfs-subdir-csi serve` with a local share (a temp
# dir): the whole CSI surface the driver advertises, over a real Unix socket with real bind mounts.
# Needs root. Ends with "csi-sanity: N passed, N failed" (tests/e2e/lib.sh); non-zero on failure.
# Usage: tests/e2e/csi-sanity/run.sh [path/to/nfs-subdir-csi]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/../lib.sh"
driver=${1:-$repo/target/debug/nfs-subdir-csi}
sanity=$(bash "$here/install.sh" | tail -n1)
work=$(mktemp -d /tmp/nsc-sanity.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  grep -F " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$driver" serve --endpoint "unix://$work/csi.sock" --default-share "$work/share" \
  --working-mount-dir "$work/work" --nodeid sanity-node >"$work/driver.log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -S "$work/csi.sock" ] && break; sleep 0.05; done
echo "csi-sanity $("$sanity" -version 2>&1 | head -n1) against $driver (local share $work/share)"
set +e
"$sanity" --csi.endpoint "$work/csi.sock" --csi.mountdir "$work/mnt" --csi.stagingdir "$work/stage" \
  --csi.testvolumesize 1073741824 --csi.testvolumeexpandsize 2147483648 \
  --ginkgo.junit-report "$work/junit.xml" --ginkgo.no-color >"$work/sanity.log" 2>&1
rc=$?
set -e
grep -E "^(Ran |SUCCESS|FAIL)" "$work/sanity.log" | sed 's/^/  /' || true
if [ ! -s "$work/junit.xml" ]; then
  tail -50 "$work/sanity.log"
  fail csi-sanity-local "no junit report (csi-sanity exited $rc)"
elif ! python3 "$here/report.py" "$work/junit.xml" local; then
  tail -80 "$work/sanity.log"; tail -30 "$work/driver.log"
  fail csi-sanity-local "see the specs listed above"
elif [ $rc -ne 0 ]; then
  fail csi-sanity-local "csi-sanity exited $rc"
else
  pass csi-sanity-local
fi
summary csi-sanity
