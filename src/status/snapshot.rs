//! The status of every tenant at one instant: what `/api/v1/status` serves as JSON and
//! what the HTML page is rendered from. The shape is documented in `docs/status-api.md`;
//! changing a field name breaks the scripts that read it.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Times in the JSON: RFC 3339 UTC with milliseconds (like the API's own dates).
mod time {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    use crate::sailpoint::model::format_timestamp;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format_timestamp(t)),
                None => s.serialize_none(),
            }
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When the snapshot was taken (ages are relative to it).
    #[serde(with = "time")]
    pub generated_at: DateTime<Utc>,
    /// The thresholds in force.
    pub settings: ShownSettings,
    /// One entry per configured tenant, by name.
    pub tenants: Vec<TenantSnapshot>,
}

/// The thresholds the page applies (from the `status` configuration).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ShownSettings {
    /// Pending tasks older than this are listed as stuck.
    pub stuck_after_seconds: u64,
    /// A source's last successful aggregation older than this is flagged overdue.
    pub no_success_after_seconds: u64,
    /// How many failed or warning tasks are kept per tenant.
    pub failed_tasks_kept: usize,
}

/// Whether a tenant's polls work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// No poll has finished yet.
    Starting,
    /// The last pending and the last completed poll both succeeded (`sailpoint_up` 1).
    Up,
    /// The last poll of either list failed (`sailpoint_up` 0).
    Down,
}

impl TenantState {
    /// The word shown on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Starting => "starting",
            TenantState::Up => "up",
            TenantState::Down => "down",
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSnapshot {
    /// The tenant's configured name.
    pub name: String,
    /// Up, down or starting.
    pub state: TenantState,
    /// When each list was last polled successfully.
    pub last_success: LastSuccess,
    /// The most recent failed poll, if any poll failed since start.
    pub last_error: Option<PollError>,
    /// The pending set of the last successful pending poll.
    pub pending: PendingSnapshot,
    /// Aggregation outcomes per source, by source name.
    pub sources: Vec<SourceSnapshot>,
    /// Sources seen but not kept (the per-tenant cap was reached).
    pub sources_omitted: u64,
    /// The newest failed or warning tasks, newest first.
    pub recent_failures: Vec<FailedTask>,
}

/// Last successful poll of each list.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LastSuccess {
    /// The pending list.
    #[serde(with = "time::option")]
    pub pending: Option<DateTime<Utc>>,
    /// The completed list.
    #[serde(with = "time::option")]
    pub completed: Option<DateTime<Utc>>,
}

/// A failed poll, redacted like the log line (no secret ever reaches an error text).
#[derive(Debug, Clone, Serialize)]
pub struct PollError {
    /// When it failed.
    #[serde(with = "time")]
    pub at: DateTime<Utc>,
    /// `pending` or `completed`.
    pub list: &'static str,
    /// The error as logged (truncated).
    pub message: String,
}

/// The pending set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PendingSnapshot {
    /// When the pending set was read (None before the first successful pending poll).
    #[serde(with = "time::option")]
    pub polled_at: Option<DateTime<Utc>>,
    /// Pending tasks in that poll.
    pub total: usize,
    /// Counts per task name and source, largest first.
    pub groups: Vec<PendingGroup>,
    /// Pending tasks not in `groups` because the group cap was reached.
    pub tasks_in_omitted_groups: usize,
    /// Tasks pending longer than the stuck threshold, oldest first.
    pub stuck: Vec<StuckTask>,
    /// How many tasks were pending longer than the threshold at the poll (may exceed
    /// `stuck.len()`, which is capped).
    pub stuck_total: usize,
}

/// Pending tasks of one task name and source.
#[derive(Debug, Clone, Serialize)]
pub struct PendingGroup {
    /// Task name without its id suffix.
    pub task_name: String,
    /// Source name; empty when the task has no source.
    pub source: String,
    /// Tasks pending.
    pub count: usize,
    /// `created` of the oldest.
    #[serde(with = "time")]
    pub oldest_created: DateTime<Utc>,
}

/// What `/task/{id}` shows of one task: the tenant that has it, and the task as
/// finished or as pending (with the command that clears it should it be stuck).
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    /// The tenant the task belongs to.
    pub tenant: String,
    /// A pending task older than this is stuck.
    pub stuck_after_seconds: u64,
    /// The task as it finished.
    pub finished: Option<FailedTask>,
    /// The task as last seen pending.
    pub pending: Option<StuckTask>,
}

/// A task pending longer than the threshold, with the command that clears it.
#[derive(Debug, Clone, Serialize)]
pub struct StuckTask {
    /// Task id.
    pub id: String,
    /// Task name without its id suffix.
    pub task_name: String,
    /// Source name; empty when none.
    pub source: String,
    /// When the task was created.
    #[serde(with = "time")]
    pub created: DateTime<Utc>,
    /// When it started running; None while queued.
    #[serde(with = "time::option")]
    pub launched: Option<DateTime<Utc>>,
    /// Seconds since `created`, at `generated_at`.
    pub age_seconds: i64,
    /// The task's own progress figure (not trusted to be within 0-100).
    pub percent_complete: i64,
    /// `sailpoint-task-exporter tasks complete ID --status error --tenant NAME`; prints the
    /// patch for review, and sends it with `--yes` appended.
    pub clear_command: String,
}

/// Aggregation outcomes of one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSnapshot {
    /// Source name.
    pub source: String,
    /// The newest successful aggregation seen.
    pub last_success: Option<Outcome>,
    /// True when there is no successful aggregation, or the last one is older than the
    /// `no_success_after` threshold.
    pub success_overdue: bool,
    /// The newest failed (error or terminated) aggregation seen.
    pub last_failure: Option<Outcome>,
    /// Failed aggregations completed in the 24 hours before `generated_at` (capped at
    /// 1000 per source).
    pub failures_24h: usize,
    /// What the newest aggregation with numeric results reported (`total`, `created`,
    /// `updated`, `deleted`, …), when one was seen.
    pub latest_results: Option<AggregationResults>,
}

/// The numeric results of one aggregation (its `returns` whose values are numbers).
#[derive(Debug, Clone, Serialize)]
pub struct AggregationResults {
    /// Task id.
    pub id: String,
    /// Task name without its id suffix.
    pub task_name: String,
    /// When it completed.
    #[serde(with = "time")]
    pub completed: DateTime<Utc>,
    /// The results, in the task's `returns` order.
    pub results: Vec<ResultValue>,
}

/// One numeric result.
#[derive(Debug, Clone, Serialize)]
pub struct ResultValue {
    /// Attribute name (`total`, `deleted`, …).
    pub attribute: String,
    /// Its value.
    pub value: f64,
}

/// One finished task, briefly.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Task id.
    pub id: String,
    /// Task name without its id suffix.
    pub task_name: String,
    /// Completion status as sent (upper case).
    pub status: String,
    /// When it completed.
    #[serde(with = "time")]
    pub completed: DateTime<Utc>,
    /// Seconds since `completed`, at `generated_at`.
    pub age_seconds: i64,
}

/// A task that ended with any status but SUCCESS, with its warning and error messages.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTask {
    /// Task id.
    pub id: String,
    /// Task name without its id suffix.
    pub task_name: String,
    /// Source name; empty when none.
    pub source: String,
    /// Completion status as sent (upper case; `UNKNOWN` when missing).
    pub status: String,
    /// When it was created.
    #[serde(with = "time")]
    pub created: DateTime<Utc>,
    /// When it completed.
    #[serde(with = "time")]
    pub completed: DateTime<Utc>,
    /// Run time in seconds (completed − launched, or − created when never launched).
    pub duration_seconds: Option<f64>,
    /// Its WARN and ERROR messages, in the task's order (at most 5, each truncated).
    pub messages: Vec<Message>,
    /// WARN and ERROR messages not kept.
    pub messages_omitted: usize,
}

/// One task message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `ERROR` or `WARN`.
    pub level: &'static str,
    /// The localized text (else the message key), truncated to 500 characters.
    pub text: String,
}
