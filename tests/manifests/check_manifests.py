#!/usr/bin/env python3
"""Checks the Kubernetes manifests of nfs-subdir-csi.

Run by tests/manifests/validate.sh, which provides the tools (a venv with
kubernetes-validate, a pinned Helm, a kustomize). Checks, each printed as one
PASS/FAIL line:

  * every YAML in deploy/ (plain manifests) and examples/ and the rendered Helm
    chart validates against the Kubernetes OpenAPI schemas in strict mode
    (unknown fields fail), for the newest and the oldest supported version;
  * rules the API server enforces beyond the schema, and the project's own
    deployment rules (driver name everywhere, CSIDriver fields, sidecar flags,
    privileges, mount propagation, RBAC verbs, pinned images, ...);
  * the chart's default render equals the plain manifests object by object;
  * `kustomize build deploy/` equals the plain manifests;
  * the examples' storageClassName values exist in deploy/;
  * when a built binary exists (target/{release,debug}/nfs-subdir-csi or
    $NFS_SUBDIR_CSI_BIN), every flag the manifests pass to it is one it has;
  * self-tests proving a misspelled field, a chart/plain drift and a broken
    policy are each caught.

Ends with `manifests: N passed, M failed`; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:  # pragma: no cover - validate.sh installs it
    sys.exit("kubernetes-validate is not installed (run tests/manifests/validate.sh)")

DRIVER_NAME = "nfs-subdir.csi.rs"
NAMESPACE = "nfs-subdir-csi"
RELEASE = "nfs-subdir-csi"
# Newest schemas shipped by kubernetes-validate, and the oldest Kubernetes the
# deployment supports (csi-provisioner v6 needs storage.k8s.io/v1
# VolumeAttributesClass, GA in 1.34).
K8S_VERSIONS = ("1.37.0", "1.34.0")
SIDECAR_REGISTRY = "registry.k8s.io/sig-storage/"
# Labels Helm's chart adds on top of the plain manifests' labels.
HELM_ONLY_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
NAMESPACED_KINDS = {
    "ServiceAccount", "Role", "RoleBinding", "Deployment", "DaemonSet",
    "StatefulSet", "Service", "PersistentVolumeClaim", "ConfigMap", "Secret",
}
NOT_K8S_OBJECTS = {"kustomization.yaml", "Chart.yaml", "values.yaml"}


# --------------------------------------------------------------------------
# Reporting


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)

    def fail(self, name: str, problems: Iterable[str] | str) -> None:
        self.failed += 1
        if isinstance(problems, str):
            problems = [problems]
        problems = list(problems)
        print(f"FAIL {name}", flush=True)
        for p in problems[:40]:
            print(f"     - {p}", flush=True)
        if len(problems) > 40:
            print(f"     - ... and {len(problems) - 40} more", flush=True)

    def check(self, name: str, problems: list[str], detail: str = "") -> bool:
        if problems:
            self.fail(name, problems)
            return False
        self.ok(name, detail)
        return True


class guard:
    """Turns a crash inside a section into one FAIL line instead of a traceback."""

    def __init__(self, rep: Report, what: str) -> None:
        self.rep, self.what = rep, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, exc, tb) -> bool:
        if exc is not None and isinstance(exc, Exception):
            self.rep.fail(f"{self.what}: checks crashed", f"{type(exc).__name__}: {exc}")
            return True
        return False


# --------------------------------------------------------------------------
# YAML loading (duplicate keys are an error: PyYAML would keep the last one)


class StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_docs(text: str) -> list[dict]:
    docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    for d in docs:
        if not isinstance(d, dict):
            raise ValueError(f"a YAML document is a {type(d).__name__}, not a mapping")
    return docs


def load_file(path: Path) -> list[dict]:
    return load_docs(path.read_text())


def ident(obj: dict) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{(ns + '/') if ns else ''}{md.get('name')}"


# --------------------------------------------------------------------------
# Schema validation


def schema_problems(obj: dict, versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    """Strict OpenAPI validation of one object; unknown kinds are errors too."""
    problems = []
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            return [f"missing {key}"]
    if not (obj.get("metadata") or {}).get("name"):
        return [f"{obj['kind']}: missing metadata.name"]
    for version in versions:
        try:
            kv_utils.validate(obj, version, strict=True)
        except kv_utils.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top level)"
            problems.append(f"{ident(obj)} (k8s {e.version}): {path}: {e.message}")
        except kv_utils.SchemaNotFoundError as e:
            problems.append(f"{ident(obj)} (k8s {version}): no schema: {e.message}")
    return problems


def validate_file(path: Path) -> tuple[list[str], int]:
    """Returns (problems, number of objects) for one manifest file."""
    try:
        docs = load_file(path)
    except (yaml.YAMLError, ValueError) as e:
        return ["YAML: " + " ".join(str(e).split())], 0
    if not docs:
        return ["no Kubernetes objects in the file"], 0
    problems: list[str] = []
    for d in docs:
        problems += schema_problems(d)
    return problems, len(docs)


# --------------------------------------------------------------------------
# Deep comparison


def diff(a: Any, b: Any, path: str = "", an: str = "the first", bn: str = "the second") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: only in {bn} ({_short(b[k])})")
            elif k not in b:
                out.append(f"{p}: only in {an} ({_short(a[k])})")
            else:
                out += diff(a[k], b[k], p, an, bn)
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items in {an}, {len(b)} in {bn}")
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]", an, bn)
        return out
    if a != b or type(a) is not type(b):
        return [f"{path}: {_short(a)} in {an}, {_short(b)} in {bn}"]
    return []


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 90 else s[:87] + "..."


def index(objs: Iterable[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for o in objs:
        out[ident(o)] = o
    return out


def strip_helm_labels(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    labels = (obj.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        for k in HELM_ONLY_LABELS:
            labels.pop(k, None)
        if not labels:
            del obj["metadata"]["labels"]
    return obj


def compare_sets(first: list[dict], second: list[dict], first_name: str, second_name: str,
                 ignore: Callable[[dict], bool] = lambda o: False) -> list[str]:
    a = {k: v for k, v in index(first).items() if not ignore(v)}
    b = {k: v for k, v in index(second).items() if not ignore(v)}
    problems = []
    for k in sorted(set(a) - set(b)):
        problems.append(f"{k}: in {first_name} but not in {second_name}")
    for k in sorted(set(b) - set(a)):
        problems.append(f"{k}: in {second_name} but not in {first_name}")
    for k in sorted(set(a) & set(b)):
        problems += [f"{k}: {d}" for d in diff(a[k], b[k], "", first_name, second_name)]
    return problems


# --------------------------------------------------------------------------
# Policy: API-server rules the schema cannot express, and the project's rules


def pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if obj.get("kind") == "Pod":
        return obj.get("spec")
    return None


def containers(ps: dict) -> list[dict]:
    return list(ps.get("initContainers") or []) + list(ps.get("containers") or [])


def apiserver_rules(obj: dict) -> list[str]:
    """A subset of API-server validation that the OpenAPI schema does not encode."""
    problems: list[str] = []
    name = ident(obj)
    spec = obj.get("spec") or {}
    ps = pod_spec(obj)
    if ps is None:
        return problems
    # selector must match the template's labels
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
        sel = ((spec.get("selector") or {}).get("matchLabels")) or {}
        tl = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not sel:
            problems.append(f"{name}: spec.selector.matchLabels is empty")
        for k, v in sel.items():
            if tl.get(k) != v:
                problems.append(f"{name}: selector {k}={v} does not match the pod template labels")
    vol_names = [v.get("name") for v in ps.get("volumes") or []]
    if len(vol_names) != len(set(vol_names)):
        problems.append(f"{name}: duplicate volume names {vol_names}")
    claim_names = [((t.get("metadata") or {}).get("name"))
                   for t in spec.get("volumeClaimTemplates") or []]
    cnames = [c.get("name") for c in containers(ps)]
    if len(cnames) != len(set(cnames)):
        problems.append(f"{name}: duplicate container names {cnames}")
    if ps.get("hostNetwork") and ps.get("dnsPolicy") not in (None, "ClusterFirstWithHostNet", "Default", "None"):
        problems.append(f"{name}: hostNetwork with dnsPolicy {ps.get('dnsPolicy')}")
    for c in containers(ps):
        cn = f"{name} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        caps = ((sc.get("capabilities") or {}).get("add")) or []
        if sc.get("allowPrivilegeEscalation") is False:
            if sc.get("privileged"):
                problems.append(f"{cn}: allowPrivilegeEscalation false with privileged true is rejected")
            if "SYS_ADMIN" in caps or "CAP_SYS_ADMIN" in caps:
                problems.append(f"{cn}: allowPrivilegeEscalation false with CAP_SYS_ADMIN is rejected")
        env_names = {e.get("name") for e in c.get("env") or []}
        for field in ("command", "args"):
            for a in c.get(field) or []:
                for ref in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(a)):
                    if ref not in env_names:
                        problems.append(f"{cn}: {field} uses $({ref}) but no env var {ref} is defined")
        ports = {p.get("name") for p in c.get("ports") or [] if p.get("name")}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe) or {}
            port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                problems.append(f"{cn}: {probe} uses port name {port!r} that the container does not declare")
        mount_paths = []
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in vol_names and m.get("name") not in claim_names:
                problems.append(f"{cn}: volumeMount {m.get('name')!r} has no volume")
            if m.get("mountPropagation") == "Bidirectional" and not sc.get("privileged"):
                problems.append(f"{cn}: Bidirectional mount propagation needs a privileged container")
            mount_paths.append(m.get("mountPath"))
        if len(mount_paths) != len(set(mount_paths)):
            problems.append(f"{cn}: duplicate mountPath {mount_paths}")
    return problems


def image_rules(obj: dict) -> list[str]:
    problems = []
    ps = pod_spec(obj)
    for c in containers(ps or {}):
        img = c.get("image", "")
        last = img.rsplit("/", 1)[-1]
        if "@sha256:" in img:
            continue
        if ":" not in last:
            problems.append(f"{ident(obj)} container {c.get('name')}: image {img!r} has no tag")
        elif last.endswith(":latest"):
            problems.append(f"{ident(obj)} container {c.get('name')}: image {img!r} uses :latest")
    return problems


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind
            and (name is None or (o.get("metadata") or {}).get("name") == name)]


def container(ps: dict, name: str) -> dict | None:
    for c in containers(ps):
        if c.get("name") == name:
            return c
    return None


def sidecar(ps: dict, image_name: str) -> dict | None:
    for c in containers(ps):
        if c.get("image", "").startswith(SIDECAR_REGISTRY + image_name + ":"):
            return c
    return None


def driver_container(ps: dict) -> dict | None:
    for c in containers(ps):
        if "serve" in (c.get("args") or []) or "serve" in (c.get("command") or []):
            return c
    return None


def has_flag(c: dict, flag: str) -> bool:
    """--flag, --flag=true or -flag forms."""
    bare = flag.lstrip("-")
    for a in (c.get("args") or []) + (c.get("command") or []):
        a = str(a)
        if a.lstrip("-") in (bare, f"{bare}=true"):
            return True
    return False


def flag_value(c: dict, flag: str) -> str | None:
    bare = flag.lstrip("-")
    for a in (c.get("args") or []) + (c.get("command") or []):
        a = str(a).lstrip("-")
        if a.startswith(bare + "="):
            return a.split("=", 1)[1]
    return None


def rules_grant(rules: list[dict], group: str, resource: str, verbs: Iterable[str]) -> list[str]:
    missing = []
    for v in verbs:
        ok = any(group in (r.get("apiGroups") or []) and
                 (resource in (r.get("resources") or []) or "*" in (r.get("resources") or [])) and
                 (v in (r.get("verbs") or []) or "*" in (r.get("verbs") or []))
                 for r in rules)
        if not ok:
            missing.append(v)
    return missing


def deploy_rules(objs: list[dict], driver: str = DRIVER_NAME) -> list[str]:
    """The deployment rules of issue 4 / DESIGN.md, on a set of plain objects."""
    p: list[str] = []

    # CSIDriver
    drivers = find(objs, "CSIDriver")
    if [d["metadata"]["name"] for d in drivers] != [driver]:
        p.append(f"expected exactly one CSIDriver named {driver}, found {[d['metadata']['name'] for d in drivers]}")
    for d in drivers:
        s = d.get("spec") or {}
        want = {"attachRequired": False, "podInfoOnMount": False, "fsGroupPolicy": "File",
                "volumeLifecycleModes": ["Persistent"]}
        for k, v in want.items():
            if s.get(k) != v:
                p.append(f"CSIDriver {driver}: spec.{k} is {s.get(k)!r}, want {v!r}")

    # StorageClasses
    scs = find(objs, "StorageClass")
    for sc in scs:
        if sc.get("provisioner") != driver:
            p.append(f"StorageClass {sc['metadata']['name']}: provisioner {sc.get('provisioner')!r}, want {driver!r}")
    for name, policy in (("nfs-client", "Delete"), ("nfs-client-retain", "Retain")):
        got = find(objs, "StorageClass", name)
        if not got:
            p.append(f"StorageClass {name} is missing")
            continue
        sc = got[0]
        if sc.get("reclaimPolicy") != policy:
            p.append(f"StorageClass {name}: reclaimPolicy {sc.get('reclaimPolicy')!r}, want {policy}")
        if sc.get("volumeBindingMode", "Immediate") != "Immediate":
            p.append(f"StorageClass {name}: volumeBindingMode {sc.get('volumeBindingMode')!r}, want Immediate")
        params = sc.get("parameters") or {}
        if not params.get("share"):
            p.append(f"StorageClass {name}: parameters.share is missing")
        if not params.get("server"):
            p.append(f"StorageClass {name}: parameters.server is missing")
        allowed = {"server", "share", "subdir", "ondelete", "mountpermissions", "mountoptions"}
        for k in params:
            if k.lower() not in allowed and not k.startswith("csi.storage.k8s.io/"):
                p.append(f"StorageClass {name}: parameter {k!r} is unknown to the driver")
        if not any(str(o).startswith(("nfsvers=", "vers=")) for o in sc.get("mountOptions") or []):
            p.append(f"StorageClass {name}: mountOptions do not pin an NFS version")

    # Controller Deployment
    deps = find(objs, "Deployment", "nfs-subdir-csi-controller")
    if not deps:
        p.append("Deployment nfs-subdir-csi-controller is missing")
    for dep in deps:
        ps = pod_spec(dep) or {}
        d = driver_container(ps)
        if d is None:
            p.append("controller: no driver container (args with 'serve')")
        else:
            if flag_value(d, "--roles") != "controller":
                p.append(f"controller: driver --roles is {flag_value(d, '--roles')!r}, want 'controller'")
            if flag_value(d, "--drivername") not in (None, driver):
                p.append(f"controller: --drivername {flag_value(d, '--drivername')!r}, want {driver}")
            wmd = flag_value(d, "--working-mount-dir")
            vols = {v["name"]: v for v in ps.get("volumes") or []}
            mounts = {m.get("mountPath"): m for m in d.get("volumeMounts") or []}
            if not wmd:
                p.append("controller: driver has no --working-mount-dir")
            elif wmd not in mounts:
                p.append(f"controller: --working-mount-dir {wmd} is not a volumeMount")
            else:
                v = vols.get(mounts[wmd].get("name"), {})
                if "emptyDir" not in v and "hostPath" not in v:
                    p.append(f"controller: working mount dir volume {v.get('name')} is neither emptyDir nor hostPath")
            sc = d.get("securityContext") or {}
            caps = (sc.get("capabilities") or {}).get("add") or []
            if not sc.get("privileged") and "SYS_ADMIN" not in caps:
                p.append("controller: driver needs privileged or CAP_SYS_ADMIN for its NFS working mounts")
            ep = flag_value(d, "--endpoint") or ""
            sock = ep.replace("unix://", "")
            if not sock.startswith("/"):
                p.append(f"controller: --endpoint {ep!r} is not an absolute unix socket")
        prov = sidecar(ps, "csi-provisioner")
        if prov is None:
            p.append("controller: csi-provisioner sidecar missing")
        else:
            for f in ("--extra-create-metadata", "--leader-election"):
                if not has_flag(prov, f):
                    p.append(f"controller: csi-provisioner lacks {f}")
            if flag_value(prov, "--csi-address") != "/csi/csi.sock":
                p.append("controller: csi-provisioner --csi-address is not /csi/csi.sock")
        if sidecar(ps, "livenessprobe") is None:
            p.append("controller: livenessprobe sidecar missing")
        if d is not None and (d.get("livenessProbe") is None):
            p.append("controller: driver container has no livenessProbe (served by the livenessprobe sidecar)")
        sa = ps.get("serviceAccountName")
        if not find(objs, "ServiceAccount", sa):
            p.append(f"controller: serviceAccountName {sa!r} has no ServiceAccount")

    # Node DaemonSet
    dss = find(objs, "DaemonSet", "nfs-subdir-csi-node")
    if not dss:
        p.append("DaemonSet nfs-subdir-csi-node is missing")
    for ds in dss:
        ps = pod_spec(ds) or {}
        if ps.get("hostNetwork") is not True:
            p.append("node: hostNetwork must be true (mounts must survive plugin restarts)")
        if ps.get("dnsPolicy") != "ClusterFirstWithHostNet":
            p.append(f"node: dnsPolicy {ps.get('dnsPolicy')!r}, want ClusterFirstWithHostNet")
        d = driver_container(ps)
        vols = {v["name"]: v for v in ps.get("volumes") or []}
        if d is None:
            p.append("node: no driver container (args with 'serve')")
        else:
            if flag_value(d, "--roles") != "node":
                p.append(f"node: driver --roles is {flag_value(d, '--roles')!r}, want 'node'")
            if flag_value(d, "--drivername") not in (None, driver):
                p.append(f"node: --drivername {flag_value(d, '--drivername')!r}, want {driver}")
            if not (d.get("securityContext") or {}).get("privileged"):
                p.append("node: driver container must be privileged")
            bidi = [m for m in d.get("volumeMounts") or [] if m.get("mountPropagation") == "Bidirectional"]
            kubelet_dirs = [m for m in bidi if ((vols.get(m["name"]) or {}).get("hostPath") or {}).get("path")
                            == m.get("mountPath")]
            if not kubelet_dirs:
                p.append("node: no Bidirectional hostPath mount of the kubelet dir at the same path")
            if d.get("livenessProbe") is None:
                p.append("node: driver container has no livenessProbe")
        reg = sidecar(ps, "csi-node-driver-registrar")
        if reg is None:
            p.append("node: csi-node-driver-registrar sidecar missing")
        else:
            rp = flag_value(reg, "--kubelet-registration-path") or ""
            if f"/plugins/{driver}/" not in rp:
                p.append(f"node: --kubelet-registration-path {rp!r} is not under plugins/{driver}/")
            sock_dir = rp.rsplit("/", 1)[0]
            csi_mount = [m for m in (reg.get("volumeMounts") or []) if m.get("mountPath") == "/csi"]
            if not csi_mount:
                p.append("node: registrar does not mount the socket dir at /csi")
            else:
                hp = ((vols.get(csi_mount[0]["name"]) or {}).get("hostPath") or {}).get("path")
                if hp != sock_dir:
                    p.append(f"node: socket dir hostPath {hp!r} != registration path dir {sock_dir!r}")
            reg_mount = [m for m in (reg.get("volumeMounts") or []) if m.get("mountPath") == "/registration"]
            if not reg_mount or not (((vols.get(reg_mount[0]["name"]) or {}).get("hostPath") or {})
                                     .get("path", "").endswith("/plugins_registry")):
                p.append("node: registrar needs the kubelet plugins_registry dir at /registration")
        if sidecar(ps, "livenessprobe") is None:
            p.append("node: livenessprobe sidecar missing")

    # RBAC for csi-provisioner
    crs = find(objs, "ClusterRole")
    rules = [r for cr in crs for r in cr.get("rules") or []]
    need = [("", "persistentvolumes", ["get", "list", "watch", "create", "delete", "patch"]),
            ("", "persistentvolumeclaims", ["get", "list", "watch", "update"]),
            ("storage.k8s.io", "storageclasses", ["get", "list", "watch"]),
            ("", "events", ["create", "patch"]),
            ("storage.k8s.io", "csinodes", ["get", "list", "watch"]),
            ("", "nodes", ["get", "list", "watch"])]
    for g, res, verbs in need:
        miss = rules_grant(rules, g, res, verbs)
        if miss:
            p.append(f"ClusterRole: {res} lacks verbs {miss}")
    roles = find(objs, "Role")
    lease_rules = [r for ro in roles for r in ro.get("rules") or []] + rules
    miss = rules_grant(lease_rules, "coordination.k8s.io", "leases", ["get", "create", "update"])
    if miss:
        p.append(f"leader election: leases lack verbs {miss}")
    for r in rules + [r for ro in roles for r in ro.get("rules") or []]:
        if "*" in (r.get("verbs") or []) or "*" in (r.get("resources") or []):
            p.append(f"RBAC rule uses a wildcard: {r}")
        if "secrets" in (r.get("resources") or []):
            p.append(f"RBAC rule grants secrets, which the driver does not need: {r}")
    ctrl_sa = None
    for dep in deps:
        ctrl_sa = (pod_spec(dep) or {}).get("serviceAccountName")
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        for b in find(objs, kind):
            ref = b.get("roleRef") or {}
            if not find(objs, role_kind, ref.get("name")):
                p.append(f"{ident(b)}: roleRef {ref.get('name')!r} does not exist")
            for s in b.get("subjects") or []:
                if s.get("kind") == "ServiceAccount":
                    sas = [o for o in find(objs, "ServiceAccount", s.get("name"))
                           if o["metadata"].get("namespace") == s.get("namespace")]
                    if not sas:
                        p.append(f"{ident(b)}: subject ServiceAccount {s.get('namespace')}/{s.get('name')} does not exist")
                    if s.get("name") != ctrl_sa:
                        p.append(f"{ident(b)}: binds {s.get('name')}, not the controller's account {ctrl_sa}")
    return p


def namespace_rules(objs: list[dict], namespace: str = NAMESPACE) -> list[str]:
    p = []
    nss = [o["metadata"]["name"] for o in find(objs, "Namespace")]
    if namespace not in nss:
        p.append(f"no Namespace object {namespace}")
    for o in objs:
        ns = (o.get("metadata") or {}).get("namespace")
        if o.get("kind") in NAMESPACED_KINDS and ns != namespace:
            p.append(f"{ident(o)}: namespace {ns!r}, want {namespace!r}")
        if o.get("kind") not in NAMESPACED_KINDS and ns:
            p.append(f"{ident(o)}: cluster-scoped kind with a namespace")
    for ns in find(objs, "Namespace", namespace):
        if (ns["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "privileged":
            p.append(f"Namespace {namespace}: needs pod-security.kubernetes.io/enforce=privileged "
                     f"for the privileged node plugin")
    return p


# --------------------------------------------------------------------------
# Examples


def example_rules(example_objs: dict[Path, list[dict]], storage_classes: set[str], root: Path) -> list[str]:
    p = []
    all_objs = [o for objs in example_objs.values() for o in objs]
    for path, objs in example_objs.items():
        rel = path.relative_to(root)
        for o in objs:
            refs = []
            if o.get("kind") == "PersistentVolumeClaim":
                refs.append((o.get("spec") or {}).get("storageClassName"))
            for t in (o.get("spec") or {}).get("volumeClaimTemplates") or []:
                refs.append((t.get("spec") or {}).get("storageClassName"))
            for r in refs:
                if r is None:
                    p.append(f"{rel}: {ident(o)} has a claim without storageClassName (would use the cluster default)")
                elif r not in storage_classes:
                    p.append(f"{rel}: {ident(o)} uses storageClassName {r!r}, not defined in deploy/ "
                             f"({sorted(storage_classes)})")
            if o.get("kind") == "StatefulSet":
                svc = (o.get("spec") or {}).get("serviceName")
                svcs = [s for s in find(all_objs, "Service", svc)]
                if not svcs:
                    p.append(f"{rel}: {ident(o)} serviceName {svc!r} has no Service in the examples")
                elif (svcs[0].get("spec") or {}).get("clusterIP") != "None":
                    p.append(f"{rel}: Service {svc} must be headless (clusterIP: None)")
                else:
                    sel = (svcs[0].get("spec") or {}).get("selector") or {}
                    tl = (((o.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
                    if not sel or any(tl.get(k) != v for k, v in sel.items()):
                        p.append(f"{rel}: Service {svc} selector {sel} does not select {ident(o)}'s pods")
    return p


def redis_rules(root: Path) -> list[str]:
    """The shapes the redis walkthrough and the e2e test rely on."""
    p = []
    d = root / "examples" / "redis"
    want_files = ["redis-sts.yaml", "redis-svc.yaml", "redis-pv-sts.yaml", "redis-pv-sts-svc.yaml"]
    for f in want_files:
        if not (d / f).is_file():
            p.append(f"examples/redis/{f} is missing")
    if p:
        return p
    sts = find(load_file(d / "redis-pv-sts.yaml"), "StatefulSet", "redis-pv-sts")
    if not sts:
        return ["examples/redis/redis-pv-sts.yaml has no StatefulSet redis-pv-sts"]
    s = sts[0]["spec"]
    if s.get("replicas") != 2:
        p.append(f"redis-pv-sts: replicas {s.get('replicas')}, want 2")
    if s.get("serviceName") != "redis-pv-sts-svc":
        p.append(f"redis-pv-sts: serviceName {s.get('serviceName')!r}, want redis-pv-sts-svc")
    vcts = s.get("volumeClaimTemplates") or []
    if [v["metadata"]["name"] for v in vcts] != ["redis-100m-pvc"]:
        p.append("redis-pv-sts: want exactly one volumeClaimTemplate named redis-100m-pvc")
    else:
        vs = vcts[0]["spec"]
        if vs.get("storageClassName") != "nfs-client":
            p.append("redis-pv-sts: storageClassName must be nfs-client")
        if vs.get("accessModes") != ["ReadWriteMany"]:
            p.append("redis-pv-sts: accessModes must be [ReadWriteMany]")
        if ((vs.get("resources") or {}).get("requests") or {}).get("storage") != "100Mi":
            p.append("redis-pv-sts: storage request must be 100Mi")
    c = (s["template"]["spec"].get("containers") or [{}])[0]
    if not str(c.get("image", "")).startswith("redis:5-alpine"):
        p.append(f"redis-pv-sts: image {c.get('image')!r}, want redis:5-alpine")
    if not any(m.get("name") == "redis-100m-pvc" and m.get("mountPath") == "/data"
               for m in c.get("volumeMounts") or []):
        p.append("redis-pv-sts: redis-100m-pvc must be mounted at /data")
    base = find(load_file(d / "redis-sts.yaml"), "StatefulSet", "redis-sts")
    if not base:
        p.append("examples/redis/redis-sts.yaml has no StatefulSet redis-sts")
    else:
        b = base[0]["spec"]
        if b.get("replicas") != 2 or b.get("volumeClaimTemplates"):
            p.append("redis-sts: want 2 replicas and no storage")
        if b.get("serviceName") != "redis-svc":
            p.append("redis-sts: serviceName must be redis-svc")
    return p


# --------------------------------------------------------------------------
# The driver's command line


def find_driver_binary(root: Path) -> Path | None:
    """$NFS_SUBDIR_CSI_BIN, else the newest of target/{release,debug}/nfs-subdir-csi."""
    env = os.environ.get("NFS_SUBDIR_CSI_BIN")
    if env:
        return Path(env)
    found = [p for p in (root / "target" / "release" / "nfs-subdir-csi",
                         root / "target" / "debug" / "nfs-subdir-csi") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def cli_flag_problems(binary: Path, objs: list[dict]) -> tuple[list[str], int]:
    """Every subcommand and --flag the manifests pass to the driver must exist in its --help."""
    rc, top, err = run([str(binary), "--help"])
    if rc != 0:
        return [f"`{binary} --help` exited {rc}: {err.strip()}"], 0
    problems: list[str] = []
    known: dict[str, set[str]] = {}
    n = 0
    for o in objs:
        ps = pod_spec(o)
        c = driver_container(ps) if ps else None
        if c is None:
            continue
        argv = [str(a) for a in (c.get("command") or [])[1:] + (c.get("args") or [])]
        sub = argv[0] if argv else ""
        if sub not in known:
            rc, out, err = run([str(binary), sub, "--help"])
            if rc != 0:
                problems.append(f"{ident(o)}: subcommand {sub!r}: `--help` exited {rc}: {err.strip()}")
                known[sub] = set()
                continue
            known[sub] = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", out))
        for a in argv[1:]:
            if a.startswith("--"):
                n += 1
                flag = a.split("=", 1)[0]
                if flag not in known[sub]:
                    problems.append(f"{ident(o)}: `{sub} {flag}` is not a flag of the binary "
                                    f"(known: {' '.join(sorted(known[sub]))})")
    return problems, n


# --------------------------------------------------------------------------
# Tools


def run(cmd: list[str], cwd: Path | None = None) -> tuple[int, str, str]:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
        return r.returncode, r.stdout, r.stderr
    except FileNotFoundError as e:
        return 127, "", str(e)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out: {' '.join(cmd)}"


def helm_template(helm: str, chart: Path, extra: list[str] | None = None) -> tuple[list[dict] | None, str]:
    cmd = [helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE,
           "--kube-version", K8S_VERSIONS[0]] + (extra or [])
    rc, out, err = run(cmd)
    if rc != 0:
        return None, f"`{' '.join(cmd)}` exited {rc}: {err.strip() or out.strip()}"
    try:
        return load_docs(out), ""
    except (yaml.YAMLError, ValueError) as e:
        return None, f"rendered chart is not valid YAML: {e}"


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--helm", help="helm binary (chart checks fail without it)")
    ap.add_argument("--kustomize", help="kustomize command, e.g. 'kubectl kustomize' (skipped when empty)")
    args = ap.parse_args()
    root: Path = args.root.resolve()
    deploy = root / "deploy"
    chart = deploy / "helm" / "nfs-subdir-csi"
    rep = Report()

    print(f"kubernetes-validate {kubernetes_validate.__version__}; schemas for Kubernetes "
          f"{' and '.join(K8S_VERSIONS)}; strict (unknown fields fail)")

    # ---- 1. strict schema validation of every file
    rep.section("schema: deploy/*.yaml and examples/**/*.yaml")
    plain_files = sorted(p for p in deploy.glob("*.yaml") if p.name not in NOT_K8S_OBJECTS)
    plain_files += sorted(p for p in deploy.glob("*.yml") if p.name not in NOT_K8S_OBJECTS)
    example_files = sorted(list((root / "examples").rglob("*.yaml")) + list((root / "examples").rglob("*.yml")))
    if not plain_files:
        rep.fail("deploy/ has manifests", "no deploy/*.yaml found")
    plain: list[dict] = []
    plain_by_file: dict[Path, list[dict]] = {}
    for f in plain_files + example_files:
        problems, n = validate_file(f)
        rep.check(f"schema {f.relative_to(root)}", problems, f"{n} object{'s' if n != 1 else ''}")
        try:  # a schema failure is reported above; the later checks still see the objects
            docs = load_file(f)
        except (yaml.YAMLError, ValueError):
            continue
        plain_by_file[f] = docs
        if f.parent == deploy:
            plain += docs

    sc_names: set[str] = set()
    rendered: list[dict] | None = None
    custom_objs: list[dict] | None = None
    # ---- 2. API-server rules and pinned images, on everything
    with guard(rep, 'API-server rules and pinned images, on everything'):
        rep.section("API-server rules the schema does not cover; pinned images")
        for f, docs in plain_by_file.items():
            problems = []
            for d in docs:
                problems += apiserver_rules(d) + image_rules(d)
            rep.check(f"rules {f.relative_to(root)}", problems)

    # ---- 3. deployment rules on the plain manifests
    with guard(rep, 'deployment rules on the plain manifests'):
        rep.section("deployment rules (deploy/)")
        rep.check(f"driver name {DRIVER_NAME} everywhere; CSIDriver, controller, node, RBAC as specified",
                  deploy_rules(plain))
        rep.check(f"namespaced objects in {NAMESPACE}, which deploy/namespace.yaml defines",
                  namespace_rules(plain))
        sc_names = {o["metadata"]["name"] for o in find(plain, "StorageClass")}
        rep.check("StorageClass provisioner equals the driver default name",
                  [f"{o['metadata']['name']}: {o.get('provisioner')}" for o in find(plain, "StorageClass")
                   if o.get("provisioner") != DRIVER_NAME] or ([] if sc_names else ["no StorageClass in deploy/"]),
                  f"{', '.join(sorted(sc_names))} -> {DRIVER_NAME}")

    # ---- 4. examples
    with guard(rep, 'examples'):
        rep.section("examples")
        ex = {f: docs for f, docs in plain_by_file.items() if f in example_files}
        rep.check("examples' storageClassName values exist in deploy/; StatefulSets have headless Services",
                  example_rules(ex, sc_names, root))
        rep.check("examples/redis: four manifests with the shapes the walkthrough uses", redis_rules(root))

    # ---- 5. kustomize
    with guard(rep, 'kustomize'):
        rep.section("kustomize")
        kfile = deploy / "kustomization.yaml"
        try:
            kust = load_file(kfile)[0]
            listed = set(kust.get("resources") or [])
            on_disk = {p.name for p in plain_files}
            problems = [f"{n}: in deploy/ but not in kustomization.yaml resources" for n in sorted(on_disk - listed)]
            problems += [f"{n}: listed in kustomization.yaml but missing" for n in sorted(listed - on_disk)]
        except (OSError, yaml.YAMLError, IndexError, ValueError) as e:
            problems = [f"{kfile}: {e}"]
        rep.check("kustomization.yaml lists every deploy/*.yaml", problems)
        if args.kustomize:
            cmd = args.kustomize.split() + [str(deploy)]
            rc, out, err = run(cmd)
            if rc != 0:
                rep.fail(f"`{args.kustomize} deploy/` builds", f"exit {rc}: {err.strip()}")
            else:
                built = load_docs(out)
                rep.check(f"`{args.kustomize} deploy/` equals the plain manifests",
                          compare_sets(built, plain, "kustomize build", "deploy/*.yaml"),
                          f"{len(built)} objects")
        else:
            print("SKIP kustomize build (no kustomize or kubectl available)")

    # ---- 6. Helm chart
    with guard(rep, 'Helm chart'):
        rep.section("Helm chart deploy/helm/nfs-subdir-csi")
        if not args.helm:
            rep.fail("helm available", "no helm binary given (validate.sh installs one)")
        else:
            rc, out, err = run([args.helm, "lint", "--strict", str(chart), "--namespace", NAMESPACE,
                                "--kube-version", K8S_VERSIONS[0]])
            rep.check("helm lint --strict", [] if rc == 0 else (out + err).strip().splitlines())
            rendered, err = helm_template(args.helm, chart)
            if rendered is None:
                rep.fail("helm template (default values)", err)
            else:
                problems = [q for o in rendered for q in schema_problems(o) + apiserver_rules(o) + image_rules(o)]
                rep.check("helm template (default values): strict schema + API-server rules", problems,
                          f"{len(rendered)} objects")
                stripped = [strip_helm_labels(o) for o in rendered]
                rep.check("chart default render equals deploy/*.yaml (all fields; Helm's own labels and "
                          "the Namespace aside)",
                          compare_sets(stripped, plain, "the chart", "deploy/*.yaml",
                                       ignore=lambda o: o.get("kind") == "Namespace"),
                          f"{len(rendered)} objects compared")
                rep.check("chart default render passes the deployment rules", deploy_rules(stripped))
            # Non-default values: every optional branch of the templates renders valid objects.
            custom = ["--set", "namespace.create=true",
                      "--set", "driver.name=nfs.example.org",
                      "--set", "driver.defaultOnDeletePolicy=archive",
                      "--set-string", "driver.mountPermissions=0775",
                      "--set", "driver.logFormat=json",
                      "--set", "kubeletDir=/var/lib/k0s/kubelet",
                      "--set", "controller.replicas=2",
                      "--set", "imagePullSecrets[0].name=regcred",
                      "--set", "controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                               ".nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
                      "--set", "controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                               ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
                      "--set", "storageClasses[0].name=nfs-client",
                      "--set", "storageClasses[0].parameters.server=10.0.0.1",
                      "--set", "storageClasses[0].parameters.share=/srv/k8s",
                      "--set", "storageClasses[0].parameters.subDir=${pvc.metadata.namespace}-${pvc.metadata.name}",
                      "--set", "storageClasses[0].parameters.onDelete=archive",
                      "--set", "storageClasses[0].allowVolumeExpansion=false",
                      "--set", "storageClasses[0].annotations.storageclass\\.kubernetes\\.io/is-default-class=true",
                      "--set", "storageClasses[0].mountOptions={nfsvers=4.2,hard}",
                      "--set", "storageClasses[1].name=nfs-client-retain",
                      "--set", "storageClasses[1].reclaimPolicy=Retain",
                      "--set", "storageClasses[1].parameters.server=10.0.0.1",
                      "--set", "storageClasses[1].parameters.share=/srv/k8s",
                      "--set", "storageClasses[1].mountOptions={nfsvers=3}"]
            objs, err = helm_template(args.helm, chart, custom)
            custom_objs = objs
            if objs is None:
                rep.fail("helm template (non-default values)", err)
            else:
                problems = [q for o in objs for q in schema_problems(o) + apiserver_rules(o) + image_rules(o)]
                stripped = [strip_helm_labels(o) for o in objs]
                problems += deploy_rules(stripped, driver="nfs.example.org")
                problems += namespace_rules(stripped)
                node = find(stripped, "DaemonSet")[0]
                args_ = driver_container(pod_spec(node)).get("args")
                for want in ("--default-ondelete-policy=archive", "--mount-permissions=0775", "--log-format=json"):
                    if want not in args_:
                        problems.append(f"node args lack {want}: {args_}")
                sc0 = find(stripped, "StorageClass", "nfs-client")[0]
                if sc0["parameters"].get("subDir") != "${pvc.metadata.namespace}-${pvc.metadata.name}":
                    problems.append(f"subDir parameter mangled: {sc0['parameters'].get('subDir')!r}")
                rep.check("helm template (non-default values: namespace, driver name, flags, kubeletDir, "
                          "affinity, classes)", problems, f"{len(objs)} objects")

    # ---- 7. the driver binary accepts the flags the manifests give it
    with guard(rep, 'driver command line'):
        rep.section("driver command line (flags in the manifests vs the built binary)")
        binary = find_driver_binary(root)
        if binary is None:
            print("SKIP no built nfs-subdir-csi binary (cargo build, or set NFS_SUBDIR_CSI_BIN)")
        else:
            shown = binary.relative_to(root) if binary.is_relative_to(root) else binary
            objs = plain + (rendered or []) + (custom_objs or [])
            problems, n = cli_flag_problems(binary, objs)
            rep.check(f"every driver flag in deploy/ and the chart exists in `{shown} serve --help`",
                      problems, f"{n} flag uses checked")
            bad = copy.deepcopy(find(plain, "DaemonSet"))
            for o in bad:
                driver_container(pod_spec(o))["args"].append("--node-id=typo")
            q, _ = cli_flag_problems(binary, bad)
            rep.check("self-test: a flag the binary lacks (--node-id) is caught",
                      [] if any("--node-id" in x for x in q) else ["--node-id was accepted"],
                      q[0] if q else "")

    # ---- 8. self-tests: the checks above can fail
    with guard(rep, 'self-tests: the checks above can fail'):
        rep.section("self-tests (the validator must reject broken input)")
        with tempfile.TemporaryDirectory(prefix="nfs-subdir-csi-manifests-") as tmp:
            tmpd = Path(tmp)
            typo_cases = [
                ("node.yaml", "mountPropagation:", "mountPropogation:", "mountPropogation"),
                ("storageclasses.yaml", "reclaimPolicy:", "reclaimPolicyy:", "reclaimPolicyy"),
                ("controller.yaml", "serviceAccountName:", "serviceAcountName:", "serviceAcountName"),
            ]
            for fname, good, bad, word in typo_cases:
                src = deploy / fname
                name = f"typo '{word}' in a copy of deploy/{fname} is rejected"
                if not src.is_file() or good not in src.read_text():
                    rep.fail(name, f"deploy/{fname} has no {good!r} to misspell")
                    continue
                pristine = tmpd / f"pristine-{fname}"
                shutil.copy(src, pristine)
                broken = tmpd / f"typo-{fname}"
                broken.write_text(src.read_text().replace(good, bad, 1))
                ok_problems, _ = validate_file(pristine)
                bad_problems, _ = validate_file(broken)
                if ok_problems:
                    rep.fail(name, ["the unmodified copy did not pass:"] + ok_problems)
                elif not bad_problems:
                    rep.fail(name, "the misspelled copy was ACCEPTED: strict validation is not working")
                elif not any(word in q for q in bad_problems):
                    rep.fail(name, ["rejected, but not for the typo:"] + bad_problems)
                else:
                    rep.ok(name, bad_problems[0])
            dup = tmpd / "dup.yaml"
            dup.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  name: b\n")
            dp, _ = validate_file(dup)
            rep.check("duplicate YAML key is rejected", [] if any("duplicate key" in q for q in dp)
                      else ["a duplicate key was accepted"], dp[0] if dp else "")

    try:
        policy_self_tests(rep, plain)
    except Exception as e:  # noqa: BLE001 - a crash is a failure, not a traceback
        rep.fail("policy self-tests", f"crashed: {type(e).__name__}: {e}")

    print()
    print(f"manifests: {rep.passed} passed, {rep.failed} failed")
    return 0 if rep.failed == 0 else 1


def policy_self_tests(rep: Report, plain: list[dict]) -> None:
    if not find(plain, "Deployment") or not find(plain, "DaemonSet"):
        rep.fail("policy self-tests", "deploy/ lacks the Deployment or the DaemonSet to mutate")
        return
    if plain:
        drifted = copy.deepcopy(plain)
        dep = find(drifted, "Deployment")[0]
        prov = sidecar(pod_spec(dep), "csi-provisioner")
        prov["image"] = prov["image"].rsplit(":", 1)[0] + ":v0.0.0"
        d = compare_sets(drifted, plain, "drifted copy", "deploy/*.yaml")
        rep.check("chart/plain comparison notices a changed sidecar tag",
                  [] if d else ["a changed image tag compared equal"], d[0] if d else "")
        broken = copy.deepcopy(plain)
        ctl = driver_container(pod_spec(find(broken, "Deployment")[0]))
        ctl["securityContext"]["allowPrivilegeEscalation"] = False
        ctl["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
        node = driver_container(pod_spec(find(broken, "DaemonSet")[0]))
        for m in node["volumeMounts"]:
            m.pop("mountPropagation", None)
        for sc in find(broken, "StorageClass"):
            sc["provisioner"] = "nfs.csi.k8s.io"
        q = [x for o in broken for x in apiserver_rules(o)] + deploy_rules(broken)
        wants = ["allowPrivilegeEscalation false with CAP_SYS_ADMIN", "Bidirectional", "provisioner 'nfs.csi.k8s.io'"]
        missing = [w for w in wants if not any(w in x for x in q)]
        rep.check("policy checks notice APE+SYS_ADMIN, a lost Bidirectional mount, a foreign provisioner",
                  [f"not caught: {w}" for w in missing], f"{len(q)} problems found")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"check_manifests.py crashed: {type(e).__name__}: {e}")
        print("manifests: 0 passed, 1 failed")
        sys.exit(1)
