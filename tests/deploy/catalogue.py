"""The metric catalogue, shared by the deploy checks; `tests/it/catalogue.rs` checks it
against the exporter's own catalogue (`src/metrics/catalogue.rs`).

Rules and dashboard may only read these families (plus Prometheus's own `up` and the
recording rules of the rules file), so a typo in a metric name fails the check instead of
producing an empty panel or an alert that can never fire.
"""

import re

GAUGES = {
    "sailpoint_up",
    "sailpoint_tasks_pending",
    "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
    "sailpoint_pending_task_created_timestamp_seconds",
    "sailpoint_pending_task_progress_ratio",
    "sailpoint_task_last_completed_timestamp_seconds",
    "sailpoint_task_last_duration_seconds",
    "sailpoint_exporter_last_poll_success_timestamp_seconds",
    "sailpoint_exporter_last_poll_duration_seconds",
    "sailpoint_exporter_tracked_tasks",
    "sailpoint_exporter_build_info",
    "sailpoint_exporter_state_last_write_success_timestamp_seconds",
    "sailpoint_exporter_config_last_reload_successful",
    "sailpoint_exporter_config_last_reload_success_timestamp_seconds",
    "sailpoint_exporter_clock_skew_seconds",
    "sailpoint_exporter_counting_degraded",
    "sailpoint_task_return_value",
}
COUNTERS = {
    "sailpoint_tasks_completed_total",
    "sailpoint_task_messages_total",
    "sailpoint_exporter_poll_errors_total",
    "sailpoint_exporter_api_requests_total",
    "sailpoint_exporter_api_retries_total",
    "sailpoint_exporter_token_refreshes_total",
    "sailpoint_exporter_groups_folded_total",
    "sailpoint_exporter_state_writes_failed_total",
    "sailpoint_exporter_state_set_aside_total",
    "sailpoint_exporter_invalid_records_total",
    "sailpoint_exporter_lookups_set_aside_total",
    "sailpoint_exporter_unsorted_reads_total",
    "sailpoint_task_returns_total",
    "sailpoint_exporter_return_attributes_folded_total",
}
HISTOGRAMS = {
    "sailpoint_task_duration_seconds",
    "sailpoint_task_queue_wait_seconds",
    "sailpoint_exporter_api_request_duration_seconds",
}
# The histograms that also have native buckets (protobuf scrapes): a Prometheus with
# native histograms enabled stores them under the bare name.
NATIVE_HISTOGRAMS = {
    "sailpoint_task_duration_seconds",
    "sailpoint_task_queue_wait_seconds",
}
# Series names a query can select: gauges, counters, the histograms' classic series and
# the native ones.
SERIES = (
    GAUGES
    | COUNTERS
    | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
    | NATIVE_HISTOGRAMS
)

NAME = re.compile(r"(?<![\w:\"])((?:[a-z_]+:)?sailpoint_[a-z0-9_]+(?::[a-z0-9_]+)?)(?![\w\"])")


def metric_names(expr):
    """sailpoint_* metric and recording-rule names that an expression selects."""
    # Drop string literals (label values, template text) before looking for names.
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(NAME.findall(code))
