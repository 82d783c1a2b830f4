//! Exactly-once bookkeeping (DESIGN §3), as pure synchronous state with no I/O.
//!
//! A poll first *reads* everything it needs from the API (see [`super::read`]) into a
//! [`PendingRead`], [`CompletedRead`] or [`PrimeRead`]; only when the whole read
//! succeeded is it *applied* here, in one infallible step that returns the tasks to count.
//! A failed read is dropped, so a failed poll changes nothing.
//!
//! Why nothing is lost or counted twice:
//! - a task that was in a pending snapshot is followed until it leaves it, then looked
//!   up (completed → counted, still pending → kept, 404 → forgotten);
//! - a task that never appeared in a pending snapshot lived entirely between two
//!   successful pending polls, so it was created after the earlier one; the completed
//!   poll reads every completed task created at or after
//!   `L = min(watermark, S*) − overlap`, where `S*` is the start of the last successful
//!   pending poll *as of the previous successful completed poll*. That is a (safe)
//!   refinement of "min(watermark, last pending start)": if pending polls fail for a
//!   while, a task created during the failures is still at or above `L` when the first
//!   completed poll after its completion runs;
//! - [`RecentlyRecorded`] holds every id counted with `created ≥ L`, so the overlap,
//!   page shifts and the two paths never count a task twice. `L` never decreases, so an
//!   entry below it can never be read by the completed path again and is evicted (after
//!   it is also older than one overlap by record time, a guard against a stale pending
//!   list showing a finished task once more).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::sailpoint::model::TaskStatus;

/// The tasks pending at the last successful pending poll, by id.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PendingSet {
    tasks: HashMap<String, TaskStatus>,
}

impl PendingSet {
    /// Number of pending tasks tracked.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether a task id is pending.
    pub fn contains(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    /// The pending tasks (arbitrary order).
    pub fn tasks(&self) -> impl Iterator<Item = &TaskStatus> {
        self.tasks.values()
    }

    fn insert(&mut self, task: TaskStatus) {
        self.tasks.insert(task.id.clone(), task);
    }

    fn remove(&mut self, id: &str) {
        self.tasks.remove(id);
    }
}

/// The newest `created` of any completed task read so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark(Option<DateTime<Utc>>);

impl Watermark {
    /// The current value (None before anything was read).
    pub fn get(self) -> Option<DateTime<Utc>> {
        self.0
    }

    fn advance(&mut self, created: DateTime<Utc>) {
        if self.0.is_none_or(|w| created > w) {
            self.0 = Some(created);
        }
    }
}

/// Ids already counted (or primed), with their `created` and when they were recorded.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RecentlyRecorded {
    entries: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

impl RecentlyRecorded {
    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a task was already recorded.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    fn insert(&mut self, task: &TaskStatus, now: DateTime<Utc>) {
        self.entries.insert(task.id.clone(), (task.created, now));
    }

    /// Drops entries the completed path can no longer read (`created < bound`) that were
    /// recorded before `recorded_before`.
    fn evict(&mut self, bound: DateTime<Utc>, recorded_before: DateTime<Utc>) {
        self.entries
            .retain(|_, (created, recorded)| *created >= bound || *recorded >= recorded_before);
    }
}

/// What the pending path learned about a task that left the pending list.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The task exists and carries its current state (completed or still pending).
    Found(Box<TaskStatus>),
    /// `404`: the task is gone (deleted, or older than 90 days).
    Gone,
}

/// Everything one pending poll read from the API.
#[derive(Debug, Clone)]
pub struct PendingRead {
    /// When the poll started (exporter clock); becomes `S` once applied.
    pub started: DateTime<Utc>,
    /// The whole pending list, as returned (duplicates allowed).
    pub listed: Vec<TaskStatus>,
    /// The follow-up of every id in [`Tracker::departed`].
    pub lookups: Vec<(String, Lookup)>,
}

/// Everything one completed poll read: the tasks with `created ≥ lower_bound`.
#[derive(Debug, Clone)]
pub struct CompletedRead {
    /// The `L` the read used (from [`Tracker::completed_lower_bound`]).
    pub lower_bound: DateTime<Utc>,
    /// Tasks read, newest first, duplicates allowed.
    pub tasks: Vec<TaskStatus>,
}

/// Everything the startup priming read: a pending baseline and the lookback history.
#[derive(Debug, Clone)]
pub struct PrimeRead {
    /// The baseline pending poll (its `lookups` are empty).
    pub pending: PendingRead,
    /// Completed tasks created at or after `now − lookback`.
    pub history: CompletedRead,
}

/// What priming found: the lookback backlog (sets last-completed gauges, never counted)
/// and the tasks of the first pending snapshot that completed before the history was
/// read (counted, since they completed after the exporter started).
#[derive(Debug, Default)]
pub struct Primed {
    /// Completions from before the exporter started.
    pub backlog: Vec<TaskStatus>,
    /// Completions of tasks that were pending when the exporter started.
    pub counted: Vec<TaskStatus>,
}

/// Tracker timings, from the tenant settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackerConfig {
    /// How far below the lower bound's reference the completed poll reads again.
    pub overlap: Duration,
    /// How far back priming reads.
    pub lookback: Duration,
}

/// The exactly-once state of one tenant. Serialisable for `storage.path`; the timings
/// are not kept (they come from the settings: see [`Tracker::reconfigure`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracker {
    #[serde(skip)]
    config: TrackerConfig,
    pending: PendingSet,
    watermark: Watermark,
    recent: RecentlyRecorded,
    /// `S`: start of the last successful pending poll.
    last_pending_start: Option<DateTime<Utc>>,
    /// `S*`: `S` as it was when the last successful completed poll ran.
    covered_pending_start: Option<DateTime<Utc>>,
    primed: bool,
}

impl Tracker {
    /// An empty, unprimed tracker.
    /// Changes the timings of a running tracker (a reload changed `overlap` or
    /// `lookback`); its exactly-once state is kept.
    pub fn reconfigure(&mut self, config: TrackerConfig) {
        self.config = config;
    }

    /// The tracker's timings.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// A new, unprimed tracker.
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker {
            config,
            pending: PendingSet::default(),
            watermark: Watermark::default(),
            recent: RecentlyRecorded::default(),
            last_pending_start: None,
            covered_pending_start: None,
            primed: false,
        }
    }

    /// True once startup priming was applied; nothing is counted before.
    pub fn is_primed(&self) -> bool {
        self.primed
    }

    /// The pending set of the last successful pending poll.
    pub fn pending(&self) -> &PendingSet {
        &self.pending
    }

    /// The dedupe set.
    pub fn recent(&self) -> &RecentlyRecorded {
        &self.recent
    }

    /// The watermark.
    pub fn watermark(&self) -> Watermark {
        self.watermark
    }

    /// Where priming stops reading: `now − lookback`.
    pub fn priming_lower_bound(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        before(now, self.config.lookback)
    }

    /// `L = min(watermark, S*) − overlap`; None before priming.
    pub fn completed_lower_bound(&self) -> Option<DateTime<Utc>> {
        let reference = match (self.watermark.get(), self.covered_pending_start) {
            (Some(w), Some(s)) => Some(w.min(s)),
            (w, s) => w.or(s),
        };
        reference.map(|r| before(r, self.config.overlap))
    }

    /// Ids pending last time and missing from this pending list: they must be looked up.
    pub fn departed(&self, listed: &[TaskStatus]) -> Vec<String> {
        let now: HashSet<&str> = listed.iter().map(|t| t.id.as_str()).collect();
        let mut gone: Vec<String> = self
            .pending
            .tasks
            .keys()
            .filter(|id| !now.contains(id.as_str()))
            .cloned()
            .collect();
        gone.sort();
        gone
    }

    /// Applies a successful startup read: the pending baseline and the lookback history
    /// fill the state without counting. Returns the completed tasks for the
    /// last-completed gauges (never for counters).
    pub fn apply_prime(&mut self, read: PrimeRead, now: DateTime<Utc>) -> Primed {
        let mut backlog = Vec::new();
        self.pending = PendingSet::default();
        for task in read.pending.listed {
            if task.is_pending() {
                self.pending.insert(task);
            } else if !self.recent.contains(&task.id) {
                self.recent.insert(&task, now);
                backlog.push(task);
            }
        }
        self.last_pending_start = Some(read.pending.started);
        let mut history = Vec::new();
        // The history is read after the pending snapshot: a task of that snapshot found
        // completed in the history completed after the exporter started, so it is counted
        // like any other completion, not taken as backlog.
        let since_start: HashSet<String> = read
            .history
            .tasks
            .iter()
            .filter(|t| self.pending.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        self.record_completed(read.history.tasks, now, &mut history);
        let (counted, old): (Vec<TaskStatus>, Vec<TaskStatus>) = history
            .into_iter()
            .partition(|t| since_start.contains(&t.id));
        backlog.extend(old);
        self.covered_pending_start = self.last_pending_start;
        self.primed = true;
        self.evict(now);
        Primed { backlog, counted }
    }

    /// Applies a successful pending poll: the snapshot replaces the pending set, and the
    /// completions it revealed are returned to be counted (each exactly once).
    pub fn apply_pending(&mut self, read: PendingRead, now: DateTime<Utc>) -> Vec<TaskStatus> {
        let mut next = PendingSet::default();
        let mut completed = Vec::new();
        let found = read
            .lookups
            .into_iter()
            .filter_map(|(id, lookup)| match lookup {
                Lookup::Found(task) if task.id == id => Some(*task),
                _ => None,
            });
        for task in read.listed.into_iter().chain(found) {
            if self.recent.contains(&task.id) {
                continue;
            }
            if task.is_pending() {
                next.insert(task);
            } else {
                self.recent.insert(&task, now);
                completed.push(task);
            }
        }
        for task in &completed {
            next.remove(&task.id);
        }
        self.pending = next;
        self.last_pending_start = Some(read.started);
        completed
    }

    /// Applies a successful completed poll: returns the completions not recorded yet,
    /// advances the watermark and `S*`, and evicts what can no longer be read.
    pub fn apply_completed(&mut self, read: CompletedRead, now: DateTime<Utc>) -> Vec<TaskStatus> {
        let mut completed = Vec::new();
        let readable = read
            .tasks
            .into_iter()
            .filter(|t| t.created >= read.lower_bound);
        self.record_completed(readable, now, &mut completed);
        self.covered_pending_start = self.last_pending_start;
        self.evict(now);
        completed
    }

    /// The completed-list step shared by priming and completed polls: advances the
    /// watermark over every task read, and moves each finished task not recorded yet
    /// from the pending set to the dedupe set and onto `out`.
    fn record_completed(
        &mut self,
        tasks: impl IntoIterator<Item = TaskStatus>,
        now: DateTime<Utc>,
        out: &mut Vec<TaskStatus>,
    ) {
        for task in tasks {
            self.watermark.advance(task.created);
            if task.is_pending() || self.recent.contains(&task.id) {
                continue;
            }
            self.recent.insert(&task, now);
            self.pending.remove(&task.id);
            out.push(task);
        }
    }

    fn evict(&mut self, now: DateTime<Utc>) {
        if let Some(bound) = self.completed_lower_bound() {
            self.recent.evict(bound, before(now, self.config.overlap));
        }
    }
}

/// `t − span`, saturating at the earliest representable time: a span from unvalidated
/// settings, or a date at the edge of chrono's range, must not panic.
fn before(t: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether the completed read can stop after this page: it reached tasks older than the
/// lower bound (the list is sorted newest first).
pub fn page_reaches_bound(page: &[TaskStatus], bound: DateTime<Utc>) -> bool {
    page.iter().any(|t| t.created < bound)
}
