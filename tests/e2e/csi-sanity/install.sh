#!/usr/bin/env bash
# tests/e2e/csi-sanity/install.sh — the one place csi-sanity's version is pinned: builds it from the
# Go module proxy into $NSC_CACHE/bin/csi-sanity-<version> unless it is there already, and prints
# the binary's path on its last line. Used by the csi-sanity and nfs-guest suites.
# Env: CSI_SANITY_VERSION (default below), NSC_CACHE (tests/e2e/lib.sh).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CSI_SANITY_VERSION=${CSI_SANITY_VERSION:-v5.6.0}   # newest release the module proxy serves (2026-11)
export PATH=$PATH:/usr/local/go/bin
bin=$NSC_CACHE/bin/csi-sanity-$CSI_SANITY_VERSION
cache_lock csi-sanity 9
if [ ! -x "$bin" ]; then
  echo "csi-sanity: building $CSI_SANITY_VERSION into $bin (go install)" >&2
  mkdir -p "$NSC_CACHE/bin"
  tmp=$(mktemp -d "$NSC_CACHE/bin/.csi-sanity.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  GOBIN=$tmp GOFLAGS=-mod=mod go install \
    "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION" >&2
  mv "$tmp/csi-sanity" "$bin"
fi
echo "$bin"
