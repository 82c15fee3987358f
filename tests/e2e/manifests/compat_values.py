"""Helm values of nfs-subdir-external-provisioner in this chart: an old-shape values.yaml
(old-values/nfs-subdir-external-provisioner.yaml, in the shape of that chart's values.yaml:
nfs.server/path/mountOptions, storageClass.name/defaultClass/reclaimPolicy/archiveOnDelete/onDelete/
pathPattern/accessModes/provisionerName) renders a working provisioner-mode install that takes over
its class: same class name, provisioner name, parameters, mount options; the export as default share.
Called from check_manifests.main; prints PASS/FAIL lines through its Report."""

from __future__ import annotations

from pathlib import Path

import check_manifests as cm

HERE = Path(__file__).resolve().parent
OLD = HERE / "old-values" / "nfs-subdir-external-provisioner.yaml"


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", []) if "value" in e}


def old_shape_problems(objs: list[dict]) -> list[str]:
    """What a takeover install from the sample values must look like."""
    p: list[str] = []
    classes = cm.find(objs, "StorageClass")
    if [c["metadata"]["name"] for c in classes] != ["managed-nfs-storage"]:
        return [f"expected exactly the class managed-nfs-storage, got {[c['metadata']['name'] for c in classes]}"]
    sc = classes[0]
    want = {
        "provisioner": "k8s-sigs.io/nfs-subdir-external-provisioner",
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True,
        "mountOptions": ["nfsvers=4.1", "hard"],
        "parameters": {"archiveOnDelete": "true", "onDelete": "retain",
                       "pathPattern": "${.PVC.namespace}/${.PVC.annotations.nfs.io/storage-path}"},
    }
    for k, v in want.items():
        if sc.get(k) != v:
            p.append(f"StorageClass {k} = {sc.get(k)!r}, expected {v!r}")
    ann = sc["metadata"].get("annotations", {})
    if ann.get("storageclass.kubernetes.io/is-default-class") != "true":
        p.append("storageClass.defaultClass=true did not make the default-class annotation")
    deps = cm.find(objs, "Deployment")
    if len(deps) != 1:
        return p + [f"expected one Deployment (the provisioner), got {len(deps)}"]
    ps = cm.pod_spec(deps[0])
    c = cm.driver_container(ps)
    if c is None:
        return p + ["no nfs-subdir-csi container in the Deployment"]
    if c.get("args", [None])[0] != "provisioner":
        p.append(f"container runs {c.get('args')}, expected the provisioner subcommand")
    env = env_of(c)
    for k, v in {"PROVISIONER_NAME": "k8s-sigs.io/nfs-subdir-external-provisioner",
                 "NFS_SERVER": "10.3.243.101", "NFS_PATH": "/ifs/kubernetes"}.items():
        if env.get(k) != v:
            p.append(f"env {k} = {env.get(k)!r}, expected {v!r}")
    if "nfs-subdir-external-provisioner" in c.get("image", ""):
        p.append(f"the old provisioner's image was kept: {c['image']}")
    vols = [v for v in ps.get("volumes", []) if "nfs" in v]
    if [v["nfs"] for v in vols] != [{"server": "10.3.243.101", "path": "/ifs/kubernetes"}]:
        p.append(f"the export is not the pod's nfs volume: {vols}")
    if cm.find(objs, "CSIDriver") or cm.find(objs, "DaemonSet"):
        p.append("CSI objects rendered: old values must select mode=provisioner")
    return p


def checks(rep: cm.Report, helm: str, chart: Path) -> None:
    rep.section("nfs-subdir-external-provisioner's Helm values (old-values/)")
    base = ["-f", str(OLD)]
    rc, out, err = cm.run([helm, "lint", "--strict", str(chart), "--namespace", cm.NAMESPACE,
                           "--kube-version", cm.K8S_VERSIONS[0]] + base)
    rep.check("helm lint --strict -f old-values/nfs-subdir-external-provisioner.yaml",
              [] if rc == 0 else (out + err).strip().splitlines())
    objs, err = cm.helm_template(helm, chart, base)
    if objs is None:
        rep.fail("helm template -f old-values/nfs-subdir-external-provisioner.yaml", err)
        return
    problems = [q for o in objs for q in cm.schema_problems(o) + cm.apiserver_rules(o)]
    rep.check("old-shape values: strict schema + API-server rules", problems, f"{len(objs)} objects")
    rep.check("old-shape values: provisioner mode taking over its class, name, export and options",
              old_shape_problems(objs))
    variants = [
        ("without storageClass.provisionerName: the old chart's cluster.local/<fullname>",
         ["--set", "storageClass.provisionerName="],
         lambda sc: sc and sc[0]["provisioner"] == "cluster.local/nfs-subdir-csi-nfs-subdir-external-provisioner"),
        ("archiveOnDelete=false, no onDelete/pathPattern: written as the old chart wrote them",
         ["--set", "storageClass.archiveOnDelete=false", "--set", "storageClass.onDelete=",
          "--set", "storageClass.pathPattern="],
         lambda sc: sc and sc[0]["parameters"] == {"archiveOnDelete": "false"}),
        ("storageClass.create=false: no class", ["--set", "storageClass.create=false"],
         lambda sc: sc == []),
    ]
    for name, extra, ok in variants:
        objs, err = cm.helm_template(helm, chart, base + extra)
        if objs is None:
            rep.fail(f"old-shape values, {name}", err)
            continue
        sc = cm.find(objs, "StorageClass")
        rep.check(f"old-shape values, {name}", [] if ok(sc) else [f"got {sc}"])
