//! One tenant's metric values as plain data the project owns: counters, histogram
//! buckets, sums and counts, gauges and per-task pending series, plus the bookkeeping
//! the label rules need (admitted groups, latest task per group and status).
//!
//! Values are keyed by the [`catalogue`](super::catalogue) family and the label values after `tenant`, so
//! rendering and the state file need no per-family code, and a new family only needs
//! its catalogue entry and the [`Update`] method that writes it. Everything here is
//! (de)serialisable: it is what `storage.path` keeps across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalogue as cat;
use super::values::pairs;
use super::values::{Changed, Writer};
pub use super::values::{Exemplar, Histogram, Labels, Series, Value, Values};
use super::{
    Group, MAX_UNKNOWN_STATUSES, OTHER, PollList, Rules, normalize, task_duration, task_end,
};
use crate::sailpoint::RetryReason;
use crate::sailpoint::model::{CompletionStatus, TaskStatus};
use crate::sailpoint::operation;
use crate::sailpoint::results::task_results;
use crate::sailpoint::tolerant::RecordFault;

/// (completed, created, id) of the latest task of a (group, status), so that ties
/// resolve the same whatever the reading order.
type LatestRank = (DateTime<Utc>, DateTime<Utc>, String);

/// One tenant's owned metric state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantState {
    /// Every series.
    pub values: Values,
    /// Groups admitted under `max_groups` (never forgotten: their counters live on).
    groups: BTreeSet<Group>,
    /// The latest task per (group, status), for the "newer only" rule.
    #[serde(with = "pairs")]
    latest: BTreeMap<(Group, String), LatestRank>,
    /// Pending task ids that were folded into `other` (counted once while pending).
    folded_pending: BTreeSet<String>,
    /// Completion statuses outside the documented five that got a label of their own.
    unknown_statuses: BTreeSet<String>,
    /// Result attributes admitted per group under `max_return_attributes`.
    #[serde(default, with = "pairs")]
    return_attributes: BTreeMap<Group, BTreeSet<String>>,
    /// The latest task per group that reported results, for `sailpoint_task_return_value`.
    #[serde(default, with = "pairs")]
    latest_results: BTreeMap<Group, LatestRank>,
    /// Outcome of the last pending poll (not persisted: a restart starts at `up 0`).
    #[serde(skip)]
    pending_ok: bool,
    /// Outcome of the last completed poll (not persisted).
    #[serde(skip)]
    completed_ok: bool,
}

/// The `code` values of `sailpoint_exporter_api_requests_total` that a shipped dashboard
/// panel or rule selects; they exist at 0 from the start (a test reads the deploy kit and
/// fails when one is missing).
pub const SELECTED_CODES: [&str; 1] = ["429"];

/// The typed changes of a tenant's state, applied inside [`super::TenantMetrics::apply`].
pub struct Update<'a> {
    state: &'a mut TenantState,
    /// The families this update changed, for the exposition.
    changed: &'a mut Changed,
    rules: &'a Rules,
}

/// Unix seconds with millisecond precision.
pub(super) fn seconds(t: &DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// `to - from` in seconds, negatives (clock skew, bad data) clamped to 0.
pub(super) fn span(from: &DateTime<Utc>, to: &DateTime<Utc>) -> f64 {
    ((*to - *from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

const RETRY_REASONS: [RetryReason; 4] = [
    RetryReason::RateLimited,
    RetryReason::ServerError,
    RetryReason::Timeout,
    RetryReason::Connect,
];

/// The status whose duration histogram exists at 0 for every known group.
pub const ZERO_DURATION_STATUS: &str = "success";

/// `reason` label values of `sailpoint_exporter_state_set_aside_total`.
pub const SET_ASIDE_REASONS: [&str; 5] = ["corrupt", "foreign", "version", "too_old", "unreadable"];

impl<'a> Update<'a> {
    pub(super) fn new(
        state: &'a mut TenantState,
        changed: &'a mut Changed,
        rules: &'a Rules,
    ) -> Update<'a> {
        Update {
            state,
            changed,
            rules,
        }
    }

    /// The values, for one change.
    fn values(&mut self) -> Writer<'_> {
        Writer::new(&mut self.state.values, self.changed)
    }

    /// A new tenant: `up 0`, and the counters alerts take `increase()` of at 0 so the
    /// first poll error or 429 is a visible increase, not a new series at 1.
    pub(super) fn start(&mut self) {
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.set(&cat::UP, &[], 0.0);
        for list in [PollList::Pending, PollList::Completed] {
            v.touch_counter(&cat::POLL_ERRORS, &[list.as_str()]);
        }
        for reason in RETRY_REASONS {
            v.touch_counter(&cat::API_RETRIES, &[reason.as_str()]);
        }
        v.touch_counter(&cat::TOKEN_REFRESHES, &[]);
        v.touch_counter(&cat::LOOKUPS_SET_ASIDE, &[]);
        v.touch_counter(&cat::UNSORTED_READS, &[]);
        if v.get(&cat::COUNTING_DEGRADED, &[]).is_none() {
            v.set(&cat::COUNTING_DEGRADED, &[], 0.0);
        }
        for op in [
            operation::GET_PENDING_TASKS,
            operation::GET_TASK_STATUS_LIST,
            operation::GET_TASK_STATUS,
        ] {
            for fault in [RecordFault::Defaulted, RecordFault::Skipped] {
                v.touch_counter(&cat::INVALID_RECORDS, &[op, fault.as_str()]);
            }
        }
        // The codes a shipped panel or rule selects, for every operation the pollers
        // send: a panel of 429s shows 0, not "no data", on a fresh start.
        for op in [
            operation::TOKEN,
            operation::GET_PENDING_TASKS,
            operation::GET_TASK_STATUS_LIST,
            operation::GET_TASK_STATUS,
        ] {
            for code in SELECTED_CODES {
                v.touch_counter(&cat::API_REQUESTS, &[op, code]);
            }
        }
    }

    /// Replaces the state with one resumed from a state file, keeping the zero series
    /// of [`Update::start`] and of every known group; `up` is 0 until the next polls.
    pub(super) fn restore(&mut self, mut state: TenantState) {
        let dropped = state.values.sanitize(self.rules);
        if dropped > 0 {
            tracing::warn!(
                series = dropped,
                "state file series that do not fit the catalogue or the current buckets were dropped"
            );
        }
        *self.state = state;
        *self.changed = Changed::default();
        self.state.pending_ok = false;
        self.state.completed_ok = false;
        self.start();
        let groups: Vec<Group> = self.state.groups.iter().cloned().collect();
        for group in &groups {
            self.init_group(group);
        }
    }

    /// `storage.path` is set: its counters exist at 0 from the start.
    pub fn storage_enabled(&mut self) {
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.touch_counter(&cat::STATE_WRITES_FAILED, &[]);
        for reason in SET_ASIDE_REASONS {
            v.touch_counter(&cat::STATE_SET_ASIDE, &[reason]);
        }
    }

    /// The state file was written at `at`.
    pub fn state_written(&mut self, at: DateTime<Utc>) {
        self.values().set(&cat::STATE_LAST_WRITE, &[], seconds(&at));
    }

    /// Writing the state file failed.
    pub fn state_write_failed(&mut self) {
        self.values().add(&cat::STATE_WRITES_FAILED, &[], 1);
    }

    /// A state file was set aside at start for `reason` (one of [`SET_ASIDE_REASONS`]).
    pub fn state_set_aside(&mut self, reason: &str) {
        self.storage_enabled();
        self.values().add(&cat::STATE_SET_ASIDE, &[reason], 1);
    }

    /// The labels a task is reported under, after normalisation and the cardinality
    /// guard; `true` when the task was folded into `other`.
    pub fn group_of(&mut self, task: &TaskStatus) -> (Group, bool) {
        let group = Group {
            task_name: normalize::task_name(&task.unique_name, &self.rules.rewrites),
            source: normalize::source(task),
        };
        if self.state.groups.contains(&group) {
            return (group, false);
        }
        if self.state.groups.len() >= self.rules.max_groups {
            let other = Group::other();
            if !self.state.groups.contains(&other) {
                self.init_group(&other);
                self.state.groups.insert(other.clone());
            }
            return (other, true);
        }
        self.init_group(&group);
        self.state.groups.insert(group.clone());
        (group, false)
    }

    /// Every series of a known group exists from the moment the group is seen, at 0:
    /// the completed counters of the five known statuses, the duration histogram of
    /// `success` (dashboards sum durations over statuses; one histogram at 0 is enough
    /// for a 0, and five would multiply the exposition), the queue-wait histogram, both
    /// message levels, and the pending count. So `increase()` sees the first completion,
    /// and a dashboard shows 0 rather than "No data".
    fn init_group(&mut self, group: &Group) {
        let duration = self.rules.bounds(cat::DURATION.buckets).to_vec();
        let queue_wait = self.rules.bounds(cat::QUEUE_WAIT.buckets).to_vec();
        let duration_labels = self.rules.duration_labels(group, ZERO_DURATION_STATUS);
        let (t, s) = (group.task_name.as_str(), group.source.as_str());
        let mut v = Writer::new(&mut self.state.values, self.changed);
        for status in CompletionStatus::KNOWN_LABELS {
            v.touch_counter(&cat::COMPLETED_TOTAL, &[t, s, status]);
        }
        v.touch_histogram(self.rules.duration, &duration_labels, &duration);
        v.touch_histogram(&cat::QUEUE_WAIT, &[t, s], &queue_wait);
        for level in ["warn", "error"] {
            v.touch_counter(&cat::MESSAGES_TOTAL, &[t, s, level]);
        }
        if v.get(&cat::TASKS_PENDING, &[t, s]).is_none() {
            v.set(&cat::TASKS_PENDING, &[t, s], 0.0);
        }
    }

    /// Counts one completed task: counter, histograms, messages, and the last-completed
    /// gauges when it is the newest of its group and status. Call once per task.
    pub fn record_completion(&mut self, task: &TaskStatus) {
        let (group, folded) = self.group_of(task);
        if folded {
            self.values().add(&cat::GROUPS_FOLDED, &[], 1);
        }
        let status = self.status_label(task);
        let (t, s) = (group.task_name.as_str(), group.source.as_str());
        let duration_bounds = self.rules.bounds(cat::DURATION.buckets);
        let queue_bounds = self.rules.bounds(cat::QUEUE_WAIT.buckets);
        let duration_labels = self.rules.duration_labels(&group, &status);
        let at_ms = task_end(task).map(|end| end.timestamp_millis());
        let exemplar = |value| Exemplar::of_task(&task.id, value, at_ms);
        let duration = task_duration(task);
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.add_with_exemplar(&cat::COMPLETED_TOTAL, &[t, s, &status], 1, exemplar(1.0));
        v.observe(
            self.rules.duration,
            &duration_labels,
            duration_bounds,
            duration,
            exemplar(duration),
        );
        if let Some(launched) = &task.launched {
            let wait = span(&task.created, launched);
            v.observe(
                &cat::QUEUE_WAIT,
                &[t, s],
                queue_bounds,
                wait,
                exemplar(wait),
            );
        }
        for message in &task.messages {
            if let Some(level) = normalize::message_level(&message.level) {
                v.add(&cat::MESSAGES_TOTAL, &[t, s, level], 1);
            }
        }
        self.update_latest(&group, &status, task);
        self.record_results(&group, task, true);
    }

    /// Startup backlog: sets the last-completed gauges only, never counters or
    /// histograms (the backlog happened before the exporter was watching). Its result
    /// attributes get their `sailpoint_task_returns_total` series at 0.
    pub fn record_primed(&mut self, task: &TaskStatus) {
        let (group, _) = self.group_of(task);
        let status = self.status_label(task);
        self.update_latest(&group, &status, task);
        self.record_results(&group, task, false);
    }

    /// The numeric results of a finished task: added to `sailpoint_task_returns_total`
    /// when `counted` (at 0 otherwise), and `sailpoint_task_return_value` when the task is
    /// the newest of its group with results. Attribute labels are sanitised; past
    /// `max_return_attributes` per group they fold into `other`.
    fn record_results(&mut self, group: &Group, task: &TaskStatus, counted: bool) {
        let results = task_results(task);
        if results.is_empty() {
            return;
        }
        let mut labelled: Vec<(String, f64)> = Vec::new();
        for result in results {
            let Some(attribute) = normalize::attribute(&result.attribute) else {
                continue;
            };
            let admitted = self
                .state
                .return_attributes
                .entry(group.clone())
                .or_default();
            let label = if admitted.contains(&attribute)
                || admitted.len() < self.rules.max_return_attributes()
            {
                admitted.insert(attribute.clone());
                attribute
            } else {
                self.values().add(&cat::RETURN_ATTRIBUTES_FOLDED, &[], 1);
                OTHER.to_string()
            };
            match labelled.iter_mut().find(|(l, _)| *l == label) {
                Some((_, v)) => *v += result.value,
                None => labelled.push((label, result.value)),
            }
        }
        let (t, s) = (group.task_name.as_str(), group.source.as_str());
        for (attribute, value) in &labelled {
            let amount = if counted { *value } else { 0.0 };
            self.values()
                .add_amount(&cat::RETURNS_TOTAL, &[t, s, attribute], amount);
        }
        let rank = (
            task_end(task).unwrap_or(task.created),
            task.created,
            task.id.clone(),
        );
        if self
            .state
            .latest_results
            .get(group)
            .is_some_and(|current| *current >= rank)
        {
            return;
        }
        self.state.latest_results.insert(group.clone(), rank);
        for (attribute, value) in &labelled {
            self.values()
                .set(&cat::RETURN_VALUE, &[t, s, attribute], *value);
        }
    }

    /// The `status` label, with a cardinality guard: statuses outside the documented five
    /// keep their own (lower-cased) label for the first [`MAX_UNKNOWN_STATUSES`] distinct
    /// values of a tenant; later ones fold into `other`, so an API that sends a new value
    /// on every task cannot grow the exposition without bound.
    fn status_label(&mut self, task: &TaskStatus) -> String {
        let status = normalize::status(task);
        let unknown = &mut self.state.unknown_statuses;
        if CompletionStatus::KNOWN_LABELS.contains(&status.as_str())
            || status == normalize::UNKNOWN
            || unknown.contains(&status)
        {
            return status;
        }
        if unknown.len() < MAX_UNKNOWN_STATUSES {
            unknown.insert(status.clone());
            return status;
        }
        OTHER.to_string()
    }

    fn update_latest(&mut self, group: &Group, status: &str, task: &TaskStatus) {
        let Some(completed) = task_end(task) else {
            return;
        };
        let duration = task_duration(task);
        let key = (group.clone(), status.to_string());
        let rank = (completed, task.created, task.id.clone());
        if self
            .state
            .latest
            .get(&key)
            .is_some_and(|current| *current >= rank)
        {
            return;
        }
        self.state.latest.insert(key, rank);
        let labels = [group.task_name.as_str(), group.source.as_str(), status];
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.set(&cat::LAST_COMPLETED, &labels, seconds(&completed));
        v.set(&cat::LAST_DURATION, &labels, duration);
    }

    /// Replaces every pending gauge of the tenant with this snapshot: tasks no longer
    /// pending lose their series (no stale values), known groups with nothing pending
    /// show 0 and lose their oldest-created gauge.
    pub fn set_pending<'t>(&mut self, tasks: impl IntoIterator<Item = &'t TaskStatus>) {
        let mut per_group: BTreeMap<Group, (u64, DateTime<Utc>)> = BTreeMap::new();
        let mut with_group: Vec<(&TaskStatus, Group)> = Vec::new();
        let mut folded_now = BTreeSet::new();
        for task in tasks {
            let (group, folded) = self.group_of(task);
            if folded {
                if !self.state.folded_pending.contains(&task.id) {
                    self.values().add(&cat::GROUPS_FOLDED, &[], 1);
                }
                folded_now.insert(task.id.clone());
            }
            let entry = per_group.entry(group.clone()).or_insert((0, task.created));
            entry.0 += 1;
            entry.1 = entry.1.min(task.created);
            with_group.push((task, group));
        }
        self.state.folded_pending = folded_now;
        let mut v = Writer::new(&mut self.state.values, self.changed);
        for family in [
            &cat::TASKS_PENDING,
            &cat::PENDING_OLDEST,
            &cat::PENDING_TASK_CREATED,
            &cat::PENDING_TASK_PROGRESS,
        ] {
            v.clear(family);
        }
        for group in &self.state.groups {
            v.set(&cat::TASKS_PENDING, &[&group.task_name, &group.source], 0.0);
        }
        for (group, (count, oldest)) in &per_group {
            let labels = [group.task_name.as_str(), group.source.as_str()];
            v.set(&cat::TASKS_PENDING, &labels, *count as f64);
            v.set(&cat::PENDING_OLDEST, &labels, seconds(oldest));
        }
        with_group.sort_by(|a, b| {
            a.0.created
                .cmp(&b.0.created)
                .then_with(|| a.0.id.cmp(&b.0.id))
        });
        with_group.truncate(self.rules.max_pending_task_series);
        for (task, group) in &with_group {
            let labels = [task.id.as_str(), &group.task_name, &group.source];
            v.set(&cat::PENDING_TASK_CREATED, &labels, seconds(&task.created));
            let ratio = (task.percent_complete.clamp(0, 100) as f64) / 100.0;
            v.set(&cat::PENDING_TASK_PROGRESS, &labels, ratio);
        }
    }

    /// A poll of `list` succeeded at `at` after `elapsed`.
    pub fn poll_succeeded(&mut self, list: PollList, at: DateTime<Utc>, elapsed: Duration) {
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.set(&cat::LAST_POLL_SUCCESS, &[list.as_str()], seconds(&at));
        v.set(
            &cat::LAST_POLL_DURATION,
            &[list.as_str()],
            elapsed.as_secs_f64(),
        );
        self.set_list_ok(list, true);
    }

    /// A poll of `list` failed after `elapsed`; nothing of it was applied.
    pub fn poll_failed(&mut self, list: PollList, elapsed: Duration) {
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.add(&cat::POLL_ERRORS, &[list.as_str()], 1);
        v.set(
            &cat::LAST_POLL_DURATION,
            &[list.as_str()],
            elapsed.as_secs_f64(),
        );
        self.set_list_ok(list, false);
    }

    fn set_list_ok(&mut self, list: PollList, ok: bool) {
        match list {
            PollList::Pending => self.state.pending_ok = ok,
            PollList::Completed => self.state.completed_ok = ok,
        }
        let up = self.state.pending_ok && self.state.completed_ok;
        self.values().set(&cat::UP, &[], if up { 1.0 } else { 0.0 });
    }

    /// Sizes of the tracker's pending set and dedupe set.
    pub fn set_tracked(&mut self, pending: usize, recent: usize) {
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.set(&cat::TRACKED, &["pending"], pending as f64);
        v.set(&cat::TRACKED, &["recent"], recent as f64);
    }

    /// One HTTP request to the API.
    pub fn request(&mut self, operation: &str, code: &str, elapsed: Duration) {
        let bounds = self.rules.bounds(cat::API_DURATION.buckets);
        let mut v = Writer::new(&mut self.state.values, self.changed);
        v.add(&cat::API_REQUESTS, &[operation, code], 1);
        v.observe(
            &cat::API_DURATION,
            &[operation],
            bounds,
            elapsed.as_secs_f64(),
            None,
        );
    }

    /// One retried request.
    pub fn retry(&mut self, reason: RetryReason) {
        self.values().add(&cat::API_RETRIES, &[reason.as_str()], 1);
    }

    /// One access token fetched.
    pub fn token_refresh(&mut self) {
        self.values().add(&cat::TOKEN_REFRESHES, &[], 1);
    }

    /// One off-spec record read by `operation`, and what was done with it.
    pub fn invalid_record(&mut self, operation: &str, fault: RecordFault) {
        self.values()
            .add(&cat::INVALID_RECORDS, &[operation, fault.as_str()], 1);
    }

    /// The tenant's clock minus the exporter's, in seconds.
    pub fn set_clock_skew(&mut self, seconds: f64) {
        self.values().set(&cat::CLOCK_SKEW, &[], seconds);
    }

    /// `n` departed tasks were set aside after repeated failed lookups.
    pub fn lookups_set_aside(&mut self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.values().add(&cat::LOOKUPS_SET_ASIDE, &[], n);
    }

    /// One completed read met an unsorted page and read the whole list.
    pub fn unsorted_read(&mut self) {
        self.values().add(&cat::UNSORTED_READS, &[], 1);
    }

    /// Whether exactly-once counting is currently given up (see the family's help).
    pub fn set_counting_degraded(&mut self, degraded: bool) {
        let value = if degraded { 1.0 } else { 0.0 };
        self.values().set(&cat::COUNTING_DEGRADED, &[], value);
    }
}
