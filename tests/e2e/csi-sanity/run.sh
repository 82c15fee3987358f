#!/usr/bin/env bash
# tests/e2e/csi-sanity/run.sh — csi-sanity against `nfs-subdir-csi serve` on local shares (temp
# dirs): the whole CSI surface the driver advertises, over a real Unix socket with real bind mounts,
# in the two ways a pre-mounted share is configured:
#   default-share    `serve --default-share <dir>`, no StorageClass parameters;
#   share-parameter  no default share; `share: <dir>` in the test volume parameters, as a
#                    StorageClass names it (ListVolumes must still see the volumes).
# (The nfs-guest suite runs it a third way: `server` + `share` on a real NFS export.)
# Needs root. Ends with "csi-sanity: N passed, N failed" (tests/e2e/lib.sh); non-zero on failure.
# Usage: tests/e2e/csi-sanity/run.sh [path/to/nfs-subdir-csi]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/../lib.sh"
driver=${1:-$repo/target/debug/nfs-subdir-csi}
[ -x "$driver" ] || { echo "csi-sanity: no driver binary at $driver (build it first)"; exit 1; }
sanity=$(bash "$here/install.sh" | tail -n1)
work=$(mktemp -d /tmp/nsc-sanity.XXXXXX)
pid=
stop_driver() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; fi
  return 0
}
cleanup() {
  stop_driver
  grep -F " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "csi-sanity $("$sanity" -version 2>&1 | head -n1) against $driver"

# sanity LABEL PARAMS_YAML DRIVER_FLAGS...: one csi-sanity run against a fresh driver
sanity() {
  local label=$1 params=$2 d=$work/$1 rc=0
  shift 2
  mkdir -p "$d"
  "$driver" serve --endpoint "unix://$d/csi.sock" --working-mount-dir "$d/work" --nodeid sanity-node \
    "$@" >"$d/driver.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do [ -S "$d/csi.sock" ] && break; sleep 0.05; done
  [ -S "$d/csi.sock" ] || { tail -20 "$d/driver.log"; fail "csi-sanity-$label" "the driver made no socket"; stop_driver; return 0; }
  local args=(--csi.endpoint "$d/csi.sock" --csi.mountdir "$d/mnt" --csi.stagingdir "$d/stage"
    --csi.testvolumesize 1073741824 --csi.testvolumeexpandsize 2147483648
    --ginkgo.junit-report "$d/junit.xml" --ginkgo.no-color --ginkgo.timeout=4m)
  [ -z "$params" ] || { echo "$params" >"$d/params.yaml"; args+=(--csi.testvolumeparameters "$d/params.yaml"); }
  echo "--- csi-sanity $label: serve $* ${params:+; parameters: $params}"
  "$sanity" "${args[@]}" >"$d/sanity.log" 2>&1 || rc=$?
  stop_driver
  grep -E "^(Ran |SUCCESS|FAIL)" "$d/sanity.log" | sed 's/^/  /' || true
  if [ ! -s "$d/junit.xml" ]; then
    tail -50 "$d/sanity.log"
    fail "csi-sanity-$label" "no junit report (csi-sanity exited $rc)"
  elif ! python3 "$here/report.py" "$d/junit.xml" "$label"; then
    tail -80 "$d/sanity.log"; tail -30 "$d/driver.log"
    fail "csi-sanity-$label" "see the specs listed above"
  elif [ $rc -ne 0 ]; then
    fail "csi-sanity-$label" "csi-sanity exited $rc"
  else
    pass "csi-sanity-$label"
  fi
}

mkdir -p "$work/share" "$work/by-parameters"
sanity default-share "" --default-share "$work/share"
sanity share-parameter "share: \"$work/by-parameters\""
summary csi-sanity
