"""Checks of the snapshot parts of the deployment, run by check_manifests.py (section "snapshots"):
the csi-snapshotter sidecar of the controller Deployment (plain and chart), deploy/snapshot/'s
VolumeSnapshotClasses (validated against the VolumeSnapshotClass CRD schema of the Go module
github.com/kubernetes-csi/external-snapshotter/client/v8, which run.sh finds in the module cache),
the optional deploy/snapshot-controller/ (schema, pinned image, the CRD kustomization's ref), and
the least-privilege RBAC of both: the rules here must equal deploy/'s and the lists
tests/e2e/k8s/rbac.sh checks on a real apiserver (scenario-d.sh runs the sidecars with deploy/'s
accounts).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

import check_manifests as cm

SNAPSHOT_DIR = Path("deploy") / "snapshot"
CONTROLLER_DIR = Path("deploy") / "snapshot-controller"
RBAC_SH = Path("tests") / "e2e" / "k8s" / "rbac.sh"
GROUP = "snapshot.storage.k8s.io"
# ClusterRole nfs-subdir-csi-snapshotter (deploy/rbac.yaml): csi-snapshotter v8, no group snapshots.
SNAPSHOTTER_RULES = {
    (GROUP, "volumesnapshotclasses"): {"get", "list", "watch"},
    (GROUP, "volumesnapshotcontents"): {"get", "list", "watch", "patch"},
    (GROUP, "volumesnapshotcontents/status"): {"update", "patch"},
}
# What csi-provisioner needs on top for a claim restored from a VolumeSnapshot.
PROVISIONER_SNAPSHOT_RULES = {
    (GROUP, "volumesnapshots"): {"get", "list", "watch", "update"},
    (GROUP, "volumesnapshotcontents"): {"get"},
}
# ClusterRole of deploy/snapshot-controller/rbac.yaml: snapshot-controller v8, no group snapshots.
SNAPSHOT_CONTROLLER_RULES = {
    ("", "persistentvolumes"): {"get", "list", "watch"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "update"},
    ("", "events"): {"list", "watch", "create", "update", "patch"},
    (GROUP, "volumesnapshotclasses"): {"get", "list", "watch"},
    (GROUP, "volumesnapshotcontents"): {"create", "get", "list", "watch", "update", "delete", "patch"},
    (GROUP, "volumesnapshotcontents/status"): {"patch"},
    (GROUP, "volumesnapshots"): {"get", "list", "watch", "update", "patch"},
    (GROUP, "volumesnapshots/status"): {"update", "patch"},
}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "delete"}}
SNAPSHOTTER_FLAGS = ("--csi-address", "--leader-election-namespace", "--timeout", "--feature-gates")


def tag_of(image: str) -> str:
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""


def snapshotter_rules(objs: list[dict], where: str) -> tuple[list[str], str]:
    """The csi-snapshotter container of the controller Deployment; returns (problems, its tag)."""
    p: list[str] = []
    deps = cm.find(objs, "Deployment", "nfs-subdir-csi-controller")
    if not deps:
        return [f"{where}: no controller Deployment"], ""
    ps = cm.pod_spec(deps[0]) or {}
    c = cm.sidecar(ps, "csi-snapshotter")
    if c is None:
        return [f"{where}: no csi-snapshotter sidecar in the controller"], ""
    img = c.get("image", "")
    if not img.startswith(cm.SIDECAR_REGISTRY + "csi-snapshotter:v8."):
        p.append(f"{where}: csi-snapshotter image {img!r} is not {cm.SIDECAR_REGISTRY}csi-snapshotter:v8.x")
    if not cm.has_flag(c, "--leader-election"):
        p.append(f"{where}: csi-snapshotter lacks --leader-election")
    for f in SNAPSHOTTER_FLAGS:
        if cm.flag_value(c, f) is None:
            p.append(f"{where}: csi-snapshotter lacks {f}=<value>")
    if cm.flag_value(c, "--csi-address") != "/csi/csi.sock":
        p.append(f"{where}: csi-snapshotter --csi-address is not /csi/csi.sock")
    if cm.flag_value(c, "--feature-gates") != "CSIVolumeGroupSnapshot=false":
        p.append(f"{where}: csi-snapshotter must run with --feature-gates=CSIVolumeGroupSnapshot=false "
                 "(no group snapshots, no RBAC for them)")
    if cm.has_flag(c, "--extra-create-metadata"):
        p.append(f"{where}: csi-snapshotter --extra-create-metadata would pass parameters the driver refuses")
    drv = cm.driver_container(ps) or {}
    sock = {m.get("name") for m in drv.get("volumeMounts") or [] if m.get("mountPath") == "/csi"}
    if not any(m.get("mountPath") == "/csi" and m.get("name") in sock for m in c.get("volumeMounts") or []):
        p.append(f"{where}: csi-snapshotter does not mount the driver's socket volume at /csi")
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
        p.append(f"{where}: csi-snapshotter must not escalate and must have a read-only root")
    return p, tag_of(img)


def role_rules(objs: list[dict], kind: str, name: str) -> set[tuple[str, str, str]] | None:
    got = cm.find(objs, kind, name)
    return cm.rbac_triples(got[0].get("rules") or []) if got else None


def rule_diff(got: set | None, want: dict, what: str) -> list[str]:
    if got is None:
        return [f"{what} is missing"]
    w = cm.expand(want)
    return ([f"{what}: extra {t}" for t in sorted(got - w)] + [f"{what}: missing {t}" for t in sorted(w - got)])


def rbac_sh_list(root: Path, fn: str) -> set[str] | None:
    """The "resource verb" lines of one expected_* function of tests/e2e/k8s/rbac.sh."""
    r = subprocess.run(["bash", "-c", f'. "$1" && {fn}', "rbac", str(root / RBAC_SH)],
                       capture_output=True, text=True, timeout=30)
    return {l.strip() for l in r.stdout.splitlines() if l.strip()} if r.returncode == 0 else None


def as_can_i(rules: dict) -> set[str]:
    """(group, resource) -> verbs as `kubectl auth can-i --list` names them (rbac.sh's format)."""
    out = set()
    for (g, res), verbs in rules.items():
        base, _, sub = res.partition("/")
        name = f"{base}.{g}" if g else base
        for v in verbs:
            out.add(f"{name}{'/' + sub if sub else ''} {v}")
    return out


def crd_schema(crds: Path | None, plural: str) -> dict | None:
    if crds is None:
        return None
    f = crds / f"{GROUP}_{plural}.yaml"
    if not f.is_file():
        return None
    crd = yaml.safe_load(f.read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == "v1" and v.get("served"):
            return v["schema"]["openAPIV3Schema"]
    return None


def class_problems(objs: list[dict], schema: dict, driver: str) -> list[str]:
    import jsonschema  # kubernetes-validate's dependency, in the same venv

    p: list[str] = []
    for o in objs:
        for e in jsonschema.Draft7Validator(schema).iter_errors(o):
            p.append(f"{cm.ident(o)}: {'.'.join(str(x) for x in e.path) or '(top)'}: {e.message}")
        extra = set(o) - {"apiVersion", "kind", "metadata", "driver", "deletionPolicy", "parameters"}
        if extra:
            p.append(f"{cm.ident(o)}: fields the CRD does not know: {sorted(extra)}")
        if o.get("driver") != driver:
            p.append(f"{cm.ident(o)}: driver {o.get('driver')!r}, want {driver}")
        if o.get("deletionPolicy") != "Delete":
            p.append(f"{cm.ident(o)}: deletionPolicy {o.get('deletionPolicy')!r}, want Delete")
        params = {k.lower(): v for k, v in (o.get("parameters") or {}).items()}
        if set(params) - {"format"} or params.get("format") not in ("copy", "tar.zst"):
            p.append(f"{cm.ident(o)}: parameters {o.get('parameters')} (the driver knows format: copy|tar.zst)")
    formats = sorted((o.get("parameters") or {}).get("format", "") for o in objs)
    if formats != ["copy", "tar.zst"]:
        p.append(f"want one class per format (copy, tar.zst), found {formats}")
    defaults = [o for o in objs if (o["metadata"].get("annotations") or {})
                .get("snapshot.storage.kubernetes.io/is-default-class") == "true"]
    if [(d.get("parameters") or {}).get("format") for d in defaults] != ["copy"]:
        p.append("exactly the format copy class must be the default class")
    return p


def run(rep: cm.Report, root: Path, chart: Path, helm: str | None, plain: list[dict],
        chart_objs: list[dict] | None, crds: Path | None) -> None:
    rep.section("snapshots (csi-snapshotter, deploy/snapshot/, deploy/snapshot-controller/)")
    p, tag = snapshotter_rules(plain, "deploy/controller.yaml")
    rep.check("deploy/: csi-snapshotter sidecar (v8, socket, leader election, no group snapshots)", p, tag)
    if chart_objs is not None:
        p, ctag = snapshotter_rules(chart_objs, "chart")
        rep.check("chart: the same csi-snapshotter sidecar and tag", p + ([] if ctag == tag else [f"chart tag {ctag} != {tag}"]))
    rep.check("deploy/rbac.yaml: ClusterRole nfs-subdir-csi-snapshotter is exactly the least-privilege list",
              rule_diff(role_rules(plain, "ClusterRole", "nfs-subdir-csi-snapshotter"), SNAPSHOTTER_RULES,
                        "nfs-subdir-csi-snapshotter"))
    prov = role_rules(plain, "ClusterRole", "nfs-subdir-csi-provisioner") or set()
    rep.check("deploy/rbac.yaml: csi-provisioner reads VolumeSnapshots and their contents (restores)",
              [f"nfs-subdir-csi-provisioner lacks {t}" for t in sorted(cm.expand(PROVISIONER_SNAPSHOT_RULES) - prov)])

    # the optional snapshot-controller component
    ctl_files = sorted(p for p in (root / CONTROLLER_DIR).glob("*.yaml") if p.name not in cm.NOT_K8S_OBJECTS)
    ctl: list[dict] = []
    for f in ctl_files:
        problems, n = cm.validate_file(f)
        docs = cm.load_file(f) if not problems else []
        for d in docs:
            problems += cm.apiserver_rules(d) + cm.image_rules(d)
        rep.check(f"schema and rules {f.relative_to(root)}", problems, f"{n} objects")
        ctl += docs
    p = []
    deps = cm.find(ctl, "Deployment", "snapshot-controller")
    c = cm.container(cm.pod_spec(deps[0]) or {}, "snapshot-controller") if deps else None
    if c is None:
        p.append("no snapshot-controller Deployment/container")
    else:
        if c.get("image") != f"{cm.SIDECAR_REGISTRY}snapshot-controller:{tag}":
            p.append(f"image {c.get('image')!r}, want {cm.SIDECAR_REGISTRY}snapshot-controller:{tag} (csi-snapshotter's tag)")
        if cm.flag_value(c, "--feature-gates") != "CSIVolumeGroupSnapshot=false":
            p.append("snapshot-controller must run with --feature-gates=CSIVolumeGroupSnapshot=false")
        if cm.flag_value(c, "--leader-election") != "true":
            p.append("snapshot-controller must run with --leader-election=true (2 replicas)")
    kust = cm.load_file(root / CONTROLLER_DIR / "crd" / "kustomization.yaml")[0]
    want_crd = f"https://github.com/kubernetes-csi/external-snapshotter/client/config/crd?ref={tag}"
    if kust.get("resources") != [want_crd]:
        p.append(f"crd/kustomization.yaml resources {kust.get('resources')}, want [{want_crd}]")
    listed = set(cm.load_file(root / CONTROLLER_DIR / "kustomization.yaml")[0].get("resources") or [])
    if listed != {f.name for f in ctl_files}:
        p.append(f"kustomization.yaml lists {sorted(listed)}, the directory has {[f.name for f in ctl_files]}")
    rep.check("deploy/snapshot-controller/: image and CRD ref pinned to the csi-snapshotter tag, no group snapshots", p, tag)
    rep.check("deploy/snapshot-controller/rbac.yaml: exactly the least-privilege list",
              rule_diff(role_rules(ctl, "ClusterRole", "nfs-subdir-csi-snapshot-controller"), SNAPSHOT_CONTROLLER_RULES,
                        "nfs-subdir-csi-snapshot-controller")
              + rule_diff(role_rules(ctl, "Role", "nfs-subdir-csi-snapshot-controller-leaderelection"), LEASE_RULES,
                          "its leader-election Role"))

    # the same lists as tests/e2e/k8s/rbac.sh checks against the apiserver
    p = []
    ctrl = rbac_sh_list(root, "expected_csi_controller")
    snap = rbac_sh_list(root, "expected_snapshot_controller")
    if ctrl is None or snap is None:
        p.append(f"cannot read expected_csi_controller / expected_snapshot_controller from {RBAC_SH}")
    else:
        mine = {l for l in ctrl if "snapshot.storage.k8s.io" in l}
        want = as_can_i({k: SNAPSHOTTER_RULES.get(k, set()) | PROVISIONER_SNAPSHOT_RULES.get(k, set())
                         for k in set(SNAPSHOTTER_RULES) | set(PROVISIONER_SNAPSHOT_RULES)})
        p += [f"controller: {l} only in rbac.sh" for l in sorted(mine - want)]
        p += [f"controller: {l} only here" for l in sorted(want - mine)]
        want = as_can_i(SNAPSHOT_CONTROLLER_RULES) | {f"@ns {l}" for l in as_can_i(LEASE_RULES)}
        p += [f"snapshot-controller: {l} only in rbac.sh" for l in sorted(snap - want)]
        p += [f"snapshot-controller: {l} only here" for l in sorted(want - snap)]
    rep.check("the snapshot RBAC checked here is the one tests/e2e/k8s/rbac.sh proves (scenario-d runs with it)", p)

    # deploy/snapshot/: VolumeSnapshotClasses against the CRD's own schema
    files = sorted(p for p in (root / SNAPSHOT_DIR).glob("*.yaml") if p.name not in cm.NOT_K8S_OBJECTS)
    classes = [d for f in files for d in cm.load_file(f)]
    listed = set(cm.load_file(root / SNAPSHOT_DIR / "kustomization.yaml")[0].get("resources") or [])
    rep.check("deploy/snapshot/kustomization.yaml lists every deploy/snapshot/*.yaml",
              [] if listed == {f.name for f in files} else [f"lists {sorted(listed)}, has {[f.name for f in files]}"])
    schema = crd_schema(crds, "volumesnapshotclasses")
    if schema is None:
        rep.missing_tool("deploy/snapshot/ against the VolumeSnapshotClass CRD schema",
                         f"no CRD files from client/v8@{tag} (run.sh: go mod download)")
    else:
        rep.check("deploy/snapshot/: VolumeSnapshotClasses valid against the CRD schema; copy (default) and tar.zst",
                  class_problems(classes, schema, cm.DRIVER_NAME), f"{len(classes)} classes, CRD of client/v8@{tag}")
    if helm:
        objs, err = cm.helm_template(helm, chart, ["--set", "volumeSnapshotClasses.create=true",
                                                   "--show-only", "templates/volumesnapshotclasses.yaml"])
        rep.check("chart volumeSnapshotClasses.create=true renders deploy/snapshot/'s classes",
                  [err] if objs is None else cm.compare_sets([cm.strip_helm_labels(o) for o in objs], classes,
                                                             "chart", "deploy/snapshot/"))


def crds_dir(arg: str | None) -> Path | None:
    if not arg:
        return None
    d = Path(arg)
    return d if re.search(r"client/v8@v8\.", str(d)) and d.is_dir() else None
