//! Exactly-once bookkeeping (see docs/decisions.md, "Exactly-once collection"), as pure
//! synchronous state with no I/O.
//!
//! A poll first *reads* everything it needs from the API (see the `read` module) into a
//! [`PendingRead`], [`CompletedRead`] or [`PrimeRead`]; only when the whole read
//! succeeded is it *applied* here, in one infallible step that returns the tasks to count.
//! A failed read is dropped, so a failed poll changes nothing.
//!
//! Every time here is **tenant time**: `created` comes from the tenant, and the start of a
//! pending poll is taken from the tenant's clock (the poller corrects its own clock by the
//! skew the `Date` header shows), so a skewed exporter clock cannot move the bounds.
//!
//! Why nothing is lost or counted twice:
//! - a task that was in a pending snapshot is followed until it leaves it, then looked
//!   up (completed → counted, still pending → kept, 404 → forgotten; a lookup that keeps
//!   failing is retried [`MAX_LOOKUP_STRIKES`] times, then set aside and counted as such);
//! - a task that never appeared in a pending snapshot lived entirely between two
//!   successful pending polls, so it was created after the earlier one; the completed
//!   poll reads every completed task created at or after the *floor*
//!   `L = max(L_prev, min(watermark, S*) − overlap)`, where `S*` is the start of the last
//!   successful pending poll as of the previous successful completed poll. Priming sets
//!   the first floor to `now − lookback`, the bound priming read down to;
//! - the floor never decreases (not on reload, not when a clock steps) and never moves
//!   past the newest `created` the tenant has shown (a clock in its future must not blind
//!   the completed path);
//! - counted once, for good: the dedupe set ([`RecentlyRecorded`]) remembers every task
//!   counted or primed until its `created` and end are older than `now − lookback` and
//!   the floor — no view can list it again by then — plus every recorded id the pending
//!   view still lists, so neither path nor a lagging replica makes it count twice;
//! - bounded under long failures: the floor is never older than `now − lookback`. When
//!   exactness would need an older one (a list failing for longer than `lookback`), the
//!   tracker says so ([`CompletedBound::degraded`], then [`Tracker::is_degraded`] for
//!   `lookback`) instead of reading without end.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::sailpoint::model::TaskStatus;

mod remembered;

pub use remembered::RecentlyRecorded;

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

/// Consecutive pending polls in which the lookup of one departed task may fail (403, 500,
/// an off-spec record) before the task is set aside; the rest of each poll applies.
pub const MAX_LOOKUP_STRIKES: u32 = 5;

/// What the pending path learned about a task that left the pending list.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The task exists and carries its current state (completed or still pending).
    Found(Box<TaskStatus>),
    /// `404`: the task is gone (deleted, or older than 90 days).
    Gone,
    /// The lookup of this one task failed (403, 500 after retries, an off-spec record):
    /// the task stays pending and is looked up again next poll.
    Failed,
}

/// Everything one pending poll read from the API.
#[derive(Debug, Clone)]
pub struct PendingRead {
    /// When the poll started, in tenant time; becomes `S` once applied.
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
    /// A page was not sorted newest first, so the read went on to the end of the list
    /// instead of stopping at the bound (and `tasks` are in the API's order).
    pub unsorted: bool,
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

/// What one applied pending poll did.
#[derive(Debug, Default)]
pub struct PendingApplied {
    /// Completions revealed by the poll, to count (each exactly once).
    pub completed: Vec<TaskStatus>,
    /// Tasks whose lookup failed [`MAX_LOOKUP_STRIKES`] polls in a row: no longer
    /// followed; their completion, if any, cannot be counted.
    pub set_aside: Vec<String>,
}

/// The lower bound of a completed read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedBound {
    /// Read every task created at or after this (tenant time).
    pub at: DateTime<Utc>,
    /// True when exactness needed an older bound than `now − lookback`: a list has been
    /// failing for longer than `lookback`, and a task created and finished during the
    /// failure may be missed.
    pub degraded: bool,
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
    /// The lower bound of the last applied completed read (or priming's); never decreases.
    floor: Option<DateTime<Utc>>,
    /// The newest `created` of any record the tenant has sent (either list, a lookup):
    /// the floor never moves past it, whatever a clock says.
    #[serde(default)]
    newest_shown: Option<DateTime<Utc>>,
    /// Until when (tenant time) counting is reported degraded after a read that had to
    /// give up exactness: completions of the lookback window before it may be missing.
    #[serde(default)]
    degraded_until: Option<DateTime<Utc>>,
    /// Ids of the last pending listing that are already recorded (finished tasks the view
    /// still shows): kept in the dedupe set while they are listed.
    listed_recorded: HashSet<String>,
    /// Consecutive failed lookups per departed task.
    strikes: HashMap<String, u32>,
    primed: bool,
}

impl Tracker {
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
            floor: None,
            listed_recorded: HashSet::new(),
            strikes: HashMap::new(),
            newest_shown: None,
            degraded_until: None,
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

    /// The floor: the lower bound of the last applied completed read; never decreases.
    pub fn floor(&self) -> Option<DateTime<Utc>> {
        self.floor
    }

    /// Where the next completed read stops, at tenant time `now`:
    /// `max(floor, min(watermark, S*) − overlap)`, but never older than `now − lookback`
    /// (then [`CompletedBound::degraded`] is set when the pending path cannot vouch for
    /// what lies below), and never past the newest `created` the tenant has shown (a
    /// clock in the tenant's future must not make the read skip what comes next). None
    /// before priming.
    pub fn completed_lower_bound(&self, now: DateTime<Utc>) -> Option<CompletedBound> {
        let reference = match (self.watermark.get(), self.covered_pending_start) {
            (Some(w), Some(s)) => Some(w.min(s)),
            (w, s) => w.or(s),
        };
        let exact = reference.map(|r| before(r, self.config.overlap));
        let mut at = match (exact, self.floor) {
            (Some(e), Some(f)) => e.max(f),
            (e, f) => e.or(f)?,
        };
        let cap = self.priming_lower_bound(now);
        let mut degraded = false;
        if at < cap {
            at = cap;
            // Only the pending path's coverage (`S*`) needs the older bound; a watermark
            // older than lookback is a quiet tenant, not a loss.
            degraded = self
                .covered_pending_start
                .is_some_and(|s| before(s, self.config.overlap) < cap);
        }
        if let Some(ceiling) = self.ceiling()
            && at > ceiling
        {
            at = self.floor.map_or(ceiling, |f| f.max(ceiling));
        }
        Some(CompletedBound { at, degraded })
    }

    /// `overlap` before the newest `created` the tenant has shown: no bound goes past it.
    /// Not just after it: a task created a little before the newest one shown may have
    /// started and finished between two pending polls, unseen, and only a completed read
    /// reaching below it counts it.
    fn ceiling(&self) -> Option<DateTime<Utc>> {
        self.newest_shown.map(|n| before(n, self.config.overlap))
    }

    /// Records what the tenant has shown, for the ceiling of the bounds.
    fn shown<'t>(&mut self, tasks: impl IntoIterator<Item = &'t TaskStatus>) {
        for task in tasks {
            if self.newest_shown.is_none_or(|n| task.created > n) {
                self.newest_shown = Some(task.created);
            }
        }
    }

    /// The newest `created` the tenant has shown in any answer.
    pub fn newest_shown(&self) -> Option<DateTime<Utc>> {
        self.newest_shown
    }

    /// Counting gave up exactness at tenant time `now` (a degraded read, a clock off by
    /// more than a day): it is reported degraded until `lookback` has passed, since until
    /// then the lookback window may miss completions.
    pub fn mark_degraded(&mut self, now: DateTime<Utc>) {
        let until = now
            .checked_add_signed(self.config.lookback)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if self.degraded_until.is_none_or(|u| until > u) {
            self.degraded_until = Some(until);
        }
    }

    /// Whether counting is degraded at tenant time `now` (see [`Tracker::mark_degraded`]).
    pub fn is_degraded(&self, now: DateTime<Utc>) -> bool {
        self.degraded_until.is_some_and(|u| now < u)
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
    /// last-completed gauges (never for counters). `now` is tenant time (it places the
    /// counted-once horizon).
    pub fn apply_prime(&mut self, read: PrimeRead, now: DateTime<Utc>) -> Primed {
        let mut backlog = Vec::new();
        self.pending = PendingSet::default();
        self.listed_recorded.clear();
        self.shown(read.pending.listed.iter().chain(&read.history.tasks));
        for task in read.pending.listed {
            if task.is_pending() {
                self.pending.insert(task);
            } else {
                self.listed_recorded.insert(task.id.clone());
                if !self.recent.contains(&task.id) {
                    self.recent.insert(&task, now);
                    backlog.push(task);
                }
            }
        }
        self.last_pending_start = Some(read.pending.started);
        let mut history = Vec::new();
        // The history is read after the pending snapshot: a task of that snapshot found
        // completed in the history completed after the exporter started, so it is counted
        // like any other completion, not taken as backlog.
        // A pending view that lags can list a task that had already finished: its
        // `completed` tells, since `started` is on the tenant's clock too.
        let started = read.pending.started;
        let since_start: HashSet<String> = read
            .history
            .tasks
            .iter()
            .filter(|t| self.pending.contains(&t.id))
            .filter(|t| t.completed.is_none_or(|c| c >= started))
            .map(|t| t.id.clone())
            .collect();
        self.record_completed(read.history.tasks, now, &mut history);
        let (counted, old): (Vec<TaskStatus>, Vec<TaskStatus>) = history
            .into_iter()
            .partition(|t| since_start.contains(&t.id));
        backlog.extend(old);
        self.covered_pending_start = self.last_pending_start;
        // Priming reads down to `now − lookback`; if that is past everything the tenant
        // has shown (a clock in its future), the floor stays just after the newest: not
        // lower, since priming remembered nothing below its bound, and a floor under it
        // would let the next read count the backlog (nothing lies between the newest
        // shown and the bound, so nothing is lost either).
        let floor = match self
            .newest_shown
            .and_then(|n| n.checked_add_signed(Duration::milliseconds(1)))
        {
            Some(just_after) => read.history.lower_bound.min(just_after),
            None => read.history.lower_bound,
        };
        self.raise_floor(floor);
        self.primed = true;
        self.evict(now);
        Primed { backlog, counted }
    }

    /// Applies a successful pending poll: the snapshot replaces the pending set, and the
    /// completions it revealed are returned to be counted (each exactly once).
    pub fn apply_pending(&mut self, read: PendingRead) -> PendingApplied {
        self.shown(&read.listed);
        let mut next = PendingSet::default();
        let mut applied = PendingApplied::default();
        let mut found = Vec::new();
        for (id, lookup) in read.lookups {
            match lookup {
                Lookup::Found(task) if task.id == id => {
                    self.strikes.remove(&id);
                    self.shown([task.as_ref()]);
                    found.push(*task);
                }
                Lookup::Gone => {
                    self.strikes.remove(&id);
                }
                // An answer about another task (a proxy's cache, a broken replica) says
                // nothing of this one: like a failed lookup, it stays pending and is set
                // aside after repeated failures, not dropped as if deleted.
                Lookup::Found(_) | Lookup::Failed => {
                    self.strike(id, &mut next, &mut applied.set_aside)
                }
            }
        }
        self.listed_recorded.clear();
        for task in read.listed.into_iter().chain(found) {
            if self.recent.contains(&task.id) {
                self.listed_recorded.insert(task.id.clone());
                self.recent.insert(&task, read.started);
                continue;
            }
            if task.is_pending() {
                next.insert(task);
            } else {
                self.recent.insert(&task, read.started);
                self.listed_recorded.insert(task.id.clone());
                applied.completed.push(task);
            }
        }
        for task in &applied.completed {
            next.remove(&task.id);
        }
        self.pending = next;
        self.last_pending_start = Some(read.started);
        applied
    }

    /// One more failed lookup of a departed task: it stays pending (with what the last
    /// listing said of it) until [`MAX_LOOKUP_STRIKES`], then it is set aside.
    fn strike(&mut self, id: String, next: &mut PendingSet, set_aside: &mut Vec<String>) {
        let strikes = self.strikes.entry(id.clone()).or_insert(0);
        *strikes += 1;
        if *strikes >= MAX_LOOKUP_STRIKES {
            self.strikes.remove(&id);
            set_aside.push(id);
        } else if let Some(task) = self.pending.tasks.get(&id) {
            next.insert(task.clone());
        }
    }

    /// Applies a successful completed poll: returns the completions not recorded yet,
    /// advances the watermark and `S*`, and forgets what no view can list again. `now` is
    /// tenant time (it places the counted-once horizon).
    pub fn apply_completed(&mut self, read: CompletedRead, now: DateTime<Utc>) -> Vec<TaskStatus> {
        let mut completed = Vec::new();
        let bound = read.lower_bound;
        self.shown(&read.tasks);
        let readable = read.tasks.into_iter().filter(|t| t.created >= bound);
        self.record_completed(readable, now, &mut completed);
        self.covered_pending_start = self.last_pending_start;
        self.raise_floor(bound);
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

    fn raise_floor(&mut self, bound: DateTime<Utc>) {
        if self.floor.is_none_or(|f| bound > f) {
            self.floor = Some(bound);
        }
    }

    /// Forgets counted tasks no view can list again: `created` and end older than
    /// `now − lookback` (tenant time) and than the floor (so below every bound to come),
    /// and not listed by the last pending listing.
    fn evict(&mut self, now: DateTime<Utc>) {
        let lookback = self.priming_lower_bound(now);
        let horizon = self.floor.map_or(lookback, |f| f.min(lookback));
        self.recent.evict(horizon, &self.listed_recorded);
        self.strikes.retain(|id, _| self.pending.contains(id));
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
