#!/usr/bin/env bash
# Installs csi-sanity at the version CI pins (from the Go module proxy) unless it is already there.
# Prints the binary's path on its last line.
set -euo pipefail
CSI_SANITY_VERSION=${CSI_SANITY_VERSION:-v5.6.0}   # newest release the module proxy serves (2026-11)
export PATH=$PATH:/usr/local/go/bin
bin="$(go env GOPATH)/bin/csi-sanity"
have=$( [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | awk '$1=="mod" && $2 ~ /csi-test/ {print $3}' || true)
if [ "$have" != "$CSI_SANITY_VERSION" ]; then
  echo "csi-sanity: installing $CSI_SANITY_VERSION (have: ${have:-none})" >&2
  GOFLAGS=-mod=mod go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION" >&2
fi
echo "$bin"
