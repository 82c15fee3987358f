#!/usr/bin/env python3
"""The checks of tests/e2e/metrics/run.sh, once csi-sanity has run against the driver while a real
Prometheus scraped it: waits for a scrape that started after csi-sanity ended, then asks
Prometheus's HTTP API (/api/v1/query) and compares with independent sources: the driver's own
log lines (one `volume ready` per CreateVolume that succeeded, `new=true` when it made the
directory), csi-sanity's JUnit report (which unknown-volume specs passed) and the driver's raw
/metrics text. Also `promtool check metrics` on that text, every contract family described on
/metrics at start-up, and every query of the Grafana dashboard evaluated by Prometheus.
Prints PASS/FAIL lines (tests/e2e/lib.sh's format; run.sh counts them and closes the suite);
exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "manifests"))  # tests/e2e/manifests
from promql import PREFIX, dashboard_exprs, metric_names, readme_families, series_names, types_from_text  # noqa: E402

JOB = "nfs-subdir-csi"


class Report:
    def __init__(self) -> None:
        self.passed = self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> None:
        if ok:
            self.passed += 1
            print(f"PASS {name}: {detail}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def query(prom: str, expr: str) -> list[dict]:
    out = json.loads(get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    if out.get("status") != "success":
        raise RuntimeError(f"{expr}: {out.get('error')}")
    return out["data"]["result"]


def scalar(prom: str, expr: str) -> float | None:
    r = query(prom, expr)
    return float(r[0]["value"][1]) if r else None


def by(prom: str, expr: str, label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in query(prom, expr)}


def wait_for_scrape(prom: str, after: float, job: str = JOB, timeout: float = 30) -> float | None:
    """Timestamp of `job`'s first scrape that started after `after`, once Prometheus has stored it."""
    end = time.time() + timeout
    while time.time() < end:
        ts = scalar(prom, f'timestamp(up{{job="{job}"}})')
        if ts is not None and ts > after:
            return ts
        time.sleep(0.25)
    return None


def raw_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value from the exposition text (label order as printed)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def junit_passed(path: Path) -> list[str]:
    names = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        if tc.find("failure") is None and tc.find("error") is None and tc.find("skipped") is None:
            names.append(re.sub(r"^\[It\] ", "", tc.get("name", "")))
    return names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--provisioner", required=True, help="/metrics of a `provisioner` (its own families)")
    ap.add_argument("--after", type=float, required=True, help="when csi-sanity ended (epoch s)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--repo", type=Path, required=True)
    a = ap.parse_args()
    rep, prom, w = Report(), a.prometheus, a.work
    try:
        run(rep, prom, a.driver, a.provisioner, a.after, w, a.repo)
    except Exception as e:  # noqa: BLE001 - one FAIL line, not a traceback
        rep.check("checks ran", False, f"{type(e).__name__}: {e}")
    return 1 if rep.failed else 0


def run(rep: Report, prom: str, driver: str, prov: str, after: float, w: Path, repo: Path) -> None:
    ts = wait_for_scrape(prom, after)
    rep.check("a scrape after csi-sanity ended", ts is not None,
              f"sample at {ts:.3f}, {ts - after:.2f} s after the end" if ts else "none within 30 s")
    if ts is None:
        return
    # The two jobs are scraped independently; on a loaded machine the provisioner's first scrape can
    # land later than the driver's, so wait for it too before reading `up`.
    wait_for_scrape(prom, 0, JOB + "-provisioner")
    up = by(prom, f'up{{job=~"{JOB}.*"}}', "job")
    rep.check("up == 1 (serve and provisioner)", sorted(up) == [JOB, JOB + "-provisioner"] and set(up.values()) == {1},
              f"up by job {up}")
    text = get(f"{driver}/metrics")
    (w / "metrics.txt").write_text(text)
    R = f'job="{JOB}"'

    # CreateVolume OK = the successful creations the driver logged (csi-sanity's own count).
    log = re.sub(r"\x1b\[[0-9;]*m", "", (w / "driver.log").read_text())
    ready = [ln for ln in log.splitlines() if "volume ready" in ln]
    new = [ln for ln in ready if re.search(r"\bnew=true\b", ln)]
    ok_creates = scalar(prom, f'sum(nfs_subdir_csi_grpc_requests_total{{{R}, method="CreateVolume", code="OK"}})')
    rep.check("CreateVolume OK count = the driver's `volume ready` log lines", bool(ready) and ok_creates == len(ready),
              f"PromQL {ok_creates}, log {len(ready)}")
    created = scalar(prom, f'sum(nfs_subdir_csi_volumes_total{{{R}, action="created"}})')
    rep.check('volumes_total{action="created"} = `volume ready new=true` log lines', bool(new) and created == len(new),
              f"PromQL {created}, log {len(new)} (the other {len(ready) - len(new)} found the volume made)")

    # NotFound for the unknown-volume specs that passed; InvalidArgument for the malformed ones.
    passed = junit_passed(w / "junit.xml")
    codes = {(s["metric"].get("method"), s["metric"].get("code")): float(s["value"][1])
             for s in query(prom, f"sum by (method, code) (nfs_subdir_csi_grpc_requests_total{{{R}}})")}
    for method in ("NodeGetVolumeStats", "ValidateVolumeCapabilities"):
        specs = [n for n in passed if method in n and re.search(r"not (be )?found|does not exist|non-?existent", n)]
        got = codes.get((method, "NotFound"), 0)
        rep.check(f"{method} NotFound counted for the unknown-volume specs", bool(specs) and got >= len(specs),
                  f"PromQL {got}, passed specs {len(specs)}: {'; '.join(specs)[:200]}")
    inv = {m: v for (m, c), v in codes.items() if c == "InvalidArgument"}
    specs = [n for n in passed if re.search(r"should fail when (no|an invalid|the volume id is empty)|without", n)]
    rep.check("InvalidArgument counted", sum(inv.values()) >= max(1, len(specs)) if specs else sum(inv.values()) > 0,
              f"PromQL {int(sum(inv.values()))} over {len(inv)} methods {sorted(inv)}, "
              f"passed malformed-request specs {len(specs)}")
    print("      PromQL sum by (method, code) (nfs_subdir_csi_grpc_requests_total):")
    for (m, c), v in sorted(codes.items()):
        print(f"        {m:32s} {c:20s} {int(v)}")

    # What Prometheus stored is what the driver exposes (nothing moves after csi-sanity).
    raw = raw_samples(text)
    mism = []
    for (m, c), v in codes.items():
        keys = [k for k in raw if k.startswith(PREFIX + "grpc_requests_total{") and f'method="{m}"' in k
                and f'code="{c}"' in k]
        if sum(raw[k] for k in keys) != v:
            mism.append(f"{m}/{c}: PromQL {v}, /metrics {sum(raw[k] for k in keys)}")
    rep.check("PromQL counts = the driver's /metrics text", bool(codes) and not mism,
              "; ".join(mism) or f"{len(codes)} method/code series equal")

    # The latency histogram: one observation per RPC.
    count = by(prom, f"sum by (method) (nfs_subdir_csi_grpc_request_duration_seconds_count{{{R}}})", "method")
    total = by(prom, f"sum by (method) (nfs_subdir_csi_grpc_requests_total{{{R}}})", "method")
    inf = scalar(prom, f'sum(nfs_subdir_csi_grpc_request_duration_seconds_bucket{{{R}, le="+Inf"}})')
    ssum = scalar(prom, f"sum(nfs_subdir_csi_grpc_request_duration_seconds_sum{{{R}}})")
    rep.check("latency histogram: _count = requests by method, +Inf bucket = count, _sum > 0",
              bool(count) and count == total and inf == sum(count.values()) and (ssum or 0) > 0,
              f"{int(sum(count.values()))} observations over {len(count)} methods, sum {ssum:.3f} s, "
              f"p99 CreateVolume " + str(scalar(prom, "histogram_quantile(0.99, sum by (le) (nfs_subdir_csi_"
                                              f'grpc_request_duration_seconds_bucket{{{R}, method="CreateVolume"}}))')))
    inflight = scalar(prom, f"sum(nfs_subdir_csi_grpc_requests_in_flight{{{R}}})")
    rep.check("nothing in flight after csi-sanity", inflight == 0, f"in flight {inflight}")
    mounts = by(prom, f"sum by (operation) (nfs_subdir_csi_node_mount_duration_seconds_count{{{R}}})", "operation")
    rep.check("node mount/unmount durations observed", mounts.get("mount", 0) > 0 and mounts.get("unmount", 0) > 0,
              f"{mounts}")
    version = [s["metric"].get("version") for s in query(prom, f"nfs_subdir_csi_build_info{{{R}}} == 1")]
    cargo = re.search(r'(?m)^version = "([^"]+)"', (repo / "Cargo.toml").read_text()).group(1)
    rep.check("build_info{version} = Cargo.toml's version", version == [cargo], f"{version}, Cargo.toml {cargo}")

    # promtool's linter on the raw text of both processes.
    for what, body in (("serve", text), ("provisioner", get(f"{prov}/metrics"))):
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        rep.check(f"promtool check metrics ({what}'s /metrics)", p.returncode == 0 and not out,
                  out or f"exit {p.returncode}, no problems in {len(body.splitlines())} lines")

    # Every family: described at start-up (before any RPC) by serve or provisioner; the README's
    # table names them all (when it has one); each dashboard name is among them.
    start = types_from_text((w / "metrics-start.txt").read_text())
    start_prov = types_from_text((w / "prov-metrics-start.txt").read_text())
    end = {**types_from_text(get(f"{prov}/metrics")), **types_from_text(text)}
    both = {**start_prov, **start}
    readme = readme_families((repo / "README.md").read_text())
    if readme:
        missing = sorted(set(readme) ^ set(both))
        rep.check("README's metric table = the families serve + provisioner describe at start-up (# TYPE)",
                  not missing and all(both[n] == t for n, t in readme.items()),
                  f"differ: {missing}" if missing else f"{len(readme)} families")
    else:
        print("SKIP README's metric table vs /metrics: README.md has no metrics table")
    late = sorted(set(end) - set(both))
    rep.check("every family seen after csi-sanity was described at start-up, before any call (serve + provisioner)",
              not late and all(n.startswith(PREFIX) for n in both),
              f"only later: {late}" if late else
              f"serve {len(start)}, provisioner {len(start_prov)}, together {len(both)}: {' '.join(sorted(both))}")
    dash = json.loads((repo / "deploy" / "grafana" / "nfs-subdir-csi.json").read_text())
    series = series_names(end)
    exprs = dashboard_exprs(dash)
    unknown = sorted({n for _, e in exprs for n in metric_names(e)} - set(series))
    rep.check("every metric the dashboard names is in the scraped output (# TYPE)", not unknown,
              f"unknown {unknown}" if unknown else f"{len(exprs)} queries")
    errors, with_data = [], 0
    for where, e in exprs:
        q = e.replace("$__rate_interval", "1m").replace("$__range", "5m")
        q = re.sub(r"\$\{?(job|instance)\}?", ".*", q)
        try:
            with_data += bool(query(prom, q))
        except (RuntimeError, OSError) as ex:
            errors.append(f"{where}: {ex}")
    rep.check("Prometheus evaluates every dashboard query", not errors,
              "; ".join(errors)[:400] or f"{len(exprs)} queries, {with_data} with data after csi-sanity")


if __name__ == "__main__":
    sys.exit(main())
