//! The collector: one independent poller per tenant that keeps the metric state current
//! with exactly-once accounting of completed tasks (docs/design.md, "Counting exactly once").
//!
//! - [`tracker`]: the pure exactly-once state (pending set, watermark, dedupe set);
//! - [`read`]: a poll's reads from the API, kept apart so a poll applies whole or not at all;
//! - [`source`]: the [`TaskSource`] trait the reads go through (the SailPoint client, or
//!   a fake in tests);
//! - [`poller`]: schedules, deadlines and metric updates of one tenant.

pub mod poller;
pub mod read;
pub mod skew;
pub mod source;
pub mod tracker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use poller::{Clock, PollOutcome, PollSettings, TenantPoller, system_clock};
pub use source::TaskSource;
pub use tracker::Tracker;

use crate::config::{Settings, TenantSettings};
use crate::metrics::Metrics;
use crate::sailpoint::{ApiError, ApiObserver, Client, http_client};
use crate::status::StatusBoard;
use crate::storage::{Loaded, Locked, Store};

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The client of a tenant could not be built (settings or TLS setup).
    #[error("tenant {tenant}: cannot build the SailPoint client: {source}")]
    Client {
        /// The tenant's name.
        tenant: String,
        /// What the client reported.
        #[source]
        source: ApiError,
    },
    /// The HTTP client shared by the tenants could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] ApiError),
    /// Another process owns the state directory.
    #[error(transparent)]
    Storage(#[from] Locked),
}

/// Whether every tenant has primed (a first successful pending and completed read);
/// cheap to clone and to ask, for `/-/ready`.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    tenants: Arc<Vec<Arc<AtomicBool>>>,
}

impl Readiness {
    /// True once every tenant has primed. Stays true afterwards: a tenant that fails
    /// later shows it in `sailpoint_up`, not by taking the exporter out of service.
    pub fn is_ready(&self) -> bool {
        self.tenants.iter().all(|r| r.load(Ordering::Acquire))
    }
}

/// The running pollers.
#[derive(Debug)]
pub struct CollectorHandle {
    readiness: Readiness,
    pollers: Vec<(String, JoinHandle<Tracker>)>,
}

impl CollectorHandle {
    /// See [`Readiness::is_ready`].
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// A readiness probe to hand to the HTTP server.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Waits until every poller has stopped (after `shutdown` turned true) and hands back
    /// each tenant's exactly-once state, for [`spawn_resuming`].
    pub async fn join(self) -> HashMap<String, Tracker> {
        let mut trackers = HashMap::new();
        for (tenant, poller) in self.pollers {
            match poller.await {
                Ok(tracker) => {
                    trackers.insert(tenant, tracker);
                }
                Err(e) => tracing::error!(tenant, error = %e, "a poller ended abnormally"),
            }
        }
        trackers
    }
}

/// Starts one poller task per tenant of `settings` (must be called inside a tokio
/// runtime). Each tenant gets its own client (one HTTP client shared by all of them),
/// whose telemetry goes to `metrics`; the pollers stop when `shutdown` turns true or its
/// sender is dropped.
pub fn spawn(
    settings: &Settings,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<CollectorHandle, CollectorError> {
    spawn_resuming(settings, metrics, shutdown, HashMap::new())
}

/// [`spawn`], with tenants of `resume` continuing from the exactly-once state a previous
/// collector handed back from [`CollectorHandle::join`] (a reload restarting a tenant).
pub fn spawn_resuming(
    settings: &Settings,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    resume: HashMap<String, Tracker>,
) -> Result<CollectorHandle, CollectorError> {
    spawn_reporting(settings, metrics, None, shutdown, resume)
}

/// [`spawn_resuming`], with each poller also reporting to the tenant's record on the
/// status `board`. A tenant continuing from a tracker keeps its record; one starting
/// from scratch gets a fresh record (its priming would otherwise list its history twice).
pub fn spawn_reporting(
    settings: &Settings,
    metrics: Arc<Metrics>,
    board: Option<&StatusBoard>,
    shutdown: watch::Receiver<bool>,
    resume: HashMap<String, Tracker>,
) -> Result<CollectorHandle, CollectorError> {
    let http = http_client().map_err(CollectorError::Http)?;
    let store = settings
        .storage
        .path
        .as_deref()
        .map(Store::open)
        .transpose()?;
    spawn_shared(
        settings,
        metrics,
        board,
        shutdown,
        resume,
        &http,
        store.as_ref(),
        Duration::ZERO,
    )
}

/// [`spawn_reporting`] on `http`, an HTTP client from [`http_client`] that the caller
/// shares with other collectors (the daemon starts one collector per tenant and builds
/// one TLS configuration and connection pool for all of them). The pollers make their
/// first request after `start_delay` (or stop earlier if `shutdown` turns true), which
/// lets the daemon spread the priming of many tenants. `store` is the state directory
/// the caller opened (and owns, with its lock) for `settings.storage.path`.
#[allow(clippy::too_many_arguments)]
pub fn spawn_shared(
    settings: &Settings,
    metrics: Arc<Metrics>,
    board: Option<&StatusBoard>,
    shutdown: watch::Receiver<bool>,
    mut resume: HashMap<String, Tracker>,
    http: &reqwest::Client,
    store: Option<&Arc<Store>>,
    start_delay: Duration,
) -> Result<CollectorHandle, CollectorError> {
    let mut pollers = Vec::with_capacity(settings.tenants.len());
    for tenant in &settings.tenants {
        let mut resumed = resume.remove(&tenant.name);
        if resumed.is_none()
            && let Some(store) = store
        {
            resumed = load_state(store, tenant, &metrics);
        }
        let tenant_metrics = metrics.tenant(&tenant.name);
        let observer: Arc<dyn ApiObserver> = Arc::new(tenant_metrics.clone());
        let client = Client::with_http(tenant, observer, http.clone()).map_err(|source| {
            CollectorError::Client {
                tenant: tenant.name.clone(),
                source,
            }
        })?;
        let mut poller = TenantPoller::new(tenant, client, tenant_metrics.clone());
        if let Some(store) = store {
            tenant_metrics.hold_telemetry();
            tenant_metrics.apply(|u| u.storage_enabled());
            poller = poller.with_store(store.tenant(&tenant.name, tenant.base_url.as_str()));
        }
        if let Some(board) = board {
            poller = poller.with_status(match resumed {
                Some(_) => board.tenant(tenant),
                None => board.restart(tenant),
            });
        }
        if let Some(tracker) = resumed {
            poller = poller.resuming(tracker);
        }
        pollers.push((tenant.name.clone(), poller));
    }
    let ready = pollers.iter().map(|(_, p)| p.ready_flag()).collect();
    let pollers = pollers
        .into_iter()
        .map(|(name, p)| {
            let mut shutdown = shutdown.clone();
            let run = async move {
                if !start_delay.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(start_delay) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                }
                p.run(shutdown).await
            };
            (name, tokio::spawn(run))
        })
        .collect();
    Ok(CollectorHandle {
        readiness: Readiness {
            tenants: Arc::new(ready),
        },
        pollers,
    })
}

/// Resumes a tenant from its state file at start (or when a reload adds it): installs
/// its metric values and returns its tracker; a file that cannot be resumed is set aside
/// and counted, and the tenant starts fresh.
fn load_state(store: &Store, tenant: &TenantSettings, metrics: &Metrics) -> Option<Tracker> {
    match store.load(
        &tenant.name,
        tenant.base_url.as_str(),
        tenant.lookback,
        chrono::Utc::now(),
    ) {
        Loaded::Missing => None,
        Loaded::Resumed {
            tracker,
            state,
            saved_at,
        } => {
            tracing::info!(tenant = tenant.name, %saved_at, "resuming from the state file");
            metrics.restore(&tenant.name, *state);
            Some(*tracker)
        }
        Loaded::SetAside(reason) => {
            metrics
                .tenant(&tenant.name)
                .apply(|u| u.state_set_aside(reason));
            None
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod start_delay_tests {
    use super::*;
    use crate::config::Overrides;
    use crate::simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimConfig, Simulator};

    /// A poller waiting out its startup delay sends nothing, and shutdown ends it at once
    /// with its (unprimed) state instead of after the delay.
    #[tokio::test]
    async fn a_delayed_poller_waits_and_stops_promptly() {
        let sim = Simulator::start(SimConfig::new(3), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let text = format!(
            "tenants:\n  - {{ name: acme, base_url: \"{}\", client_id: {DEMO_CLIENT_ID}, client_secret: {DEMO_CLIENT_SECRET} }}\n",
            sim.base_url()
        );
        let settings =
            Settings::from_text(&text, config::FileFormat::Yaml, &Overrides::default()).unwrap();
        let metrics = Arc::new(Metrics::new(&settings.metrics, "test", "abc").unwrap());
        let http = http_client().unwrap();
        let (stop, stopped) = watch::channel(false);
        let handle = spawn_shared(
            &settings,
            metrics,
            None,
            stopped,
            HashMap::new(),
            &http,
            None,
            Duration::from_secs(3600),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counts = sim.request_count();
        assert_eq!((counts.token, counts.api_total()), (0, 0));
        assert!(!handle.is_ready());
        stop.send(true).unwrap();
        let trackers = tokio::time::timeout(Duration::from_secs(5), handle.join())
            .await
            .expect("shutdown does not wait for the startup delay");
        assert!(trackers.get("acme").is_some_and(|t| !t.is_primed()));
        sim.shutdown().await;
    }
}
