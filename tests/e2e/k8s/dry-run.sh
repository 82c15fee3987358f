#!/usr/bin/env bash
# Server-side dry run of every manifest the project ships, against the real kube-apiserver: each
# YAML file under deploy/ (deploy/provisioner/ included; the Helm chart rendered with
# `helm template`, with its default values and with mode=provisioner) and examples/, plus every
# kustomization (deploy/, deploy/provisioner/). The apiserver runs its full validation and
# admission, so a wrong field, type or enum value fails here. Namespaces the manifests use are
# created for real first (a dry run cannot create the namespace the other objects need).
# Ends with "<name>: N passed, N failed" (tests/e2e/lib.sh); exits non-zero on failure.
# No `set -e`: a failed check is counted and the script goes on.
#
#   bash tests/e2e/k8s/dry-run.sh [workdir]
# Env: NSC_K8S_BIN; HELM (a helm binary; default the one tests/e2e/manifests/run.sh caches; the
#      chart is skipped, and says so, when there is none).
set -uo pipefail

NAME=dry-run
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
OWN_DIR=0
if [ $# -ge 1 ]; then mkdir -p "$1"; DIR=$(cd "$1" && pwd); else DIR=$(mktemp -d /tmp/nsc-dry-run.XXXXXX); OWN_DIR=1; fi
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init

resolve_k8s_bin
start_cluster

cd "$REPO" || exit 1
mapfile -t FILES < <(find deploy examples -name '*.yaml' -not -path 'deploy/helm/*' \
  -not -name kustomization.yaml -not -name 'Chart.yaml' -not -name 'values*.yaml' | sort)
HELM=${HELM:-$(ls "$NSC_CACHE"/bin/helm-v* 2>/dev/null | sort -V | tail -n1)}
CHARTS=()
if [ -n "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
  for chart in deploy/helm/*/; do
    [ -f "$chart/Chart.yaml" ] || continue
    out="$DIR/$(basename "$chart").rendered.yaml"
    check "helm template $chart" eval '"$HELM" template nfs-subdir-csi "$chart" >"$out"'
    CHARTS+=("$out")
    # The chart's other install mode, the sidecar-free provisioner (values.yaml: mode).
    if grep -q '^mode:' "$chart/values.yaml"; then
      out="$DIR/$(basename "$chart").mode-provisioner.rendered.yaml"
      check "helm template $chart --set mode=provisioner" \
        eval '"$HELM" template nfs-subdir-csi "$chart" --set mode=provisioner >"$out"'
      CHARTS+=("$out")
    fi
  done
else
  log "skipped the Helm chart: no helm (tests/e2e/manifests/run.sh builds one; or set HELM)"
fi

# Namespaces named anywhere, created for real.
for ns in $(cat "${FILES[@]}" "${CHARTS[@]}" | sed -n 's/^ *namespace: *\([a-z0-9-]*\) *$/\1/p' | sort -u); do
  kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
done

dry_run() { # <kubectl apply source args...>
  local out
  out=$(kubectl apply --server-side --dry-run=server "$@" 2>&1)
  local rc=$?
  printf '    %s\n' "${out//$'\n'/$'\n'    }" >&2
  return $rc
}
for f in "${FILES[@]}" "${CHARTS[@]}"; do
  check "server-side dry run: ${f#"$DIR/"}" dry_run -f "$f"
done
# Every kustomization: deploy/ (the CSI driver) and deploy/provisioner/ (the sidecar-free mode).
mapfile -t KUSTOMIZATIONS < <(find deploy -name kustomization.yaml -not -path 'deploy/helm/*' -printf '%h\n' | sort)
for k in "${KUSTOMIZATIONS[@]}"; do
  check "server-side dry run: kubectl apply -k $k" dry_run -k "$k"
done
nothing_created() {
  [ -z "$(kubectl get csidriver,storageclass,statefulset,deployment,daemonset -A -o name 2>/dev/null)" ] &&
  [ -z "$(kubectl get clusterrole,clusterrolebinding -o name 2>/dev/null | grep nfs-subdir)" ]
}
check "the dry runs created nothing" nothing_created
log "dry run done in $(since "$T0")"
