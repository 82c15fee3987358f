"""PromQL helpers shared by tests/e2e/manifests (the dashboard vs the metric contract) and
tests/e2e/metrics (the same dashboard against a real Prometheus): the metric names an expression
selects, the expressions of a Grafana dashboard, and the series names of metric families.
No third-party imports, so both the manifests venv and the system python can load it.
"""

from __future__ import annotations

import re

PREFIX = "nfs_subdir_csi_"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "inf", "nan"}


def readme_families(text: str) -> dict[str, str]:
    """Family -> type from README's metrics table: rows whose first cell is a name in backticks
    (with or without the nfs_subdir_csi_ prefix, labels allowed after it) and whose second cell is
    counter, gauge or histogram."""
    rows = re.findall(r"(?m)^\|\s*`(?:" + PREFIX + r")?([a-z][a-z0-9_]*)[^`]*`\s*\|\s*(counter|gauge|histogram)\s*\|",
                      text)
    return {PREFIX + name: kind for name, kind in rows}


def types_from_text(text: str) -> dict[str, str]:
    return dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)", text))


def series_names(types: dict[str, str]) -> dict[str, str]:
    """Queryable series name -> its family: counters end in _total (OpenMetrics-style TYPE lines
    name the family without it), histograms are _bucket/_sum/_count."""
    out = {}
    for name, kind in types.items():
        if kind == "counter":
            out[name if name.endswith("_total") else name + "_total"] = name
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = name
        else:
            out[name] = name
    return out


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target (rows' nested panels too) and query variable."""
    out = []

    def walk(panels: list) -> None:
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append((f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
            walk(p.get("panels"))
    walk(dash.get("panels"))
    for v in (dash.get("templating") or {}).get("list") or []:
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q)
            out.append((f"variable {v.get('name')}", m.group(1) if m else q))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables, strings, label matchers,
    ranges and grouping clauses removed; what is left and is not a function or keyword)."""
    e = re.sub(r"\$\{?\w+\}?", "x", expr)
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or word == "x":
            continue
        names.add(word)
    return names
