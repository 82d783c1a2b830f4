//! One tenant's update handle, [`TenantMetrics`]: the pollers change the tenant's state
//! through it in one [`Update`] step at a time, the client reports its telemetry to it
//! ([`ApiObserver`]), and the renderer reads a consistent snapshot of it.
//!
//! Apart from [`Metrics`](super::Metrics) (the registry of tenants) because the two
//! change for different reasons: this file for what a poll does to one tenant, that one
//! for what the exposition is made of.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::render::TenantText;
use super::state::{TenantState, Update};
use super::values::Changed;
use super::{Changes, Rules};
use crate::sailpoint::tolerant::RecordFault;
use crate::sailpoint::{ApiObserver, RetryReason};

/// One tenant's update handle; cheap to clone. Also the client's [`ApiObserver`].
#[derive(Clone)]
pub struct TenantMetrics {
    tenant: String,
    rules: Arc<Rules>,
    live: Arc<Mutex<Live>>,
    changes: Arc<Changes>,
    /// The tenant's series as last rendered, a compressed piece per family.
    pub(super) text: Arc<Mutex<TenantText>>,
    /// With a state file ([`TenantMetrics::hold_telemetry`]): the client's telemetry
    /// observed since the last applied step, applied with the next one (which is
    /// written first), so no counter is served before it is on disk.
    held: Arc<Mutex<Option<Vec<Observed>>>>,
}

/// What the tenant's lock guards: its state, and the families changed since the
/// renderer last took them (noted under the same lock as the change itself, so a
/// rendering never writes half of one step; not part of the persisted state).
#[derive(Debug, Default)]
struct Live {
    state: TenantState,
    changed: Changed,
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

impl TenantMetrics {
    /// A fresh tenant (every family changed, nothing rendered yet) sharing `rules` and
    /// `changes` with the registry.
    pub(super) fn new(tenant: &str, rules: Arc<Rules>, changes: Arc<Changes>) -> TenantMetrics {
        TenantMetrics {
            tenant: tenant.to_string(),
            rules,
            live: Arc::default(),
            changes,
            text: Arc::default(),
            held: Arc::default(),
        }
    }

    /// The tenant label value.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
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
            let mut live = self.lock();
            let held = if with_held {
                self.take_held()
            } else {
                Vec::new()
            };
            let Live { state, changed } = &mut *live;
            let mut update = Update::new(state, changed, &self.rules);
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
        let mut copy = self.lock().state.clone();
        let held = self.held_copy();
        let mut unseen = Changed::none();
        let mut update = Update::new(&mut copy, &mut unseen, &self.rules);
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
        let mut live = self.lock();
        let Live { state, changed } = &mut *live;
        observed.apply(&mut Update::new(state, changed, &self.rules));
    }

    /// A copy of the tenant's state, consistent as of the last applied step plus the
    /// telemetry held since (for the state file).
    pub fn snapshot(&self) -> TenantState {
        self.staged(|_| {})
    }

    /// Reads the state under the lock, with the families changed since the last call
    /// (all of them the first time), which the renderer takes.
    pub(super) fn with_changes<R>(&self, f: impl FnOnce(&TenantState, Changed, &Rules) -> R) -> R {
        let mut live = self.lock();
        let changed = std::mem::replace(&mut live.changed, Changed::none());
        f(&live.state, changed, &self.rules)
    }

    /// The tenant's clock minus the exporter's, in seconds.
    pub fn set_clock_skew(&self, seconds: f64) {
        self.apply_gauge(|u| u.set_clock_skew(seconds));
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
