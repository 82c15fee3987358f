#!/usr/bin/env python3
"""Checks the Kubernetes manifests of nfs-subdir-csi.

Run by tests/e2e/manifests/run.sh, which provides the tools (a venv with
kubernetes-validate, a pinned Helm, a kustomize). Checks, each printed as one
PASS/FAIL line:

  * every YAML in deploy/ (plain manifests), deploy/provisioner/ (the
    sidecar-free mode) and examples/ and the rendered Helm chart validates
    against the Kubernetes OpenAPI schemas in strict mode (unknown fields
    fail), for the newest and the oldest supported version;
  * rules the API server enforces beyond the schema, and the project's own
    deployment rules (driver name everywhere, CSIDriver fields, sidecar flags,
    privileges, mount propagation, RBAC verbs, pinned images, ...);
  * deploy/provisioner/: leader election with the pod name as identity, the
    `nfs:` volume at --default-share equal to --nfs-server/--nfs-path, least
    privilege, exactly the RBAC tests/e2e/k8s/scenario-b.sh runs with, classes of
    its provisioner name, nothing clashing with deploy/;
  * the chart's default render equals the plain manifests object by object,
    and its render with `mode=provisioner` equals deploy/provisioner/ (and
    passes its rules, with default and with changed values; `helm lint
    --strict` with both modes);
  * `kustomize build` of deploy/ and deploy/provisioner/ equals their files,
    and deploy/README.md's overlays of deploy/provisioner/ build and pass;
  * the examples' storageClassName values exist in deploy/;
  * observability.py / layout.py: the node DaemonSet is one container registering itself, each
    driver's liveness probe is its --http-address port; deploy/components/sidecars/ builds the
    registrar + livenessprobe layout and equals the chart's sidecars.conventionalLayout=true;
    the opt-in ServiceMonitor/PodMonitor render and reach every driver's `http` port; the
    Grafana dashboard's PromQL names only metrics of the contract (the binary's /metrics, else
    README's table) and shows every family;
  * when a built binary exists (target/{release,debug}/nfs-subdir-csi or
    $NFS_SUBDIR_CSI_BIN), every flag the manifests pass to it is one it has
    (`serve --help` / `provisioner --help`), and every env var one it reads;
  * self-tests proving a misspelled field, a chart/plain drift and a broken
    policy are each caught.

Prints the result lines of tests/e2e/lib.sh and ends with `manifests: N passed, N failed`; exits 1
if anything failed. A check that needs a missing tool (kustomize, the built driver) is a SKIP, and a
FAIL under CI=true.
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
except ImportError:  # pragma: no cover - run.sh installs it
    sys.exit("kubernetes-validate is not installed (run tests/e2e/manifests/run.sh)")

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
# The driver's subcommands that run in a pod: `serve` (CSI) and `provisioner` (sidecar-free).
DRIVER_SUBCOMMANDS = ("serve", "provisioner")
# deploy/provisioner/: the sidecar-free mode, a kustomization of its own.
PROVISIONER_DIR = "provisioner"
# The least-privilege RBAC of `nfs-subdir-csi provisioner`, as tests/e2e/k8s/scenario-b.sh's rbac()
# proves it on a real API server: (apiGroup, resource) -> verbs. The mode must get exactly this.
PROVISIONER_CLUSTER_RULES = {
    ("", "persistentvolumeclaims"): {"get", "list", "watch"},
    # A grown claim's new size goes into its status (src/provisioner/resize.rs).
    ("", "persistentvolumeclaims/status"): {"patch"},
    ("", "persistentvolumes"): {"get", "list", "watch", "create", "delete", "patch"},
    ("storage.k8s.io", "storageclasses"): {"get", "list", "watch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
PROVISIONER_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
# StorageClass parameters the driver knows (case-insensitive), besides csi.storage.k8s.io/*.
# pathPattern, archiveOnDelete and volumeSource are nfs-subdir-external-provisioner's and the
# provisioner mode's; the CSI path accepts them too.
PROVISIONER_SC_PARAMS = {"server", "share", "subdir", "pathpattern", "ondelete", "archiveondelete",
                         "volumesource", "mountpermissions", "mountoptions"}


# --------------------------------------------------------------------------
# Reporting


class Report:
    """Result lines in the format of tests/e2e/lib.sh: `PASS <name> (<note>)`, `FAIL <name>: <why>`
    (problems listed under it), `SKIP <name>: <why>`."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)

    def fail(self, name: str, problems: Iterable[str] | str) -> None:
        self.failed += 1
        if isinstance(problems, str):
            problems = [problems]
        problems = list(problems)
        if len(problems) == 1:
            print(f"FAIL {name}: {problems[0]}", flush=True)
            return
        print(f"FAIL {name}: {len(problems)} problems", flush=True)
        for p in problems[:40]:
            print(f"     - {p}", flush=True)
        if len(problems) > 40:
            print(f"     - ... and {len(problems) - 40} more", flush=True)

    def missing_tool(self, name: str, why: str) -> None:
        """A check that cannot run for want of a tool: SKIP, and under CI=true a FAIL."""
        if os.environ.get("CI") == "true":
            self.fail(name, f"{why} (CI=true: a missing tool is a failure)")
        else:
            self.skipped += 1
            print(f"SKIP {name}: {why}", flush=True)

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


def driver_container(ps: dict, subcommands: Iterable[str] = DRIVER_SUBCOMMANDS) -> dict | None:
    """The container running our binary: one whose command/args name a driver subcommand."""
    for c in containers(ps):
        words = [str(a) for a in (c.get("args") or []) + (c.get("command") or [])]
        if any(sub in words for sub in subcommands):
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


def deploy_rules(objs: list[dict], driver: str = DRIVER_NAME, layout: str = "single") -> list[str]:
    """The deployment rules of issue 4 / DESIGN.md, on a set of plain objects. layout: "single"
    (one-container node, the driver's own registration and /healthz) or "sidecars" (the
    registrar and livenessprobe sidecars of deploy/components/sidecars/); see layout.py."""
    import layout as layout_rules  # tests/e2e/manifests/layout.py (imports this module back)
    p: list[str] = layout_rules.layout_rules(objs, driver, layout)

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
# The sidecar-free mode: deploy/provisioner/


def setting(c: dict, flag: str, env: str | None) -> tuple[str, str] | None:
    """What the binary sees for `flag` (or its env var `env`) in container `c`: ("value", v) or
    ("fieldRef", path), with $(VAR) in an arg resolved through the container's env; None when
    unset. Flags win over env vars, as with clap."""
    env_of = {e.get("name"): e for e in c.get("env") or []}

    def from_env(name: str) -> tuple[str, str] | None:
        e = env_of.get(name)
        if e is None:
            return None
        if "value" in e:
            return ("value", str(e["value"]))
        ref = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        return ("fieldRef", ref) if ref else ("other", repr(e.get("valueFrom")))

    v = flag_value(c, flag)
    if v is not None:
        m = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", v)
        if m:
            return from_env(m.group(1)) or ("value", v)
        return ("value", v)
    return from_env(env) if env else None


def rbac_triples(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule.get("apiGroups") or []
            for r in rule.get("resources") or [] for v in rule.get("verbs") or []}


def expand(rules: dict[tuple[str, str], set[str]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in rules.items() for v in verbs}


def tested_provisioner_rbac(root: Path) -> tuple[set, set] | None:
    """The ClusterRole and Role rules of tests/e2e/k8s/scenario-b.sh's rbac() for the full account,
    as (cluster triples, lease triples); None when the script is not there or not in that shape."""
    f = root / "tests" / "e2e" / "k8s" / "scenario-b.sh"
    if not f.is_file():
        return None
    text = f.read_text()
    full = re.search(r'\$\(rbac nsc-provisioner "([^"]+)"\)', text)
    lines = re.findall(r"(?m)^- \{apiGroups: \[([^\]]*)\], resources: \[([^\]]*)\], verbs: \[([^\]]*)\]\}",
                       text)
    if not full or not lines:
        return None
    split = lambda x: [w.strip().strip('"') for w in x.split(",") if w.strip()]  # noqa: E731
    cluster, lease = set(), set()
    for groups, resources, verbs in lines:
        verbs = verbs.replace("$2", full.group(1))
        t = rbac_triples([{"apiGroups": split(groups), "resources": split(resources), "verbs": split(verbs)}])
        (lease if "coordination.k8s.io" in groups else cluster).update(t)
    return cluster, lease


def provisioner_rules(objs: list[dict], base: list[dict], base_install: bool = True) -> list[str]:
    """deploy/provisioner/: one Deployment of `nfs-subdir-csi provisioner` with leader election,
    the default share an `nfs:` volume matching --nfs-server/--nfs-path, exactly the tested RBAC,
    StorageClasses of its provisioner name, and nothing that clashes with deploy/.
    base_install=False is for overlays (deploy/README.md's): they may drop the example class and
    add CAP_SYS_ADMIN, with what mounting then needs."""
    import layout  # tests/e2e/manifests/layout.py
    p: list[str] = layout.provisioner_http_rules(objs)
    deps = find(objs, "Deployment")
    if len(deps) != 1:
        return p + [f"expected one Deployment, found {[ident(d) for d in deps]}"]
    dep = deps[0]
    ns = dep["metadata"].get("namespace")
    ps = pod_spec(dep) or {}
    c = driver_container(ps, ("provisioner",))
    if c is None:
        return p + [f"{ident(dep)}: no container runs `nfs-subdir-csi provisioner`"]
    argv = [str(a) for a in (c.get("command") or [])[1:] + (c.get("args") or [])]
    if not argv or argv[0] != "provisioner":
        p.append(f"{ident(dep)}: `provisioner` must be the first argument, got {argv[:2]}")
    base_ctl = find(base, "Deployment", "nfs-subdir-csi-controller")
    if base_ctl and base_install:
        want = (driver_container(pod_spec(base_ctl[0]) or {}) or {}).get("image")
        if c.get("image") != want:
            p.append(f"{ident(dep)}: image {c.get('image')!r}, deploy/controller.yaml runs {want!r}")

    # Leader election: on, two replicas, identity = pod name, Lease in the pod's namespace.
    replicas = (dep.get("spec") or {}).get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 2:
        p.append(f"{ident(dep)}: replicas {replicas!r}, want at least 2 (one leader, one standby)")
    le = setting(c, "--leader-elect", "LEADER_ELECT")
    if le is not None and le[1].lower() != "true":
        p.append(f"{ident(dep)}: leader election is off ({le[1]}); two replicas would both act")
    ident_ = setting(c, "--leader-election-identity", "LEADER_ELECTION_IDENTITY")
    if ident_ != ("fieldRef", "metadata.name"):
        p.append(f"{ident(dep)}: LEADER_ELECTION_IDENTITY must come from the pod name "
                 f"(fieldRef metadata.name), got {ident_}")
    le_ns = setting(c, "--leader-election-namespace", "POD_NAMESPACE")
    if le_ns not in (("fieldRef", "metadata.namespace"), ("value", ns)):
        p.append(f"{ident(dep)}: the Lease namespace must be the pod's ({ns}), got {le_ns} "
                 f"(the binary's default is 'default')")

    # The default share: an nfs: volume at --default-share, the same export as --nfs-server/--nfs-path.
    share = setting(c, "--default-share", "DEFAULT_SHARE")
    server = setting(c, "--nfs-server", "NFS_SERVER")
    path = setting(c, "--nfs-path", "NFS_PATH")
    vols = {v.get("name"): v for v in ps.get("volumes") or []}
    if share is None or share[0] != "value" or not share[1].startswith("/"):
        p.append(f"{ident(dep)}: --default-share must be an absolute path, got {share}")
    else:
        mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == share[1]]
        if not mounts:
            p.append(f"{ident(dep)}: --default-share {share[1]} is not a volumeMount of the container")
        else:
            m = mounts[0]
            if m.get("readOnly") or m.get("subPath") or m.get("subPathExpr"):
                p.append(f"{ident(dep)}: the default share mount must be read-write and whole: {m}")
            nfs = (vols.get(m.get("name")) or {}).get("nfs")
            if not nfs:
                p.append(f"{ident(dep)}: volume {m.get('name')!r} at --default-share is not an `nfs:` volume")
            else:
                if nfs.get("readOnly"):
                    p.append(f"{ident(dep)}: the nfs: volume {m.get('name')} is readOnly")
                for what, got, want in (("server", server, nfs.get("server")), ("path", path, nfs.get("path"))):
                    if got is None or got[0] != "value":
                        p.append(f"{ident(dep)}: --nfs-{what} is {got}, want the nfs: volume's {what} {want!r}")
                    elif got[1].rstrip("/") != str(want).rstrip("/"):
                        p.append(f"{ident(dep)}: --nfs-{what} {got[1]!r} differs from the nfs: volume's "
                                 f"{what} {want!r}: PVs would point at another directory")

    # Least privilege: no privileged mode, no CAP_SYS_ADMIN, no escalation, read-only root.
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    if sc.get("privileged"):
        p.append(f"{ident(dep)}: the provisioner must not be privileged")
    sys_admin = bool({"SYS_ADMIN", "CAP_SYS_ADMIN"} & set(caps.get("add") or []))
    if sys_admin and base_install:
        p.append(f"{ident(dep)}: the provisioner mounts nothing for its default share; no CAP_SYS_ADMIN")
    elif sys_admin:
        # Working mounts for classes with their own server: what deploy/controller.yaml has.
        aa = (sc.get("appArmorProfile") or (ps.get("securityContext") or {}).get("appArmorProfile") or {})
        if aa.get("type") != "Unconfined":
            p.append(f"{ident(dep)}: with CAP_SYS_ADMIN the container needs appArmorProfile Unconfined to mount")
        wmd = setting(c, "--working-mount-dir", "WORKING_MOUNT_DIR")
        wm = [m for m in c.get("volumeMounts") or [] if wmd and m.get("mountPath") == wmd[1]]
        if not wm or "emptyDir" not in (vols.get(wm[0].get("name")) or {}):
            p.append(f"{ident(dep)}: with CAP_SYS_ADMIN, --working-mount-dir ({wmd}) must be an emptyDir "
                     f"mount (the root filesystem is read-only)")
    if "ALL" not in (caps.get("drop") or []):
        p.append(f"{ident(dep)}: capabilities must drop ALL")
    if sc.get("allowPrivilegeEscalation") is not False and not sys_admin:
        p.append(f"{ident(dep)}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        p.append(f"{ident(dep)}: readOnlyRootFilesystem must be true")
    for v in ps.get("volumes") or []:
        if "hostPath" in v:
            p.append(f"{ident(dep)}: volume {v.get('name')} is a hostPath; the provisioner needs none")
    if ps.get("hostNetwork"):
        p.append(f"{ident(dep)}: hostNetwork is not needed")

    # RBAC: exactly the tested rules, bound to the pod's ServiceAccount.
    sa = ps.get("serviceAccountName")
    if not [o for o in find(objs, "ServiceAccount", sa) if o["metadata"].get("namespace") == ns]:
        p.append(f"{ident(dep)}: serviceAccountName {sa!r} has no ServiceAccount in {ns}")

    def bound(kind: str, role_kind: str, role_ns: str | None) -> set[tuple[str, str, str]]:
        out: set[tuple[str, str, str]] = set()
        for b in find(objs, kind):
            ref = b.get("roleRef") or {}
            roles = [r for r in find(objs, role_kind, ref.get("name"))
                     if r["metadata"].get("namespace") == (b["metadata"].get("namespace") if role_ns else None)]
            if ref.get("kind") != role_kind or not roles:
                p.append(f"{ident(b)}: roleRef {ref.get('kind')}/{ref.get('name')} does not exist here")
            subs = b.get("subjects") or []
            for s_ in subs:
                if (s_.get("kind"), s_.get("name"), s_.get("namespace")) != ("ServiceAccount", sa, ns):
                    p.append(f"{ident(b)}: binds {s_.get('kind')} {s_.get('namespace')}/{s_.get('name')}, "
                             f"not the provisioner's ServiceAccount {ns}/{sa}")
            if role_ns and b["metadata"].get("namespace") != role_ns:
                p.append(f"{ident(b)}: in namespace {b['metadata'].get('namespace')}, the Lease is in {role_ns}")
            if any(s_.get("name") == sa for s_ in subs):
                for r in roles:
                    out |= rbac_triples(r.get("rules") or [])
        return out

    cluster = bound("ClusterRoleBinding", "ClusterRole", None)
    lease_ns = le_ns[1] if le_ns and le_ns[0] == "value" else ns
    lease = bound("RoleBinding", "Role", lease_ns)
    for got, want, what in ((cluster, expand(PROVISIONER_CLUSTER_RULES), "ClusterRole"),
                            (lease, expand(PROVISIONER_LEASE_RULES), f"Role in {lease_ns}")):
        for g, r, v in sorted(want - got):
            p.append(f"{what}: lacks {v} on {r}{'.' + g if g else ''} (tests/e2e/k8s/scenario-b.sh needs it)")
        for g, r, v in sorted(got - want):
            p.append(f"{what}: grants {v} on {r}{'.' + g if g else ''}, beyond the tested minimal RBAC")
    for r in find(objs, "ClusterRole") + find(objs, "Role"):
        for rule in r.get("rules") or []:
            if "*" in (rule.get("verbs") or []) or "*" in (rule.get("resources") or []):
                p.append(f"{ident(r)}: rule uses a wildcard: {rule}")

    # StorageClasses: answered by this provisioner, known parameters, nfs: PVs on the default share.
    name = setting(c, "--provisioner-name", "PROVISIONER_NAME")
    name = name[1] if name and name[0] == "value" else DRIVER_NAME
    scs = find(objs, "StorageClass")
    if not scs and base_install:
        p.append("no StorageClass example")
    for s_ in scs:
        sn = s_["metadata"]["name"]
        if s_.get("provisioner") != name:
            p.append(f"StorageClass {sn}: provisioner {s_.get('provisioner')!r}, the Deployment's "
                     f"--provisioner-name is {name!r}")
        params = {str(k): str(v) for k, v in (s_.get("parameters") or {}).items()}
        for k in params:
            if k.lower() not in PROVISIONER_SC_PARAMS and not k.startswith("csi.storage.k8s.io/"):
                p.append(f"StorageClass {sn}: parameter {k!r} is unknown to the driver")
        lower = {k.lower(): v for k, v in params.items()}
        if "server" not in lower and lower.get("volumesource", "csi").strip().lower() != "nfs":
            p.append(f"StorageClass {sn}: on the default share it needs volumeSource: nfs (csi PVs "
                     f"would need deploy/'s node plugin)")
        if s_.get("volumeBindingMode", "Immediate") not in ("Immediate", "WaitForFirstConsumer"):
            p.append(f"StorageClass {sn}: volumeBindingMode {s_.get('volumeBindingMode')!r}")
        if sn in ("nfs-client", "nfs-client-retain"):
            p.append(f"StorageClass {sn}: deploy/storageclasses.yaml owns that name (and parameters "
                     f"are immutable); use another")

    # Living next to deploy/: the shared Namespace identical, every other object distinctly named.
    base_idx = index(base)
    for o in objs:
        other = base_idx.get(ident(o))
        if o.get("kind") == "Namespace":
            if other is None:
                p.append(f"{ident(o)}: deploy/ defines no such Namespace")
            else:
                p += [f"{ident(o)} differs from deploy/namespace.yaml: {d}"
                      for d in diff(o, other, "", "deploy/provisioner/", "deploy/")]
        elif other is not None:
            p.append(f"{ident(o)}: deploy/ has an object of the same kind and name; applying one "
                     f"install would overwrite the other's")
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
    """Every subcommand and --flag the manifests pass to the driver must exist in its --help, and
    every env var of the driver container must be one that subcommand reads (`[env: NAME=]`) or
    one its args use as $(NAME)."""
    rc, top, err = run([str(binary), "--help"])
    if rc != 0:
        return [f"`{binary} --help` exited {rc}: {err.strip()}"], 0
    problems: list[str] = []
    known: dict[str, set[str]] = {}
    known_env: dict[str, set[str]] = {}
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
                known[sub], known_env[sub] = set(), set()
            else:
                known[sub] = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", out))
                known_env[sub] = set(re.findall(r"\[env: ([A-Za-z_][A-Za-z0-9_]*)=", out))
        if not known[sub]:  # no such subcommand: reported once above
            continue
        for a in argv[1:]:
            if a.startswith("--"):
                n += 1
                flag = a.split("=", 1)[0]
                if flag not in known[sub]:
                    problems.append(f"{ident(o)}: `{sub} {flag}` is not a flag of the binary "
                                    f"(known: {' '.join(sorted(known[sub]))})")
        used = {r for a in argv for r in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a)}
        for e in c.get("env") or []:
            name = str(e.get("name"))
            n += 1
            if name not in known_env[sub] and name not in used and name != "RUST_LOG":
                problems.append(f"{ident(o)}: env {name} is neither read by `{sub}` nor used as $({name}) "
                                f"in its args (`{sub} --help` reads: {' '.join(sorted(known_env[sub]))})")
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
    ap.add_argument("--snapshot-crds", help="config/crd of external-snapshotter/client/v8 (snapshots.py)")
    args = ap.parse_args()
    # layout.py and monitoring.py import this module by name: let them find this one.
    sys.modules.setdefault("check_manifests", sys.modules[__name__])
    root: Path = args.root.resolve()
    deploy = root / "deploy"
    chart = deploy / "helm" / "nfs-subdir-csi"
    rep = Report()

    print(f"kubernetes-validate {kubernetes_validate.__version__}; schemas for Kubernetes "
          f"{' and '.join(K8S_VERSIONS)}; strict (unknown fields fail)")

    # ---- 1. strict schema validation of every file
    rep.section("schema: deploy/*.yaml, deploy/provisioner/*.yaml and examples/**/*.yaml")
    plain_files = sorted(p for p in deploy.glob("*.yaml") if p.name not in NOT_K8S_OBJECTS)
    plain_files += sorted(p for p in deploy.glob("*.yml") if p.name not in NOT_K8S_OBJECTS)
    prov_dir = deploy / PROVISIONER_DIR
    prov_files = sorted(p for p in list(prov_dir.glob("*.yaml")) + list(prov_dir.glob("*.yml"))
                        if p.name not in NOT_K8S_OBJECTS)
    example_files = sorted(list((root / "examples").rglob("*.yaml")) + list((root / "examples").rglob("*.yml")))
    if not plain_files:
        rep.fail("deploy/ has manifests", "no deploy/*.yaml found")
    if not prov_files:
        rep.fail("deploy/provisioner/ has manifests", "no deploy/provisioner/*.yaml found")
    plain: list[dict] = []
    prov: list[dict] = []
    plain_by_file: dict[Path, list[dict]] = {}
    for f in plain_files + prov_files + example_files:
        problems, n = validate_file(f)
        rep.check(f"schema {f.relative_to(root)}", problems, f"{n} object{'s' if n != 1 else ''}")
        try:  # a schema failure is reported above; the later checks still see the objects
            docs = load_file(f)
        except (yaml.YAMLError, ValueError):
            continue
        plain_by_file[f] = docs
        if f.parent == deploy:
            plain += docs
        elif f.parent == prov_dir:
            prov += docs

    sc_names: set[str] = set()
    overlay_objs: list[dict] = []
    rendered: list[dict] | None = None
    custom_objs: list[dict] | None = None
    prov_rendered: list[dict] | None = None
    prov_custom_objs: list[dict] | None = None
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

    # ---- 3b. the sidecar-free mode
    with guard(rep, 'sidecar-free provisioner (deploy/provisioner/)'):
        rep.section("sidecar-free provisioner (deploy/provisioner/)")
        rep.check("provisioner Deployment: 2 replicas, leader election (identity = pod name, Lease in its "
                  "namespace), nfs: volume = --default-share with --nfs-server/--nfs-path, least privilege; "
                  "exactly the tested RBAC; StorageClasses of its name with volumeSource nfs; no clash with deploy/",
                  provisioner_rules(prov, plain),
                  f"{len(prov)} objects")
        rep.check(f"deploy/provisioner/: namespaced objects in {NAMESPACE}, which its namespace.yaml defines",
                  namespace_rules(prov))
        tested = tested_provisioner_rbac(root)
        if tested is None:
            rep.fail("tested RBAC vs tests/e2e/k8s/scenario-b.sh",
                     "rbac() not found there in the expected shape: update tested_provisioner_rbac()")
        else:
            cl, le = tested
            d = [f"ClusterRole rules: {t} only in scenario-b.sh" for t in sorted(cl - expand(PROVISIONER_CLUSTER_RULES))]
            d += [f"ClusterRole rules: {t} only in check_manifests.py" for t in sorted(expand(PROVISIONER_CLUSTER_RULES) - cl)]
            d += [f"Role rules: {t} only in scenario-b.sh" for t in sorted(le - expand(PROVISIONER_LEASE_RULES))]
            d += [f"Role rules: {t} only in check_manifests.py" for t in sorted(expand(PROVISIONER_LEASE_RULES) - le)]
            rep.check("the minimal RBAC checked here is the one tests/e2e/k8s/scenario-b.sh runs with", d,
                      f"{len(cl)} + {len(le)} verb grants")

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
            rep.missing_tool("kustomize build of deploy/", "no kustomize or kubectl available")
        kfile = prov_dir / "kustomization.yaml"
        try:
            kust = load_file(kfile)[0]
            listed = set(kust.get("resources") or [])
            on_disk = {p.name for p in prov_files}
            problems = [f"{n}: in deploy/provisioner/ but not in its kustomization.yaml" for n in sorted(on_disk - listed)]
            problems += [f"{n}: listed in deploy/provisioner/kustomization.yaml but missing"
                         for n in sorted(listed - on_disk)]
        except (OSError, yaml.YAMLError, IndexError, ValueError) as e:
            problems = [f"{kfile}: {e}"]
        rep.check("deploy/provisioner/kustomization.yaml lists every deploy/provisioner/*.yaml", problems)
        if args.kustomize:
            rc, out, err = run(args.kustomize.split() + [str(prov_dir)])
            if rc != 0:
                rep.fail(f"`{args.kustomize} deploy/provisioner/` builds", f"exit {rc}: {err.strip()}")
            else:
                built = load_docs(out)
                rep.check(f"`{args.kustomize} deploy/provisioner/` equals deploy/provisioner/*.yaml",
                          compare_sets(built, prov, "kustomize build", "deploy/provisioner/*.yaml"),
                          f"{len(built)} objects")
            # The overlays deploy/README.md tells users to write must build and stay valid.
            overlays = readme_overlays(deploy / "README.md")
            if len(overlays) < 3:
                rep.fail("deploy/README.md: the sidecar-free section's overlays found",
                         f"found {len(overlays)} (want the install overlay, the mount patch, the migration overlay)")
            with tempfile.TemporaryDirectory(prefix="nfs-subdir-csi-overlays-") as tmp:
                before: list[dict] | None = None
                for i, (title, text) in enumerate(overlays):
                    built, err = build_overlay(args.kustomize, prov_dir, text, Path(tmp) / f"o{i}")
                    name = f"deploy/README.md overlay `{title}` builds and passes the provisioner rules"
                    if built is None:
                        rep.fail(name, err)
                        continue
                    overlay_objs += built
                    problems = []
                    if " + the patch " in title and before is not None and not compare_sets(built, before, "a", "b"):
                        problems.append("the added patch changed nothing")
                    before = built
                    problems += [q for o in built for q in schema_problems(o) + apiserver_rules(o) + image_rules(o)]
                    problems += provisioner_rules(built, plain, base_install=False) + namespace_rules(built)
                    c = driver_container(pod_spec(find(built, "Deployment")[0]) or {}, ("provisioner",)) \
                        if find(built, "Deployment") else None
                    changed = {k: setting(c, f, e) for k, f, e in (
                        ("name", "--provisioner-name", "PROVISIONER_NAME"),
                        ("server", "--nfs-server", "NFS_SERVER"))} if c else {}
                    if "migrate" in title and changed.get("name") == ("value", DRIVER_NAME):
                        problems.append("the migration overlay leaves --provisioner-name at the default")
                    if changed.get("server") == ("value", "nfs-server.example.com"):
                        problems.append("the overlay's NFS_SERVER patch did not apply")
                    rep.check(name, problems, f"{len(built)} objects")
        else:
            rep.missing_tool("kustomize build of deploy/provisioner/ and of deploy/README.md's overlays",
                             "no kustomize or kubectl available")

    # ---- 6. Helm chart
    with guard(rep, 'Helm chart'):
        rep.section("Helm chart deploy/helm/nfs-subdir-csi")
        if not args.helm:
            rep.fail("helm available", "no helm binary given (run.sh installs one)")
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

            # mode=provisioner: the sidecar-free mode, whose default render is deploy/provisioner/.
            prov_mode = ["--set", "mode=provisioner"]
            rc, out, err = run([args.helm, "lint", "--strict", str(chart), "--namespace", NAMESPACE,
                                "--kube-version", K8S_VERSIONS[0]] + prov_mode)
            rep.check("helm lint --strict --set mode=provisioner",
                      [] if rc == 0 else (out + err).strip().splitlines())
            prov_rendered, err = helm_template(args.helm, chart, prov_mode)
            if prov_rendered is None:
                rep.fail("helm template --set mode=provisioner", err)
            else:
                problems = [q for o in prov_rendered for q in schema_problems(o) + apiserver_rules(o) + image_rules(o)]
                rep.check("helm template --set mode=provisioner: strict schema + API-server rules", problems,
                          f"{len(prov_rendered)} objects")
                stripped = [strip_helm_labels(o) for o in prov_rendered]
                rep.check("chart render with mode=provisioner equals deploy/provisioner/*.yaml (all fields; "
                          "Helm's own labels and the Namespace aside; no CSI object)",
                          compare_sets(stripped, prov, "the chart (mode=provisioner)", "deploy/provisioner/*.yaml",
                                       ignore=lambda o: o.get("kind") == "Namespace"),
                          f"{len(prov_rendered)} objects compared")
                rep.check("chart render with mode=provisioner passes the provisioner rules",
                          provisioner_rules(stripped, plain))
            # mode=provisioner with every value changed.
            prov_custom = prov_mode + [
                "--set", "namespace.create=true",
                "--set", "provisioner.name=k8s-sigs.io/nfs-subdir-external-provisioner",
                "--set", "provisioner.nfs.server=10.3.243.101",
                "--set", "provisioner.nfs.path=/ifs/kubernetes",
                "--set", "provisioner.replicas=3",
                "--set", "image.repository=registry.example.com/nfs-subdir-csi",
                "--set", "image.tag=0.1.1",
                "--set", "imagePullSecrets[0].name=regcred",
                "--set", "driver.defaultOnDeletePolicy=archive",
                "--set-string", "driver.mountPermissions=0775",
                "--set", "driver.logFormat=json",
                "--set", "provisioner.extraArgs={--operation-timeout=60}",
                "--set", "provisioner.resources.limits.memory=1Gi",
                "--set", "provisioner.storageClasses[0].name=managed-nfs-storage",
                "--set", "provisioner.storageClasses[0].parameters.volumeSource=nfs",
                "--set", "provisioner.storageClasses[0].parameters.pathPattern=${.PVC.namespace}/${.PVC.name}",
                "--set", "provisioner.storageClasses[0].parameters.archiveOnDelete=false",
                "--set", "provisioner.storageClasses[0].mountOptions={nfsvers=4.1}"]
            objs, err = helm_template(args.helm, chart, prov_custom)
            prov_custom_objs = objs
            if objs is None:
                rep.fail("helm template (mode=provisioner, non-default values)", err)
            else:
                problems = [q for o in objs for q in schema_problems(o) + apiserver_rules(o) + image_rules(o)]
                stripped = [strip_helm_labels(o) for o in objs]
                problems += provisioner_rules(stripped, plain, base_install=False) + namespace_rules(stripped)
                problems += [f"{ident(o)}: a CSI-mode object in mode=provisioner" for o in stripped
                             if o.get("kind") in ("CSIDriver", "DaemonSet")]
                dep = find(stripped, "Deployment")
                c = driver_container(pod_spec(dep[0]) or {}, ("provisioner",)) if dep else None
                if c is None:
                    problems.append("no provisioner Deployment")
                else:
                    want = {("--provisioner-name", "PROVISIONER_NAME"): "k8s-sigs.io/nfs-subdir-external-provisioner",
                            ("--nfs-server", "NFS_SERVER"): "10.3.243.101",
                            ("--nfs-path", "NFS_PATH"): "/ifs/kubernetes"}
                    for (f, e), v in want.items():
                        if setting(c, f, e) != ("value", v):
                            problems.append(f"{f}: {setting(c, f, e)}, want {v!r}")
                    if dep[0]["spec"].get("replicas") != 3:
                        problems.append(f"replicas {dep[0]['spec'].get('replicas')!r}, want 3")
                    if c.get("image") != "registry.example.com/nfs-subdir-csi:0.1.1":
                        problems.append(f"image {c.get('image')!r}")
                    for a in ("--default-ondelete-policy=archive", "--mount-permissions=0775",
                              "--log-format=json", "--operation-timeout=60"):
                        if a not in (c.get("args") or []):
                            problems.append(f"args lack {a}: {c.get('args')}")
                    if ((c.get("resources") or {}).get("limits") or {}).get("memory") != "1Gi":
                        problems.append(f"resources not applied: {c.get('resources')}")
                sc = find(stripped, "StorageClass", "managed-nfs-storage")
                if not sc or (sc[0].get("parameters") or {}).get("pathPattern") != "${.PVC.namespace}/${.PVC.name}":
                    problems.append(f"StorageClass managed-nfs-storage missing or pathPattern mangled: {sc}")
                rep.check("helm template (mode=provisioner, non-default values: namespace, provisioner name, "
                          "NFS export, replicas, image, flags, resources, classes)", problems, f"{len(objs)} objects")
            objs, err = helm_template(args.helm, chart, ["--set", "mode=both"])
            rep.check("self-test: an unknown mode (mode=both) fails the render",
                      [] if objs is None and "mode must be csi or provisioner" in err
                      else [f"mode=both rendered or failed otherwise: {err or 'rendered'}"])

    # ---- 6b. one-container node, sidecar component, monitors, dashboard (observability.py)
    obs_objs: list[dict] = []
    with guard(rep, 'observability'):
        import observability  # tests/e2e/manifests/observability.py
        obs_objs = observability.run(rep, root, chart, args.helm, args.kustomize, plain,
                                     find_driver_binary(root))

    # ---- 6c. csi-snapshotter, VolumeSnapshotClasses, the optional snapshot-controller (snapshots.py)
    with guard(rep, 'snapshots'):
        import snapshots  # tests/e2e/manifests/snapshots.py
        snapshots.run(rep, root, chart, args.helm, plain, rendered, snapshots.crds_dir(args.snapshot_crds))

    # ---- 7. the driver binary accepts the flags the manifests give it
    with guard(rep, 'driver command line'):
        rep.section("driver command line (flags in the manifests vs the built binary)")
        binary = find_driver_binary(root)
        if binary is None:
            rep.missing_tool("driver command line", "no built nfs-subdir-csi binary (cargo build, or set NFS_SUBDIR_CSI_BIN)")
        else:
            shown = binary.relative_to(root) if binary.is_relative_to(root) else binary
            objs = (plain + prov + overlay_objs + (rendered or []) + (custom_objs or [])
                    + (prov_rendered or []) + (prov_custom_objs or []) + obs_objs)
            problems, n = cli_flag_problems(binary, objs)
            rep.check(f"every driver flag and env var in deploy/, deploy/provisioner/ and the chart exists in "
                      f"`{shown} serve --help` / `provisioner --help`",
                      problems, f"{n} flag and env uses checked")
            bad = copy.deepcopy(find(plain, "DaemonSet"))
            for o in bad:
                driver_container(pod_spec(o))["args"].append("--node-id=typo")
            q, _ = cli_flag_problems(binary, bad)
            rep.check("self-test: a flag the binary lacks (--node-id) is caught",
                      [] if any("--node-id" in x for x in q) else ["--node-id was accepted"],
                      q[0] if q else "")
            bad = copy.deepcopy(find(prov, "Deployment"))
            for o in bad:
                c = driver_container(pod_spec(o))
                c["args"].append("--leader-election-id=typo")
                c.setdefault("env", []).append({"name": "LEADER_ELECTION_ID", "value": "typo"})
                c["args"].append("--log-format=$(LOG_LEVEL)")
                c["env"].append({"name": "LOG_LEVEL", "value": "json"})
            q, _ = cli_flag_problems(binary, bad)
            missing = [w for w in ("`provisioner --leader-election-id`", "env LEADER_ELECTION_ID ")
                       if not any(w in x for x in q)]
            missing += [f"env LOG_LEVEL (used as $(LOG_LEVEL)) was flagged: {x}" for x in q if "LOG_LEVEL" in x]
            rep.check("self-test: a provisioner flag (--leader-election-id) and env var (LEADER_ELECTION_ID) "
                      "the binary lacks are caught", missing, f"{len(q)} problems found")

    # ---- 8. self-tests: the checks above can fail
    with guard(rep, 'self-tests: the checks above can fail'):
        rep.section("self-tests (the validator must reject broken input)")
        with tempfile.TemporaryDirectory(prefix="nfs-subdir-csi-manifests-") as tmp:
            tmpd = Path(tmp)
            typo_cases = [
                ("node.yaml", "mountPropagation:", "mountPropogation:", "mountPropogation"),
                ("storageclasses.yaml", "reclaimPolicy:", "reclaimPolicyy:", "reclaimPolicyy"),
                ("controller.yaml", "serviceAccountName:", "serviceAcountName:", "serviceAcountName"),
                ("provisioner/deployment.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:",
                 "readOnlyRootFileSystem"),
                ("provisioner/storageclass.yaml", "volumeBindingMode:", "volumeBindingModes:",
                 "volumeBindingModes"),
            ]
            for fname, good, bad, word in typo_cases:
                src = deploy / fname
                name = f"typo '{word}' in a copy of deploy/{fname} is rejected"
                if not src.is_file() or good not in src.read_text():
                    rep.fail(name, f"deploy/{fname} has no {good!r} to misspell")
                    continue
                pristine = tmpd / f"pristine-{Path(fname).name}"
                shutil.copy(src, pristine)
                broken = tmpd / f"typo-{Path(fname).name}"
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
    try:
        provisioner_self_tests(rep, prov, plain)
    except Exception as e:  # noqa: BLE001
        rep.fail("provisioner policy self-tests", f"crashed: {type(e).__name__}: {e}")

    try:
        import compat_values  # noqa: PLC0415 - a sibling file, loaded where it is used
        compat_values.checks(rep, args.helm, chart)
    except Exception as e:  # noqa: BLE001
        rep.fail("old-shape values checks", f"crashed: {type(e).__name__}: {e}")

    print()
    if rep.skipped:
        print(f"manifests: {rep.skipped} skipped")
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


def readme_overlays(readme: Path) -> list[tuple[str, str]]:
    """The kustomize overlays of deploy/provisioner/ in deploy/README.md's sidecar-free section,
    as (title, kustomization text). A snippet that is only a `patches` entry (`- target:` or
    `- patch:`) is tried as an addition to the overlay before it."""
    text = readme.read_text() if readme.is_file() else ""
    m = re.search(r"(?ms)^## Sidecar-free provisioner mode.*?(?=^## |\Z)", text)
    if not m:
        return []
    out: list[tuple[str, str]] = []
    last: tuple[str, str] | None = None
    for indent, raw in re.findall(r"(?ms)^([ \t]*)```yaml\n(.*?)^[ \t]*```", m.group(0)):
        # Strip the fence's indentation (a list item's), keep the snippet's own.
        body = "".join(ln[len(indent):] if ln.startswith(indent) else ln.lstrip(" ")
                       for ln in raw.splitlines(keepends=True))
        lines = [ln for ln in body.splitlines() if ln.strip()]
        if "kind: Kustomization" in body:
            title = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else f"overlay {len(out) + 1}"
            last = (title, body)
            out.append(last)
        elif lines and re.match(r"\s*- (target|patch):", lines[0]) and last is not None:
            out.append((f"{last[0]} + the patch starting `{lines[0].strip()}`",
                        last[1].rstrip("\n") + "\n" + body))
    return out


def build_overlay(kustomize: str, prov_dir: Path, text: str, tmp: Path) -> tuple[list[dict] | None, str]:
    """Builds one README overlay in `tmp`, its `../deploy/provisioner` pointing at prov_dir."""
    tmp.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(prov_dir, tmp)
    text = re.sub(r"(?m)^(\s*-\s*)\.\./deploy/provisioner\b.*$", lambda m_: m_.group(1) + rel, text)
    (tmp / "kustomization.yaml").write_text(text)
    rc, out, err = run(kustomize.split() + [str(tmp)])
    if rc != 0:
        return None, f"exit {rc}: {err.strip()}"
    return load_docs(out), ""


def provisioner_self_tests(rep: Report, prov: list[dict], plain: list[dict]) -> None:
    """Each broken copy of deploy/provisioner/ must be rejected by provisioner_rules, for its fault."""
    if provisioner_rules(prov, plain):
        rep.fail("provisioner policy self-tests", "deploy/provisioner/ itself does not pass (see above)")
        return

    def dep(objs: list[dict]) -> dict:
        return find(objs, "Deployment")[0]

    def ctr(objs: list[dict]) -> dict:
        return driver_container(pod_spec(dep(objs)), ("provisioner",))

    def nfs_vol(objs: list[dict]) -> dict:
        return [v for v in pod_spec(dep(objs))["volumes"] if "nfs" in v][0]["nfs"]

    def one_replica(o):
        dep(o)["spec"]["replicas"] = 1

    def no_identity(o):
        c = ctr(o)
        c["env"] = [e for e in c["env"] if e["name"] != "LEADER_ELECTION_IDENTITY"]

    def other_path(o):
        nfs_vol(o)["path"] = "/elsewhere"

    def csi_source(o):
        for sc in find(o, "StorageClass"):
            sc["parameters"] = {"volumeSource": "csi"}

    def claim_update(o):
        find(o, "ClusterRole")[0]["rules"].append(
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["update"]})

    def no_lease_create(o):
        for r in find(o, "Role"):
            for rule in r["rules"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "create"]

    def sys_admin(o):
        ctr(o)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")

    def foreign_class(o):
        for sc in find(o, "StorageClass"):
            sc["provisioner"] = "k8s-sigs.io/nfs-subdir-external-provisioner"

    def base_role_name(o):
        cr = find(o, "ClusterRole")[0]
        old = cr["metadata"]["name"]
        cr["metadata"]["name"] = "nfs-subdir-csi-provisioner"
        for b in find(o, "ClusterRoleBinding"):
            if b["roleRef"]["name"] == old:
                b["roleRef"]["name"] = "nfs-subdir-csi-provisioner"

    def ns_drift(o):
        find(o, "Namespace")[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"

    cases = [
        ("replicas 1", one_replica, "want at least 2"),
        ("no LEADER_ELECTION_IDENTITY", no_identity, "LEADER_ELECTION_IDENTITY must come from the pod name"),
        ("nfs: volume path differs from --nfs-path", other_path, "differs from the nfs: volume's path"),
        ("volumeSource csi on the default share", csi_source, "needs volumeSource: nfs"),
        ("ClusterRole grants update on claims", claim_update, "beyond the tested minimal RBAC"),
        ("Role lacks create on leases", no_lease_create, "lacks create on leases"),
        ("CAP_SYS_ADMIN added", sys_admin, "no CAP_SYS_ADMIN"),
        ("StorageClass of another provisioner name", foreign_class, "the Deployment's --provisioner-name"),
        ("ClusterRole named like deploy/rbac.yaml's", base_role_name, "would overwrite the other's"),
        ("Namespace labels differ from deploy/namespace.yaml", ns_drift, "differs from deploy/namespace.yaml"),
    ]
    missed = []
    for what, mutate, want in cases:
        broken = copy.deepcopy(prov)
        mutate(broken)
        q = provisioner_rules(broken, plain)
        if not any(want in x for x in q):
            missed.append(f"{what}: not caught (wanted {want!r}; got {q[:3]})")
    rep.check("provisioner policy notices: " + "; ".join(c[0] for c in cases), missed,
              f"{len(cases)} broken copies rejected")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        print(f"FAIL check_manifests.py: crashed: {type(e).__name__}: {e}")
        print("manifests: 0 passed, 1 failed")
        sys.exit(1)
