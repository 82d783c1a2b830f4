//! The exporter's metric state: one owned [`TenantState`] per tenant, changed in one
//! [`TenantMetrics::apply`] step per poll under one lock, and an exposition rendered from
//! consistent snapshots and kept pre-rendered between changes.
//!
//! - [`catalogue`]: the one list of families (names, types, labels, HELP);
//! - [`normalize`]: the label rules every update path shares;
//! - [`values`]: a tenant's series as plain data (serialisable, for `storage.path`),
//!   with exemplars and [`native`] histogram buckets;
//! - [`state`]: a tenant's state and the typed [`Update`]s a poll applies to it;
//! - [`tenant`]: a tenant's update handle, [`TenantMetrics`], which applies them in one
//!   step and notes which families changed (beside the state, not in the persisted
//!   values); [`rules`]: the label limits and bucket layouts all tenants share;
//! - [`render`]: snapshots → text, written directly for the families that changed and
//!   kept compressed, per [`Format`] ([`text`], [`openmetrics`], [`protobuf`]); the
//!   `prometheus` crate supplies the process metrics;
//! - [`source`]: the one [`Exposition`] type and the [`MetricsSource`] trait the HTTP
//!   server reads (defined here, so the arrow runs metrics → http);
//! - [`deflate`]: separately compressed pieces joined into one gzip stream;
//! - the unit tests read the text format back with `test_support::exposition`
//!   (crates/test-support).
//!
//! `/metrics` reads memory only and never calls SailPoint.

pub mod catalogue;
pub mod deflate;
pub mod format;
pub mod native;
pub mod normalize;
pub mod openmetrics;
pub mod protobuf;
pub mod render;
pub mod rules;
pub mod source;
pub mod state;
pub mod tenant;
pub mod text;
pub mod values;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::Registry;
use serde::{Deserialize, Serialize};

use crate::config::MetricsSettings;
use crate::sailpoint::model::TaskStatus;

pub use catalogue::API_DURATION_BUCKETS;
pub use format::Format;
pub use rules::Rules;
pub use source::{Exposition, MetricsSource};
pub use state::{TenantState, Update};
pub use tenant::TenantMetrics;

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
                let handle =
                    TenantMetrics::new(name, Arc::clone(&self.rules), Arc::clone(&self.changes));
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod format_tests;
