//! The ground truth of the simulated tenant: every task, its life cycle against the
//! clock, and the queries the HTTP layer answers from it.
//!
//! Tasks live in an append-only slot vector (stable indexes), with an `order` index
//! sorted by (`created`, creation sequence) and a `pending` index in the same order.
//! State advances lazily: [`Tenant::settle`] is called with the clock's "now" before
//! every query and creates due scheduled runs and finishes tasks whose planned end has
//! passed. Because each run's randomness depends only on the seed and the run number,
//! the result does not depend on how often `settle` is called.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use thiserror::Error;

use crate::sailpoint::model::{
    CompletionStatus, JsonPatchOperation, TaskStatus, TaskStatusMessage, parse_timestamp,
};

use super::config::SimConfig;
use super::filter::Filter;
use super::generator::{self, Pace, Profile, Schedule, SourceSpec, stream};
use super::task::{
    AggregationResults, Done, FilterView, Messages, Outcome, Plan, SimSource, SimTask, TaskKind,
    hex32, parse_hex32,
};

/// A task a test adds to the tenant (see [`super::SimHandle::add_task`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// What the task does.
    pub kind: TaskKind,
    /// Source display name; an unknown name creates a new source (no schedules).
    pub source: Option<String>,
    /// Defaults to the simulated now.
    pub created: Option<DateTime<Utc>>,
    /// `None` = queued, not launched yet.
    pub launched: Option<DateTime<Utc>>,
    /// Planned end; `None` = pending until `complete_task` or a PATCH.
    pub completes: Option<(DateTime<Utc>, CompletionStatus)>,
    /// Messages the task carries once it has completed.
    pub messages: Vec<TaskStatusMessage>,
    /// What an account aggregation reports in its results (normal by default).
    pub results: AggregationResults,
    /// Accounts/identities processed (shown in attributes and progress).
    pub size: u32,
}

impl NewTask {
    /// A pending task of `kind`, created now, not launched, never ending by itself.
    pub fn new(kind: TaskKind) -> NewTask {
        NewTask {
            kind,
            source: None,
            created: None,
            launched: None,
            completes: None,
            messages: Vec::new(),
            size: 1000,
            results: AggregationResults::Normal,
        }
    }

    /// Accounts (or groups, identities) the task processes.
    pub fn size(mut self, size: u32) -> Self {
        self.size = size;
        self
    }

    /// What an account aggregation reports in its results.
    pub fn results(mut self, results: AggregationResults) -> Self {
        self.results = results;
        self
    }

    /// "Cloud Account Aggregation" of the source named `source`.
    pub fn account_aggregation(source: &str) -> NewTask {
        NewTask::new(TaskKind::AccountAggregation).on_source(source)
    }

    /// "Cloud Group Aggregation" of the source named `source`.
    pub fn group_aggregation(source: &str) -> NewTask {
        NewTask::new(TaskKind::GroupAggregation).on_source(source)
    }

    /// "Identity Refresh" (no source).
    pub fn identity_refresh() -> NewTask {
        NewTask::new(TaskKind::IdentityRefresh)
    }

    /// Attaches the task to the source named `source`.
    pub fn on_source(mut self, source: &str) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// Sets the creation time.
    pub fn created(mut self, t: DateTime<Utc>) -> Self {
        self.created = Some(t);
        self
    }

    /// Sets the launch time (rendered as null until the clock reaches it).
    pub fn launched(mut self, t: DateTime<Utc>) -> Self {
        self.launched = Some(t);
        self
    }

    /// Makes the task finish by itself at `at` with `status`.
    pub fn completes(mut self, at: DateTime<Utc>, status: CompletionStatus) -> Self {
        self.completes = Some((at, status));
        self
    }

    /// Sets the messages shown once the task has completed.
    pub fn messages(mut self, messages: Vec<TaskStatusMessage>) -> Self {
        self.messages = messages;
        self
    }
}

/// Why a PATCH was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PatchError {
    #[error("task not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

/// One page of a listing plus the total the query matches.
pub(crate) struct Page {
    pub items: Vec<TaskStatus>,
    pub total: usize,
}

/// How long completed tasks are served (SailPoint: "task data older than 90 days is not
/// returned").
pub(crate) const RETENTION: chrono::Duration = chrono::Duration::days(90);

/// Every task of the simulated tenant.
pub(crate) struct Tenant {
    seed: u64,
    pace: Pace,
    sources: Vec<SourceSpec>,
    schedules: Vec<Schedule>,
    slots: Vec<SimTask>,
    order: Vec<u32>,
    pending: Vec<u32>,
    by_id: HashMap<u128, u32>,
    next_seq: u64,
    scripted: u64,
    settled_until: DateTime<Utc>,
}

impl Tenant {
    /// Builds the tenant of `cfg` as it is at `start`.
    pub(crate) fn new(cfg: &SimConfig, start: DateTime<Utc>) -> Tenant {
        let blueprint = generator::build(cfg, start);
        let mut tenant = Tenant {
            seed: cfg.seed,
            pace: Pace::new(cfg.effective_speed()),
            sources: blueprint.sources,
            schedules: blueprint.schedules,
            slots: Vec::with_capacity(blueprint.tasks.len()),
            order: Vec::with_capacity(blueprint.tasks.len()),
            pending: Vec::new(),
            by_id: HashMap::with_capacity(blueprint.tasks.len()),
            next_seq: 0,
            scripted: 0,
            settled_until: start,
        };
        let mut tasks = blueprint.tasks;
        tasks.sort_by_key(|t| t.created);
        for mut task in tasks {
            task.seq = tenant.next_seq;
            tenant.next_seq += 1;
            let slot = tenant.slots.len() as u32;
            tenant.by_id.insert(task.id, slot);
            if task.done.is_none() {
                tenant.pending.push(slot);
            }
            tenant.order.push(slot);
            tenant.slots.push(task);
        }
        tenant
    }

    /// Brings the tenant to `now`: creates due scheduled runs in time order, then
    /// finishes every task whose planned end is not after `now`.
    pub(crate) fn settle(&mut self, now: DateTime<Utc>) {
        if now > self.settled_until {
            self.settled_until = now;
        }
        self.spawn_due_runs(now);
        let slots = &mut self.slots;
        self.pending.retain(|&slot| {
            let Some(task) = slots.get_mut(slot as usize) else {
                return false;
            };
            if let Plan::At(at, status, messages) = &task.plan
                && *at <= now
                && task.done.is_none()
            {
                task.done = Some(Done {
                    at: *at,
                    status: status.clone(),
                    messages: messages.clone(),
                });
            }
            task.done.is_none()
        });
        self.expire(now);
    }

    /// Forgets completed tasks older than [`RETENTION`]: SailPoint returns no task data
    /// older than 90 days, and a long demo at high speed must not grow without bound.
    /// Compaction rebuilds the indexes, so it runs only once enough tasks expired; until
    /// then [`Tenant::visible`] hides them.
    fn expire(&mut self, now: DateTime<Utc>) {
        let Some(cutoff) = now.checked_sub_signed(RETENTION) else {
            return;
        };
        let expired = self
            .order
            .iter()
            .take_while(|&&s| {
                self.slots
                    .get(s as usize)
                    .is_some_and(|t| t.created < cutoff)
            })
            .filter(|&&s| self.slots.get(s as usize).is_some_and(|t| t.done.is_some()))
            .count();
        if expired < 1024 && expired * 4 < self.slots.len().max(1) {
            return;
        }
        let old = std::mem::take(&mut self.slots);
        let mut renumber = vec![None; old.len()];
        for (i, task) in old.into_iter().enumerate() {
            if task.done.is_none() || task.created >= cutoff {
                if let Some(r) = renumber.get_mut(i) {
                    *r = Some(self.slots.len() as u32);
                }
                self.slots.push(task);
            }
        }
        let map = |slot: &u32| renumber.get(*slot as usize).copied().flatten();
        self.order = self.order.iter().filter_map(map).collect();
        self.pending = self.pending.iter().filter_map(map).collect();
        self.by_id = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i as u32))
            .collect();
    }

    /// Whether a task is still served: pending, or completed within [`RETENTION`].
    fn visible(task: &SimTask, now: DateTime<Utc>) -> bool {
        task.done.is_none()
            || now
                .checked_sub_signed(RETENTION)
                .is_none_or(|cutoff| task.created >= cutoff)
    }

    fn spawn_due_runs(&mut self, now: DateTime<Utc>) {
        loop {
            let due = self
                .schedules
                .iter()
                .enumerate()
                .filter(|(_, s)| s.next <= now)
                .min_by_key(|(i, s)| (s.next, *i))
                .map(|(i, _)| i);
            let Some(i) = due else { return };
            let Some(schedule) = self.schedules.get(i).cloned() else {
                return;
            };
            let blocked = self.is_blocked(&schedule);
            let task =
                generator::scheduled_run(self.seed, &self.sources, &schedule, blocked, self.pace);
            self.insert(task);
            if let Some(s) = self.schedules.get_mut(i) {
                s.next += s.interval;
                s.run += 1;
            }
        }
    }

    /// An aggregation cannot start while an earlier one of the same source still runs.
    fn is_blocked(&self, schedule: &Schedule) -> bool {
        schedule.source.is_some()
            && self.pending.iter().any(|&slot| {
                self.slots.get(slot as usize).is_some_and(|t| {
                    t.source == schedule.source
                        && t.kind == schedule.kind
                        && t.running_at(schedule.next)
                })
            })
    }

    /// Adds a task, keeping `order` and `pending` sorted; returns its slot.
    fn insert(&mut self, mut task: SimTask) -> u32 {
        task.seq = self.next_seq;
        self.next_seq += 1;
        let slot = self.slots.len() as u32;
        let key = (task.created, task.seq);
        let slots = &self.slots;
        let position = |index: &Vec<u32>| {
            index.partition_point(|&s| {
                slots
                    .get(s as usize)
                    .is_some_and(|t| (t.created, t.seq) < key)
            })
        };
        let at = position(&self.order);
        self.order.insert(at, slot);
        if task.done.is_none() {
            let at = position(&self.pending);
            self.pending.insert(at, slot);
        }
        self.by_id.insert(task.id, slot);
        self.slots.push(task);
        slot
    }

    fn source(&self, task: &SimTask) -> Option<&SimSource> {
        task.source
            .and_then(|i| self.sources.get(i as usize))
            .map(|s| &s.source)
    }

    fn render(&self, slot: u32, now: DateTime<Utc>) -> Option<TaskStatus> {
        let task = self
            .slots
            .get(slot as usize)
            .filter(|t| Self::visible(t, now))?;
        Some(task.render(self.source(task), now))
    }

    fn slot_of(&self, id: &str) -> Option<u32> {
        parse_hex32(id).and_then(|id| self.by_id.get(&id).copied())
    }

    /// The sources, in generation order.
    pub(crate) fn sources(&self) -> Vec<SimSource> {
        self.sources.iter().map(|s| s.source.clone()).collect()
    }

    /// Every task, oldest first.
    pub(crate) fn all(&self, now: DateTime<Utc>) -> Vec<TaskStatus> {
        self.order
            .iter()
            .filter_map(|&s| self.render(s, now))
            .collect()
    }

    /// The pending tasks, oldest first.
    pub(crate) fn pending_page(&self, offset: usize, limit: usize, now: DateTime<Utc>) -> Page {
        Page {
            items: self
                .pending
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|&s| self.render(s, now))
                .collect(),
            total: self.pending.len(),
        }
    }

    /// `GET /task-status`: completed tasks (pending ones when the filter says
    /// `completionStatus isnull`), by `created` in the asked direction.
    pub(crate) fn list(
        &self,
        filter: Option<&Filter>,
        descending: bool,
        offset: usize,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Page {
        let want_pending = filter.is_some_and(Filter::wants_pending);
        let matches = |slot: &&u32| {
            self.slots.get(**slot as usize).is_some_and(|task| {
                task.done.is_none() == want_pending
                    && Self::visible(task, now)
                    && filter.is_none_or(|f| {
                        f.matches(&FilterView {
                            task,
                            source: self.source(task),
                        })
                    })
            })
        };
        let index = if want_pending {
            &self.pending
        } else {
            &self.order
        };
        let mut chosen = Vec::new();
        let mut total = 0usize;
        let mut visit = |slot: &u32| {
            if total >= offset && chosen.len() < limit {
                chosen.push(*slot);
            }
            total += 1;
        };
        if descending {
            index.iter().rev().filter(matches).for_each(&mut visit);
        } else {
            index.iter().filter(matches).for_each(&mut visit);
        }
        Page {
            items: chosen
                .into_iter()
                .filter_map(|s| self.render(s, now))
                .collect(),
            total,
        }
    }

    /// One task by id.
    pub(crate) fn get(&self, id: &str, now: DateTime<Utc>) -> Option<TaskStatus> {
        self.slot_of(id).and_then(|s| self.render(s, now))
    }

    /// Applies a JSON Patch (`replace`/`add` of `/completionStatus` and `/completed`).
    pub(crate) fn patch(
        &mut self,
        id: &str,
        ops: &[JsonPatchOperation],
        now: DateTime<Utc>,
    ) -> Result<TaskStatus, PatchError> {
        let slot = self.slot_of(id).ok_or(PatchError::NotFound)?;
        let task = self
            .slots
            .get_mut(slot as usize)
            .ok_or(PatchError::NotFound)?;
        let (status, completed) = patched_fields(task, ops)?;
        let messages = match task.done.take() {
            Some(done) => done.messages,
            None => Messages::Explicit(Vec::new()),
        };
        task.done = Some(Done {
            at: completed.unwrap_or(now),
            status,
            messages,
        });
        task.modified = Some(now);
        self.pending.retain(|&s| s != slot);
        self.render(slot, now).ok_or(PatchError::NotFound)
    }

    /// Adds a scripted task; returns its id.
    pub(crate) fn add(&mut self, spec: NewTask, now: DateTime<Utc>) -> String {
        let source = spec.source.as_deref().map(|name| self.source_named(name));
        let mut r = generator::rng(self.seed, stream::SCRIPTED, self.scripted, 0);
        self.scripted += 1;
        let source = if spec.kind == TaskKind::IdentityRefresh {
            None
        } else {
            source
        };
        let suffix = (spec.kind == TaskKind::EntitlementReset).then(|| r.r#gen::<u128>());
        let plan = match spec.completes {
            Some((at, status)) => Plan::At(at, status, Messages::Explicit(spec.messages)),
            None => Plan::Never,
        };
        let task = SimTask {
            id: r.r#gen(),
            seq: 0,
            kind: spec.kind,
            suffix,
            source,
            created: spec.created.unwrap_or(now),
            launch_at: spec.launched,
            plan,
            done: None,
            size: spec.size,
            modified: None,
            results: spec.results,
        };
        let id = task.id;
        self.insert(task);
        self.settle(now);
        hex32(id)
    }

    fn source_named(&mut self, name: &str) -> u32 {
        if let Some(i) = self.sources.iter().position(|s| s.source.name == name) {
            return i as u32;
        }
        let mut r = generator::rng(self.seed, stream::SOURCES, 1_000_000, self.scripted);
        self.sources.push(SourceSpec {
            source: SimSource {
                id: hex32(r.r#gen()),
                name: name.to_string(),
            },
            profile: Profile::Healthy,
            results: AggregationResults::Normal,
        });
        (self.sources.len() - 1) as u32
    }

    /// Completes a pending task now; false when the id is unknown or not pending.
    pub(crate) fn complete(
        &mut self,
        id: &str,
        status: CompletionStatus,
        messages: Vec<TaskStatusMessage>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        let Some(task) = self.slots.get_mut(slot as usize) else {
            return false;
        };
        if task.done.is_some() {
            return false;
        }
        task.done = Some(Done {
            at: now,
            status,
            messages: Messages::Explicit(messages),
        });
        self.pending.retain(|&s| s != slot);
        true
    }

    /// The tenant moving under a pager's feet: the oldest pending task completes and a
    /// new completed task appears at the head of `-created`.
    pub(crate) fn shift_pages(&mut self, now: DateTime<Utc>) {
        if let Some(&slot) = self.pending.first() {
            if let Some(task) = self.slots.get_mut(slot as usize) {
                task.done = Some(Done {
                    at: now,
                    status: CompletionStatus::Success,
                    messages: Messages::Of(Outcome::Success),
                });
            }
            self.pending.remove(0);
        }
        let mut r = generator::rng(self.seed, stream::SHIFT, self.scripted, 0);
        self.scripted += 1;
        let source = (!self.sources.is_empty()).then(|| r.gen_range(0..self.sources.len()) as u32);
        let kind = match source {
            Some(_) => TaskKind::GroupAggregation,
            None => TaskKind::IdentityRefresh,
        };
        let task = SimTask {
            id: r.r#gen(),
            seq: 0,
            kind,
            suffix: None,
            source,
            created: now,
            launch_at: Some(now),
            plan: Plan::Never,
            done: Some(Done {
                at: now,
                status: CompletionStatus::Success,
                messages: Messages::Of(Outcome::Success),
            }),
            size: r.gen_range(20..2000),
            modified: None,
            results: AggregationResults::Normal,
        };
        self.insert(task);
    }
}

/// Validates a patch against a task and returns the resulting status and completion time.
fn patched_fields(
    task: &SimTask,
    ops: &[JsonPatchOperation],
) -> Result<(CompletionStatus, Option<DateTime<Utc>>), PatchError> {
    if ops.is_empty() {
        return Err(PatchError::Invalid("the patch is empty".into()));
    }
    let mut status = task.done.as_ref().map(|d| d.status.clone());
    let mut completed = task.done.as_ref().map(|d| d.at);
    for op in ops {
        if op.op != "replace" && op.op != "add" {
            return Err(PatchError::Invalid(format!(
                "operation '{}' is not supported; use replace or add",
                op.op
            )));
        }
        let text = op.value.as_ref().and_then(|v| v.as_str());
        match op.path.as_str() {
            "/completionStatus" => {
                let parsed = text.map(CompletionStatus::from);
                match parsed {
                    Some(CompletionStatus::Other(v)) => {
                        return Err(PatchError::Invalid(format!(
                            "'{v}' is not a completion status (SUCCESS, WARNING, ERROR, TERMINATED, TEMPERROR)"
                        )));
                    }
                    Some(s) => status = Some(s),
                    None => {
                        return Err(PatchError::Invalid(
                            "/completionStatus needs a string value".into(),
                        ));
                    }
                }
            }
            "/completed" => {
                let t = text.and_then(parse_timestamp).ok_or_else(|| {
                    PatchError::Invalid("/completed needs a date-time string value".into())
                })?;
                completed = Some(t);
            }
            other => {
                return Err(PatchError::Invalid(format!(
                    "path '{other}' cannot be patched; only /completionStatus and /completed can"
                )));
            }
        }
    }
    let status = status
        .ok_or_else(|| PatchError::Invalid("a completed task needs a /completionStatus".into()))?;
    Ok((status, completed))
}

impl Profile {
    #[cfg(test)]
    fn is_failing(self) -> bool {
        self == Profile::Failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::config::Scenario;
    use chrono::Duration;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn settling_in_steps_or_at_once_gives_the_same_tasks() {
        let cfg = SimConfig::new(9);
        let mut stepwise = Tenant::new(&cfg, start());
        let mut at_once = Tenant::new(&cfg, start());
        for minutes in (0..=600).step_by(7) {
            stepwise.settle(start() + Duration::minutes(minutes));
        }
        stepwise.settle(start() + Duration::minutes(600));
        at_once.settle(start() + Duration::minutes(600));
        let end = start() + Duration::minutes(600);
        assert_eq!(stepwise.all(end), at_once.all(end));
        assert!(at_once.all(end).len() > 600 + 3, "schedules created runs");
    }

    #[test]
    fn failing_source_fails_every_aggregation() {
        let cfg = SimConfig::new(3).with_scenario(Scenario::FailingSource);
        let mut tenant = Tenant::new(&cfg, start());
        let failing = tenant
            .sources
            .get(generator::FAILING_SOURCE)
            .unwrap()
            .clone();
        assert!(failing.profile.is_failing());
        tenant.settle(start() + Duration::hours(12));
        let tasks = tenant.all(start() + Duration::hours(12));
        let of_source: Vec<_> = tasks
            .iter()
            .filter(|t| t.target.as_ref().is_some_and(|x| x.id == failing.source.id))
            .filter(|t| t.unique_name.starts_with("Cloud"))
            .filter(|t| !t.is_pending())
            .collect();
        assert!(of_source.len() > 10);
        assert!(
            of_source
                .iter()
                .all(|t| t.completion_status == Some(CompletionStatus::Error))
        );
    }

    #[test]
    fn stuck_aggregation_blocks_later_runs() {
        let cfg = SimConfig::new(5).with_scenario(Scenario::StuckAggregation);
        let mut tenant = Tenant::new(&cfg, start());
        let later = start() + Duration::hours(5);
        tenant.settle(later);
        let ad = tenant.sources().first().unwrap().id.clone();
        let tasks = tenant.all(later);
        let ad_accounts: Vec<_> = tasks
            .iter()
            .filter(|t| t.unique_name == "Cloud Account Aggregation")
            .filter(|t| t.target.as_ref().is_some_and(|x| x.id == ad))
            .filter(|t| t.created >= start() - Duration::minutes(181))
            .collect();
        let stuck = ad_accounts.first().unwrap();
        assert!(stuck.is_pending());
        assert_eq!(stuck.created, start() - Duration::minutes(181));
        let after: Vec<_> = ad_accounts.iter().filter(|t| t.created > start()).collect();
        assert_eq!(after.len(), 5);
        assert!(after.iter().all(|t| {
            t.completion_status == Some(CompletionStatus::Error)
                && t.messages.first().is_some_and(|m| m.level == "ERROR")
        }));
    }

    #[test]
    fn tasks_older_than_ninety_days_are_neither_served_nor_kept() {
        let cfg = SimConfig::new(8).with_scenario(Scenario::Steady);
        let mut tenant = Tenant::new(&cfg, start());
        let oldest = tenant.all(start()).first().map(|t| t.id.clone()).unwrap();
        let later = start() + Duration::days(100);
        tenant.settle(later);
        let cutoff = later - RETENTION;
        let all = tenant.all(later);
        assert!(all.iter().all(|t| t.is_pending() || t.created >= cutoff));
        // More than 1 024 tasks expired, so they are gone from memory too.
        assert!(
            tenant
                .slots
                .iter()
                .all(|t| t.done.is_none() || t.created >= cutoff)
        );
        assert_eq!(tenant.get(&oldest, later), None);
        assert_eq!(tenant.slots.len(), tenant.order.len());
        assert_eq!(tenant.by_id.len(), tenant.slots.len());
        let served = tenant.list(None, true, 0, usize::MAX, later);
        assert_eq!(served.total, all.iter().filter(|t| !t.is_pending()).count());
        // Every kept task is still found by id; an expired one is not.
        for task in all.iter().take(50) {
            assert_eq!(tenant.get(&task.id, later).as_ref(), Some(task));
        }
    }
}
