#!/usr/bin/env python3
"""Generates deploy/grafana/sailpoint-task-exporter.json, the Grafana dashboard.

The dashboard is written as code so that panel ids, grid positions and the shared
datasource/tenant wiring stay consistent; the JSON is committed so Grafana provisioning
and people without Python can use it directly.

    python3 deploy/grafana/generate-dashboard.py           # rewrite the JSON
    python3 deploy/grafana/generate-dashboard.py --check   # exit 1 if the JSON is stale

Standard library only. Every PromQL expression filters on tenant=~"$tenant" and uses only
$__rate_interval, $__interval and $__range, so tests/deploy/promql_exprs.py can
substitute them and a real Prometheus can evaluate every expression.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generated import write_or_check  # noqa: E402  (deploy/generated.py)

OUT = Path(__file__).resolve().parent / "sailpoint-task-exporter.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
T = 'tenant=~"$tenant"'


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_height = 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self._wrap()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _wrap(self):
        if self.x:
            self.y += self.row_height
            self.x = 0
            self.row_height = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._wrap()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)


def target(expr, legend="", ref="A", instant=False, fmt="time_series", exemplar=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, "format": fmt}
    if exemplar:
        # The exemplars of the task histograms name the task (task_id); the datasource's
        # exemplar link (deploy/grafana/provisioning) opens the exporter's /task/{id}.
        t["exemplar"] = True
    if instant:
        t["instant"] = True
        t["range"] = False
    else:
        t["range"] = True
    return t


def thresholds(*steps):
    """steps: (value or None, color) pairs, the first with None as the base."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(title, description, targets, unit="short", stack=False, bars=False,
               steps=None, min_zero=True):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (30 if stack else 10),
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults = {"unit": unit, "custom": custom}
    if min_zero:
        defaults["min"] = 0
    if steps:
        defaults["thresholds"] = thresholds(*steps)
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, description, targets, unit="none", steps=None, mappings=None):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": thresholds(*(steps or [(None, "green")])),
                "mappings": mappings or [],
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
            "orientation": "auto",
        },
    }


def table(title, description, targets, unit="short", steps=None, hide=(), sort_by=None,
          merge=False, renames=None):
    transformations = []
    if merge:
        transformations.append({"id": "merge", "options": {}})
    transformations.append(
        {
            "id": "organize",
            "options": {
                "excludeByName": {name: True for name in ("Time", "__name__", "job", "instance", *hide)},
                "renameByName": renames or {},
            },
        }
    )
    defaults = {"unit": unit, "custom": {"align": "auto", "cellOptions": {"type": "auto"}}}
    if steps:
        defaults["thresholds"] = thresholds(*steps)
        defaults["color"] = {"mode": "thresholds"}
        defaults["custom"]["cellOptions"] = {"type": "color-background"}
    panel = {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
    }
    if sort_by:
        panel["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return panel


def heatmap(title, description, targets):
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "interval": "1m",
        "fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "linear"}}}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64, "fill": "dark-orange"},
            "yAxis": {"axisPlacement": "left", "unit": "s"},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"show": True, "yHistogram": True},
            "legend": {"show": True},
            "filterValues": {"le": 1e-09},
        },
    }


def build():
    L = Layout()

    # ---------------------------------------------------------------- health
    L.row("Exporter health")
    L.add(stat("Exporter targets up", "Prometheus scrape status of every job matching .*sailpoint.* (alert SailPointExporterDown).",
               [target('up{job=~".*sailpoint.*"}', "{{instance}}", instant=True)],
               steps=[(None, "red"), (1, "green")],
               mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}]), 6, 4)
    L.add(stat("Tenant polls OK", "sailpoint_up: 1 when the last pending and completed polls of the tenant both succeeded (alert SailPointTenantPollsFailing).",
               [target(f"sailpoint_up{{{T}}}", "{{tenant}}", instant=True)],
               steps=[(None, "red"), (1, "green")],
               mappings=[{"type": "value", "options": {"0": {"text": "FAILING"}, "1": {"text": "OK"}}}]), 6, 4)
    L.add(table("Exporter build", "Version and revision of each exporter instance.",
                [target("sailpoint_exporter_build_info", instant=True, fmt="table")],
                hide=("Value",)), 12, 4)
    L.add(timeseries("Time since last successful poll", "Age of the last successful poll per tenant and list; alert SailPointExporterPollsStale at 15m.",
                     [target(f"time() - sailpoint_exporter_last_poll_success_timestamp_seconds{{{T}}}", "{{tenant}} {{list}}")],
                     unit="s", steps=[(None, "green"), (900, "red")]), 8, 8)
    L.add(timeseries("Poll errors", "Failed polls per tenant and list (a failed poll changes no task counters).",
                     [target(f"sum by (tenant, list) (increase(sailpoint_exporter_poll_errors_total{{{T}}}[$__rate_interval]))", "{{tenant}} {{list}}")],
                     bars=True), 8, 8)
    L.add(timeseries("Poll duration and tracked tasks", "Duration of the last poll per list, and the tasks the tracker holds (pending set, recent dedupe set).",
                     [target(f"sailpoint_exporter_last_poll_duration_seconds{{{T}}}", "duration {{tenant}} {{list}}"),
                      target(f"sailpoint_exporter_tracked_tasks{{{T}}}", "tracked {{tenant}} {{state}}", ref="B")],
                     unit="short"), 8, 8)

    # ---------------------------------------------------------------- pending
    L.row("Pending tasks")
    L.add(timeseries("Pending tasks by task and source", "Tasks pending now (queued or running).",
                     [target(f"sum by (task_name, source) (sailpoint_tasks_pending{{{T}}})", "{{task_name}} {{source}}")],
                     stack=True), 12, 8)
    L.add(timeseries("Oldest pending task age", "Age of the oldest pending task per task and source; alerts at 3h for aggregations, 6h for other tasks.",
                     [target(f"max by (task_name, source) (time() - sailpoint_tasks_pending_oldest_created_timestamp_seconds{{{T}}})", "{{task_name}} {{source}}")],
                     unit="s", steps=[(None, "green"), (10800, "orange"), (21600, "red")]), 12, 8)
    L.add(table("Oldest pending tasks (ids for the CLI)",
                "The oldest pending tasks, one row per task id (capped by max_pending_task_series). Inspect with `sailpoint-task-exporter tasks get <id>`; clear a stuck one with `sailpoint-task-exporter tasks complete <id> --status error --yes`.",
                [target(f"sort_desc(time() - sailpoint_pending_task_created_timestamp_seconds{{{T}}})", instant=True, fmt="table"),
                 target(f"sailpoint_pending_task_progress_ratio{{{T}}}", ref="B", instant=True, fmt="table")],
                unit="s", merge=True, sort_by="age",
                renames={"Value #A": "age", "Value #B": "progress"}), 24, 8)

    # ---------------------------------------------------------------- completions
    L.row("Completions")
    L.add(timeseries("Completions by status", "Tasks that completed, by completion status.",
                     [target(f"sum by (status) (increase(sailpoint_tasks_completed_total{{{T}}}[$__rate_interval]))", "{{status}}")],
                     bars=True, stack=True), 8, 8)
    L.add(timeseries("Failure ratio (6h)", "Share of the last 6 hours' completions that ended in error or terminated (recording rule tenant_task_name_source:sailpoint_tasks_failed:ratio_rate6h).",
                     [target(f"tenant_task_name_source:sailpoint_tasks_failed:ratio_rate6h{{{T}}}", "{{task_name}} {{source}}")],
                     unit="percentunit", steps=[(None, "green"), (0.01, "red")]), 8, 8)
    L.add(table("Completions in range", "Completed tasks in the dashboard's time range by task, source and status.",
                [target(f"sum by (task_name, source, status) (increase(sailpoint_tasks_completed_total{{{T}}}[$__range]))", instant=True, fmt="table")],
                unit="short", sort_by="Value"), 8, 8)
    L.add(timeseries("Task duration percentiles (6h)", "p50/p90/p99 of completed - launched over 6 hours (recording rule tenant_task_name_source:sailpoint_task_duration_seconds:quantile_rate6h).",
                     [target(f"tenant_task_name_source:sailpoint_task_duration_seconds:quantile_rate6h{{{T}}}", "p{{quantile}} {{task_name}} {{source}}"),
                      target(f"histogram_quantile(0.9, sum by (le) (rate(sailpoint_task_duration_seconds_bucket{{{T}}}[$__rate_interval]))) or histogram_quantile(0.9, sum(rate(sailpoint_task_duration_seconds{{{T}}}[$__rate_interval])))",
                             "p90 all tasks (points: the tasks, linked to their page)", ref="B", exemplar=True)],
                     unit="s"), 12, 9)
    L.add(heatmap("Task duration distribution", "Histogram of task durations (classic sailpoint_task_duration_seconds_bucket, or the native histogram), all tasks of the selected tenants; the points are the last task of each bucket, linked to its page on the exporter.",
                  [target(f"sum by (le) (increase(sailpoint_task_duration_seconds_bucket{{{T}}}[$__interval])) or sum(increase(sailpoint_task_duration_seconds{{{T}}}[$__interval]))", "{{le}}", fmt="heatmap", exemplar=True)]), 12, 9)
    L.add(timeseries("Queue wait percentiles (6h)", "p50/p90 of launched - created over 6 hours (recording rule tenant_task_name:sailpoint_task_queue_wait_seconds:quantile_rate6h).",
                     [target(f"tenant_task_name:sailpoint_task_queue_wait_seconds:quantile_rate6h{{{T}}}", "p{{quantile}} {{task_name}}")],
                     unit="s"), 12, 8)
    L.add(timeseries("Duration of the latest run", "Duration of the most recent completed task per task, source and status.",
                     [target(f"max by (task_name, source, status) (sailpoint_task_last_duration_seconds{{{T}}})", "{{task_name}} {{source}} {{status}}")],
                     unit="s"), 12, 8)
    L.add(table("Sources: time since last successful aggregation",
                "Per source and aggregation type; alert SailPointSourceNoSuccessfulAggregation at 26h.",
                [target(f'max by (tenant, task_name, source) (time() - sailpoint_task_last_completed_timestamp_seconds{{{T},status="success",task_name=~".*Aggregation.*"}})',
                        instant=True, fmt="table")],
                unit="s", steps=[(None, "green"), (86400, "orange"), (93600, "red")], sort_by="age",
                renames={"Value": "age"}), 12, 8)
    L.add(timeseries("Task messages", "WARN and ERROR messages carried by completed tasks.",
                     [target(f"sum by (level) (increase(sailpoint_task_messages_total{{{T}}}[$__rate_interval]))", "{{level}}")],
                     bars=True, stack=True), 12, 8)

    # ---------------------------------------------------------------- aggregation results
    L.row("Aggregation results")
    L.add(timeseries("Accounts per source", "total reported by the latest account aggregation of each source (sailpoint_task_return_value{attribute=\"total\"}); a drop to 0 fires SailPointAggregationEmpty.",
                     [target(f'max by (tenant, source) (sailpoint_task_return_value{{{T},attribute="total",task_name=~".*Account Aggregation.*"}})', "{{tenant}} {{source}}")],
                     unit="short"), 12, 8)
    L.add(timeseries("Accounts created, updated, deleted", "Sum of the created, updated and deleted results of the account aggregations that completed in each interval (sailpoint_task_returns_total); a mass deletion fires SailPointAggregationMassDeletion.",
                     [target(f'sum by (source, attribute) (increase(sailpoint_task_returns_total{{{T},attribute=~"created|updated|deleted",task_name=~".*Account Aggregation.*"}}[$__rate_interval]))', "{{source}} {{attribute}}")],
                     bars=True), 12, 8)
    L.add(table("Latest aggregation results per source", "What the latest account aggregation of each source reported (created, updated, deleted, total, …).",
                [target(f'max by (tenant, source, attribute) (sailpoint_task_return_value{{{T},task_name=~".*Account Aggregation.*"}})', instant=True, fmt="table")],
                unit="short", sort_by="Value"), 24, 8)

    # ---------------------------------------------------------------- API
    L.row("SailPoint API")
    L.add(timeseries("API requests by code", "Requests to SailPoint per HTTP status code (\"error\" = no response).",
                     [target(f"sum by (code) (rate(sailpoint_exporter_api_requests_total{{{T}}}[$__rate_interval]))", "{{code}}")],
                     unit="reqps", stack=True), 8, 8)
    L.add(timeseries("Retries by reason", "Retried requests: rate_limited, server_error, timeout, connect.",
                     [target(f"sum by (reason) (rate(sailpoint_exporter_api_retries_total{{{T}}}[$__rate_interval]))", "{{reason}}")],
                     unit="reqps", stack=True), 8, 8)
    L.add(timeseries("429 Too Many Requests", "Rate-limited responses per tenant and operation (alert SailPointExporterRateLimited).",
                     [target(f'sum by (tenant, operation) (increase(sailpoint_exporter_api_requests_total{{{T},code="429"}}[$__rate_interval]))', "{{tenant}} {{operation}}")],
                     bars=True), 8, 8)
    L.add(timeseries("Request budget used (per 10 s)", "Requests per 10 seconds per tenant; SailPoint allows 100 per 10 s per client id, shared by every client using that id.",
                     [target(f"sum by (tenant) (rate(sailpoint_exporter_api_requests_total{{{T}}}[$__rate_interval])) * 10", "{{tenant}}")],
                     unit="short", steps=[(None, "green"), (90, "orange"), (100, "red")]), 8, 8)
    L.add(timeseries("API latency p90 by operation", "90th percentile of request duration per operation.",
                     [target(f"histogram_quantile(0.9, sum by (operation, le) (rate(sailpoint_exporter_api_request_duration_seconds_bucket{{{T}}}[$__rate_interval])))", "{{operation}}")],
                     unit="s"), 8, 8)
    L.add(timeseries("Token refreshes", "OAuth client-credentials token refreshes per tenant.",
                     [target(f"sum by (tenant) (increase(sailpoint_exporter_token_refreshes_total{{{T}}}[$__rate_interval]))", "{{tenant}}")],
                     bars=True), 8, 8)
    return L.panels


def dashboard():
    return {
        "uid": "sailpoint-task-exporter",
        "title": "SailPoint task exporter",
        "description": "SailPoint Identity Security Cloud task status from sailpoint-task-exporter: pending and stuck tasks, completions, durations, aggregation health and API budget.",
        "tags": ["sailpoint", "identity", "prometheus"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                },
                {
                    "name": "tenant",
                    "label": "Tenant",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(sailpoint_up, tenant)",
                    "query": {"query": "label_values(sailpoint_up, tenant)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                    "current": {},
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "skipUrlSync": False,
                },
            ]
        },
        "panels": build(),
    }


def render():
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    return write_or_check(OUT, render(), argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
