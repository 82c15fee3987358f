#!/usr/bin/env bash
# Server-side dry run of every manifest the project ships, against the real kube-apiserver: each
# YAML file under deploy/ (deploy/provisioner/ included; the Helm chart rendered with
# `helm template`, with its default values, with mode=provisioner and with
# nfs-subdir-external-provisioner's values shape) and examples/, plus every
# kustomization (deploy/, deploy/provisioner/; a kustomize Component such as
# deploy/components/sidecars/ through an overlay of deploy/ that uses it, and the chart with
# sidecars.conventionalLayout=true). The VolumeSnapshot CRDs are installed first (helpers.sh
# snapshot_crds, from the Go module cache), so deploy/snapshot/'s VolumeSnapshotClasses and the
# chart's are checked against their real schema; deploy/snapshot-controller/crd/ only names those
# CRDs on GitHub (a remote kustomize resource, unreachable here: a SKIP that says so).
# The chart's opt-in ServiceMonitor/PodMonitor are not dry-run:
# their CRDs are not installed here (tests/e2e/manifests checks them). The apiserver runs its full validation and
# admission, so a wrong field, type or enum value fails here. Namespaces the manifests use are
# created for real first (a dry run cannot create the namespace the other objects need).
# Then, on the same cluster, rbac.sh applies the RBAC of every mode for real and checks each
# ServiceAccount's effective permissions against its expected least-privilege list.
# Ends with "<name>: N passed, N failed" (tests/e2e/lib.sh); exits non-zero on failure.
# No `set -e`: a failed check is counted and the script goes on.
#
#   bash tests/e2e/k8s/dry-run.sh [workdir]
# Env: NSC_K8S_BIN; HELM (a helm binary; default the one tests/e2e/manifests/run.sh caches; the
#      chart is skipped, and says so, when there is none).
set -uo pipefail

NAME=dry-run
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/k8s/helpers.sh
. "$HERE/helpers.sh"
lib_init "$@"

resolve_k8s_bin
start_cluster
must "VolumeSnapshot CRDs applied (deploy/snapshot/ needs them)" snapshot_crds

cd "$REPO" || exit 1
# deploy/components/ holds kustomize patches, not objects: dry-run through an overlay below.
mapfile -t FILES < <(find deploy examples -name '*.yaml' -not -path 'deploy/helm/*' -not -path 'deploy/components/*' \
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
    # nfs-subdir-external-provisioner's values.yaml shape (a takeover install).
    old_values=tests/e2e/manifests/old-values/nfs-subdir-external-provisioner.yaml
    if [ -f "$old_values" ]; then
      out="$DIR/$(basename "$chart").old-values.rendered.yaml"
      check "helm template $chart -f $old_values" \
        eval '"$HELM" template nfs-subdir-csi "$chart" -f "$old_values" >"$out"'
      CHARTS+=("$out")
    fi
    if grep -q 'volumeSnapshotClasses:' "$chart/values.yaml"; then
      out="$DIR/$(basename "$chart").snapclasses.rendered.yaml"
      check "helm template $chart --set volumeSnapshotClasses.create=true" \
        eval '"$HELM" template nfs-subdir-csi "$chart" --set volumeSnapshotClasses.create=true \
          --show-only templates/volumesnapshotclasses.yaml >"$out"'
      CHARTS+=("$out")
    fi
    if grep -q 'conventionalLayout:' "$chart/values.yaml"; then
      out="$DIR/$(basename "$chart").sidecars.rendered.yaml"
      check "helm template $chart --set sidecars.conventionalLayout=true" \
        eval '"$HELM" template nfs-subdir-csi "$chart" --set sidecars.conventionalLayout=true >"$out"'
      CHARTS+=("$out")
    fi
  done
  # With the monitors on: the Services the ServiceMonitor needs are dry-run; the monitors
  # themselves cannot be (their CRDs are not installed here).
  for chart in deploy/helm/*/; do
    grep -q 'serviceMonitor:' "$chart/values.yaml" 2>/dev/null || continue
    out="$DIR/$(basename "$chart").monitors.rendered.yaml"
    check "helm template $chart with metrics.serviceMonitor+podMonitor, monitors left out" \
      eval '"$HELM" template nfs-subdir-csi "$chart" --set metrics.serviceMonitor.enabled=true \
        --set metrics.podMonitor.enabled=true --show-only templates/metrics.yaml |
        awk -v RS="\n---\n" -v ORS="\n---\n" "!/apiVersion: monitoring.coreos.com\\//" >"$out" && grep -q "kind: Service" "$out"'
    CHARTS+=("$out")
  done
  skip "server-side dry run: the chart's ServiceMonitor/PodMonitor objects" "monitoring.coreos.com CRDs are not installed on this apiserver (tests/e2e/manifests checks the render)"
else
  missing_tool "helm template deploy/helm/" "no helm (tests/e2e/manifests/run.sh builds one; or set HELM)"
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
  if grep -q '^kind: Component' "$k/kustomization.yaml"; then
    # A Component builds only inside an overlay: deploy/ with it.
    ov="$DIR/overlay-$(basename "$k")"
    mkdir -p "$ov"
    rel=$(realpath --relative-to="$ov" "$REPO/deploy")
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n' \
      "$rel" "$(realpath --relative-to="$ov" "$REPO/$k")" >"$ov/kustomization.yaml"
    check "server-side dry run: deploy/ + component $k" dry_run -k "$ov"
  elif grep -q '^  - https://' "$k/kustomization.yaml"; then
    skip "server-side dry run: kubectl apply -k $k" "its resources are on GitHub, unreachable here; the same CRDs came from the Go module cache above"
  else
    check "server-side dry run: kubectl apply -k $k" dry_run -k "$k"
  fi
done
nothing_created() {
  local roles
  empty get csidriver,storageclass,volumesnapshotclass,statefulset,deployment,daemonset -A -o name &&
    roles=$(kubectl get clusterrole,clusterrolebinding -o name) &&
    ! grep nfs-subdir <<<"$roles" >&2
}
check "the dry runs created nothing" nothing_created
# Least privilege of every mode's ServiceAccounts, on this same cluster (tests/e2e/k8s/rbac.sh).
# shellcheck source=tests/e2e/k8s/rbac.sh
. "$HERE/rbac.sh"
rbac_checks
log "dry run done in $(since "$T0")"
