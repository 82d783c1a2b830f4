//! The exporter's metric state: one owned [`TenantState`] per tenant, changed in one
//! [`TenantMetrics::apply`] step per poll under one lock, and an exposition rendered from
//! consistent snapshots and kept pre-rendered between changes.
//!
//! - [`catalogue`]: the one list of families (names, types, labels, HELP);
//! - [`normalize`]: the label rules every update path shares;
//! - [`values`]: a tenant's series as plain data (serialisable, for `storage.path`),
//!   with exemplars and [`native`] histogram buckets;
//! - [`state`]: a tenant's state and the typed [`Update`]s a poll applies to it;
//! - [`render`]: snapshots → text, written directly for the families that changed and
//!   kept compressed, per [`Format`] (Prometheus text, [`openmetrics`], [`protobuf`]);
//!   the `prometheus` crate supplies the process metrics;
//! - [`deflate`]: separately compressed pieces joined into one gzip stream;
//! - `exposition` (tests only, in `tests/support`): a reader of the text format.
//!
//! `/metrics` reads memory only and never calls SailPoint.

pub mod catalogue;
pub mod deflate;
#[cfg(test)]
#[path = "../../tests/support/exposition.rs"]
pub(crate) mod exposition;
pub mod format;
pub mod native;
pub mod normalize;
pub mod openmetrics;
pub mod protobuf;
pub mod render;
pub mod state;
pub mod values;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::Registry;
use serde::{Deserialize, Serialize};

use crate::config::{MetricsSettings, Rewrite};
use crate::sailpoint::model::TaskStatus;
use crate::sailpoint::tolerant::RecordFault;
use crate::sailpoint::{ApiObserver, RetryReason};

pub use catalogue::API_DURATION_BUCKETS;
pub use format::Format;
pub use render::Exposition;
pub use state::{TenantState, Update};

/// Label value of the group that absorbs everything beyond `max_groups`.
pub const OTHER: &str = "other";

/// Distinct undocumented completion statuses a tenant may have as labels of their own.
pub const MAX_UNKNOWN_STATUSES: usize = 10;

/// Why the metric state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A process-wide family could not be created or registered.
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

/// The (task_name, source) pair that most families are broken down by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
}

/// Label rules and bucket layouts shared by all tenants.
#[derive(Debug)]
pub struct Rules {
    max_groups: usize,
    max_pending_task_series: usize,
    rewrites: Vec<Rewrite>,
    duration_buckets: Vec<f64>,
    queue_wait_buckets: Vec<f64>,
    max_return_attributes: usize,
    /// [`catalogue::DURATION`], or [`catalogue::DURATION_BY_GROUP`] without `status`.
    duration: &'static catalogue::Family,
}

impl Rules {
    fn new(settings: &MetricsSettings) -> Rules {
        Rules {
            max_groups: settings.max_groups.max(1),
            max_pending_task_series: settings.max_pending_task_series,
            rewrites: settings.task_name_rewrites.clone(),
            duration_buckets: settings.duration_buckets.clone(),
            queue_wait_buckets: settings.queue_wait_buckets.clone(),
            max_return_attributes: settings.max_return_attributes,
            duration: if settings.duration_by_status {
                &catalogue::DURATION
            } else {
                &catalogue::DURATION_BY_GROUP
            },
        }
    }

    /// The family served under `family`'s name: the configured duration histogram for
    /// [`catalogue::DURATION`], `family` itself otherwise.
    pub fn family(&self, family: &'static catalogue::Family) -> &'static catalogue::Family {
        if family.name == catalogue::DURATION.name {
            self.duration
        } else {
            family
        }
    }

    /// The tenant families as served, in catalogue order (see [`Rules::family`]).
    pub fn tenant_families(&self) -> impl Iterator<Item = &'static catalogue::Family> + '_ {
        catalogue::tenant_families().map(|f| self.family(f))
    }

    /// The duration histogram's label values after `tenant` for a task of `group`
    /// that ended with `status`.
    fn duration_labels<'l>(&self, group: &'l Group, status: &'l str) -> Vec<&'l str> {
        let mut labels = vec![group.task_name.as_str(), group.source.as_str()];
        if self.duration.labels.contains(&"status") {
            labels.push(status);
        }
        labels
    }

    /// Distinct result attributes a group may have as labels of their own.
    pub fn max_return_attributes(&self) -> usize {
        self.max_return_attributes
    }

    /// The upper bounds of a histogram family's buckets (empty for other families).
    pub fn bounds(&self, buckets: catalogue::Buckets) -> &[f64] {
        match buckets {
            catalogue::Buckets::None => &[],
            catalogue::Buckets::TaskDuration => &self.duration_buckets,
            catalogue::Buckets::QueueWait => &self.queue_wait_buckets,
            catalogue::Buckets::ApiDuration => &API_DURATION_BUCKETS,
        }
    }
}

/// What every tenant handle shares with [`Metrics`]: the change counter the pre-rendered
/// exposition is keyed by, and the wake-up of the background renderer.
#[derive(Debug, Default)]
struct Changes {
    applied: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Changes {
    fn mark(&self) {
        self.applied.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
}

/// After a background render, the renderer pauses this many times the render's duration
/// before the next, so rendering takes at most 1 / (1 + factor) of one core however many
/// tenants apply changes.
pub const RENDER_PAUSE_FACTOR: u32 = 3;

/// The shortest pause between two background renders: with hundreds of tenants a change
/// is applied every few milliseconds, and joining the exposition after each would cost
/// more than all the polling. A scrape in between renders for itself (only what changed).
pub const RENDER_MIN_PAUSE: Duration = Duration::from_millis(1000);

/// The exporter's metric state; shared (`Arc`) by the pollers and the HTTP server.
pub struct Metrics {
    registry: Registry,
    /// HELP and TYPE of every tenant family per text format, compressed once (see
    /// [`render`]).
    headers: render::Headers,
    rules: Arc<Rules>,
    tenants: Mutex<BTreeMap<String, TenantMetrics>>,
    changes: Arc<Changes>,
    cache: render::Cache,
    reload_successful: prometheus::IntGauge,
    reload_success_time: prometheus::Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Sets up the process-wide families (build info, reload status, the process
    /// collector) and the label rules and buckets of the tenant families.
    pub fn new(
        settings: &MetricsSettings,
        version: &str,
        revision: &str,
    ) -> Result<Metrics, MetricsError> {
        use catalogue::{BUILD_INFO, RELOAD_SUCCESS_TIME, RELOAD_SUCCESSFUL};
        let registry = Registry::new();
        let rules = Rules::new(settings);
        let build_info = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(BUILD_INFO.name, BUILD_INFO.help),
            BUILD_INFO.labels,
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info.with_label_values(&[version, revision]).set(1);
        let reload_successful =
            prometheus::IntGauge::new(RELOAD_SUCCESSFUL.name, RELOAD_SUCCESSFUL.help)?;
        let reload_success_time =
            prometheus::Gauge::new(RELOAD_SUCCESS_TIME.name, RELOAD_SUCCESS_TIME.help)?;
        registry.register(Box::new(reload_successful.clone()))?;
        registry.register(Box::new(reload_success_time.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            headers: render::headers(&rules),
            rules: Arc::new(rules),
            tenants: Mutex::new(BTreeMap::new()),
            changes: Arc::new(Changes::default()),
            cache: render::Cache::default(),
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
        self.changes.mark();
    }

    /// The exposition in the text format 0.0.4, rendered now (changed families written
    /// again, not the kept copy; for tests and tools). Reads memory only.
    pub fn render(&self) -> Vec<u8> {
        self.render_as(Format::Text)
    }

    /// The exposition in `format`, rendered now (see [`Metrics::render`]).
    pub fn render_as(&self, format: Format) -> Vec<u8> {
        match render::build(self, format).decoded() {
            Ok(text) => text.to_vec(),
            Err(error) => {
                tracing::error!(%error, "cannot decode the exposition");
                Vec::new()
            }
        }
    }

    /// The pre-rendered exposition in `format` when it is current (nothing applied
    /// since, process metrics recent enough); cheap enough for an async worker: no
    /// rendering. From now on the background renderer keeps `format` pre-rendered.
    pub fn prerendered(&self, format: Format) -> Option<Exposition> {
        self.cache
            .current(format, self.changes.applied.load(Ordering::Acquire))
    }

    /// The pre-rendered exposition in `format`, rendered (and kept) first if it is not
    /// current.
    pub fn exposition(&self, format: Format) -> Exposition {
        self.cache
            .refresh(format, self.changes.applied.load(Ordering::Acquire), || {
                render::build(self, format)
            })
    }

    /// Keeps the exposition pre-rendered: renders after applied changes (at most a quarter
    /// of the time and once a second, see [`RENDER_PAUSE_FACTOR`] and
    /// [`RENDER_MIN_PAUSE`]) and every
    /// [`render::PROCESS_REFRESH`] for the process metrics, until `shutdown` is cancelled.
    /// Must be called inside a tokio runtime.
    pub fn spawn_renderer(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = metrics.changes.notify.notified() => {}
                    _ = tokio::time::sleep(render::PROCESS_REFRESH) => {}
                }
                let m = Arc::clone(&metrics);
                let started = std::time::Instant::now();
                let render_asked = move || {
                    for format in m.cache.asked() {
                        m.exposition(format);
                    }
                };
                if tokio::task::spawn_blocking(render_asked).await.is_err() {
                    tracing::error!("rendering metrics panicked");
                }
                // Every tenant's poll is a change: with hundreds of tenants, joining the
                // exposition after each one would cost O(tenants²) per cycle. Pausing
                // RENDER_PAUSE_FACTOR times the render time, and at least
                // RENDER_MIN_PAUSE, bounds it; changes meanwhile are coalesced into the
                // next render (a scrape in between renders for itself).
                let pause = started
                    .elapsed()
                    .saturating_mul(RENDER_PAUSE_FACTOR)
                    .max(RENDER_MIN_PAUSE);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        })
    }

    fn tenants(&self) -> MutexGuard<'_, BTreeMap<String, TenantMetrics>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The update handle of one tenant (the same state for every call with that name).
    /// Creating it sets `sailpoint_up{tenant} 0` until the first successful polls, and
    /// the error and retry counters an alert takes `increase()` of at 0.
    pub fn tenant(&self, name: &str) -> TenantMetrics {
        let mut tenants = self.tenants();
        tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                let handle = TenantMetrics {
                    tenant: name.to_string(),
                    rules: Arc::clone(&self.rules),
                    state: Arc::new(Mutex::new(TenantState::default())),
                    changes: Arc::clone(&self.changes),
                    text: Arc::default(),
                    held: Arc::default(),
                };
                handle.apply(|u| u.start());
                handle
            })
            .clone()
    }

    /// Installs a tenant's state resumed from its state file (before its poller starts):
    /// counters continue from their saved values. `sailpoint_up` stays 0 until the next
    /// successful polls.
    pub fn restore(&self, name: &str, state: TenantState) -> TenantMetrics {
        let handle = self.tenant(name);
        handle.apply(|u| u.restore(state));
        handle
    }

    /// Forgets a tenant that is no longer watched (removed by a reload, or its shard moved
    /// to another replica): every series of it leaves the exposition at the next scrape,
    /// so no frozen `sailpoint_up` or last-poll value keeps an alert firing. Handles still
    /// held elsewhere update a state nobody renders; a tenant added again later starts
    /// from a fresh state (or its state file).
    pub fn remove(&self, name: &str) {
        if self.tenants().remove(name).is_some() {
            self.changes.mark();
        }
    }

    /// Every tenant handle, by name (for rendering).
    fn handles(&self) -> Vec<TenantMetrics> {
        self.tenants().values().cloned().collect()
    }
}

/// One tenant's update handle; cheap to clone. Also the client's [`ApiObserver`].
#[derive(Clone)]
pub struct TenantMetrics {
    tenant: String,
    rules: Arc<Rules>,
    state: Arc<Mutex<TenantState>>,
    changes: Arc<Changes>,
    /// The tenant's series as last rendered, a compressed piece per family.
    text: Arc<Mutex<render::TenantText>>,
    /// With a state file ([`TenantMetrics::hold_telemetry`]): the client's telemetry
    /// observed since the last applied step, applied with the next one (which is
    /// written first), so no counter is served before it is on disk.
    held: Arc<Mutex<Option<Vec<Observed>>>>,
}

/// One piece of the client's telemetry (see [`ApiObserver`]).
#[derive(Debug, Clone)]
enum Observed {
    Request {
        operation: String,
        code: String,
        elapsed: Duration,
    },
    Retry(RetryReason),
    TokenRefresh,
    InvalidRecord {
        operation: String,
        fault: RecordFault,
    },
}

impl Observed {
    fn apply(&self, u: &mut Update<'_>) {
        match self {
            Observed::Request {
                operation,
                code,
                elapsed,
            } => u.request(operation, code, *elapsed),
            Observed::Retry(reason) => u.retry(*reason),
            Observed::TokenRefresh => u.token_refresh(),
            Observed::InvalidRecord { operation, fault } => u.invalid_record(operation, *fault),
        }
    }
}

impl std::fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
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
        Some(end) => state::span(task.launched.as_ref().unwrap_or(&task.created), &end),
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

    /// Applies `change` in one step under the tenant's lock: a scrape sees the state
    /// before it or after it, never half of it. The pre-rendered exposition is renewed.
    /// Telemetry held since the last step is applied first.
    pub fn apply<R>(&self, change: impl FnOnce(&mut Update<'_>) -> R) -> R {
        self.apply_step(true, change)
    }

    /// [`TenantMetrics::apply`] for a gauge set in the middle of a poll: held telemetry
    /// stays held (it is served only with the poll's step, after that is written).
    fn apply_gauge(&self, change: impl FnOnce(&mut Update<'_>)) {
        self.apply_step(false, change)
    }

    fn apply_step<R>(&self, with_held: bool, change: impl FnOnce(&mut Update<'_>) -> R) -> R {
        let result = {
            let mut state = self.lock();
            let held = if with_held {
                self.take_held()
            } else {
                Vec::new()
            };
            let mut update = Update::new(&mut state, &self.rules);
            for observed in &held {
                observed.apply(&mut update);
            }
            change(&mut update)
        };
        self.changes.mark();
        result
    }

    /// The state `apply(change)` would make, without making it (nothing is served): the
    /// poller writes it to the state file first, then applies `change` for real, so a
    /// scrape never sees a value a crash could take back. The same `change` must give the
    /// same state both times (it reads no clock).
    pub fn staged(&self, change: impl FnOnce(&mut Update<'_>)) -> TenantState {
        let mut copy = self.lock().clone();
        let held = self.held_copy();
        let mut update = Update::new(&mut copy, &self.rules);
        for observed in &held {
            observed.apply(&mut update);
        }
        change(&mut update);
        copy
    }

    /// From now on the client's telemetry waits for the next applied step instead of
    /// being applied at once (see [`TenantMetrics::staged`]); for tenants with a state
    /// file.
    pub fn hold_telemetry(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get_or_insert_with(Vec::new);
    }

    fn take_held(&self) -> Vec<Observed> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn held_copy(&self) -> Vec<Observed> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.clone().unwrap_or_default()
    }

    /// Telemetry between polls (API requests, retries, token refreshes): applied now,
    /// showing at the next applied poll or process-metrics refresh — or, when held
    /// ([`TenantMetrics::hold_telemetry`]), kept for the next applied step.
    fn observe(&self, observed: Observed) {
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = held.as_mut() {
                held.push(observed);
                return;
            }
        }
        let mut state = self.lock();
        observed.apply(&mut Update::new(&mut state, &self.rules));
    }

    /// A copy of the tenant's state, consistent as of the last applied step plus the
    /// telemetry held since (for the state file).
    pub fn snapshot(&self) -> TenantState {
        self.staged(|_| {})
    }

    /// Reads the state under the lock (rendering, which also takes the record of which
    /// families changed).
    fn with_state<R>(&self, f: impl FnOnce(&mut TenantState, &Rules) -> R) -> R {
        let mut state = self.lock();
        f(&mut state, &self.rules)
    }

    /// The labels a task is reported under, after normalisation and the cardinality
    /// guard; `true` when the task was folded into `other`.
    pub fn group_of(&self, task: &TaskStatus) -> (Group, bool) {
        self.apply(|u| u.group_of(task))
    }

    /// Counts one completed task (see [`Update::record_completion`]).
    pub fn record_completion(&self, task: &TaskStatus) {
        self.apply(|u| u.record_completion(task));
    }

    /// Startup backlog (see [`Update::record_primed`]).
    pub fn record_primed(&self, task: &TaskStatus) {
        self.apply(|u| u.record_primed(task));
    }

    /// Replaces the pending gauges with this snapshot (see [`Update::set_pending`]).
    pub fn set_pending<'a>(&self, tasks: impl IntoIterator<Item = &'a TaskStatus>) {
        self.apply(|u| u.set_pending(tasks));
    }

    /// A poll of `list` succeeded at `at` after `elapsed`.
    pub fn poll_succeeded(&self, list: PollList, at: DateTime<Utc>, elapsed: Duration) {
        self.apply(|u| u.poll_succeeded(list, at, elapsed));
    }

    /// A poll of `list` failed after `elapsed`; nothing of it was applied.
    pub fn poll_failed(&self, list: PollList, elapsed: Duration) {
        self.apply(|u| u.poll_failed(list, elapsed));
    }

    /// Sizes of the tracker's pending set and dedupe set.
    pub fn set_tracked(&self, pending: usize, recent: usize) {
        self.apply(|u| u.set_tracked(pending, recent));
    }

    /// The tenant's clock minus the exporter's, in seconds.
    pub fn set_clock_skew(&self, seconds: f64) {
        self.apply_gauge(|u| u.set_clock_skew(seconds));
    }

    /// `n` departed tasks were set aside after repeated failed lookups.
    pub fn lookups_set_aside(&self, n: usize) {
        self.apply(|u| u.lookups_set_aside(n));
    }

    /// One completed read met an unsorted page and read the whole list.
    pub fn unsorted_read(&self) {
        self.apply(|u| u.unsorted_read());
    }

    /// Whether exactly-once counting is currently given up (see the family's help).
    pub fn set_counting_degraded(&self, degraded: bool) {
        self.apply_gauge(|u| u.set_counting_degraded(degraded));
    }
}

impl ApiObserver for TenantMetrics {
    fn request(&self, operation: &str, code: &str, elapsed: Duration) {
        self.observe(Observed::Request {
            operation: operation.to_string(),
            code: code.to_string(),
            elapsed,
        });
    }

    fn retry(&self, reason: RetryReason) {
        self.observe(Observed::Retry(reason));
    }

    fn token_refresh(&self) {
        self.observe(Observed::TokenRefresh);
    }

    fn invalid_record(&self, operation: &str, fault: RecordFault) {
        self.observe(Observed::InvalidRecord {
            operation: operation.to_string(),
            fault,
        });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod format_tests;
