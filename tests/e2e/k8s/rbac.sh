#!/usr/bin/env bash
# tests/e2e/k8s/rbac.sh — least privilege of every install mode, asked of the real kube-apiserver.
# Applies the RBAC the project ships (deploy/rbac.yaml: the CSI controller and node
# ServiceAccounts; deploy/provisioner/rbac.yaml: the sidecar-free provisioner;
# deploy/snapshot-controller/rbac.yaml: the optional snapshot-controller; the Helm chart's
# templates/rbac.yaml and templates/provisioner-rbac.yaml rendered in mode=csi and
# mode=provisioner), then for each ServiceAccount reads `kubectl auth can-i --list` in its own
# namespace and in another one, removes what every authenticated user may do (the same listing for
# a ServiceAccount with no bindings), prints the table and compares it with EXPECTED below, where
# each permission names the code path that needs it. An extra permission is a FAIL naming it; a
# missing one too. Then spot checks of sensitive verbs (`kubectl auth can-i <verb> <resource>`)
# that must all answer "no".
#
# Normally sourced by dry-run.sh, which runs `rbac_checks` on its cluster (no extra cluster
# start). Run alone it starts its own:  bash tests/e2e/k8s/rbac.sh [workdir]
# Env: NSC_K8S_BIN; HELM (the chart is checked when there is a helm binary; else SKIP/CI FAIL).

# EXPECTED <account>: "resource verb" lines of the permissions it must have, one a line. Resources
# as `kubectl auth can-i --list` names them (resource.group); @ns marks a Role in the account's own
# namespace (must not show up in another namespace).
expected_csi_controller() {
  # csi-provisioner v6.3.0 (its deploy/kubernetes/rbac.yaml) and the driver's own claim reads.
  # persistentvolumes: the sidecar creates the PV after CreateVolume, deletes it after DeleteVolume,
  #   patches its finalizer (external-provisioner's documented needs).
  for v in get list watch create delete patch; do echo "persistentvolumes $v"; done
  # persistentvolumeclaims get/list/watch: the sidecar's claim informer; get also the driver
  #   (src/csi/claims.rs: get_metadata for ${pvc.metadata.*} subDir templates);
  #   update: the sidecar removes the selected-node annotation / its claim finalizer.
  for v in get list watch update; do echo "persistentvolumeclaims $v"; done
  # storageclasses: the sidecar reads the class's parameters and reclaim policy.
  for v in get list watch; do echo "storageclasses.storage.k8s.io $v"; done
  # events (core/v1): the sidecar's ProvisioningSucceeded/Failed events (client-go recorder
  #   creates, then patches/updates repeats; list/watch per external-provisioner's rbac.yaml).
  for v in list watch create update patch; do echo "events $v"; done
  # csinodes, nodes: topology of the claim's selected node (external-provisioner's rbac.yaml).
  for v in get list watch; do echo "csinodes.storage.k8s.io $v"; done
  for v in get list watch; do echo "nodes $v"; done
  # volumeattributesclasses: csi-provisioner v6 reads the class a claim names (read-only).
  for v in get list watch; do echo "volumeattributesclasses.storage.k8s.io $v"; done
  # volumesnapshots: csi-provisioner v6 reads a claim's VolumeSnapshot dataSource (get), watches
  #   them all (its snapshot finalizer controller: list, watch) and keeps a finalizer on the one it
  #   restores from while the volume is made (update; pkg/controller/controller.go).
  for v in get list watch update; do echo "volumesnapshots.snapshot.storage.k8s.io $v"; done
  # volumesnapshotcontents get: csi-provisioner reads the snapshot handle of that snapshot's
  #   content; list, watch, patch: csi-snapshotter's content informer and its finalizer/annotation
  #   JSON patches (pkg/utils PatchVolumeSnapshotContent).
  for v in get list watch patch; do echo "volumesnapshotcontents.snapshot.storage.k8s.io $v"; done
  # /status: csi-snapshotter records the snapshot handle, size, readyToUse (patch) and clears a
  #   deleted snapshot's status (UpdateStatus).
  for v in update patch; do echo "volumesnapshotcontents.snapshot.storage.k8s.io/status $v"; done
  # volumesnapshotclasses: csi-snapshotter reads the class's parameters (format).
  for v in get list watch; do echo "volumesnapshotclasses.snapshot.storage.k8s.io $v"; done
  # leases in its own namespace: --leader-election (client-go leaderelection: get, create,
  #   update; list/watch/delete as external-provisioner's rbac.yaml lists them).
  for v in get list watch create update delete; do echo "@ns leases.coordination.k8s.io $v"; done
}
expected_csi_node() { :; }
# deploy/snapshot-controller/rbac.yaml (optional component), snapshot-controller v8 without group
# snapshots (its upstream rbac-snapshot-controller.yaml minus the groupsnapshot rules and the
# volumesnapshots create/delete only group snapshots use).
expected_snapshot_controller() {
  # the source claim's volume (driver, bound or not): informer and get
  for v in get list watch; do echo "persistentvolumes $v"; done
  # the source claim; update: its "pvc-as-source-protection" finalizer while it is snapshotted
  for v in get list watch update; do echo "persistentvolumeclaims $v"; done
  # its event recorder (core/v1 events, as upstream lists them)
  for v in list watch create update patch; do echo "events $v"; done
  for v in get list watch; do echo "volumesnapshotclasses.snapshot.storage.k8s.io $v"; done
  # one VolumeSnapshotContent per VolumeSnapshot: created, bound, finalizers, deleted with it
  for v in create get list watch update delete patch; do echo "volumesnapshotcontents.snapshot.storage.k8s.io $v"; done
  echo "volumesnapshotcontents.snapshot.storage.k8s.io/status patch"
  # finalizers, the default class, annotations; status: bound content, readyToUse, errors
  for v in get list watch update patch; do echo "volumesnapshots.snapshot.storage.k8s.io $v"; done
  for v in update patch; do echo "volumesnapshots.snapshot.storage.k8s.io/status $v"; done
  # --leader-election: its Lease in kube-system
  for v in get list watch create update delete; do echo "@ns leases.coordination.k8s.io $v"; done
}   # the node plugin makes no API call (and mounts no token)
expected_provisioner() {
  # src/provisioner/mod.rs: the claim and volume watchers (list + watch; get on a re-read).
  for v in get list watch; do echo "persistentvolumeclaims $v"; done
  # src/provisioner/resize.rs: a grown claim's new size goes into its status.
  echo "persistentvolumeclaims/status patch"
  # src/provisioner/claim.rs: create the pre-bound PV; release.rs: delete it, patch its finalizer.
  for v in get list watch create delete patch; do echo "persistentvolumes $v"; done
  # src/provisioner/claim.rs, release.rs: Api<StorageClass> get (parameters, reclaim policy).
  for v in get list watch; do echo "storageclasses.storage.k8s.io $v"; done
  # events.k8s.io/v1 events: created, then patched on repeats.
  for v in create patch; do echo "events.events.k8s.io $v"; done
  # src/provisioner/leader.rs: get, create, replace (update) of its one Lease.
  for v in get create update; do echo "@ns leases.coordination.k8s.io $v"; done
}

# can_i_list <ns> <user>: one "resource verb" line per permission (resource names, when a rule
# has any, appended as resource/name; non-resource URLs as "url:<path> verb").
can_i_list() {
  kubectl auth can-i --list -n "$1" --as="$2" --no-headers | awk '
    {
      s = $0; res = ""
      if (s !~ /^[ \t]/) { res = $1; s = substr(s, length($1) + 1) }
      n = split(s, p, /\]/)
      for (i = 1; i <= 3; i++) { sub(/^[^[]*\[/, "", p[i]) }
      nu = split(p[1], urls, " "); nn = split(p[2], names, " "); nv = split(p[3], verbs, " ")
      for (v = 1; v <= nv; v++) {
        if (res != "") {
          if (nn == 0) print res, verbs[v]
          else for (k = 1; k <= nn; k++) print res "/" names[k], verbs[v]
        } else for (k = 1; k <= nu; k++) print "url:" urls[k], verbs[v]
      }
    }' | sort -u
}

# check_account <label> <ns> <sa> <expected-fn>
check_account() {
  local label=$1 ns=$2 sa=$3 fn=$4 user="system:serviceaccount:$2:$3" other=nsc-rbac-elsewhere
  local base_ns base_other got_ns got_other want_ns want_other extra missing
  base_ns=$(can_i_list "$ns" "system:serviceaccount:$ns:nsc-rbac-nobody") &&
    base_other=$(can_i_list "$other" "system:serviceaccount:$ns:nsc-rbac-nobody") &&
    got_ns=$(comm -23 <(can_i_list "$ns" "$user") <(echo "$base_ns")) &&
    got_other=$(comm -23 <(can_i_list "$other" "$user") <(echo "$base_other")) ||
    { fail "rbac $label: kubectl auth can-i --list" "kubectl failed for $user"; return; }
  want_ns=$("$fn" | sed 's/^@ns //' | sort -u)
  want_other=$("$fn" | grep -v '^@ns ' | sort -u)
  echo "  effective permissions of $user ($label), in namespace $ns:"
  if [ -n "$got_ns" ]; then
    # resource: verb verb ... (one line per resource)
    awk '{ v[$1] = v[$1] " " $2 } END { for (r in v) printf "    %-45s%s\n", r, v[r] }' <<<"$got_ns" | sort
  else
    echo "    (none beyond what every authenticated user has)"
  fi
  extra=$(comm -23 <(echo "$got_ns") <(echo "$want_ns") | grep . | paste -sd, -)
  missing=$(comm -13 <(echo "$got_ns") <(echo "$want_ns") | grep . | paste -sd, -)
  if [ -z "$extra" ] && [ -z "$missing" ]; then
    pass "rbac $label: exactly the expected $(grep -c . <<<"$want_ns") permissions in $ns"
  else
    fail "rbac $label: permissions in $ns" "extra [${extra}] missing [${missing}]"
  fi
  extra=$(comm -23 <(echo "$got_other") <(echo "$want_other") | grep . | paste -sd, -)
  missing=$(comm -13 <(echo "$got_other") <(echo "$want_other") | grep . | paste -sd, -)
  if [ -z "$extra" ] && [ -z "$missing" ]; then
    pass "rbac $label: only the cluster-wide $(grep -c . <<<"$want_other") in another namespace"
  else
    fail "rbac $label: permissions in another namespace" "extra [${extra}] missing [${missing}]"
  fi
  # Sensitive verbs, asked one by one (a second path through the authorizer).
  local said bad=()
  local -a probes=("get secrets" "list secrets" "create pods" "delete pods" "update nodes"
    "escalate clusterroles" "bind clusterroles" "create serviceaccounts/token"
    "create clusterrolebindings" "impersonate serviceaccounts" "create persistentvolumes"
    "delete persistentvolumes")
  for probe in "${probes[@]}"; do
    # create/delete persistentvolumes are the provisioners' job; every other probe must be no.
    if [[ $probe == *persistentvolumes ]] && grep -qx "persistentvolumes ${probe%% *}" <<<"$want_other"; then continue; fi
    # In both namespaces (asked of a cluster-scoped resource, -n is ignored; kubectl warns on
    # stderr). Anything but a plain "no" on stdout (a yes, an error) fails.
    for n in "$ns" "$other"; do
      # shellcheck disable=SC2086
      said=$(kubectl auth can-i $probe -n "$n" --as="$user" 2>/dev/null)
      [ "$said" = no ] || bad+=("$probe in $n: ${said:-kubectl failed}")
    done
  done
  if [ ${#bad[@]} -eq 0 ]; then
    pass "rbac $label: can-i says no to every sensitive verb asked"
  else
    fail "rbac $label: sensitive verbs" "$(IFS=';'; echo "${bad[*]}")"
  fi
}

# extra_is_seen <ns>: bind get secrets to the provisioner for a moment; the comparison must name
# exactly that permission as extra (the check above can fail), then the binding goes again.
extra_is_seen() {
  local ns=$1 user="system:serviceaccount:$1:nfs-subdir-provisioner" got rc=0
  kubectl create clusterrole nsc-rbac-extra --verb=get --resource=secrets >/dev/null &&
    kubectl create clusterrolebinding nsc-rbac-extra --clusterrole=nsc-rbac-extra \
      --serviceaccount="$ns:nfs-subdir-provisioner" >/dev/null || rc=1
  got=$(comm -23 <(can_i_list "$ns" "$user") <(can_i_list "$ns" "system:serviceaccount:$ns:nsc-rbac-nobody") |
    comm -23 - <(expected_provisioner | sed 's/^@ns //' | sort -u) | paste -sd, -)
  log "extra permissions seen with the extra binding: [$got]"
  [ "$got" = "secrets get" ] || rc=1
  kubectl delete clusterrolebinding,clusterrole nsc-rbac-extra >/dev/null || rc=1
  return $rc
}

# apply_rbac <label> <file>: apply for real (these are RBAC objects only; no workload).
apply_rbac() {
  local file=$2
  check "rbac: kubectl apply $1" eval 'kubectl apply -f "$file" >/dev/null'
}

rbac_checks() {
  local ns=nfs-subdir-csi hns=nsc-rbac-helm out
  log "rbac: least privilege per ServiceAccount"
  for n in "$ns" "$hns" nsc-rbac-elsewhere; do
    kubectl get namespace "$n" >/dev/null 2>&1 || kubectl create namespace "$n" >/dev/null
  done
  cd "$REPO" || return
  apply_rbac deploy/rbac.yaml deploy/rbac.yaml
  apply_rbac deploy/provisioner/rbac.yaml deploy/provisioner/rbac.yaml
  check_account "deploy/ CSI controller" "$ns" nfs-subdir-csi-controller expected_csi_controller
  check_account "deploy/ CSI node" "$ns" nfs-subdir-csi-node expected_csi_node
  check_account "deploy/provisioner" "$ns" nfs-subdir-provisioner expected_provisioner
  apply_rbac deploy/snapshot-controller/rbac.yaml deploy/snapshot-controller/rbac.yaml
  check_account "deploy/snapshot-controller" kube-system snapshot-controller expected_snapshot_controller
  check "rbac: the comparison sees one rule too many (get secrets bound for a moment)" extra_is_seen "$ns"
  HELM=${HELM:-$(ls "$NSC_CACHE"/bin/helm-v* 2>/dev/null | sort -V | tail -n1)}
  if [ -z "$HELM" ] || ! "$HELM" version --short >/dev/null 2>&1; then
    missing_tool "rbac: the Helm chart's RBAC" "no helm (tests/e2e/manifests/run.sh builds one; or set HELM)"
    return
  fi
  # The chart's ClusterRoles share deploy/'s names: its bindings now point at $hns.
  out="$DIR/rbac-chart-csi.yaml"
  check "rbac: helm template (mode=csi) RBAC" eval '"$HELM" template nsc deploy/helm/nfs-subdir-csi -n "$hns" --show-only templates/rbac.yaml >"$out"' &&
    apply_rbac "chart mode=csi RBAC" "$out"
  out="$DIR/rbac-chart-provisioner.yaml"
  check "rbac: helm template (mode=provisioner) RBAC" eval '"$HELM" template nsc deploy/helm/nfs-subdir-csi -n "$hns" --set mode=provisioner --show-only templates/provisioner-rbac.yaml >"$out"' &&
    apply_rbac "chart mode=provisioner RBAC" "$out"
  check_account "chart CSI controller" "$hns" nfs-subdir-csi-controller expected_csi_controller
  check_account "chart CSI node" "$hns" nfs-subdir-csi-node expected_csi_node
  check_account "chart provisioner" "$hns" nfs-subdir-provisioner expected_provisioner
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  NAME=rbac
  HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  # shellcheck source=tests/e2e/k8s/helpers.sh
  . "$HERE/helpers.sh"
  lib_init "$@"
  resolve_k8s_bin
  start_cluster
  rbac_checks
  log "rbac done in $(since "$T0")"
fi
