"""Pod layout rules of the CSI driver's Deployments, used by check_manifests.py.

Two layouts exist. "single" (deploy/ and the chart's default): the node DaemonSet is ONE
container, the driver, which registers itself with kubelet (--kubelet-registration-path in the
plugins_registry hostPath, --kubelet-csi-socket = the CSI socket's path on the host) and answers
kubelet's liveness probe on its own --http-address (/healthz next to /metrics); the controller is
the driver + csi-provisioner + csi-snapshotter. "sidecars" (deploy/components/sidecars/, the chart's
sidecars.conventionalLayout=true): node-driver-registrar and livenessprobe sidecars as before,
the driver still serving /metrics on --http-address.
"""

from __future__ import annotations

import re

import check_manifests as cm


def http_port(c: dict) -> int | None:
    """The port of the container's --http-address (":29653", "0.0.0.0:29653", "[::]:29653")."""
    v = cm.flag_value(c, "--http-address")
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:.]*\]|[^:\[\]]*):(\d+)", v or "")
    return int(m.group(1)) if m else None


def probe_port(c: dict, probe: str = "livenessProbe") -> int | None:
    """The numeric port of an httpGet probe, a named port resolved through the container's ports."""
    port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
    if isinstance(port, str):
        named = [p.get("containerPort") for p in c.get("ports") or [] if p.get("name") == port]
        return named[0] if named else None
    return port


def endpoint_port(c: dict, flag: str = "--http-endpoint") -> int | None:
    """Port of a sidecar's --http-endpoint (livenessprobe's)."""
    m = re.search(r":(\d+)$", cm.flag_value(c, flag) or "")
    return int(m.group(1)) if m else None


def http_rules(what: str, c: dict, host_network: bool, own_liveness: bool = True) -> list[str]:
    """--http-address is set, declared as the container port `http` (hostPort too on the host
    network) and, when the driver answers its own liveness probe, is the probe's port."""
    p: list[str] = []
    port = http_port(c)
    if port is None:
        return [f"{what}: driver has no --http-address=<host>:<port> (got {cm.flag_value(c, '--http-address')!r})"]
    declared = [x for x in c.get("ports") or [] if x.get("name") == "http"]
    if not declared or declared[0].get("containerPort") != port:
        p.append(f"{what}: container port `http` {declared} is not the --http-address port {port}")
    elif host_network and declared[0].get("hostPort") not in (None, port):
        p.append(f"{what}: host network: hostPort {declared[0].get('hostPort')} must equal containerPort {port}")
    probe = c.get("livenessProbe") or {}
    if not probe:
        p.append(f"{what}: driver container has no livenessProbe")
    elif own_liveness:
        get = probe.get("httpGet") or {}
        if get.get("path") != "/healthz":
            p.append(f"{what}: liveness probe path {get.get('path')!r}, want /healthz")
        if probe_port(c) != port:
            p.append(f"{what}: liveness probe port {probe_port(c)} is not the --http-address port {port}")
        if get.get("host") and not str(cm.flag_value(c, "--http-address")).startswith(get["host"] + ":"):
            p.append(f"{what}: liveness probe host {get['host']} does not match --http-address")
    return p


def node_rules(ps: dict, driver: str, layout: str = "single") -> list[str]:
    """The node DaemonSet's pod spec in the given layout."""
    p: list[str] = []
    d = cm.driver_container(ps)
    if d is None:
        return ["node: no driver container (args with 'serve')"]
    vols = {v["name"]: v for v in ps.get("volumes") or []}

    def host_dir(c: dict, mount_path: str) -> str | None:
        ms = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == mount_path]
        return ((vols.get(ms[0]["name"]) or {}).get("hostPath") or {}).get("path") if ms else None

    # The CSI socket as the host (kubelet) sees it: the hostPath mounted at --endpoint's dir.
    ep = (cm.flag_value(d, "--endpoint") or "").replace("unix://", "")
    sock_dir, _, sock_name = ep.rpartition("/")
    host_sock_dir = host_dir(d, sock_dir)
    if host_sock_dir is None:
        p.append(f"node: the driver's socket dir {sock_dir!r} (--endpoint {ep!r}) is not a hostPath mount")
    elif not host_sock_dir.rstrip("/").endswith(f"/plugins/{driver}"):
        p.append(f"node: socket dir hostPath {host_sock_dir!r} is not <kubelet dir>/plugins/{driver}")
    host_sock = f"{host_sock_dir}/{sock_name}" if host_sock_dir else None
    p += http_rules("node", d, bool(ps.get("hostNetwork")), own_liveness=(layout == "single"))
    names = [c.get("name") for c in cm.containers(ps)]
    reg_path = cm.flag_value(d, "--kubelet-registration-path")
    if layout == "single":
        if len(names) != 1:
            p.append(f"node: {len(names)} containers {names}, want exactly one (the driver)")
        if reg_path is None:
            p.append("node: driver lacks --kubelet-registration-path (self-registration)")
        elif not (host_dir(d, reg_path) or "").rstrip("/").endswith("/plugins_registry"):
            p.append(f"node: --kubelet-registration-path {reg_path} is not a mount of kubelet's plugins_registry")
        csi_sock = cm.flag_value(d, "--kubelet-csi-socket")
        if host_sock and csi_sock != host_sock:
            p.append(f"node: --kubelet-csi-socket {csi_sock!r} is not the socket's host path {host_sock!r}")
        return p
    # layout == "sidecars"
    for f in ("--kubelet-registration-path", "--kubelet-csi-socket"):
        if cm.flag_value(d, f) is not None:
            p.append(f"node: driver has {f} while node-driver-registrar registers it (two registrations)")
    reg = cm.sidecar(ps, "csi-node-driver-registrar")
    if reg is None:
        p.append("node: csi-node-driver-registrar sidecar missing")
    else:
        rp = cm.flag_value(reg, "--kubelet-registration-path") or ""
        if host_sock and rp != host_sock:
            p.append(f"node: registrar --kubelet-registration-path {rp!r} is not the socket's host path {host_sock!r}")
        if cm.flag_value(reg, "--csi-address") != ep:
            p.append(f"node: registrar --csi-address {cm.flag_value(reg, '--csi-address')!r} is not {ep!r}")
        if not (host_dir(reg, "/registration") or "").endswith("/plugins_registry"):
            p.append("node: registrar needs the kubelet plugins_registry dir at /registration")
    p += sidecar_probe_rules("node", ps, d)
    return p


def sidecar_probe_rules(what: str, ps: dict, d: dict) -> list[str]:
    """The livenessprobe sidecar answers the driver's liveness probe, on a port apart from the
    driver's own --http-address."""
    lp = cm.sidecar(ps, "livenessprobe")
    if lp is None:
        return [f"{what}: livenessprobe sidecar missing"]
    p = []
    port = endpoint_port(lp)
    if port is None or probe_port(d) != port:
        p.append(f"{what}: driver liveness probe port {probe_port(d)} is not livenessprobe's --http-endpoint {port}")
    if port is not None and port == http_port(d):
        p.append(f"{what}: livenessprobe and the driver's --http-address both use port {port}")
    return p


def controller_rules(ps: dict, layout: str = "single") -> list[str]:
    d = cm.driver_container(ps)
    if d is None:
        return []  # deploy_rules reports it
    p = http_rules("controller", d, bool(ps.get("hostNetwork")), own_liveness=(layout == "single"))
    others = sorted(c.get("name") for c in cm.containers(ps) if c is not d)
    if layout == "single":
        if cm.sidecar(ps, "livenessprobe") is not None:
            p.append("controller: livenessprobe sidecar present; the driver serves /healthz itself")
        # csi-snapshotter: snapshots.py checks it
        if [c.get("image", "").split(":")[0] for c in cm.containers(ps) if c is not d] != \
                [cm.SIDECAR_REGISTRY + "csi-provisioner", cm.SIDECAR_REGISTRY + "csi-snapshotter"]:
            p.append(f"controller: containers besides the driver are {others}, want csi-provisioner, csi-snapshotter")
    else:
        p += sidecar_probe_rules("controller", ps, d)
    return p


def provisioner_http_rules(objs: list[dict]) -> list[str]:
    """deploy/provisioner/: --http-address, port `http`, liveness /healthz on it."""
    p = []
    for dep in cm.find(objs, "Deployment"):
        ps = cm.pod_spec(dep) or {}
        c = cm.driver_container(ps, ("provisioner",))
        if c is not None:
            p += http_rules(f"{cm.ident(dep)}", c, bool(ps.get("hostNetwork")))
    return p


def layout_rules(objs: list[dict], driver: str, layout: str = "single") -> list[str]:
    p: list[str] = []
    for ds in cm.find(objs, "DaemonSet", "nfs-subdir-csi-node"):
        p += node_rules(cm.pod_spec(ds) or {}, driver, layout)
    for dep in cm.find(objs, "Deployment", "nfs-subdir-csi-controller"):
        p += controller_rules(cm.pod_spec(dep) or {}, layout)
    return p
