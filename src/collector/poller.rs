//! One tenant's poller: two schedules (pending, completed) in one tokio task, so the
//! polls of a tenant never run concurrently with each other while tenants never wait for
//! one another.
//!
//! Each poll reads under a deadline (`poll_timeout`), then applies the whole read to the
//! [`Tracker`] and the metrics, or — on any error or timeout — applies nothing, counts
//! `poll_errors_total{list}` and drops `sailpoint_up` to 0. The first poll of either list
//! primes instead (docs/design.md, "Priming at start"); until priming succeeds nothing is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::read::{ReadError, read_completed, read_pending};
use super::skew::Skew;
use super::source::TaskSource;
use super::tracker::{CompletedBound, PendingRead, PrimeRead, Tracker, TrackerConfig};
use crate::config::TenantSettings;
use crate::metrics::{PollList, TenantMetrics, Update};
use crate::sailpoint::model::TaskStatus;
use crate::status::TenantStatus;
use crate::storage::TenantStore;

mod schedule;

/// The largest clock skew between the exporter and the tenant taken as normal (a day):
/// real tenants run on synchronised clocks. A larger one is still followed (the bounds
/// live in the tenant's time), but reported: a warning, and counting marked degraded.
pub const MAX_PLAUSIBLE_SKEW: chrono::Duration = chrono::Duration::days(1);

/// How many tenants of the process may prime (or catch up after an outage) at once.
/// Each holds its whole lookback of decoded tasks until it is applied, so the peak memory
/// at start is this many tenants' histories, whatever the intervals and however many
/// tenants start together; priming is CPU-bound decoding, so more at once would not be
/// faster on a few cores.
pub const PRIMING_AT_ONCE: usize = 4;

/// The permits of [`PRIMING_AT_ONCE`], shared by every poller of the process.
static PRIMING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PRIMING_AT_ONCE);

/// Waits for a priming slot (see [`PRIMING_AT_ONCE`]); the slot is held until dropped.
async fn priming_slot() -> Option<tokio::sync::SemaphorePermit<'static>> {
    // The semaphore is never closed, so this is always a permit.
    PRIMING.acquire().await.ok()
}

/// Where "now" comes from; the real wall clock in production, a simulator's manual clock
/// in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The schedule and limits of one tenant's polls.
#[derive(Debug, Clone, Copy)]
pub struct PollSettings {
    /// Time between pending polls.
    pub pending_interval: Duration,
    /// Time between completed polls.
    pub completed_interval: Duration,
    /// Deadline of one poll (all its pages and retries).
    pub poll_timeout: Duration,
    /// `limit` of completed-list pages.
    pub page_size: u32,
}

impl PollSettings {
    /// The schedule from a tenant's settings.
    pub fn from_tenant(t: &TenantSettings) -> PollSettings {
        PollSettings {
            pending_interval: t.pending_interval,
            completed_interval: t.completed_interval,
            poll_timeout: t.poll_timeout,
            page_size: t.page_size,
        }
    }
}

/// The tracker timings from a tenant's settings.
pub fn tracker_config(t: &TenantSettings) -> TrackerConfig {
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    TrackerConfig {
        overlap: to_chrono(t.effective_overlap()),
        lookback: to_chrono(t.lookback),
    }
}

/// The tracker's pending set as gauges, and the tracker's sizes.
fn publish_state(u: &mut Update<'_>, tracker: &Tracker) {
    u.set_pending(tracker.pending().tasks());
    u.set_tracked(tracker.pending().len(), tracker.recent().len());
}

/// Logs a condition of a tenant once when it starts (`was` false, `now` true: a
/// warning) and once when it ends, not on every poll while it lasts.
fn log_change(was: bool, now: bool, started: impl FnOnce(), ended: impl FnOnce()) {
    match (was, now) {
        (false, true) => started(),
        (true, false) => ended(),
        _ => {}
    }
}

/// What one successful poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// The startup read was applied; `primed` completions set the last-completed gauges.
    Primed {
        /// Completed tasks of the lookback window (not counted).
        primed: usize,
        /// Tasks of the first pending snapshot that completed while priming (counted).
        counted: usize,
    },
    /// A regular poll counted this many completions.
    Counted(usize),
}

/// One tenant's collector: the task source, the exactly-once state and the metrics.
pub struct TenantPoller<S> {
    source: S,
    tracker: Tracker,
    metrics: TenantMetrics,
    settings: PollSettings,
    clock: Clock,
    /// Tenant clock minus exporter clock, from the answers' `Date` headers; the
    /// exactly-once bounds are kept in tenant time ([`Skew::followed`]).
    skew: Skew,
    /// Whether counting is reported degraded (see [`Tracker::is_degraded`], or the clocks
    /// more than [`MAX_PLAUSIBLE_SKEW`] apart); logged on change.
    degraded: bool,
    /// The last `Date` showed the clocks more than [`MAX_PLAUSIBLE_SKEW`] apart.
    clock_off: bool,
    /// Whether the last completed read met a page not sorted newest first; logged on
    /// change, counted per read.
    unsorted: bool,
    ready: Arc<AtomicBool>,
    status: TenantStatus,
    store: Option<TenantStore>,
    /// Set once a poll has read everything and starts applying it: from then on a
    /// shutdown lets the poll finish (its tracker is already moved; its metrics and state
    /// file must follow) instead of abandoning it.
    committing: Arc<AtomicBool>,
}

impl<S: TaskSource> TenantPoller<S> {
    /// A poller for `tenant` reading from `source` and writing to `metrics`.
    pub fn new(tenant: &TenantSettings, source: S, metrics: TenantMetrics) -> TenantPoller<S> {
        TenantPoller {
            source,
            tracker: Tracker::new(tracker_config(tenant)),
            metrics,
            settings: PollSettings::from_tenant(tenant),
            clock: system_clock(),
            skew: Skew::default(),
            degraded: false,
            clock_off: false,
            unsorted: false,
            ready: Arc::new(AtomicBool::new(false)),
            status: TenantStatus::detached(&tenant.name, Default::default()),
            store: None,
            committing: Arc::default(),
        }
    }

    /// Reports what the polls see to the status page through `status` (by default to a
    /// record nobody displays).
    pub fn with_status(mut self, status: TenantStatus) -> TenantPoller<S> {
        self.status = status;
        self
    }

    /// Continues from the exactly-once state of a previous poller of the same tenant (a
    /// reload restarted it with new poll settings): nothing that completed while it was
    /// restarting is lost, and a primed tracker is not primed again.
    pub fn resuming(mut self, mut tracker: Tracker) -> TenantPoller<S> {
        tracker.reconfigure(*self.tracker.config());
        self.ready.store(tracker.is_primed(), Ordering::Release);
        self.tracker = tracker;
        self
    }

    /// Keeps the tenant's state in `store` after every applied poll.
    pub fn with_store(mut self, store: TenantStore) -> TenantPoller<S> {
        self.store = Some(store);
        self
    }

    /// Replaces the wall clock (tests drive a simulator's manual clock).
    pub fn with_clock(mut self, clock: Clock) -> TenantPoller<S> {
        self.clock = clock;
        self
    }

    /// The exactly-once state (read-only; for tests and diagnostics).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Becomes true once priming (a successful pending and completed read) is applied.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    /// Runs one poll of `list` now (priming first if needed) and updates the metrics.
    pub async fn poll(&mut self, list: PollList) -> Result<PollOutcome, ReadError<S::Error>> {
        if !self.tracker.is_primed() {
            return self.prime().await;
        }
        match list {
            PollList::Pending => self.poll_pending().await.map(PollOutcome::Counted),
            PollList::Completed => self.poll_completed().await.map(PollOutcome::Counted),
        }
    }

    /// Startup: pending baseline, then the completed history down to `now − lookback`
    /// (tenant time); fills gauges and the dedupe set without counting anything.
    pub async fn prime(&mut self) -> Result<PollOutcome, ReadError<S::Error>> {
        let local_start = (self.clock)();
        let t0 = Instant::now();
        let (listed, date) = self
            .deadline(PollList::Pending, t0, self.source.pending_tasks_dated())
            .await?;
        let started = self.tenant_time(local_start, date);
        let pending_took = t0.elapsed();
        // The history is the heavy part: it waits for a slot. (A tenant that cannot even
        // list its pending tasks fails above without taking one.)
        let _slot = priming_slot().await;
        let t1 = Instant::now();
        let bound = self.tracker.priming_lower_bound(started);
        let history = self
            .deadline(
                PollList::Completed,
                t1,
                read_completed(&self.source, bound, self.settings.page_size),
            )
            .await?;
        self.note_order(history.unsorted);
        let read = PrimeRead {
            pending: PendingRead {
                started,
                listed,
                lookups: Vec::new(),
            },
            history,
        };
        self.committing.store(true, Ordering::Release);
        let primed = self.tracker.apply_prime(read, self.tenant_now());
        self.publish_degraded();
        let at = Utc::now();
        let completed_took = t1.elapsed();
        self.commit(|u, tracker| {
            for task in &primed.backlog {
                u.record_primed(task);
            }
            for task in &primed.counted {
                u.record_completion(task);
            }
            publish_state(u, tracker);
            u.poll_succeeded(PollList::Pending, at, pending_took);
            u.poll_succeeded(PollList::Completed, at, completed_took);
        })
        .await;
        for task in primed.backlog.iter().chain(&primed.counted) {
            self.status.record_completion(task);
        }
        self.status
            .set_pending(self.tracker.pending().tasks(), Utc::now());
        self.status.poll_succeeded(PollList::Pending.as_str(), at);
        self.status.poll_succeeded(PollList::Completed.as_str(), at);
        self.ready.store(true, Ordering::Release);
        tracing::info!(
            tenant = self.metrics.tenant(),
            primed = primed.backlog.len(),
            counted = primed.counted.len(),
            pending = self.tracker.pending().len(),
            "primed"
        );
        Ok(PollOutcome::Primed {
            primed: primed.backlog.len(),
            counted: primed.counted.len(),
        })
    }

    /// One pending poll (tracker must be primed); returns the number of completions
    /// counted.
    pub async fn poll_pending(&mut self) -> Result<usize, ReadError<S::Error>> {
        let local_start = (self.clock)();
        let t0 = Instant::now();
        let (mut read, date) = self
            .deadline(
                PollList::Pending,
                t0,
                read_pending(&self.tracker, &self.source, local_start),
            )
            .await?;
        read.started = self.tenant_time(local_start, date);
        self.committing.store(true, Ordering::Release);
        let applied = self.tracker.apply_pending(read);
        self.publish_degraded();
        for id in &applied.set_aside {
            tracing::warn!(
                tenant = self.metrics.tenant(),
                task_id = %id,
                "the lookup of a task that left the pending list failed {} polls in a row; it is set aside and its completion will not be counted",
                super::tracker::MAX_LOOKUP_STRIKES
            );
        }
        self.count(
            PollList::Pending,
            &applied.completed,
            applied.set_aside.len(),
            t0,
        )
        .await;
        Ok(applied.completed.len())
    }

    /// One completed poll (tracker must be primed); returns the number of completions
    /// counted.
    pub async fn poll_completed(&mut self) -> Result<usize, ReadError<S::Error>> {
        let tenant_now = self.tenant_now();
        let bound = self
            .tracker
            .completed_lower_bound(tenant_now)
            .unwrap_or(CompletedBound {
                at: self.tracker.priming_lower_bound(tenant_now),
                degraded: false,
            });
        // A read reaching back further than a few regular polls would (after an outage,
        // or resuming from a state file) is as heavy as priming: it waits for a slot.
        let catch_up = tenant_now - bound.at > self.catch_up_after();
        let _slot = if catch_up { priming_slot().await } else { None };
        let t0 = Instant::now();
        let read = self
            .deadline(
                PollList::Completed,
                t0,
                read_completed(&self.source, bound.at, self.settings.page_size),
            )
            .await?;
        self.note_order(read.unsorted);
        self.committing.store(true, Ordering::Release);
        let completed = self.tracker.apply_completed(read, self.tenant_now());
        // With the clocks more than a day apart the read's cap is on a doubtful timeline:
        // that is reported as degraded while it lasts, not for a lookback after it.
        if bound.degraded && !self.clock_off {
            self.tracker.mark_degraded(self.tenant_now());
        }
        self.publish_degraded();
        self.count(PollList::Completed, &completed, 0, t0).await;
        Ok(completed.len())
    }

    /// The tenant's time at `local` (an instant of the exporter's clock taken before the
    /// read): corrected by the skew the answer's `Date` showed. The skew is measured
    /// against the clock *after* the read and `Date` has whole seconds, so the result
    /// errs early — the safe side for a lower bound.
    ///
    /// The tenant's clock is the reference of every bound, so its `Date` is followed
    /// however far it is from the exporter's clock — at once when it is behind, after
    /// [`super::skew::CONFIRMING_ANSWERS`] answers in a row when it is ahead (one hostile
    /// `Date` must not move the bounds later). More than [`MAX_PLAUSIBLE_SKEW`] apart
    /// (an exporter clock off by days, a broken proxy) is reported, not hidden: a
    /// warning, the skew gauge, and counting marked degraded while it lasts.
    fn tenant_time(&mut self, local: DateTime<Utc>, date: Option<DateTime<Utc>>) -> DateTime<Utc> {
        if let Some(date) = date {
            let skew = date - (self.clock)();
            self.skew.observe(skew);
            self.metrics
                .set_clock_skew(skew.num_milliseconds() as f64 / 1000.0);
            let off = skew.abs() > MAX_PLAUSIBLE_SKEW;
            let (tenant, skew_seconds) = (self.metrics.tenant(), skew.num_seconds());
            log_change(
                self.clock_off,
                off,
                || {
                    tracing::warn!(
                        tenant,
                        skew_seconds,
                        "the exporter's clock is more than a day from the tenant's (its Date header); following the tenant's clock, counting marked degraded: fix the exporter's clock (or the proxy's Date)"
                    )
                },
                || {
                    tracing::info!(
                        tenant,
                        skew_seconds,
                        "the exporter's clock is within a day of the tenant's again"
                    )
                },
            );
            self.clock_off = off;
        }
        local
            .checked_add_signed(self.skew.followed())
            .unwrap_or(local)
    }

    /// The tenant's time now: the exporter's clock corrected by the followed skew.
    fn tenant_now(&self) -> DateTime<Utc> {
        let local = (self.clock)();
        local
            .checked_add_signed(self.skew.followed())
            .unwrap_or(local)
    }

    /// How far back a completed read may reach before it counts as catching up: the
    /// overlap plus two completed intervals (a regular read reaches back about one
    /// interval plus the overlap).
    fn catch_up_after(&self) -> chrono::Duration {
        let two_intervals =
            chrono::Duration::from_std(self.settings.completed_interval.saturating_mul(2))
                .unwrap_or(chrono::Duration::MAX);
        two_intervals
            .checked_add(&self.tracker.config().overlap)
            .unwrap_or(chrono::Duration::MAX)
    }

    /// Counts a completed read that met an unsorted page (and so read the whole list);
    /// logs when that starts and when the list is sorted again.
    fn note_order(&mut self, unsorted: bool) {
        if unsorted {
            self.metrics.unsorted_read();
        }
        let tenant = self.metrics.tenant();
        log_change(
            self.unsorted,
            unsorted,
            || {
                tracing::warn!(
                    tenant,
                    "the completed list is not sorted newest first (sorters=-created ignored?): every completed read now reads the whole list to stay exact"
                )
            },
            || tracing::info!(tenant, "the completed list is sorted newest first again"),
        );
        self.unsorted = unsorted;
    }

    /// Publishes whether counting is degraded — a read that gave up exactness within the
    /// last `lookback`, or clocks more than a day apart — and logs a change.
    fn publish_degraded(&mut self) {
        let degraded = self.clock_off || self.tracker.is_degraded(self.tenant_now());
        let (tenant, clock_off) = (self.metrics.tenant(), self.clock_off);
        log_change(
            self.degraded,
            degraded,
            || {
                tracing::warn!(
                    tenant,
                    clock_off,
                    "counting degraded: a list failed for longer than lookback (the completed read was capped at now - lookback, so a task created and finished during the failure may be missed), or the clocks are more than a day apart"
                )
            },
            || {
                tracing::info!(
                    tenant,
                    "exactly-once counting restored: the lookback window is exact again"
                )
            },
        );
        self.degraded = degraded;
        self.metrics.set_counting_degraded(degraded);
    }

    /// Applies a successful poll to the metrics in one step — its completions, the
    /// lookups it set aside, the pending snapshot and its outcome — then reports it to the
    /// status page (with `storage.path`, the state is written before it is served).
    async fn count(&self, list: PollList, completed: &[TaskStatus], set_aside: usize, t0: Instant) {
        let at = Utc::now();
        let took = t0.elapsed();
        self.commit(|u, tracker| {
            u.lookups_set_aside(set_aside);
            for task in completed {
                u.record_completion(task);
            }
            publish_state(u, tracker);
            u.poll_succeeded(list, at, took);
        })
        .await;
        for task in completed {
            self.status.record_completion(task);
        }
        self.status
            .set_pending(self.tracker.pending().tasks(), Utc::now());
        self.status.poll_succeeded(list.as_str(), at);
    }

    /// Applies `change` to the metrics; with `storage.path`, first writes the tracker
    /// and the metric values as `change` will make them, so that nothing a scrape sees
    /// can be taken back by a crash (a counter that went down across a restart would
    /// read as a reset to Prometheus). The write is numbered before it starts, so a
    /// write abandoned by a stopped poller can never replace a later one. `change` runs
    /// twice (on the copy written, then for real) and must read no clock.
    async fn commit(&self, change: impl Fn(&mut Update<'_>, &Tracker)) {
        let tracker = &self.tracker;
        if let Some(store) = &self.store {
            let state = self.metrics.staged(|u| change(u, tracker));
            store
                .save(store.snapshot(tracker, state), &self.metrics)
                .await;
        }
        self.metrics.apply(|u| change(u, tracker));
    }

    /// Writes the tenant's state as it is (when the poller stops: the telemetry of an
    /// abandoned poll, and everything since the last write, is kept).
    async fn persist(&self) {
        self.commit(|_, _| {}).await;
    }

    /// Awaits `read` under the poll deadline; on failure counts the error for `list`.
    async fn deadline<T>(
        &self,
        list: PollList,
        started: Instant,
        read: impl Future<Output = Result<T, impl Into<ReadError<S::Error>>>>,
    ) -> Result<T, ReadError<S::Error>> {
        let limit = self.settings.poll_timeout;
        let result = match tokio::time::timeout(limit, read).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(ReadError::Deadline(limit)),
        };
        if let Err(error) = &result {
            // Written too: the counters a failed poll moves (requests by code, retries,
            // poll errors) must not go down if the process dies before the next good one.
            self.committing.store(true, Ordering::Release);
            let took = started.elapsed();
            self.commit(|u, _| u.poll_failed(list, took)).await;
            self.status.poll_failed(list.as_str(), Utc::now(), error);
            tracing::warn!(tenant = self.metrics.tenant(), list = list.as_str(), %error, "poll failed; keeping the last good state");
        }
        result
    }
}
