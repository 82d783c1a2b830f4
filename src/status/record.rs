//! One tenant's bounded record behind the status page, [`TenantStatus`].
//!
//! A tenant's poller owns a [`TenantStatus`] handle and tells it what every poll saw:
//! success or failure (with the error as logged), the pending set, each completion. The
//! handle keeps only what the page shows, within fixed caps whatever the tenant sends:
//! [`MAX_GROUPS`] pending groups, the [`MAX_OLDEST`] oldest pending tasks, [`MAX_SOURCES`]
//! sources with at most [`MAX_FAILURE_TIMES`] failure times each, and the newest
//! `status.failed_tasks` failed or warning tasks with at most [`MAX_MESSAGES`] messages
//! of at most [`MAX_MESSAGE_CHARS`] characters.
//!
//! Apart from the [`StatusBoard`](super::StatusBoard) (the registry of tenants that the
//! daemon and the HTTP server talk to) because it changes for another reason: what a
//! poll tells about one tenant, and how much of it is kept.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use super::snapshot::{
    AggregationResults, FailedTask, LastSuccess, Message, Outcome, PendingGroup, PendingSnapshot,
    PollError, ResultValue, SourceSnapshot, StuckTask, TaskDetail, TenantSnapshot, TenantState,
};
use super::text::{MAX_ID_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, shell_word, truncate};
use crate::config::StatusSettings;
use crate::metrics::{normalize, task_duration, task_end};
use crate::sailpoint::model::{CompletionStatus, TaskStatus};
use crate::sailpoint::results::task_results;

/// Most (task name, source) groups of pending tasks kept per tenant; tasks of further
/// groups are only counted.
pub const MAX_GROUPS: usize = 200;
/// Most pending tasks kept per tenant (the oldest ones, which are the stuck candidates).
pub const MAX_OLDEST: usize = 100;
/// Most sources whose aggregation outcomes are kept per tenant.
pub const MAX_SOURCES: usize = 200;
/// Most failure times kept per source (the "failures in 24 h" figure saturates there).
pub const MAX_FAILURE_TIMES: usize = 1000;
/// Numeric results kept of a source's latest aggregation (a real account aggregation
/// reports about a dozen).
pub const MAX_RESULTS: usize = 32;
/// Most WARN/ERROR messages kept per failed task.
pub const MAX_MESSAGES: usize = 5;
/// Most finished tasks (of any status) kept per tenant for `/task/{id}`, newest
/// completion first: the exemplars of the duration histogram and completion counter
/// link there, and the newest completions are what they name.
pub const MAX_FINISHED: usize = 100;
/// Longest poll error text kept (characters).
pub const MAX_ERROR_CHARS: usize = 1000;

/// The window of the per-source failure count.
fn failure_window() -> Duration {
    Duration::hours(24)
}

/// One tenant's record; cheap to clone (all clones share it). Its poller feeds it.
#[derive(Debug, Clone)]
pub struct TenantStatus {
    name: String,
    /// How the `tasks` CLI is told which tenant: `--tenant NAME` or `--base-url ...`.
    pub(super) cli_target: String,
    settings: StatusSettings,
    record: Arc<Mutex<Record>>,
}

/// Everything kept about one tenant.
#[derive(Debug, Default)]
struct Record {
    pending_ok: Option<bool>,
    completed_ok: Option<bool>,
    last_success: LastSuccess,
    last_error: Option<PollError>,
    pending: PendingView,
    sources: BTreeMap<String, SourceRecord>,
    source_outcomes_omitted: u64,
    /// Newest completion first; at most `settings.failed_tasks`.
    failed: Vec<FailedTask>,
    /// Every status, newest completion first; at most [`MAX_FINISHED`].
    finished: Vec<FailedTask>,
}

#[derive(Debug, Default)]
struct PendingView {
    polled_at: Option<DateTime<Utc>>,
    total: usize,
    groups: Vec<PendingGroup>,
    tasks_in_omitted_groups: usize,
    /// Oldest first; at most [`MAX_OLDEST`].
    oldest: Vec<PendingTask>,
    stuck_total: usize,
}

#[derive(Debug, Clone)]
struct PendingTask {
    id: String,
    task_name: String,
    source: String,
    created: DateTime<Utc>,
    launched: Option<DateTime<Utc>>,
    percent_complete: i64,
}

#[derive(Debug, Default)]
struct SourceRecord {
    last_success: Option<Outcome>,
    last_failure: Option<Outcome>,
    /// What the newest aggregation with numeric results reported.
    latest_results: Option<AggregationResults>,
    /// Completion times of failures, oldest first, within the last 24 h of the newest.
    failures: VecDeque<DateTime<Utc>>,
}

/// The task name shown: `uniqueName` without its id suffix, truncated.
fn task_name(task: &TaskStatus) -> String {
    let name = normalize::strip_id_suffix(&task.unique_name);
    if name.is_empty() {
        normalize::UNKNOWN.to_string()
    } else {
        truncate(name, MAX_NAME_CHARS)
    }
}

fn source(task: &TaskStatus) -> String {
    task.source_name()
        .map(|s| truncate(s, MAX_NAME_CHARS))
        .unwrap_or_default()
}

fn status(task: &TaskStatus) -> String {
    match &task.completion_status {
        Some(s) if !s.as_str().trim().is_empty() => truncate(&s.as_str().to_uppercase(), 40),
        _ => "UNKNOWN".to_string(),
    }
}

/// Aggregations are recognised like the shipped alert rules do: `Aggregation` in the name.
fn is_aggregation(task_name: &str) -> bool {
    task_name.contains("Aggregation")
}

/// "Failed" as in the alert rules: error or terminated (temperror is SailPoint's
/// retryable state).
fn is_failure(task: &TaskStatus) -> bool {
    matches!(
        task.completion_status,
        Some(CompletionStatus::Error | CompletionStatus::Terminated)
    )
}

fn messages(task: &TaskStatus) -> (Vec<Message>, usize) {
    let mut kept = Vec::new();
    let mut omitted = 0;
    for m in &task.messages {
        let level = match normalize::message_level(&m.level) {
            Some("error") => "ERROR",
            Some(_) => "WARN",
            None => continue,
        };
        if kept.len() == MAX_MESSAGES {
            omitted += 1;
            continue;
        }
        let text = m
            .localized_text
            .as_ref()
            .map(|t| t.message.as_str())
            .filter(|t| !t.trim().is_empty())
            .unwrap_or(m.key.as_str());
        kept.push(Message {
            level,
            text: truncate(text, MAX_MESSAGE_CHARS),
        });
    }
    (kept, omitted)
}

impl TenantStatus {
    /// A record not registered on any board (tests, and pollers nobody displays).
    pub fn detached(name: &str, settings: StatusSettings) -> TenantStatus {
        TenantStatus {
            name: name.to_string(),
            cli_target: format!("--tenant {}", shell_word(name)),
            settings,
            record: Arc::new(Mutex::new(Record::default())),
        }
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A poll of `list` (`pending` or `completed`) succeeded at `at`.
    pub fn poll_succeeded(&self, list: &'static str, at: DateTime<Utc>) {
        let mut r = self.lock();
        if list == "pending" {
            r.pending_ok = Some(true);
            r.last_success.pending = Some(at);
        } else {
            r.completed_ok = Some(true);
            r.last_success.completed = Some(at);
        }
    }

    /// A poll of `list` failed at `at` with `error` (the same text the log line shows;
    /// errors never carry secrets).
    pub fn poll_failed(&self, list: &'static str, at: DateTime<Utc>, error: &dyn Display) {
        let mut r = self.lock();
        if list == "pending" {
            r.pending_ok = Some(false);
        } else {
            r.completed_ok = Some(false);
        }
        r.last_error = Some(PollError {
            at,
            list,
            message: truncate(&error.to_string(), MAX_ERROR_CHARS),
        });
    }

    /// Replaces the pending view with the set of a successful pending poll read at `at`.
    pub fn set_pending<'a>(
        &self,
        tasks: impl IntoIterator<Item = &'a TaskStatus>,
        at: DateTime<Utc>,
    ) {
        let stuck_before = before(at, self.settings.stuck_after);
        let mut groups: HashMap<(String, String), (usize, DateTime<Utc>)> = HashMap::new();
        let mut view = PendingView {
            polled_at: Some(at),
            ..PendingView::default()
        };
        let mut all: Vec<&TaskStatus> = Vec::new();
        for task in tasks {
            view.total += 1;
            if task.created <= stuck_before {
                view.stuck_total += 1;
            }
            let key = (task_name(task), source(task));
            if let Some(g) = groups.get_mut(&key) {
                g.0 += 1;
                g.1 = g.1.min(task.created);
            } else if groups.len() < MAX_GROUPS {
                groups.insert(key, (1, task.created));
            } else {
                view.tasks_in_omitted_groups += 1;
            }
            all.push(task);
        }
        all.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        view.oldest = all
            .into_iter()
            .take(MAX_OLDEST)
            .map(|t| PendingTask {
                id: truncate(&t.id, MAX_ID_CHARS),
                task_name: task_name(t),
                source: source(t),
                created: t.created,
                launched: t.launched,
                percent_complete: t.percent_complete,
            })
            .collect();
        view.groups = groups
            .into_iter()
            .map(
                |((task_name, source), (count, oldest_created))| PendingGroup {
                    task_name,
                    source,
                    count,
                    oldest_created,
                },
            )
            .collect();
        view.groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.oldest_created.cmp(&b.oldest_created))
                .then_with(|| (&a.task_name, &a.source).cmp(&(&b.task_name, &b.source)))
        });
        self.lock().pending = view;
    }

    /// One completed task (counted or primed): updates its source's aggregation outcomes
    /// and, unless it succeeded, the list of recent failures.
    pub fn record_completion(&self, task: &TaskStatus) {
        if task.is_pending() {
            return;
        }
        let completed = task_end(task).unwrap_or(task.created);
        let name = task_name(task);
        let source = source(task);
        let status = status(task);
        let mut r = self.lock();
        if !source.is_empty() && is_aggregation(&name) {
            r.record_results(&source, task, &name, completed);
            let outcome = Outcome {
                id: truncate(&task.id, MAX_ID_CHARS),
                task_name: name.clone(),
                status: status.clone(),
                completed,
                age_seconds: 0,
            };
            r.record_source(source.clone(), outcome, is_failure(task));
        }
        let (messages, messages_omitted) = messages(task);
        let finished = FailedTask {
            id: truncate(&task.id, MAX_ID_CHARS),
            task_name: name,
            source,
            status,
            created: task.created,
            completed,
            duration_seconds: task_end(task).map(|_| task_duration(task)),
            messages,
            messages_omitted,
        };
        if task.completion_status != Some(CompletionStatus::Success) {
            let keep = self.settings.failed_tasks;
            Record::keep_newest(&mut r.failed, finished.clone(), keep);
        }
        Record::keep_newest(&mut r.finished, finished, MAX_FINISHED);
    }

    /// What this tenant knows of task `id` as of `now`: a finished task among the newest
    /// [`MAX_FINISHED`], or a pending one among the [`MAX_OLDEST`] oldest (with the
    /// command that clears it).
    pub fn task(&self, id: &str, now: DateTime<Utc>) -> Option<TaskDetail> {
        let r = self.lock();
        let finished = r.finished.iter().find(|t| t.id == id).cloned();
        let pending = r
            .pending
            .oldest
            .iter()
            .find(|t| t.id == id)
            .map(|t| self.pending_task(t, now));
        (finished.is_some() || pending.is_some()).then(|| TaskDetail {
            tenant: self.name.clone(),
            stuck_after_seconds: self.settings.stuck_after.as_secs(),
            finished,
            pending,
        })
    }

    fn pending_task(&self, t: &PendingTask, now: DateTime<Utc>) -> StuckTask {
        StuckTask {
            clear_command: format!(
                "sailpoint-task-exporter tasks complete {} --status error {}",
                shell_word(&t.id),
                self.cli_target
            ),
            id: t.id.clone(),
            task_name: t.task_name.clone(),
            source: t.source.clone(),
            created: t.created,
            launched: t.launched,
            age_seconds: (now - t.created).num_seconds(),
            percent_complete: t.percent_complete,
        }
    }

    /// This tenant's status as of `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> TenantSnapshot {
        let r = self.lock();
        let state = match (r.pending_ok, r.completed_ok) {
            (Some(false), _) | (_, Some(false)) => TenantState::Down,
            (Some(true), Some(true)) => TenantState::Up,
            _ => TenantState::Starting,
        };
        TenantSnapshot {
            name: self.name.clone(),
            state,
            last_success: r.last_success,
            last_error: r.last_error.clone(),
            pending: self.pending_snapshot(&r.pending, now),
            sources: r
                .sources
                .iter()
                .map(|(name, s)| self.source_snapshot(name, s, now))
                .collect(),
            sources_omitted: r.source_outcomes_omitted,
            recent_failures: r.failed.clone(),
        }
    }

    fn pending_snapshot(&self, view: &PendingView, now: DateTime<Utc>) -> PendingSnapshot {
        let stuck_before = before(now, self.settings.stuck_after);
        let stuck: Vec<StuckTask> = view
            .oldest
            .iter()
            .filter(|t| t.created <= stuck_before)
            .map(|t| self.pending_task(t, now))
            .collect();
        PendingSnapshot {
            polled_at: view.polled_at,
            total: view.total,
            groups: view.groups.clone(),
            tasks_in_omitted_groups: view.tasks_in_omitted_groups,
            stuck_total: view.stuck_total.max(stuck.len()),
            stuck,
        }
    }

    fn source_snapshot(&self, name: &str, s: &SourceRecord, now: DateTime<Utc>) -> SourceSnapshot {
        let aged = |o: &Outcome| Outcome {
            age_seconds: (now - o.completed).num_seconds(),
            ..o.clone()
        };
        let overdue_before = before(now, self.settings.no_success_after);
        SourceSnapshot {
            source: name.to_string(),
            success_overdue: s
                .last_success
                .as_ref()
                .is_none_or(|o| o.completed < overdue_before),
            last_success: s.last_success.as_ref().map(aged),
            last_failure: s.last_failure.as_ref().map(aged),
            latest_results: s.latest_results.clone(),
            failures_24h: s
                .failures
                .iter()
                .filter(|t| **t > now - failure_window() && **t <= now)
                .count(),
        }
    }
}

impl Record {
    /// Keeps the numeric results of the newest aggregation of `source` that has any (at
    /// most [`MAX_RESULTS`], names cut at [`MAX_NAME_CHARS`]).
    fn record_results(
        &mut self,
        source: &str,
        task: &TaskStatus,
        task_name: &str,
        completed: DateTime<Utc>,
    ) {
        let results: Vec<ResultValue> = task_results(task)
            .into_iter()
            .take(MAX_RESULTS)
            .map(|r| ResultValue {
                attribute: truncate(&r.attribute, MAX_NAME_CHARS),
                value: r.value,
            })
            .collect();
        if results.is_empty() {
            return;
        }
        if !self.sources.contains_key(source) && self.sources.len() >= MAX_SOURCES {
            return;
        }
        let record = self.sources.entry(source.to_string()).or_default();
        if record
            .latest_results
            .as_ref()
            .is_some_and(|l| l.completed > completed)
        {
            return;
        }
        record.latest_results = Some(AggregationResults {
            id: truncate(&task.id, MAX_ID_CHARS),
            task_name: task_name.to_string(),
            completed,
            results,
        });
    }

    fn record_source(&mut self, source: String, outcome: Outcome, failed: bool) {
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            self.source_outcomes_omitted += 1;
            return;
        }
        let record = self.sources.entry(source).or_default();
        let newer = |slot: &Option<Outcome>| {
            slot.as_ref()
                .is_none_or(|o| o.completed <= outcome.completed)
        };
        if outcome.status == "SUCCESS" {
            if newer(&record.last_success) {
                record.last_success = Some(outcome);
            }
            return;
        }
        if !failed {
            return;
        }
        let at = outcome.completed;
        if newer(&record.last_failure) {
            record.last_failure = Some(outcome);
        }
        let position = record.failures.partition_point(|t| *t <= at);
        record.failures.insert(position, at);
        if let Some(newest) = record.failures.back().copied() {
            // Completion times come from the API: saturate instead of overflowing.
            let window_start = newest
                .checked_sub_signed(failure_window())
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            while record.failures.front().is_some_and(|t| *t <= window_start) {
                record.failures.pop_front();
            }
        }
        while record.failures.len() > MAX_FAILURE_TIMES {
            record.failures.pop_front();
        }
    }

    /// Inserts `task` into `list` (newest completion first) unless it is there, and
    /// keeps the newest `keep`.
    fn keep_newest(list: &mut Vec<FailedTask>, task: FailedTask, keep: usize) {
        if list.iter().any(|t| t.id == task.id) {
            return;
        }
        let position = list.partition_point(|t| (t.completed, &t.id) > (task.completed, &task.id));
        list.insert(position, task);
        list.truncate(keep);
    }
}

/// `t − d`, saturating at the earliest representable time (never panics).
fn before(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
