#!/usr/bin/env python3
"""Prints every PromQL expression of the Grafana dashboard, ready for a real Prometheus.

One JSON object per line:

    {"panel_id": 5, "panel": "Time since last successful poll", "ref_id": "A",
     "instant": false, "expr": "time() - ...{tenant=~\".*\"}",
     "recording_rules": []}

Grafana variables are substituted the way the end-to-end test needs them:
`$tenant`/`${tenant}` -> `.*` (the dashboard always uses `tenant=~"$tenant"`),
`$__rate_interval` -> `5m`, `$__interval` -> `1m`, `$__range` -> `1h`. Any other `$`
variable left in an expression is an error (exit 1), so the dashboard cannot grow an
expression the end-to-end test could not evaluate. `recording_rules` names the recording
rules of deploy/prometheus/sailpoint-task-exporter.rules.yml that the expression reads:
those return data only from a Prometheus that loaded the rules file.

Usage: python3 tests/deploy/promql_exprs.py [DASHBOARD_JSON [RULES_YML]]
Standard library only.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DASHBOARD = ROOT / "deploy/grafana/sailpoint-task-exporter.json"
DEFAULT_RULES = ROOT / "deploy/prometheus/sailpoint-task-exporter.rules.yml"

SUBSTITUTIONS = [
    (re.compile(r"\$\{tenant(?::[a-z]+)?\}|\$tenant\b"), ".*"),
    (re.compile(r"\$\{__rate_interval\}|\$__rate_interval\b"), "5m"),
    (re.compile(r"\$\{__interval\}|\$__interval\b"), "1m"),
    (re.compile(r"\$\{__range\}|\$__range\b"), "1h"),
]


def substitute(expr):
    """Replaces the dashboard's variables; raises ValueError on any other variable."""
    for pattern, value in SUBSTITUTIONS:
        expr = pattern.sub(value, expr)
    left = re.findall(r"\$\{?\w+", expr)
    if left:
        raise ValueError(f"unsupported variable(s) {left} in: {expr}")
    return expr


def recording_rule_names(rules_path):
    text = Path(rules_path).read_text(encoding="utf-8")
    return sorted(set(re.findall(r"^\s*-?\s*record:\s*(\S+)\s*$", text, re.M)))


def panels(dashboard):
    """All panels, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard, record_names):
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            if "expr" not in t:
                continue
            expr = substitute(t["expr"])
            yield {
                "panel_id": panel.get("id"),
                "panel": panel.get("title", ""),
                "ref_id": t.get("refId", ""),
                "instant": bool(t.get("instant", False)),
                "expr": expr,
                "recording_rules": [r for r in record_names if re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", expr)],
            }


def main(argv):
    dashboard_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_DASHBOARD
    rules_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_RULES
    dashboard = json.loads(dashboard_path.read_text(encoding="utf-8"))
    try:
        rows = list(expressions(dashboard, recording_rule_names(rules_path)))
    except ValueError as e:
        print(f"promql_exprs: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"promql_exprs: no expressions in {dashboard_path}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
