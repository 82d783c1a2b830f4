//! The one list of every metric family the exporter serves: name, type, labels and HELP.
//!
//! Registration, rendering, `docs/metrics.md` and the deploy checks' `catalogue.py` all
//! follow this list (tests compare them), so a family is added in one place: append a
//! [`Family`] here, then write its values from the tenant state.

/// The type of a family, as in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count; Prometheus must never see it go down.
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Buckets, sum and count of observations.
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Which bucket layout a histogram family uses (the first two are configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Not a histogram.
    None,
    /// `metrics.duration_buckets`.
    TaskDuration,
    /// `metrics.queue_wait_buckets`.
    QueueWait,
    /// [`API_DURATION_BUCKETS`].
    ApiDuration,
}

/// Who owns a family's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One series set per tenant, in the tenant's owned state (first label is `tenant`);
    /// persisted with `storage.path`.
    Tenant,
    /// Process-wide, kept in the `prometheus` registry (build info, reload status).
    Process,
}

/// One metric family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Family {
    /// Metric name (without `_bucket`/`_sum`/`_count`).
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Label names in order (`tenant` first for [`Scope::Tenant`] families).
    pub labels: &'static [&'static str],
    /// HELP text (tenant families get the polling sentence appended).
    pub help: &'static str,
    /// Bucket layout of a histogram.
    pub buckets: Buckets,
    /// Who owns the values.
    pub scope: Scope,
}

/// Buckets of `sailpoint_exporter_api_request_duration_seconds`: a fast API answers in
/// tens of milliseconds, a paged list under load in seconds, a hung request hits the
/// request timeout (default 30 s).
pub const API_DURATION_BUCKETS: [f64; 11] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// Appended to the HELP of every tenant family: operators must know that a value is as
/// old as the last successful poll, not computed at scrape time.
pub const POLLED: &str =
    "Updated by background polling of the SailPoint task-status API, not at scrape time.";

const GROUP: &[&str] = &["tenant", "task_name", "source"];
const GROUP_STATUS: &[&str] = &["tenant", "task_name", "source", "status"];
const TASK: &[&str] = &["tenant", "id", "task_name", "source"];
const LIST: &[&str] = &["tenant", "list"];
const TENANT: &[&str] = &["tenant"];

const fn tenant(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        labels,
        help,
        buckets: Buckets::None,
        scope: Scope::Tenant,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: Buckets,
) -> Family {
    Family {
        name,
        kind: Kind::Histogram,
        labels,
        help,
        buckets,
        scope: Scope::Tenant,
    }
}

const fn process(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        buckets: Buckets::None,
        scope: Scope::Process,
    }
}

/// `sailpoint_up`.
pub const UP: Family = tenant(
    "sailpoint_up",
    Kind::Gauge,
    TENANT,
    "1 if the last pending and the last completed poll of the tenant both succeeded, else 0.",
);
/// `sailpoint_tasks_pending`.
pub const TASKS_PENDING: Family = tenant(
    "sailpoint_tasks_pending",
    Kind::Gauge,
    GROUP,
    "Tasks pending now, per task name and source.",
);
/// `sailpoint_tasks_pending_oldest_created_timestamp_seconds`.
pub const PENDING_OLDEST: Family = tenant(
    "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
    Kind::Gauge,
    GROUP,
    "Creation time (Unix seconds) of the oldest pending task of the group.",
);
/// `sailpoint_pending_task_created_timestamp_seconds`.
pub const PENDING_TASK_CREATED: Family = tenant(
    "sailpoint_pending_task_created_timestamp_seconds",
    Kind::Gauge,
    TASK,
    "Creation time (Unix seconds) of one pending task; only the oldest max_pending_task_series tasks of the tenant have a series.",
);
/// `sailpoint_pending_task_progress_ratio`.
pub const PENDING_TASK_PROGRESS: Family = tenant(
    "sailpoint_pending_task_progress_ratio",
    Kind::Gauge,
    TASK,
    "percentComplete / 100 of one pending task (same tasks as sailpoint_pending_task_created_timestamp_seconds).",
);
/// `sailpoint_tasks_completed_total`.
pub const COMPLETED_TOTAL: Family = tenant(
    "sailpoint_tasks_completed_total",
    Kind::Counter,
    GROUP_STATUS,
    "Completed tasks, each counted once, by completion status.",
);
/// `sailpoint_task_duration_seconds`.
pub const DURATION: Family = histogram(
    "sailpoint_task_duration_seconds",
    GROUP_STATUS,
    "Task run time: completed - launched (completed - created when never launched).",
    Buckets::TaskDuration,
);
/// `sailpoint_task_duration_seconds` without `status`, served instead of [`DURATION`]
/// when `metrics.duration_by_status` is false (not listed in [`CATALOGUE`]: one name,
/// one family, whichever the configuration chose).
pub const DURATION_BY_GROUP: Family = histogram(
    "sailpoint_task_duration_seconds",
    GROUP,
    "Task run time: completed - launched (completed - created when never launched).",
    Buckets::TaskDuration,
);
/// `sailpoint_task_queue_wait_seconds`.
pub const QUEUE_WAIT: Family = histogram(
    "sailpoint_task_queue_wait_seconds",
    GROUP,
    "Time a task waited before it was launched: launched - created.",
    Buckets::QueueWait,
);
/// `sailpoint_task_last_completed_timestamp_seconds`.
pub const LAST_COMPLETED: Family = tenant(
    "sailpoint_task_last_completed_timestamp_seconds",
    Kind::Gauge,
    GROUP_STATUS,
    "Completion time (Unix seconds) of the latest task of the group with that status.",
);
/// `sailpoint_task_last_duration_seconds`.
pub const LAST_DURATION: Family = tenant(
    "sailpoint_task_last_duration_seconds",
    Kind::Gauge,
    GROUP_STATUS,
    "Run time in seconds of the latest task of the group with that status.",
);
/// `sailpoint_task_messages_total`.
pub const MESSAGES_TOTAL: Family = tenant(
    "sailpoint_task_messages_total",
    Kind::Counter,
    &["tenant", "task_name", "source", "level"],
    "WARN and ERROR messages of completed tasks, by level.",
);
/// `sailpoint_exporter_last_poll_success_timestamp_seconds`.
pub const LAST_POLL_SUCCESS: Family = tenant(
    "sailpoint_exporter_last_poll_success_timestamp_seconds",
    Kind::Gauge,
    LIST,
    "Time (Unix seconds) of the last successful poll of the list.",
);
/// `sailpoint_exporter_last_poll_duration_seconds`.
pub const LAST_POLL_DURATION: Family = tenant(
    "sailpoint_exporter_last_poll_duration_seconds",
    Kind::Gauge,
    LIST,
    "Wall time in seconds of the last poll of the list, successful or not.",
);
/// `sailpoint_exporter_poll_errors_total`.
pub const POLL_ERRORS: Family = tenant(
    "sailpoint_exporter_poll_errors_total",
    Kind::Counter,
    LIST,
    "Polls of the list that failed (nothing of a failed poll is applied).",
);
/// `sailpoint_exporter_api_requests_total`.
pub const API_REQUESTS: Family = tenant(
    "sailpoint_exporter_api_requests_total",
    Kind::Counter,
    &["tenant", "operation", "code"],
    "HTTP requests to the SailPoint API by operationId (or token) and HTTP status code (or error).",
);
/// `sailpoint_exporter_api_request_duration_seconds`.
pub const API_DURATION: Family = histogram(
    "sailpoint_exporter_api_request_duration_seconds",
    &["tenant", "operation"],
    "Duration of HTTP requests to the SailPoint API.",
    Buckets::ApiDuration,
);
/// `sailpoint_exporter_api_retries_total`.
pub const API_RETRIES: Family = tenant(
    "sailpoint_exporter_api_retries_total",
    Kind::Counter,
    &["tenant", "reason"],
    "Retried SailPoint API requests by reason (rate_limited, server_error, timeout, connect).",
);
/// `sailpoint_exporter_token_refreshes_total`.
pub const TOKEN_REFRESHES: Family = tenant(
    "sailpoint_exporter_token_refreshes_total",
    Kind::Counter,
    TENANT,
    "OAuth access tokens fetched.",
);
/// `sailpoint_exporter_tracked_tasks`.
pub const TRACKED: Family = tenant(
    "sailpoint_exporter_tracked_tasks",
    Kind::Gauge,
    &["tenant", "state"],
    "Tasks held in memory for exactly-once tracking: pending set, and recent = completions remembered for lookback so none counts twice.",
);
/// `sailpoint_task_returns_total`.
pub const RETURNS_TOTAL: Family = tenant(
    "sailpoint_task_returns_total",
    Kind::Counter,
    &["tenant", "task_name", "source", "attribute"],
    "Sum of a numeric task result (a returns entry whose attributes value is a number, e.g. total, created, updated, deleted of an account aggregation) over completed tasks, each counted once; negative values are not added.",
);
/// `sailpoint_task_return_value`.
pub const RETURN_VALUE: Family = tenant(
    "sailpoint_task_return_value",
    Kind::Gauge,
    &["tenant", "task_name", "source", "attribute"],
    "The numeric task result of the latest completed task of the group that reported results (primed from lookback at start).",
);
/// `sailpoint_exporter_return_attributes_folded_total`.
pub const RETURN_ATTRIBUTES_FOLDED: Family = tenant(
    "sailpoint_exporter_return_attributes_folded_total",
    Kind::Counter,
    TENANT,
    "Task results attributed to attribute=\"other\" because their group reached metrics.max_return_attributes distinct attributes.",
);
/// `sailpoint_exporter_groups_folded_total`.
pub const GROUPS_FOLDED: Family = tenant(
    "sailpoint_exporter_groups_folded_total",
    Kind::Counter,
    TENANT,
    "Tasks (completions, and pending tasks when first seen) attributed to task_name=\"other\", source=\"other\" because the tenant reached max_groups.",
);
/// `sailpoint_exporter_invalid_records_total`.
pub const INVALID_RECORDS: Family = tenant(
    "sailpoint_exporter_invalid_records_total",
    Kind::Counter,
    &["tenant", "operation", "reason"],
    "Off-spec task records read, by operation and what was done: defaulted (a non-essential field replaced by its default) or skipped (an essential field missing or invalid). Counted at every read.",
);
/// `sailpoint_exporter_clock_skew_seconds`.
pub const CLOCK_SKEW: Family = tenant(
    "sailpoint_exporter_clock_skew_seconds",
    Kind::Gauge,
    TENANT,
    "Tenant clock minus exporter clock, from the Date header of the last pending answer (errs low by up to a second plus the read's duration).",
);
/// `sailpoint_exporter_lookups_set_aside_total`.
pub const LOOKUPS_SET_ASIDE: Family = tenant(
    "sailpoint_exporter_lookups_set_aside_total",
    Kind::Counter,
    TENANT,
    "Tasks that left the pending list and whose lookup by id failed 5 polls in a row: no longer followed, their completion is not counted.",
);
/// `sailpoint_exporter_unsorted_reads_total`.
pub const UNSORTED_READS: Family = tenant(
    "sailpoint_exporter_unsorted_reads_total",
    Kind::Counter,
    TENANT,
    "Completed reads that met a page not sorted newest first (the API ignored sorters) and therefore read the whole list down to its end instead of stopping at the lower bound; counting stays exact, each such read costs every page of the list.",
);
/// `sailpoint_exporter_counting_degraded`.
pub const COUNTING_DEGRADED: Family = tenant(
    "sailpoint_exporter_counting_degraded",
    Kind::Gauge,
    TENANT,
    "1 for lookback after a completed read capped at now - lookback (a list failed for longer than lookback), and while the clocks are over a day apart: completions may be missing.",
);
/// `sailpoint_exporter_state_writes_failed_total`.
pub const STATE_WRITES_FAILED: Family = tenant(
    "sailpoint_exporter_state_writes_failed_total",
    Kind::Counter,
    TENANT,
    "Writes of the tenant's state file (storage.path) that failed; the exporter keeps serving from memory.",
);
/// `sailpoint_exporter_state_last_write_success_timestamp_seconds`.
pub const STATE_LAST_WRITE: Family = tenant(
    "sailpoint_exporter_state_last_write_success_timestamp_seconds",
    Kind::Gauge,
    TENANT,
    "Time (Unix seconds) the tenant's state file (storage.path) was last written successfully.",
);
/// `sailpoint_exporter_state_set_aside_total`.
pub const STATE_SET_ASIDE: Family = tenant(
    "sailpoint_exporter_state_set_aside_total",
    Kind::Counter,
    &["tenant", "reason"],
    "State files found at start that could not be resumed (corrupt, foreign, version, too_old, unreadable) and were renamed aside; the tenant started fresh.",
);
/// `sailpoint_exporter_build_info`.
pub const BUILD_INFO: Family = process(
    "sailpoint_exporter_build_info",
    &["version", "revision"],
    "Always 1; the labels carry the exporter's version and source revision.",
);
/// `sailpoint_exporter_config_last_reload_successful`.
pub const RELOAD_SUCCESSFUL: Family = process(
    "sailpoint_exporter_config_last_reload_successful",
    &[],
    "1 if the last configuration load (start or SIGHUP reload) succeeded, 0 if it was refused.",
);
/// `sailpoint_exporter_config_last_reload_success_timestamp_seconds`.
pub const RELOAD_SUCCESS_TIME: Family = process(
    "sailpoint_exporter_config_last_reload_success_timestamp_seconds",
    &[],
    "Time of the last successful configuration load (start or SIGHUP reload).",
);

/// Every family the exporter serves (besides the `process_*` families of the
/// `prometheus` crate).
pub const CATALOGUE: &[Family] = &[
    UP,
    TASKS_PENDING,
    PENDING_OLDEST,
    PENDING_TASK_CREATED,
    PENDING_TASK_PROGRESS,
    COMPLETED_TOTAL,
    DURATION,
    QUEUE_WAIT,
    LAST_COMPLETED,
    LAST_DURATION,
    MESSAGES_TOTAL,
    RETURNS_TOTAL,
    RETURN_VALUE,
    LAST_POLL_SUCCESS,
    LAST_POLL_DURATION,
    POLL_ERRORS,
    API_REQUESTS,
    API_DURATION,
    API_RETRIES,
    TOKEN_REFRESHES,
    TRACKED,
    GROUPS_FOLDED,
    RETURN_ATTRIBUTES_FOLDED,
    INVALID_RECORDS,
    CLOCK_SKEW,
    LOOKUPS_SET_ASIDE,
    UNSORTED_READS,
    COUNTING_DEGRADED,
    STATE_WRITES_FAILED,
    STATE_LAST_WRITE,
    STATE_SET_ASIDE,
    BUILD_INFO,
    RELOAD_SUCCESSFUL,
    RELOAD_SUCCESS_TIME,
];

/// The family of that name, if it is in the catalogue.
pub fn find(name: &str) -> Option<&'static Family> {
    CATALOGUE.iter().find(|f| f.name == name)
}

/// The tenant-owned families (what a tenant's state holds and its state file persists).
pub fn tenant_families() -> impl Iterator<Item = &'static Family> {
    CATALOGUE.iter().filter(|f| f.scope == Scope::Tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_tenant_families_start_with_the_tenant_label() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        for f in tenant_families() {
            assert_eq!(f.labels.first(), Some(&"tenant"), "{}", f.name);
            assert_eq!(
                f.kind == Kind::Histogram,
                f.buckets != Buckets::None,
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
    }
}
