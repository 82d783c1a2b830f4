#!/usr/bin/env python3
"""Checks of the Prometheus rules that promtool does not make.

  * every alert has a `severity` label and `summary`, `description` and `runbook_url`
    annotations, and its runbook_url points at an existing section of deploy/README.md;
  * every alert is unit-tested both firing (non-empty exp_alerts) and not firing
    (exp_alerts: []) in deploy/prometheus/tests/*.yml, and every recording rule is
    evaluated by a promql_expr_test;
  * every metric the rules read is in the metric catalogue (docs/metrics.md, src/metrics/catalogue.rs).

Usage: python3 tests/deploy/check_rules.py   (needs PyYAML). Exit 1 on failure.
"""

import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import SERIES, metric_names  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/sailpoint-task-exporter.rules.yml"
TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yml"))
README = ROOT / "deploy/README.md"
SEVERITIES = {"critical", "warning", "info"}


def github_anchors(markdown):
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def main():
    failures = []
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts, records = {}, set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                if rule["alert"] in alerts:
                    failures.append(f"alert {rule['alert']} is defined twice")
                alerts[rule["alert"]] = rule
            else:
                records.add(rule["record"])

    anchors = github_anchors(README.read_text(encoding="utf-8")) if README.exists() else set()
    if not README.exists():
        failures.append(f"{README} is missing")
    for name, rule in alerts.items():
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in SEVERITIES:
            failures.append(f"{name}: severity label {severity!r} not in {sorted(SEVERITIES)}")
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                failures.append(f"{name}: annotation {key} missing")
        url = annotations.get("runbook_url", "")
        match = re.fullmatch(r"deploy/README\.md#([\w-]+)", url)
        if not match or match.group(1) not in anchors:
            failures.append(f"{name}: runbook_url {url!r} is not a section of deploy/README.md")

    fired, silent, evaluated = set(), set(), set()
    for path in TESTS:
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in suite.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
            for case in test.get("promql_expr_test") or []:
                evaluated |= metric_names(case["expr"])
    for name in sorted(alerts):
        if name not in fired:
            failures.append(f"{name}: no unit test where it fires")
        if name not in silent:
            failures.append(f"{name}: no unit test where it does not fire")
    for name in sorted(records - evaluated):
        failures.append(f"recording rule {name}: no promql_expr_test evaluates it")
    unknown_tests = (fired | silent) - set(alerts)
    if unknown_tests:
        failures.append(f"tests name unknown alerts: {sorted(unknown_tests)}")

    for group in rules["groups"]:
        for rule in group["rules"]:
            for metric in metric_names(rule["expr"]) - SERIES - records:
                failures.append(f"{rule.get('alert') or rule.get('record')}: {metric} is not in the metric catalogue")

    for f in failures:
        print(f"FAIL {f}")
    print(f"rules: {len(alerts)} alerts, {len(records)} recording rules; "
          f"{len(alerts) - len(set(alerts) - fired)} tested firing, {len(alerts) - len(set(alerts) - silent)} tested silent; "
          f"{len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
