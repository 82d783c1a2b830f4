//! What tests and the page-shift fault do to the tenant: add scripted tasks, complete
//! pending ones, shift pages by real changes.

use chrono::{DateTime, Utc};
use rand::Rng;

use super::Tenant;
use crate::generator::{self, Profile, SourceSpec, stream};
use crate::task::{
    AggregationResults, Done, Messages, Outcome, Plan, SimSource, SimTask, TaskKind, hex32,
};
use sailpoint_model::{CompletionStatus, TaskStatusMessage};

/// A task a test adds to the tenant (see [`crate::SimHandle::add_task`]).
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

impl Tenant {
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
            results_from: None,
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
