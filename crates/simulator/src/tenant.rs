//! The ground truth of the simulated tenant: every task and its life cycle against the
//! clock. The queries the HTTP layer answers are in [`queries`], what tests script in
//! [`script`], the JSON Patch of `PATCH /task-status/{id}` in [`patch`].
//!
//! Tasks live in an append-only slot vector (stable indexes), with an `order` index
//! sorted by (`created`, creation sequence) and a `pending` index in the same order.
//! State advances lazily: [`Tenant::settle`] is called with the clock's "now" before
//! every query and creates due scheduled runs and finishes tasks whose planned end has
//! passed. Because each run's randomness depends only on the seed and the run number,
//! the result does not depend on how often `settle` is called.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use sailpoint_model::TaskStatus;

use super::config::SimConfig;
use super::generator::{self, Pace, Schedule, SourceSpec};
use super::task::{Done, Plan, SimSource, SimTask, parse_hex32};

mod patch;
mod queries;
mod script;

pub(crate) use patch::PatchError;
pub(crate) use queries::Listing;
pub use script::NewTask;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scenario;
    use crate::generator::Profile;
    use chrono::Duration;
    use sailpoint_model::CompletionStatus;

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
        assert_eq!(failing.profile, Profile::Failing);
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
