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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use poller::{Clock, PollOutcome, PollSettings, TenantPoller, system_clock};
pub use source::TaskSource;
pub use tracker::Tracker;

use crate::config::TenantSettings;
use crate::metrics::Metrics;
use crate::sailpoint::{ApiError, ApiObserver, Client};
use crate::status::StatusBoard;
use crate::storage::{Loaded, Store};

/// Why a tenant's collector could not start.
#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant}: cannot build the SailPoint client: {source}")]
pub struct CollectorError {
    /// The tenant's name.
    pub tenant: String,
    /// What the client reported (settings or TLS setup).
    #[source]
    pub source: ApiError,
}

/// Whether a tenant has primed (a first successful pending and completed read); cheap
/// to clone and to ask, for `/-/ready`.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    primed: Arc<AtomicBool>,
}

impl Readiness {
    /// True once the tenant has primed. Stays true afterwards: a tenant that fails later
    /// shows it in `sailpoint_up`, not by taking the exporter out of service.
    pub fn is_ready(&self) -> bool {
        self.primed.load(Ordering::Acquire)
    }
}

/// A tenant's running poller.
#[derive(Debug)]
pub struct CollectorHandle {
    readiness: Readiness,
    poller: JoinHandle<Tracker>,
}

impl CollectorHandle {
    /// A readiness probe to hand to the HTTP server.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Waits until the poller has stopped (after its `shutdown` was cancelled) and hands
    /// back the tenant's exactly-once state, for [`TenantCollector::resume`] (`None` if
    /// the poller ended abnormally; that is logged).
    pub async fn join(self) -> Option<Tracker> {
        match self.poller.await {
            Ok(tracker) => Some(tracker),
            Err(e) => {
                tracing::error!(error = %e, "a poller ended abnormally");
                None
            }
        }
    }
}

/// Everything one tenant's collector runs with: the one way to start a tenant, used by
/// the daemon at start and on reload, and by the tests. Each tenant runs alone, with
/// its own stop switch, so a reload restarts exactly the tenants whose settings changed.
pub struct TenantCollector<'a> {
    /// The tenant's settings.
    pub tenant: &'a TenantSettings,
    /// The metric state the poller (and its client's telemetry) writes to.
    pub metrics: Arc<Metrics>,
    /// An HTTP client from [`crate::sailpoint::http_client`], shared by every tenant of
    /// the process (one TLS configuration and connection pool).
    pub http: &'a reqwest::Client,
    /// The state directory (`storage.path`), opened — and locked — by the caller.
    pub store: Option<&'a Arc<Store>>,
    /// The status page's board, to report to the tenant's record.
    pub board: Option<&'a StatusBoard>,
    /// The exactly-once state of the tenant's previous collector (a reload restarting
    /// it); without one, the tenant resumes from its state file, if any.
    pub resume: Option<Tracker>,
    /// When the first request is made (the daemon spreads the priming of many tenants).
    pub start_delay: Duration,
    /// Cancelled to stop the poller; it then writes its state a last time and ends.
    pub shutdown: CancellationToken,
}

impl TenantCollector<'_> {
    /// Starts the tenant's poller task (must be called inside a tokio runtime). The
    /// client's telemetry goes to `metrics`. A tenant continuing from a tracker keeps its
    /// status record; one starting from scratch gets a fresh record (its priming would
    /// otherwise list its history twice).
    pub fn start(self) -> Result<CollectorHandle, CollectorError> {
        let tenant = self.tenant;
        let resumed = match (self.resume, self.store) {
            (None, Some(store)) => load_state(store, tenant, &self.metrics),
            (resumed, _) => resumed,
        };
        let tenant_metrics = self.metrics.tenant(&tenant.name);
        let observer: Arc<dyn ApiObserver> = Arc::new(tenant_metrics.clone());
        let client = Client::with_http(tenant, observer, self.http.clone()).map_err(|source| {
            CollectorError {
                tenant: tenant.name.clone(),
                source,
            }
        })?;
        let mut poller = TenantPoller::new(tenant, client, tenant_metrics.clone());
        if let Some(store) = self.store {
            tenant_metrics.hold_telemetry();
            tenant_metrics.apply(|u| u.storage_enabled());
            poller = poller.with_store(store.tenant(&tenant.name, tenant.base_url.as_str()));
        }
        if let Some(board) = self.board {
            poller = poller.with_status(match resumed {
                Some(_) => board.tenant(tenant),
                None => board.restart(tenant),
            });
        }
        if let Some(tracker) = resumed {
            poller = poller.resuming(tracker);
        }
        let readiness = Readiness {
            primed: poller.ready_flag(),
        };
        let (delay, shutdown) = (self.start_delay, self.shutdown);
        let run = async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            poller.run(shutdown).await
        };
        Ok(CollectorHandle {
            readiness,
            poller: tokio::spawn(run),
        })
    }
}

/// Resumes a tenant from its state file at start (or when a reload adds it): installs
/// its metric values and returns its tracker; a file that cannot be resumed is set aside
/// and counted, and the tenant starts fresh.
fn load_state(store: &Store, tenant: &TenantSettings, metrics: &Metrics) -> Option<Tracker> {
    match store.load::<Tracker>(
        &tenant.name,
        tenant.base_url.as_str(),
        tenant.lookback,
        chrono::Utc::now(),
    ) {
        Loaded::Missing => None,
        Loaded::Resumed {
            counting: tracker,
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
    use crate::config::Credentials;
    use crate::metrics::Metrics;
    use sailpoint_simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimConfig, Simulator};

    /// A poller waiting out its startup delay sends nothing, and shutdown ends it at once
    /// with its (unprimed) state instead of after the delay.
    #[tokio::test]
    async fn a_delayed_poller_waits_and_stops_promptly() {
        let sim = Simulator::start(SimConfig::new(3), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let tenant = TenantSettings::with_defaults(
            "acme",
            sim.base_url().parse().unwrap(),
            Credentials::ClientCredentials {
                client_id: DEMO_CLIENT_ID.into(),
                client_secret: DEMO_CLIENT_SECRET.to_string().into(),
            },
        );
        let metrics = Arc::new(
            Metrics::new(&crate::config::MetricsSettings::default(), "test", "abc").unwrap(),
        );
        let http = crate::sailpoint::http_client().unwrap();
        let stop = CancellationToken::new();
        let handle = TenantCollector {
            tenant: &tenant,
            metrics,
            http: &http,
            store: None,
            board: None,
            resume: None,
            start_delay: Duration::from_secs(3600),
            shutdown: stop.clone(),
        }
        .start()
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counts = sim.request_count();
        assert_eq!((counts.token, counts.api_total()), (0, 0));
        assert!(!handle.readiness().is_ready());
        stop.cancel();
        let tracker = tokio::time::timeout(Duration::from_secs(5), handle.join())
            .await
            .expect("shutdown does not wait for the startup delay");
        assert!(tracker.is_some_and(|t| !t.is_primed()));
        sim.shutdown().await;
    }
}
