"""Checks of the deployment's observability parts, run by check_manifests.py (section
"observability"): the metric names the Grafana dashboard deploy/grafana/nfs-subdir-csi.json
queries, the chart's opt-in ServiceMonitor/PodMonitor, and the conventional sidecar layout
(deploy/components/sidecars/ and the chart's sidecars.conventionalLayout).

The metric contract is read from the built binary's /metrics (`serve --http-address`, every family
described by its `# TYPE` line right after start) when the binary has that flag, else from the
README's metrics table.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import check_manifests as cm
import layout
from promql import PREFIX, dashboard_exprs, metric_names, readme_families, series_names, types_from_text

DASHBOARD = Path("deploy") / "grafana" / "nfs-subdir-csi.json"
COMPONENT = Path("deploy") / "components" / "sidecars"
MONITOR_VALUES = ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true",
                  "--set", "metrics.serviceMonitor.labels.release=prometheus",
                  "--set", "metrics.podMonitor.labels.release=prometheus"]
# Fields of the Prometheus Operator's v1 CRDs the chart may use (a typo is not one of them).
SM_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels",
           "sampleLimit", "targetLimit", "labelLimit", "attachMetadata"}
PM_SPEC = {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels",
           "sampleLimit", "targetLimit", "labelLimit", "attachMetadata"}
ENDPOINT = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
            "honorTimestamps", "relabelings", "metricRelabelings", "params", "tlsConfig", "authorization",
            "basicAuth", "bearerTokenSecret", "followRedirects", "enableHttp2", "proxyUrl", "filterRunning"}


# ---- the metric contract --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KUBECONFIG_NOWHERE = """apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nowhere}}]
users: [{name: nowhere, user: {token: none}}]
current-context: nowhere
"""


def families_at_start(binary: Path, sub: str, tmp: str) -> dict[str, str] | str:
    """The families `sub` (serve or provisioner) describes on /metrics right after start, or why
    not. The provisioner gets a kubeconfig of an address nothing listens on: its /metrics is up
    while it retries the API server."""
    port = free_port()
    for d in ("share", "work"):
        os.makedirs(f"{tmp}/{sub}/{d}", exist_ok=True)
    argv = [str(binary), sub, "--default-share", f"{tmp}/{sub}/share", "--http-address", f"127.0.0.1:{port}"]
    if sub == "serve":
        argv += ["--endpoint", f"unix://{tmp}/{sub}/csi.sock", "--working-mount-dir", f"{tmp}/{sub}/work",
                 "--nodeid", "contract"]
    Path(tmp, "kubeconfig").write_text(KUBECONFIG_NOWHERE)
    env = dict(os.environ, KUBECONFIG=f"{tmp}/kubeconfig")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return types_from_text(r.read().decode())
            except OSError:
                if proc.poll() is not None:
                    return f"`{sub}` exited {proc.returncode}: {proc.stderr.read()[-300:]}"
                time.sleep(0.1)
        return f"`{sub}`: no /metrics answer within 10 s"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def contract_from_binary(binary: Path) -> tuple[dict[str, str] | None, str]:
    """Families `serve` and `provisioner` describe on /metrics right after start (each shows its
    own: the provisioner's claims/leader/reconcile only there), or (None, why not)."""
    types: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nsc-contract-") as tmp:
        for sub in ("serve", "provisioner"):
            rc, out, _ = cm.run([str(binary), sub, "--help"])
            if rc != 0 or "--http-address" not in out:
                return None, f"`{binary} {sub} --help` has no --http-address"
            got = families_at_start(binary, sub, tmp)
            if isinstance(got, str):
                return None, got
            for name, kind in got.items():
                if types.setdefault(name, kind) != kind:
                    return None, f"{name} is a {types[name]} in one mode and a {kind} in the other"
    return types, f"{binary} serve + provisioner /metrics"


def contract_from_readme(root: Path) -> dict[str, str]:
    """The metrics table of README.md (promql.readme_families)."""
    return readme_families((root / "README.md").read_text() if (root / "README.md").is_file() else "")


# ---- the dashboard ----------------------------------------------------------------------------


def dashboard_problems(dash: dict, types: dict[str, str]) -> tuple[list[str], set[str]]:
    """Problems, and the contract families the dashboard shows."""
    p: list[str] = []
    series = series_names(types)
    shown: set[str] = set()
    exprs = dashboard_exprs(dash)
    if not exprs:
        p.append("no PromQL expression found")
    for where, expr in exprs:
        names = metric_names(expr)
        if not names:
            p.append(f"{where}: names no metric: {expr}")
        for n in sorted(names):
            if n not in series:
                why = "not in the contract" if n.startswith(PREFIX) else f"not an {PREFIX}* metric"
                p.append(f"{where}: {n} is {why}")
            else:
                shown.add(series[n])
    ds = [v for v in (dash.get("templating") or {}).get("list") or [] if v.get("type") == "datasource"]
    if not ds or ds[0].get("query") != "prometheus":
        p.append("no Prometheus data source variable")
    ids: list = []

    def walk(panels: list) -> None:
        for x in panels or []:
            ids.append(x.get("id"))
            if x.get("type") != "row":
                if (x.get("datasource") or {}).get("uid") != "${" + (ds[0]["name"] if ds else "?") + "}":
                    p.append(f"panel {x.get('title')!r}: data source is not the variable")
                if not x.get("targets"):
                    p.append(f"panel {x.get('title')!r}: no query")
            walk(x.get("panels"))
    walk(dash.get("panels"))
    if len(ids) != len(set(ids)):
        p.append(f"panel ids repeat: {ids}")
    return p, shown


# ---- the chart's monitors ------------------------------------------------------------------------


def selects(selector: dict, labels: dict) -> bool:
    ml = selector.get("matchLabels") or {}
    return bool(ml) and not selector.get("matchExpressions") and all(labels.get(k) == v for k, v in ml.items())


def seconds(d: str) -> float | None:
    parts = re.findall(r"(\d+)(ms|s|m|h)", d or "")
    if not parts or "".join(a + b for a, b in parts) != d:
        return None
    return sum(int(a) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[b] for a, b in parts)


def monitor_problems(objs: list[dict], namespace: str, components: set[str]) -> list[str]:
    """ServiceMonitor/PodMonitor of a chart render with both enabled: known fields, selectors that
    reach every driver pod of the mode through its named `http` port, sane intervals."""
    p: list[str] = []
    workloads = [o for o in objs if o.get("kind") in ("Deployment", "DaemonSet")]
    pods = {cm.ident(w): ((w["spec"]["template"].get("metadata") or {}).get("labels") or {}, cm.pod_spec(w))
            for w in workloads}
    mons = [o for o in objs if o.get("kind") in ("ServiceMonitor", "PodMonitor")]
    if sorted(o["kind"] for o in mons) != ["PodMonitor", "ServiceMonitor"]:
        return [f"want one ServiceMonitor and one PodMonitor, got {[cm.ident(o) for o in mons]}"]
    services = cm.find(objs, "Service")
    for mon in mons:
        name, spec = cm.ident(mon), mon.get("spec") or {}
        if mon.get("apiVersion") != "monitoring.coreos.com/v1":
            p.append(f"{name}: apiVersion {mon.get('apiVersion')!r}")
        if mon["metadata"].get("namespace") != namespace:
            p.append(f"{name}: not in {namespace}")
        if (mon["metadata"].get("labels") or {}).get("release") != "prometheus":
            p.append(f"{name}: the values' extra labels were not applied")
        allowed, ep_key = (SM_SPEC, "endpoints") if mon["kind"] == "ServiceMonitor" else (PM_SPEC, "podMetricsEndpoints")
        p += [f"{name}: unknown field spec.{k}" for k in spec if k not in allowed]
        if (spec.get("namespaceSelector") or {}).get("matchNames") != [namespace]:
            p.append(f"{name}: namespaceSelector is not the release namespace")
        eps = spec.get(ep_key) or []
        if not eps:
            p.append(f"{name}: no {ep_key}")
        for ep in eps:
            p += [f"{name}: unknown field {ep_key}[].{k}" for k in ep if k not in ENDPOINT]
            iv, to = seconds(ep.get("interval")), seconds(ep.get("scrapeTimeout"))
            if iv is None or to is None or to > iv:
                p.append(f"{name}: interval {ep.get('interval')!r} / scrapeTimeout {ep.get('scrapeTimeout')!r}")
            if ep.get("path", "/metrics") != "/metrics":
                p.append(f"{name}: path {ep.get('path')!r}")
        ports = {ep.get("port") for ep in eps}
        reached: set[str] = set()
        if mon["kind"] == "PodMonitor":
            for w, (labels, ps) in pods.items():
                if selects(spec.get("selector") or {}, labels):
                    named = {x.get("name") for x in (cm.driver_container(ps) or {}).get("ports") or []}
                    if ports <= named:
                        reached.add(labels.get("app.kubernetes.io/component"))
                    else:
                        p.append(f"{name}: selects {w}, whose driver has no port named {ports - named}")
        else:
            for svc in services:
                if not selects(spec.get("selector") or {}, (svc["metadata"].get("labels") or {})):
                    continue
                sp = {x.get("name"): x for x in (svc.get("spec") or {}).get("ports") or []}
                if not ports <= set(sp):
                    p.append(f"{name}: selects {cm.ident(svc)}, which has no port named {ports - set(sp)}")
                    continue
                sel = {"matchLabels": svc["spec"].get("selector") or {}}
                hit = [(labels, ps) for labels, ps in pods.values() if selects(sel, labels)]
                if len(hit) != 1:
                    p.append(f"{cm.ident(svc)}: selects {len(hit)} workloads' pods, want one")
                    continue
                labels, ps = hit[0]
                c = cm.driver_container(ps) or {}
                for port in ports:
                    target = sp[port].get("targetPort")
                    cp = [x for x in c.get("ports") or [] if x.get("name") == target or x.get("containerPort") == target]
                    if not cp or cp[0].get("containerPort") != sp[port].get("port") or \
                            cp[0].get("containerPort") != layout.http_port(c):
                        p.append(f"{cm.ident(svc)}: port {port} -> {target} is not the driver's --http-address port")
                    else:
                        reached.add(labels.get("app.kubernetes.io/component"))
        if reached != components:
            p.append(f"{name}: scrapes the components {sorted(x or '?' for x in reached)}, want {sorted(components)}")
    return p


# ---- the section ---------------------------------------------------------------------------------


def run(rep, root: Path, chart: Path, helm: str | None, kustomize: str | None, plain: list[dict],
        binary: Path | None) -> list[dict]:
    """Prints the section's PASS/FAIL lines; returns the extra objects rendered (for the
    driver-flags check)."""
    extra: list[dict] = []
    rep.section("observability: one-container node, sidecar component, monitors, dashboard")
    node = cm.find(plain, "DaemonSet", "nfs-subdir-csi-node")
    if node:
        ps = cm.pod_spec(node[0]) or {}
        d = cm.driver_container(ps) or {}
        rep.check("deploy/node.yaml: exactly one container, registering itself; liveness probe port = "
                  "--http-address port", layout.node_rules(ps, cm.DRIVER_NAME),
                  f"{len(cm.containers(ps))} container, liveness port {layout.probe_port(d)}, "
                  f"--http-address {cm.flag_value(d, '--http-address')}")
    else:
        rep.fail("deploy/node.yaml: the node DaemonSet", "missing")
    layout_self_tests(rep, plain)

    # The conventional layout: the kustomize component, and the chart value that equals it.
    comp = root / COMPONENT
    built = None
    if not kustomize:
        rep.fail("deploy/components/sidecars builds", "no kustomize to build it with")
    elif not (comp / "kustomization.yaml").is_file():
        rep.fail("deploy/components/sidecars builds", f"{COMPONENT}/kustomization.yaml is missing")
    else:
        with tempfile.TemporaryDirectory(prefix="nsc-sidecars-") as tmp:
            rel = os.path.relpath(root / "deploy", tmp)
            Path(tmp, "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources:\n  - {rel}\ncomponents:\n  - {rel}/components/sidecars\n")
            rc, out, err = cm.run(kustomize.split() + [tmp])
        if rc != 0:
            rep.fail("an overlay of deploy/ with components/sidecars builds", f"exit {rc}: {err.strip()}")
        else:
            built = cm.load_docs(out)
            extra += built
            ds = cm.find(built, "DaemonSet", "nfs-subdir-csi-node")
            names = [c.get("name") for c in cm.containers(cm.pod_spec(ds[0]) or {})] if ds else []
            problems = [q for o in built for q in cm.schema_problems(o) + cm.apiserver_rules(o) + cm.image_rules(o)]
            problems += cm.deploy_rules(built, layout="sidecars") + cm.namespace_rules(built)
            rep.check("deploy/ + components/sidecars: the registrar + livenessprobe layout (schema, rules)",
                      problems, f"node containers {names}")
            wrong = cm.deploy_rules(built, layout="single")
            rep.check("self-test: the one-container rule rejects the sidecar layout",
                      [] if any("want exactly one" in x for x in wrong) else ["the sidecar layout passed"])
    if helm:
        objs, err = cm.helm_template(helm, chart, ["--set", "sidecars.conventionalLayout=true"])
        if objs is None or built is None:
            rep.fail("chart with sidecars.conventionalLayout=true equals deploy/ + components/sidecars",
                     err or "the component did not build")
        else:
            extra += objs
            stripped = [cm.strip_helm_labels(o) for o in objs]
            rep.check("chart with sidecars.conventionalLayout=true equals deploy/ + components/sidecars",
                      cm.compare_sets(stripped, built, "the chart", "the overlay",
                                      ignore=lambda o: o.get("kind") == "Namespace"), f"{len(objs)} objects")

    # Monitors: only rendered when asked for, pointing at every driver's `http` port.
    for mode, comps in (("csi", {"controller", "node"}), ("provisioner", {"provisioner"})):
        if not helm:
            rep.fail("ServiceMonitor/PodMonitor render", "no helm")
            break
        objs, err = cm.helm_template(helm, chart, ["--set", f"mode={mode}"] + MONITOR_VALUES)
        name = f"mode={mode} with metrics.serviceMonitor/podMonitor enabled: monitors reach {sorted(comps)}"
        if objs is None:
            rep.fail(name, err)
            continue
        extra += objs
        k8s = [o for o in objs if not o.get("apiVersion", "").startswith("monitoring.coreos.com/")]
        problems = [q for o in k8s for q in cm.schema_problems(o) + cm.apiserver_rules(o)]
        problems += monitor_problems(objs, cm.NAMESPACE, comps)
        rep.check(name, problems, f"{len(objs) - len(k8s)} monitors, {len(cm.find(objs, 'Service'))} Services")
        if mode == "csi":
            broken = copy.deepcopy(objs)
            cm.find(broken, "PodMonitor")[0]["spec"]["podMetricsEndpoints"][0]["port"] = "metrics"
            sm = cm.find(broken, "ServiceMonitor")[0]["spec"]
            sm["endpoint"] = sm.pop("endpoints")
            q = monitor_problems(broken, cm.NAMESPACE, comps)
            rep.check("self-test: a PodMonitor port no pod declares and a misspelled ServiceMonitor field are caught",
                      [w for w in ("no port named {'metrics'}", "unknown field spec.endpoint")
                       if not any(w in x for x in q)], f"{len(q)} problems found")
    if helm:
        objs, _ = cm.helm_template(helm, chart)
        rep.check("default render has no monitor and no Service (opt-in)",
                  [cm.ident(o) for o in objs or [] if o.get("kind") in ("ServiceMonitor", "PodMonitor", "Service")])

    # The dashboard names only metrics of the contract, and shows every family.
    types, source = (None, "no built binary")
    if binary is not None:
        types, source = contract_from_binary(binary)
    if types is None:
        print(f"note: metric contract from README.md's table ({source})")
        types, source = contract_from_readme(root), "README.md's metrics table"
    bad = [n for n in types if not n.startswith(PREFIX)]
    if not types or bad:
        rep.fail(f"metric contract ({source})", f"empty, or names without {PREFIX}: {bad}")
        return extra
    try:
        dash = json.loads((root / DASHBOARD).read_text())
    except (OSError, ValueError) as e:
        rep.fail(f"{DASHBOARD} loads", str(e))
        return extra
    problems, shown = dashboard_problems(dash, types)
    if problems:
        problems.append(f"({source} describes {len(types)} families: {' '.join(sorted(types))}; every family "
                        f"must have its # TYPE line from start-up, series or not)")
    rep.check(f"{DASHBOARD}: every PromQL names only contract metrics ({source})", problems,
              f"{len(dashboard_exprs(dash))} queries, {len(types)} families")
    rep.check(f"{DASHBOARD}: shows every family of the contract",
              [f"{n} is on no panel" for n in sorted(set(types) - shown)])
    broken = copy.deepcopy(dash)
    broken["panels"][-1]["targets"][0]["expr"] += ' + sum(nfs_subdir_csi_no_such_total) + up{job="x"}'
    q, _ = dashboard_problems(broken, types)
    rep.check("self-test: an unknown nfs_subdir_csi_ name and a foreign metric (up) in a query are caught",
              [w for w in ("nfs_subdir_csi_no_such_total is not in the contract", "up is not an")
               if not any(w in x for x in q)])
    return extra


def layout_self_tests(rep, plain: list[dict]) -> None:
    """Broken copies of deploy/node.yaml and controller.yaml must each fail the layout rules."""
    def node(o):
        return cm.pod_spec(cm.find(o, "DaemonSet")[0])

    def ctl(o):
        return cm.pod_spec(cm.find(o, "Deployment", "nfs-subdir-csi-controller")[0])

    def port(o):
        cm.driver_container(node(o))["livenessProbe"]["httpGet"]["port"] = 29999

    def extra_container(o):
        node(o)["containers"].append({"name": "x", "image": "busybox:1"})

    def csi_socket(o):
        a = cm.driver_container(node(o))["args"]
        a[:] = [x if not x.startswith("--kubelet-csi-socket=") else "--kubelet-csi-socket=/csi/csi.sock" for x in a]

    def ctl_port(o):
        a = cm.driver_container(ctl(o))["args"]
        a[:] = [x if not x.startswith("--http-address=") else "--http-address=:9808" for x in a]

    cases = [("node liveness on another port", port, "is not the --http-address port"),
             ("a second node container", extra_container, "want exactly one"),
             ("--kubelet-csi-socket not the host path", csi_socket, "is not the socket's host path"),
             ("controller --http-address off its `http` port", ctl_port, "is not the --http-address port")]
    missed = []
    for what, mutate, want in cases:
        broken = copy.deepcopy(plain)
        try:
            mutate(broken)
        except (IndexError, KeyError, TypeError) as e:
            missed.append(f"{what}: cannot mutate deploy/ ({e})")
            continue
        q = layout.layout_rules(broken, cm.DRIVER_NAME)
        if not any(want in x for x in q):
            missed.append(f"{what}: not caught (wanted {want!r}; got {q[:3]})")
    rep.check("self-test: layout rules notice " + "; ".join(c[0] for c in cases), missed)
