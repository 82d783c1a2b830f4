#!/usr/bin/env python3
"""Structure checks of the Grafana dashboard (standard library only).

  * valid JSON, stable uid, recent schemaVersion, `datasource` and `tenant` variables;
  * every panel except rows uses the `${datasource}` Prometheus datasource and has targets,
    each with a refId (unique in the panel) and a non-empty expr;
  * panel ids unique, grid positions inside 24 columns and not overlapping;
  * every sailpoint_* selector filters on tenant=~"$tenant" (build_info has no tenant);
  * every metric read is in the metric catalogue or is a recording rule of the rules file;
  * the panels the deployment brief asks for are present.
PromQL syntax is checked by check.sh with promtool on the output of promql_exprs.py.

Usage: python3 tests/deploy/check_dashboard.py [DASHBOARD_JSON]. Exit 1 on failure.
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import SERIES, metric_names  # noqa: E402
from promql_exprs import DEFAULT_DASHBOARD, DEFAULT_RULES, panels, recording_rule_names  # noqa: E402

DS = {"type": "prometheus", "uid": "${datasource}"}
NO_TENANT_LABEL = {"sailpoint_exporter_build_info"}
# (description, predicate over (panel, exprs)) for the panels the brief requires.
REQUIRED = [
    ("exporter up", lambda p, e: any(x.startswith("up{") for x in e)),
    ("tenant polls", lambda p, e: any("sailpoint_up{" in x for x in e)),
    ("last poll age", lambda p, e: any("time() - sailpoint_exporter_last_poll_success_timestamp_seconds" in x for x in e)),
    ("poll errors", lambda p, e: any("sailpoint_exporter_poll_errors_total" in x for x in e)),
    ("pending by task and source", lambda p, e: any("sailpoint_tasks_pending{" in x and "task_name, source" in x for x in e)),
    ("oldest pending age", lambda p, e: any("sailpoint_tasks_pending_oldest_created_timestamp_seconds" in x for x in e)),
    ("completions by status", lambda p, e: any("sailpoint_tasks_completed_total" in x and "by (status)" in x for x in e)),
    ("failure ratio", lambda p, e: any("sailpoint_tasks_failed:ratio" in x for x in e)),
    ("duration percentiles", lambda p, e: any("sailpoint_task_duration_seconds:quantile" in x or ("histogram_quantile" in x and "sailpoint_task_duration_seconds_bucket" in x) for x in e)),
    ("duration heatmap", lambda p, e: p["type"] == "heatmap" and any("sailpoint_task_duration_seconds_bucket" in x for x in e)),
    ("queue wait", lambda p, e: any("sailpoint_task_queue_wait_seconds" in x for x in e)),
    ("sources' last successful aggregation table", lambda p, e: p["type"] == "table" and any('status="success"' in x and "Aggregation" in x and "sailpoint_task_last_completed_timestamp_seconds" in x for x in e)),
    ("API requests by code", lambda p, e: any("sailpoint_exporter_api_requests_total" in x and "by (code)" in x for x in e)),
    ("retries by reason", lambda p, e: any("sailpoint_exporter_api_retries_total" in x and "by (reason)" in x for x in e)),
    ("429s", lambda p, e: any('code="429"' in x for x in e)),
]


def overlaps(a, b):
    return not (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_DASHBOARD
    failures = []
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"FAIL {path}: {e}")
        return 1
    records = set(recording_rule_names(DEFAULT_RULES))
    if d.get("uid") != "sailpoint-task-exporter":
        failures.append(f"uid {d.get('uid')!r} must be the stable 'sailpoint-task-exporter'")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        failures.append(f"schemaVersion {d.get('schemaVersion')!r} is not recent (>= 36)")
    variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        failures.append("variable `datasource` must be a Prometheus datasource variable")
    tenant = variables.get("tenant", {})
    if tenant.get("type") != "query" or tenant.get("datasource") != DS or not tenant.get("includeAll") \
            or tenant.get("allValue") != ".*" or "label_values(sailpoint_up, tenant)" not in json.dumps(tenant.get("query")):
        failures.append("variable `tenant` must query label_values(sailpoint_up, tenant) with All = .*")

    all_panels = list(panels(d))
    ids = [p.get("id") for p in all_panels]
    if len(ids) != len(set(ids)) or None in ids:
        failures.append(f"panel ids must be unique and set: {ids}")
    grid = []
    found = {name: False for name, _ in REQUIRED}
    for p in all_panels:
        title = p.get("title", f"panel {p.get('id')}")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] < 0 or g["x"] + g["w"] > 24:
            failures.append(f"{title}: gridPos {g} outside the 24-column grid")
        else:
            for other_title, other in grid:
                if overlaps(g, other):
                    failures.append(f"{title}: overlaps {other_title}")
            grid.append((title, g))
        if p.get("type") == "row":
            continue
        if p.get("datasource") != DS:
            failures.append(f"{title}: datasource must be {DS}")
        targets = p.get("targets") or []
        if not targets:
            failures.append(f"{title}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)) or not all(refs):
            failures.append(f"{title}: refIds must be set and unique: {refs}")
        exprs = []
        for t in targets:
            expr = t.get("expr", "")
            if not isinstance(expr, str) or not expr.strip():
                failures.append(f"{title} {t.get('refId')}: empty expr")
                continue
            exprs.append(expr)
            if t.get("datasource") != DS:
                failures.append(f"{title} {t.get('refId')}: target datasource must be {DS}")
            for metric in metric_names(expr):
                if metric not in SERIES and metric not in records:
                    failures.append(f"{title}: {metric} is neither in the metric catalogue nor a recording rule")
                if metric in NO_TENANT_LABEL:
                    continue
                # The whole name only: a native histogram's name is a prefix of its classic
                # `_bucket` series.
                for m in re.finditer(re.escape(metric) + r"(?![\w:])(\{[^}]*\})?", expr):
                    if not m.group(1) or 'tenant=~"$tenant"' not in m.group(1):
                        failures.append(f'{title}: {metric} selector without tenant=~"$tenant": {expr}')
        for name, predicate in REQUIRED:
            if predicate(p, exprs):
                found[name] = True
    for name, ok in found.items():
        if not ok:
            failures.append(f"required panel missing: {name}")

    for f in failures:
        print(f"FAIL {f}")
    n = sum(1 for p in all_panels if p.get("type") != "row")
    print(f"dashboard: {n} panels, {len(REQUIRED)} required panel kinds; {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
