//! The exporter's metric state: the one place that owns the prometheus [`Registry`].
//!
//! Pollers write into it through a per-tenant [`TenantMetrics`]; `/metrics` reads it with
//! [`Metrics::render`], which only encodes what is in memory and never calls SailPoint.
//! Every family, name, type and label set is the one agreed in DESIGN §4, plus one
//! addition: `sailpoint_exporter_groups_folded_total{tenant}`, which says how many tasks
//! were attributed to the `other` group by the cardinality guard.
//!
//! Label rules live here too (see [`normalize`]), so that every path that touches a task
//! (pending snapshot, completion, priming) derives the same `task_name`/`source` labels and
//! passes the same cardinality guard.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::config::{MetricsSettings, Rewrite};
use crate::sailpoint::model::{CompletionStatus, TaskStatus};
use crate::sailpoint::tolerant::RecordFault;
use crate::sailpoint::{ApiObserver, RetryReason};

/// Buckets of `sailpoint_exporter_api_request_duration_seconds`: a fast API answers in
/// tens of milliseconds, a paged list under load in seconds, a hung request hits the
/// request timeout (default 30 s).
pub const API_DURATION_BUCKETS: [f64; 11] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// Appended to every HELP text: operators must know that a value is as old as the last
/// successful poll, not computed at scrape time.
const POLLED: &str =
    "Updated by background polling of the SailPoint task-status API, not at scrape time.";

/// Label value of the group that absorbs everything beyond `max_groups`.
pub const OTHER: &str = "other";

/// Why the metric state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A family could not be created or registered (bad name, label or buckets).
    #[error("cannot register metric families: {0}")]
    Registry(#[from] prometheus::Error),
}

/// Which of the two task lists a poll read; the `list` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollList {
    /// `GET /task-status/pending-tasks` (or `completionStatus isnull`).
    Pending,
    /// `GET /task-status?sorters=-created`.
    Completed,
}

impl PollList {
    /// The `list` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PollList::Pending => "pending",
            PollList::Completed => "completed",
        }
    }
}

/// Task-name normalisation and other label derivations, shared by every update path.
pub mod normalize {
    use std::sync::LazyLock;

    use regex::Regex;

    use crate::config::Rewrite;
    use crate::sailpoint::model::TaskStatus;

    /// Longest label value kept; longer names are cut (on a character boundary) so a
    /// hostile payload cannot blow up the exposition.
    pub const MAX_LABEL_CHARS: usize = 128;

    /// Label used when a task has no usable name or status.
    pub const UNKNOWN: &str = "unknown";

    const ID: &str = r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

    /// A trailing 32-hex id or dashed uuid, either after a separator (space, `-`, `_`,
    /// `:`, `#`, `/`) or wrapped in `[...]`/`(...)`. Brackets that do not hold an id
    /// (e.g. "Active Directory [source]") are part of the name and kept.
    static ID_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
        let pattern = format!(
            r"^(?P<name>.*?)(?:[\s\-_:#/]*(?:\[\s*{ID}\s*\]|\(\s*{ID}\s*\))|(?:^|[\s\-_:#/]+){ID})\s*$"
        );
        // The pattern is a constant; failing to compile it is a programming error that
        // every test run would show, so falling back to "never matches" is only defensive.
        Regex::new(&pattern)
            .unwrap_or_else(|_| Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!()))
    });

    fn is_separator(c: char) -> bool {
        c.is_whitespace() || matches!(c, '-' | '_' | ':' | '#' | '/')
    }

    /// Strips one trailing id/uuid suffix and the separators before it.
    pub fn strip_id_suffix(name: &str) -> &str {
        let stripped = ID_SUFFIX
            .captures(name)
            .and_then(|c| c.name("name"))
            .map_or(name, |m| m.as_str());
        stripped.trim().trim_end_matches(is_separator).trim()
    }

    /// The `task_name` label: `uniqueName` without its id suffix, then the configured
    /// rewrites in order; "unknown" when nothing is left.
    pub fn task_name(unique_name: &str, rewrites: &[Rewrite]) -> String {
        let mut name = strip_id_suffix(unique_name).to_string();
        for rewrite in rewrites {
            name = rewrite
                .pattern
                .replace_all(&name, rewrite.replacement.as_str())
                .into_owned();
        }
        let name = name.trim();
        if name.is_empty() {
            UNKNOWN.to_string()
        } else {
            truncate(name)
        }
    }

    /// The `source` label: `target.name` for `APPLICATION` targets, else empty.
    pub fn source(task: &TaskStatus) -> String {
        task.source_name().map(truncate).unwrap_or_default()
    }

    /// The `status` label: the completion status lower-cased, "unknown" when a completed
    /// task carries none.
    pub fn status(task: &TaskStatus) -> String {
        match &task.completion_status {
            Some(s) => {
                let label = truncate(&s.label());
                if label.trim().is_empty() {
                    UNKNOWN.to_string()
                } else {
                    label
                }
            }
            None => UNKNOWN.to_string(),
        }
    }

    /// The `level` label of a message that is counted (`warn`, `error`); other levels
    /// (`INFO`, unknown) are not counted.
    pub fn message_level(level: &str) -> Option<&'static str> {
        if level.eq_ignore_ascii_case("warn") {
            Some("warn")
        } else if level.eq_ignore_ascii_case("error") {
            Some("error")
        } else {
            None
        }
    }

    fn truncate(s: &str) -> String {
        s.chars().take(MAX_LABEL_CHARS).collect()
    }
}

/// Every metric family of DESIGN §4, registered once.
struct Families {
    up: IntGaugeVec,
    tasks_pending: IntGaugeVec,
    pending_oldest: GaugeVec,
    pending_task_created: GaugeVec,
    pending_task_progress: GaugeVec,
    completed_total: IntCounterVec,
    duration: HistogramVec,
    queue_wait: HistogramVec,
    last_completed: GaugeVec,
    last_duration: GaugeVec,
    messages_total: IntCounterVec,
    last_poll_success: GaugeVec,
    last_poll_duration: GaugeVec,
    poll_errors: IntCounterVec,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    api_retries: IntCounterVec,
    token_refreshes: IntCounterVec,
    tracked: IntGaugeVec,
    groups_folded: IntCounterVec,
    invalid_records: IntCounterVec,
    clock_skew: GaugeVec,
    lookups_set_aside: IntCounterVec,
    counting_degraded: IntGaugeVec,
    /// `duration` has a `status` label (`metrics.duration_by_status`).
    duration_by_status: bool,
}

fn help(text: &str) -> String {
    format!("{text} {POLLED}")
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn int_gauge(r: &Registry, name: &str, h: &str, l: &[&str]) -> Result<IntGaugeVec, MetricsError> {
    register(r, IntGaugeVec::new(Opts::new(name, help(h)), l)?)
}

fn gauge(r: &Registry, name: &str, h: &str, l: &[&str]) -> Result<GaugeVec, MetricsError> {
    register(r, GaugeVec::new(Opts::new(name, help(h)), l)?)
}

fn counter(r: &Registry, name: &str, h: &str, l: &[&str]) -> Result<IntCounterVec, MetricsError> {
    register(r, IntCounterVec::new(Opts::new(name, help(h)), l)?)
}

fn histogram(
    r: &Registry,
    name: &str,
    h: &str,
    l: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help(h)).buckets(buckets.to_vec());
    register(r, HistogramVec::new(opts, l)?)
}

const GROUP: [&str; 3] = ["tenant", "task_name", "source"];
const GROUP_STATUS: [&str; 4] = ["tenant", "task_name", "source", "status"];
const TASK: [&str; 4] = ["tenant", "id", "task_name", "source"];

impl Families {
    fn register(r: &Registry, s: &MetricsSettings) -> Result<Families, MetricsError> {
        Ok(Families {
            up: int_gauge(
                r,
                "sailpoint_up",
                "1 if the last pending and the last completed poll of the tenant both succeeded, else 0.",
                &["tenant"],
            )?,
            tasks_pending: int_gauge(
                r,
                "sailpoint_tasks_pending",
                "Tasks pending now, per task name and source.",
                &GROUP,
            )?,
            pending_oldest: gauge(
                r,
                "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
                "Creation time (Unix seconds) of the oldest pending task of the group.",
                &GROUP,
            )?,
            pending_task_created: gauge(
                r,
                "sailpoint_pending_task_created_timestamp_seconds",
                "Creation time (Unix seconds) of one pending task; only the oldest max_pending_task_series tasks of the tenant have a series.",
                &TASK,
            )?,
            pending_task_progress: gauge(
                r,
                "sailpoint_pending_task_progress_ratio",
                "percentComplete / 100 of one pending task (same tasks as sailpoint_pending_task_created_timestamp_seconds).",
                &TASK,
            )?,
            completed_total: counter(
                r,
                "sailpoint_tasks_completed_total",
                "Completed tasks, each counted once, by completion status.",
                &GROUP_STATUS,
            )?,
            duration: histogram(
                r,
                "sailpoint_task_duration_seconds",
                "Task run time: completed - launched (completed - created when never launched).",
                if s.duration_by_status {
                    &GROUP_STATUS
                } else {
                    &GROUP
                },
                &s.duration_buckets,
            )?,
            queue_wait: histogram(
                r,
                "sailpoint_task_queue_wait_seconds",
                "Time a task waited before it was launched: launched - created.",
                &GROUP,
                &s.queue_wait_buckets,
            )?,
            last_completed: gauge(
                r,
                "sailpoint_task_last_completed_timestamp_seconds",
                "Completion time (Unix seconds) of the latest task of the group with that status.",
                &GROUP_STATUS,
            )?,
            last_duration: gauge(
                r,
                "sailpoint_task_last_duration_seconds",
                "Run time in seconds of the latest task of the group with that status.",
                &GROUP_STATUS,
            )?,
            messages_total: counter(
                r,
                "sailpoint_task_messages_total",
                "WARN and ERROR messages of completed tasks, by level.",
                &["tenant", "task_name", "source", "level"],
            )?,
            last_poll_success: gauge(
                r,
                "sailpoint_exporter_last_poll_success_timestamp_seconds",
                "Time (Unix seconds) of the last successful poll of the list.",
                &["tenant", "list"],
            )?,
            last_poll_duration: gauge(
                r,
                "sailpoint_exporter_last_poll_duration_seconds",
                "Wall time in seconds of the last poll of the list, successful or not.",
                &["tenant", "list"],
            )?,
            poll_errors: counter(
                r,
                "sailpoint_exporter_poll_errors_total",
                "Polls of the list that failed (nothing of a failed poll is applied).",
                &["tenant", "list"],
            )?,
            api_requests: counter(
                r,
                "sailpoint_exporter_api_requests_total",
                "HTTP requests to the SailPoint API by operationId (or token) and HTTP status code (or error).",
                &["tenant", "operation", "code"],
            )?,
            api_duration: histogram(
                r,
                "sailpoint_exporter_api_request_duration_seconds",
                "Duration of HTTP requests to the SailPoint API.",
                &["tenant", "operation"],
                &API_DURATION_BUCKETS,
            )?,
            api_retries: counter(
                r,
                "sailpoint_exporter_api_retries_total",
                "Retried SailPoint API requests by reason (rate_limited, server_error, timeout, connect).",
                &["tenant", "reason"],
            )?,
            token_refreshes: counter(
                r,
                "sailpoint_exporter_token_refreshes_total",
                "OAuth access tokens fetched.",
                &["tenant"],
            )?,
            tracked: int_gauge(
                r,
                "sailpoint_exporter_tracked_tasks",
                "Tasks held in memory for exactly-once tracking: pending set and recently recorded (dedupe) set.",
                &["tenant", "state"],
            )?,
            groups_folded: counter(
                r,
                "sailpoint_exporter_groups_folded_total",
                "Tasks (completions, and pending tasks when first seen) attributed to task_name=\"other\", source=\"other\" because the tenant reached max_groups.",
                &["tenant"],
            )?,
            invalid_records: counter(
                r,
                "sailpoint_exporter_invalid_records_total",
                "Off-spec task records read, by operation and what was done: defaulted (a non-essential field replaced by its default) or skipped (an essential field missing or invalid). Counted at every read.",
                &["tenant", "operation", "reason"],
            )?,
            clock_skew: gauge(
                r,
                "sailpoint_exporter_clock_skew_seconds",
                "Tenant clock minus exporter clock, from the Date header of the last pending answer (errs low by up to a second plus the read's duration).",
                &["tenant"],
            )?,
            lookups_set_aside: counter(
                r,
                "sailpoint_exporter_lookups_set_aside_total",
                "Tasks that left the pending list and whose lookup by id failed 5 polls in a row: no longer followed, their completion is not counted.",
                &["tenant"],
            )?,
            counting_degraded: int_gauge(
                r,
                "sailpoint_exporter_counting_degraded",
                "1 while a list has failed for longer than lookback and the completed read is capped at now - lookback: a task created and finished during the failure may be missed.",
                &["tenant"],
            )?,
            duration_by_status: s.duration_by_status,
        })
    }
}

/// Label rules shared by all tenants.
struct LabelRules {
    max_groups: usize,
    max_pending_task_series: usize,
    rewrites: Vec<Rewrite>,
}

/// The exporter's metric state; shared (`Arc`) by the pollers and the HTTP server.
pub struct Metrics {
    registry: Registry,
    families: Arc<Families>,
    rules: Arc<LabelRules>,
    tenants: Mutex<HashMap<String, TenantMetrics>>,
    reload_successful: prometheus::IntGauge,
    reload_success_time: prometheus::Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every family with the configured buckets, the process collector and
    /// `sailpoint_exporter_build_info{version,revision} 1`.
    pub fn new(
        settings: &MetricsSettings,
        version: &str,
        revision: &str,
    ) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let families = Families::register(&registry, settings)?;
        let build_info = int_gauge(
            &registry,
            "sailpoint_exporter_build_info",
            "Always 1; the labels carry the exporter's version and source revision.",
            &["version", "revision"],
        )?;
        build_info.with_label_values(&[version, revision]).set(1);
        let reload_successful = prometheus::IntGauge::new(
            "sailpoint_exporter_config_last_reload_successful",
            "1 if the last configuration load (start or SIGHUP reload) succeeded, 0 if it was refused.",
        )?;
        let reload_success_time = prometheus::Gauge::new(
            "sailpoint_exporter_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration load (start or SIGHUP reload).",
        )?;
        registry.register(Box::new(reload_successful.clone()))?;
        registry.register(Box::new(reload_success_time.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            families: Arc::new(families),
            rules: Arc::new(LabelRules {
                max_groups: settings.max_groups.max(1),
                max_pending_task_series: settings.max_pending_task_series,
                rewrites: settings.task_name_rewrites.clone(),
            }),
            tenants: Mutex::new(HashMap::new()),
            reload_successful,
            reload_success_time,
        })
    }

    /// Records the outcome of a configuration load (at start or on reload).
    pub fn config_reloaded(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time
                .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }

    /// The whole registry in the text exposition format 0.0.4. Reads memory only.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail on I/O; a family the encoder rejects would be a
        // programming error, and the partial output is still better than none.
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        buf
    }

    /// The `Content-Type` of [`Metrics::render`]'s output.
    pub fn content_type(&self) -> &'static str {
        prometheus::TEXT_FORMAT
    }

    /// The update handle of one tenant (the same state for every call with that name).
    /// Creating it sets `sailpoint_up{tenant} 0` until the first successful polls.
    pub fn tenant(&self, name: &str) -> TenantMetrics {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                self.families.up.with_label_values(&[name]).set(0);
                // Counters an alert takes `increase()`/`rate()` of start at 0, so the
                // first poll error or 429 is a visible increase, not a new series at 1.
                for list in [PollList::Pending, PollList::Completed] {
                    self.families
                        .poll_errors
                        .with_label_values(&[name, list.as_str()]);
                }
                for reason in [
                    RetryReason::RateLimited,
                    RetryReason::ServerError,
                    RetryReason::Timeout,
                    RetryReason::Connect,
                ] {
                    self.families
                        .api_retries
                        .with_label_values(&[name, reason.as_str()]);
                }
                self.families.token_refreshes.with_label_values(&[name]);
                self.families.lookups_set_aside.with_label_values(&[name]);
                self.families
                    .counting_degraded
                    .with_label_values(&[name])
                    .set(0);
                for op in [
                    crate::sailpoint::client::operation::GET_PENDING_TASKS,
                    crate::sailpoint::client::operation::GET_TASK_STATUS_LIST,
                    crate::sailpoint::client::operation::GET_TASK_STATUS,
                ] {
                    for fault in [RecordFault::Defaulted, RecordFault::Skipped] {
                        self.families.invalid_records.with_label_values(&[
                            name,
                            op,
                            fault.as_str(),
                        ]);
                    }
                }
                TenantMetrics {
                    tenant: name.to_string(),
                    families: Arc::clone(&self.families),
                    rules: Arc::clone(&self.rules),
                    state: Arc::new(Mutex::new(TenantState::default())),
                }
            })
            .clone()
    }
}

/// The (task_name, source) pair that most families are broken down by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    /// Normalised `task_name` label.
    pub task_name: String,
    /// `source` label (empty for non-source tasks).
    pub source: String,
}

impl Group {
    fn other() -> Group {
        Group {
            task_name: OTHER.to_string(),
            source: OTHER.to_string(),
        }
    }

    fn labels<'a>(&'a self, tenant: &'a str) -> [&'a str; 3] {
        [tenant, &self.task_name, &self.source]
    }

    fn with<'a>(&'a self, tenant: &'a str, extra: &'a str) -> [&'a str; 4] {
        [tenant, &self.task_name, &self.source, extra]
    }
}

/// Distinct undocumented completion statuses a tenant may have as labels of their own.
pub const MAX_UNKNOWN_STATUSES: usize = 10;

/// (completed, created, id) of the latest task of a (group, status).
type LatestRank = (DateTime<Utc>, DateTime<Utc>, String);

/// Mutable per-tenant bookkeeping the registry cannot answer cheaply.
#[derive(Default)]
struct TenantState {
    /// Groups admitted under `max_groups` (never forgotten: their counters live on).
    groups: HashSet<Group>,
    /// The latest task per (group, status), for the "newer only" rule, ranked by
    /// (completed, created, id) so that ties resolve the same whatever the reading order.
    latest: HashMap<(Group, String), LatestRank>,
    /// Groups that currently have pending-gauge series.
    pending_groups: HashSet<Group>,
    /// (id, group) of tasks that currently have per-task pending series.
    pending_series: HashSet<(String, Group)>,
    /// Pending task ids that were folded into `other` (counted once while pending).
    folded_pending: HashSet<String>,
    /// Completion statuses outside the documented five that got a label of their own.
    unknown_statuses: HashSet<String>,
    pending_ok: bool,
    completed_ok: bool,
}

/// One tenant's typed update methods; cheap to clone. Also the client's [`ApiObserver`].
#[derive(Clone)]
pub struct TenantMetrics {
    tenant: String,
    families: Arc<Families>,
    rules: Arc<LabelRules>,
    state: Arc<Mutex<TenantState>>,
}

impl std::fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn seconds(t: &DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// `to - from` in seconds, negatives (clock skew, bad data) clamped to 0.
fn span(from: &DateTime<Utc>, to: &DateTime<Utc>) -> f64 {
    ((*to - *from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// When a finished task ended: `completed`, else `modified` (a task with a status but no
/// `completed`), else None.
pub fn task_end(task: &TaskStatus) -> Option<DateTime<Utc>> {
    task.completed.or(task.modified)
}

/// Run time of a finished task: end − launched (− created when never launched), where the
/// end is [`task_end`]; 0 when the task has no end time at all, so that every counted
/// completion is also observed and the histogram's `_count` equals the counter.
pub fn task_duration(task: &TaskStatus) -> f64 {
    match task_end(task) {
        Some(end) => span(task.launched.as_ref().unwrap_or(&task.created), &end),
        None => 0.0,
    }
}

impl TenantMetrics {
    /// The tenant label value.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    fn lock(&self) -> MutexGuard<'_, TenantState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The labels a task is reported under, after normalisation and the cardinality
    /// guard; `true` when the task was folded into `other`.
    pub fn group_of(&self, task: &TaskStatus) -> (Group, bool) {
        let mut state = self.lock();
        self.admit(&mut state, task)
    }

    fn admit(&self, state: &mut TenantState, task: &TaskStatus) -> (Group, bool) {
        let group = Group {
            task_name: normalize::task_name(&task.unique_name, &self.rules.rewrites),
            source: normalize::source(task),
        };
        if state.groups.contains(&group) {
            return (group, false);
        }
        if state.groups.len() >= self.rules.max_groups {
            let other = Group::other();
            if !state.groups.contains(&other) {
                self.init_group(&other);
                state.groups.insert(other.clone());
            }
            return (other, true);
        }
        self.init_group(&group);
        state.groups.insert(group.clone());
        (group, false)
    }

    /// Creates the completed counters of the five known statuses at 0, so `increase()`
    /// sees the first completion of a group.
    fn init_group(&self, group: &Group) {
        for status in CompletionStatus::KNOWN_LABELS {
            self.families
                .completed_total
                .with_label_values(&group.with(&self.tenant, status));
        }
    }

    /// Counts one completed task: counter, histograms, messages, and the last-completed
    /// gauges when it is the newest of its group and status. Call once per task.
    pub fn record_completion(&self, task: &TaskStatus) {
        let mut state = self.lock();
        let (group, folded) = self.admit(&mut state, task);
        if folded {
            self.families
                .groups_folded
                .with_label_values(&[&self.tenant])
                .inc();
        }
        let status = Self::status_label(&mut state, task);
        let f = &self.families;
        let labels = group.with(&self.tenant, &status);
        f.completed_total.with_label_values(&labels).inc();
        let duration = if f.duration_by_status {
            f.duration.with_label_values(&labels)
        } else {
            f.duration.with_label_values(&group.labels(&self.tenant))
        };
        duration.observe(task_duration(task));
        if let Some(launched) = &task.launched {
            f.queue_wait
                .with_label_values(&group.labels(&self.tenant))
                .observe(span(&task.created, launched));
        }
        for message in &task.messages {
            if let Some(level) = normalize::message_level(&message.level) {
                f.messages_total
                    .with_label_values(&group.with(&self.tenant, level))
                    .inc();
            }
        }
        self.update_latest(&mut state, &group, &status, task);
    }

    /// Startup backlog: sets the last-completed gauges only, never counters or
    /// histograms (the backlog happened before the exporter was watching).
    pub fn record_primed(&self, task: &TaskStatus) {
        let mut state = self.lock();
        let (group, _) = self.admit(&mut state, task);
        let status = Self::status_label(&mut state, task);
        self.update_latest(&mut state, &group, &status, task);
    }

    /// The `status` label, with a cardinality guard: statuses outside the documented five
    /// keep their own (lower-cased) label for the first [`MAX_UNKNOWN_STATUSES`] distinct
    /// values of a tenant; later ones fold into `other`, so an API that sends a new value
    /// on every task cannot grow the exposition without bound.
    fn status_label(state: &mut TenantState, task: &TaskStatus) -> String {
        let status = normalize::status(task);
        if CompletionStatus::KNOWN_LABELS.contains(&status.as_str())
            || status == normalize::UNKNOWN
            || state.unknown_statuses.contains(&status)
        {
            return status;
        }
        if state.unknown_statuses.len() < MAX_UNKNOWN_STATUSES {
            state.unknown_statuses.insert(status.clone());
            return status;
        }
        OTHER.to_string()
    }

    fn update_latest(
        &self,
        state: &mut TenantState,
        group: &Group,
        status: &str,
        task: &TaskStatus,
    ) {
        let Some(completed) = task_end(task) else {
            return;
        };
        let duration = task_duration(task);
        let key = (group.clone(), status.to_string());
        let rank = (completed, task.created, task.id.clone());
        if state
            .latest
            .get(&key)
            .is_some_and(|current| *current >= rank)
        {
            return;
        }
        state.latest.insert(key, rank);
        let labels = group.with(&self.tenant, status);
        self.families
            .last_completed
            .with_label_values(&labels)
            .set(seconds(&completed));
        self.families
            .last_duration
            .with_label_values(&labels)
            .set(duration);
    }

    /// Replaces every pending gauge of the tenant with this snapshot: groups and tasks
    /// that are no longer pending lose their series (no stale values).
    pub fn set_pending<'a>(&self, tasks: impl IntoIterator<Item = &'a TaskStatus>) {
        let mut state = self.lock();
        let mut per_group: HashMap<Group, (i64, DateTime<Utc>)> = HashMap::new();
        let mut tasks_with_group: Vec<(&TaskStatus, Group)> = Vec::new();
        let mut folded_now = HashSet::new();
        for task in tasks {
            let (group, folded) = self.admit(&mut state, task);
            if folded {
                if !state.folded_pending.contains(&task.id) {
                    self.families
                        .groups_folded
                        .with_label_values(&[&self.tenant])
                        .inc();
                }
                folded_now.insert(task.id.clone());
            }
            let entry = per_group.entry(group.clone()).or_insert((0, task.created));
            entry.0 += 1;
            entry.1 = entry.1.min(task.created);
            tasks_with_group.push((task, group));
        }
        state.folded_pending = folded_now;
        self.replace_group_gauges(&mut state, &per_group);
        self.replace_task_series(&mut state, tasks_with_group);
    }

    fn replace_group_gauges(
        &self,
        state: &mut TenantState,
        per_group: &HashMap<Group, (i64, DateTime<Utc>)>,
    ) {
        let f = &self.families;
        for gone in state
            .pending_groups
            .iter()
            .filter(|g| !per_group.contains_key(*g))
        {
            let labels = gone.labels(&self.tenant);
            let _ = f.tasks_pending.remove_label_values(&labels);
            let _ = f.pending_oldest.remove_label_values(&labels);
        }
        for (group, (count, oldest)) in per_group {
            let labels = group.labels(&self.tenant);
            f.tasks_pending.with_label_values(&labels).set(*count);
            f.pending_oldest
                .with_label_values(&labels)
                .set(seconds(oldest));
        }
        state.pending_groups = per_group.keys().cloned().collect();
    }

    fn replace_task_series(&self, state: &mut TenantState, mut tasks: Vec<(&TaskStatus, Group)>) {
        let f = &self.families;
        tasks.sort_by(|a, b| {
            a.0.created
                .cmp(&b.0.created)
                .then_with(|| a.0.id.cmp(&b.0.id))
        });
        tasks.truncate(self.rules.max_pending_task_series);
        let keep: HashSet<(String, Group)> = tasks
            .iter()
            .map(|(t, g)| (t.id.clone(), g.clone()))
            .collect();
        for (id, group) in state.pending_series.iter().filter(|k| !keep.contains(*k)) {
            let labels = [self.tenant.as_str(), id, &group.task_name, &group.source];
            let _ = f.pending_task_created.remove_label_values(&labels);
            let _ = f.pending_task_progress.remove_label_values(&labels);
        }
        for (task, group) in &tasks {
            let labels = [
                self.tenant.as_str(),
                &task.id,
                &group.task_name,
                &group.source,
            ];
            f.pending_task_created
                .with_label_values(&labels)
                .set(seconds(&task.created));
            let ratio = (task.percent_complete.clamp(0, 100) as f64) / 100.0;
            f.pending_task_progress
                .with_label_values(&labels)
                .set(ratio);
        }
        state.pending_series = keep;
    }

    /// A poll of `list` succeeded at `at` after `elapsed`.
    pub fn poll_succeeded(&self, list: PollList, at: DateTime<Utc>, elapsed: Duration) {
        let labels = [self.tenant.as_str(), list.as_str()];
        self.families
            .last_poll_success
            .with_label_values(&labels)
            .set(seconds(&at));
        self.families
            .last_poll_duration
            .with_label_values(&labels)
            .set(elapsed.as_secs_f64());
        self.set_list_ok(list, true);
    }

    /// A poll of `list` failed after `elapsed`; nothing of it was applied.
    pub fn poll_failed(&self, list: PollList, elapsed: Duration) {
        let labels = [self.tenant.as_str(), list.as_str()];
        self.families.poll_errors.with_label_values(&labels).inc();
        self.families
            .last_poll_duration
            .with_label_values(&labels)
            .set(elapsed.as_secs_f64());
        self.set_list_ok(list, false);
    }

    fn set_list_ok(&self, list: PollList, ok: bool) {
        let mut state = self.lock();
        match list {
            PollList::Pending => state.pending_ok = ok,
            PollList::Completed => state.completed_ok = ok,
        }
        let up = i64::from(state.pending_ok && state.completed_ok);
        self.families.up.with_label_values(&[&self.tenant]).set(up);
    }

    /// The tenant's clock minus the exporter's, in seconds.
    pub fn set_clock_skew(&self, seconds: f64) {
        self.families
            .clock_skew
            .with_label_values(&[&self.tenant])
            .set(seconds);
    }

    /// `n` departed tasks were set aside after repeated failed lookups.
    pub fn lookups_set_aside(&self, n: usize) {
        self.families
            .lookups_set_aside
            .with_label_values(&[&self.tenant])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Whether exactly-once counting is currently given up (see the family's help).
    pub fn set_counting_degraded(&self, degraded: bool) {
        self.families
            .counting_degraded
            .with_label_values(&[&self.tenant])
            .set(i64::from(degraded));
    }

    /// Sizes of the tracker's pending set and dedupe set.
    pub fn set_tracked(&self, pending: usize, recent: usize) {
        let t = &self.families.tracked;
        t.with_label_values(&[&self.tenant, "pending"])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        t.with_label_values(&[&self.tenant, "recent"])
            .set(i64::try_from(recent).unwrap_or(i64::MAX));
    }
}

impl ApiObserver for TenantMetrics {
    fn request(&self, operation: &str, code: &str, elapsed: Duration) {
        let f = &self.families;
        f.api_requests
            .with_label_values(&[self.tenant.as_str(), operation, code])
            .inc();
        f.api_duration
            .with_label_values(&[self.tenant.as_str(), operation])
            .observe(elapsed.as_secs_f64());
    }

    fn retry(&self, reason: RetryReason) {
        self.families
            .api_retries
            .with_label_values(&[self.tenant.as_str(), reason.as_str()])
            .inc();
    }

    fn token_refresh(&self) {
        self.families
            .token_refreshes
            .with_label_values(&[&self.tenant])
            .inc();
    }

    fn invalid_record(&self, operation: &str, fault: RecordFault) {
        self.families
            .invalid_records
            .with_label_values(&[self.tenant.as_str(), operation, fault.as_str()])
            .inc();
    }
}

/// A reader of the text exposition format, so tests, benchmarks and the `demo` command
/// can check rendered values exactly rather than by substring.
pub mod exposition {
    use std::collections::BTreeMap;

    /// One sample line: metric name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        /// Metric name (with `_bucket`/`_sum`/`_count` suffixes as rendered).
        pub name: String,
        /// Label pairs.
        pub labels: BTreeMap<String, String>,
        /// Sample value.
        pub value: f64,
    }

    /// Parses every sample line; comment and malformed lines are skipped.
    pub fn parse(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect()
    }

    fn parse_line(line: &str) -> Option<Sample> {
        let (series, value) = line.rsplit_once(' ')?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        let Some((name, rest)) = series.split_once('{') else {
            return Some(Sample {
                name: series.to_string(),
                labels: BTreeMap::new(),
                value,
            });
        };
        let labels = parse_labels(rest.strip_suffix('}')?)?;
        Some(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }

    fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
        let mut labels = BTreeMap::new();
        while !s.is_empty() {
            let (key, rest) = s.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim_start_matches(',').to_string(), value);
            s = rest.get(end + 1..)?.trim_start_matches(',');
        }
        Some(labels)
    }

    /// The value of the one sample of `name` whose labels include all of `labels`
    /// (None when absent; the first match when several).
    pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && matches(s, labels))
            .map(|s| s.value)
    }

    /// Sum over every sample of `name` whose labels include all of `labels`.
    pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name && matches(s, labels))
            .map(|s| s.value)
            .sum()
    }

    /// Number of series of `name` whose labels include all of `labels`.
    pub fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> usize {
        samples
            .iter()
            .filter(|s| s.name == name && matches(s, labels))
            .count()
    }

    fn matches(s: &Sample, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize::{strip_id_suffix, task_name};
    use super::*;

    fn rewrite(pattern: &str, replacement: &str) -> Rewrite {
        Rewrite {
            pattern: regex::Regex::new(pattern).unwrap(),
            replacement: replacement.to_string(),
        }
    }

    #[test]
    fn id_and_uuid_suffixes_are_stripped() {
        for (raw, want) in [
            (
                "Entitlement Source Reset - 2c9180835d2e5168015d32f890ca1581",
                "Entitlement Source Reset",
            ),
            (
                "Entitlement Source Reset - 0f8a2b6e-58a4-4c7e-9b1d-3f2e1a0b9c8d",
                "Entitlement Source Reset",
            ),
            (
                "Source Reset_2C9180835D2E5168015D32F890CA1581",
                "Source Reset",
            ),
            ("Export [2c9180835d2e5168015d32f890ca1581]", "Export"),
            ("Export (0f8a2b6e-58a4-4c7e-9b1d-3f2e1a0b9c8d)", "Export"),
            ("Cloud Account Aggregation", "Cloud Account Aggregation"),
            ("Active Directory [source]", "Active Directory [source]"),
            // Not a whole trailing id token: kept.
            (
                "Taskabc2c9180835d2e5168015d32f890ca1581",
                "Taskabc2c9180835d2e5168015d32f890ca1581",
            ),
            ("Job 12345", "Job 12345"),
        ] {
            assert_eq!(strip_id_suffix(raw), want, "{raw}");
        }
    }

    #[test]
    fn rewrites_apply_in_order_and_empty_names_become_unknown() {
        let rules = [rewrite("^Cloud ", ""), rewrite("Account", "Acct")];
        assert_eq!(
            task_name("Cloud Account Aggregation", &rules),
            "Acct Aggregation"
        );
        assert_eq!(task_name("", &[]), "unknown");
        assert_eq!(
            task_name("2c9180835d2e5168015d32f890ca1581", &[]),
            "unknown"
        );
        assert_eq!(task_name("X", &[rewrite("X", "")]), "unknown");
        assert_eq!(
            task_name(&"n".repeat(500), &[]).chars().count(),
            normalize::MAX_LABEL_CHARS
        );
    }

    #[test]
    fn every_design_family_is_rendered_with_a_polling_help_text() {
        let m = Metrics::new(&MetricsSettings::default(), "1.2.3", "abc").unwrap();
        let t = m.tenant("acme");
        t.poll_failed(PollList::Pending, Duration::from_millis(5));
        t.request("getTaskStatusList", "200", Duration::from_millis(30));
        t.retry(RetryReason::RateLimited);
        t.token_refresh();
        t.set_tracked(3, 4);
        let text = String::from_utf8(m.render()).unwrap();
        for (family, kind) in [
            ("sailpoint_up", "gauge"),
            ("sailpoint_exporter_poll_errors_total", "counter"),
            ("sailpoint_exporter_last_poll_duration_seconds", "gauge"),
            ("sailpoint_exporter_api_requests_total", "counter"),
            (
                "sailpoint_exporter_api_request_duration_seconds",
                "histogram",
            ),
            ("sailpoint_exporter_api_retries_total", "counter"),
            ("sailpoint_exporter_token_refreshes_total", "counter"),
            ("sailpoint_exporter_tracked_tasks", "gauge"),
            ("sailpoint_exporter_build_info", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}\n{text}"
            );
        }
        assert!(
            text.contains("sailpoint_exporter_build_info{revision=\"abc\",version=\"1.2.3\"} 1")
        );
        assert!(text.contains(
            "sailpoint_exporter_api_retries_total{reason=\"rate_limited\",tenant=\"acme\"} 1"
        ));
        assert!(text.contains("# HELP sailpoint_up 1 if the last pending and the last completed poll of the tenant both succeeded, else 0. Updated by background polling"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
        let s = exposition::parse(&text);
        assert_eq!(
            exposition::value(
                &s,
                "sailpoint_exporter_tracked_tasks",
                &[("state", "recent")]
            ),
            Some(4.0)
        );
        assert_eq!(
            exposition::value(&s, "sailpoint_up", &[("tenant", "acme")]),
            Some(0.0)
        );
    }

    #[test]
    fn the_tenant_handle_is_shared_per_name() {
        let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
        m.tenant("a").token_refresh();
        m.tenant("a").token_refresh();
        let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
        assert_eq!(
            exposition::value(
                &s,
                "sailpoint_exporter_token_refreshes_total",
                &[("tenant", "a")]
            ),
            Some(2.0)
        );
    }

    #[test]
    fn undocumented_statuses_are_kept_up_to_a_cap_then_folded() {
        let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
        let t = m.tenant("a");
        let task = |id: &str, status: &str| -> TaskStatus {
            serde_json::from_value(serde_json::json!({
                "id": id, "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
                "completed": "2024-01-01T00:01:00Z", "completionStatus": status
            }))
            .unwrap()
        };
        t.record_completion(&task("s", "Success"));
        for i in 0..MAX_UNKNOWN_STATUSES + 3 {
            t.record_completion(&task(&format!("x{i}"), &format!("Weird{i}")));
        }
        t.record_completion(&task("again", "WEIRD0"));
        let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
        let count = |status: &str| {
            exposition::value(&s, "sailpoint_tasks_completed_total", &[("status", status)])
        };
        assert_eq!(count("success"), Some(1.0));
        assert_eq!(count("weird0"), Some(2.0), "case-insensitive, kept");
        assert_eq!(
            count(&format!("weird{}", MAX_UNKNOWN_STATUSES - 1)),
            Some(1.0)
        );
        assert_eq!(count(&format!("weird{MAX_UNKNOWN_STATUSES}")), None);
        assert_eq!(
            count("other"),
            Some(3.0),
            "past the cap: folded, still counted"
        );
    }

    #[test]
    fn duration_histogram_without_status_has_one_histogram_per_group() {
        let settings = MetricsSettings {
            duration_by_status: false,
            duration_buckets: vec![30.0, 120.0],
            ..MetricsSettings::default()
        };
        let m = Metrics::new(&settings, "v", "r").unwrap();
        let t = m.tenant("a");
        for (id, status, end) in [
            ("1", "Success", "00:01:00"),
            ("2", "Error", "00:00:10"),
            ("3", "Warning", "00:05:00"),
        ] {
            let task: TaskStatus = serde_json::from_value(serde_json::json!({
                "id": id, "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
                "completed": format!("2024-01-01T{end}Z"), "completionStatus": status
            }))
            .unwrap();
            t.record_completion(&task);
        }
        let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
        let buckets: Vec<(String, f64)> = s
            .iter()
            .filter(|x| x.name == "sailpoint_task_duration_seconds_bucket")
            .map(|x| {
                assert!(!x.labels.contains_key("status"), "{x:?}");
                (x.labels.get("le").cloned().unwrap_or_default(), x.value)
            })
            .collect();
        assert_eq!(
            buckets,
            [
                ("30".into(), 1.0),
                ("120".into(), 2.0),
                ("+Inf".into(), 3.0)
            ]
        );
        let count = |status: &str| {
            exposition::value(&s, "sailpoint_tasks_completed_total", &[("status", status)])
        };
        assert_eq!(count("error"), Some(1.0), "the counter keeps its status");
    }

    #[test]
    fn exposition_parser_reads_escaped_labels() {
        let s = exposition::parse("m{a=\"x\\\"y\",b=\"\\\\\"} 2.5\nn 1\n# HELP m x\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels.get("a").map(String::as_str), Some("x\"y"));
        assert_eq!(s[0].labels.get("b").map(String::as_str), Some("\\"));
        assert_eq!(s[0].value, 2.5);
    }
}
