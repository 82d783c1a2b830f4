//! The simulated SailPoint tenant: a faithful, deterministic fake of the v2024
//! task-status API on loopback, used by `simulate` and `demo` and trusted by the
//! project's integration tests.
//!
//! It serves `POST /oauth/token` and the five task-status operations under
//! `/v2024`, `/v2025` and `/beta` with SailPoint's paging, filters, sorters, JSON Patch,
//! status codes and error bodies; its tasks follow a life cycle (scheduled
//! aggregations and identity refreshes that run, finish, fail or hang) evaluated
//! lazily against its clock. Scenarios, fault injection and the clock are described in
//! `src/simulator/README.md`.
//!
//! Tests start it in-process:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sailpoint_task_exporter::simulator::{ClockMode, SimConfig, Simulator};
//! let cfg = SimConfig::new(7).with_manual_clock(chrono::Utc::now());
//! let sim = Simulator::start(cfg, "127.0.0.1:0".parse().unwrap()).await?;
//! let url = sim.base_url(); // http://127.0.0.1:PORT
//! sim.advance(std::time::Duration::from_secs(3600));
//! let truth = sim.tasks();
//! sim.shutdown().await;
//! # let _ = (url, truth, ClockMode::Real); Ok(()) }
//! ```

#![warn(missing_docs)]

mod args;
mod auth;
mod clock;
mod config;
mod faults;
pub mod filter;
mod generator;
mod habits;
mod server;
mod task;
mod tenant;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::sailpoint::model::{CompletionStatus, TaskStatus, TaskStatusMessage};

pub use args::{SimulateArgs, run};
pub use config::{
    ClockMode, DEFAULT_TOKEN_TTL, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Faults, Habits, RateLimit,
    Scenario, SimConfig,
};
pub use task::{AggregationResults, SimSource, TaskKind};
pub use tenant::NewTask;

use auth::TokenBook;
use clock::{SimClock, lock};
use faults::FaultState;
use server::SimState;
use tenant::Tenant;

/// How many requests the tenant received, per operation (for benchmarks and tests).
/// Every request is counted under its operation, whatever its outcome; the last four
/// fields additionally count outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `POST /oauth/token`.
    pub token: u64,
    /// `GET /task-status/pending-tasks` (getPendingTasks).
    pub get_pending_tasks: u64,
    /// `HEAD /task-status/pending-tasks` (getPendingTaskHeaders).
    pub get_pending_task_headers: u64,
    /// `GET /task-status` (getTaskStatusList).
    pub get_task_status_list: u64,
    /// `GET /task-status/{id}` (getTaskStatus).
    pub get_task_status: u64,
    /// `PATCH /task-status/{id}` (updateTaskStatus).
    pub update_task_status: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 429 (injected or the tenant's own limit).
    pub rate_limited: u64,
    /// Answered an injected 500.
    pub server_errors: u64,
    /// Unknown paths and wrong methods.
    pub other: u64,
}

impl RequestCounts {
    /// Requests to the five task-status operations.
    pub fn api_total(&self) -> u64 {
        self.get_pending_tasks
            + self.get_pending_task_headers
            + self.get_task_status_list
            + self.get_task_status
            + self.update_task_status
    }
}

/// Starts simulated tenants.
pub struct Simulator;

impl Simulator {
    /// Builds the tenant of `cfg` and serves it on `listen` (port 0 = a free port).
    pub async fn start(cfg: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let clock = SimClock::new(cfg.clock);
        let tenant = Tenant::new(&cfg, clock.now());
        let tenant_id =
            task::uuid(generator::rng(cfg.seed, generator::stream::TENANT, 9, 9).r#gen());
        let state = Arc::new(SimState {
            clock,
            tenant: Mutex::new(tenant),
            tokens: Mutex::new(TokenBook::default()),
            faults: Mutex::new(FaultState::new(cfg.seed, cfg.faults.clone())),
            counts: Mutex::new(RequestCounts::default()),
            token_ttl: Mutex::new(cfg.token_ttl),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            seed: cfg.seed,
            tenant_id,
            errors: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        Ok(SimHandle {
            addr,
            state,
            stop,
            accept,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<SimState>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = Arc::clone(&state);
                    connections.spawn(async move {
                        let service = service_fn(move |req| server::serve(Arc::clone(&state), req));
                        let _ = http1::Builder::new()
                            .title_case_headers(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

/// A running simulated tenant: its address, ground truth and controls.
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the API base (`{base_url}/v2024/...`) and token host
    /// (`{base_url}/oauth/token`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The client id the tenant accepts.
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// The simulated now.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.clock.now()
    }

    /// Moves the clock forward; tasks due by then start and finish on the next query.
    pub fn advance(&self, d: Duration) {
        self.state.clock.advance(d);
    }

    /// Ground truth: every task (pending and completed) as the API would render it
    /// now, oldest `created` first.
    pub fn tasks(&self) -> Vec<TaskStatus> {
        let now = self.now();
        let mut tenant = lock(&self.state.tenant);
        tenant.settle(now);
        tenant.all(now)
    }

    /// Ground truth in the shape the API serves it under the current habits (clock offset
    /// and whole-second `created` applied): what an exporter must report.
    pub fn tasks_as_served(&self) -> Vec<TaskStatus> {
        let habits = lock(&self.state.faults).faults().habits.clone();
        self.tasks()
            .into_iter()
            .map(|t| habits::served(t, &habits))
            .collect()
    }

    /// Ground truth: the pending tasks, oldest first.
    pub fn pending_tasks(&self) -> Vec<TaskStatus> {
        self.tasks()
            .into_iter()
            .filter(TaskStatus::is_pending)
            .collect()
    }

    /// Ground truth: one task by id.
    pub fn task(&self, id: &str) -> Option<TaskStatus> {
        let now = self.now();
        let mut tenant = lock(&self.state.tenant);
        tenant.settle(now);
        tenant.get(id, now)
    }

    /// The tenant's sources (ids are the `sourceId` filter values).
    pub fn sources(&self) -> Vec<SimSource> {
        lock(&self.state.tenant).sources()
    }

    /// Adds a scripted task; returns its 32-hex id.
    pub fn add_task(&self, spec: NewTask) -> String {
        let now = self.now();
        lock(&self.state.tenant).add(spec, now)
    }

    /// Completes a pending task at the simulated now with `status` and `messages`.
    /// Returns false when the id is unknown or the task is not pending.
    pub fn complete_task(
        &self,
        id: &str,
        status: CompletionStatus,
        messages: Vec<TaskStatusMessage>,
    ) -> bool {
        let now = self.now();
        let mut tenant = lock(&self.state.tenant);
        tenant.settle(now);
        tenant.complete(id, status, messages, now)
    }

    /// Replaces the injected faults (takes effect with the next request).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state.faults).set(faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.state.faults).faults().clone()
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        *lock(&self.state.token_ttl) = ttl;
    }

    /// Invalidates every token issued so far (clients get 401 "JWT is expired").
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).revoke_all();
    }

    /// Issues a valid token directly, for tests that exercise only the API.
    pub fn issue_token(&self) -> String {
        let ttl = *lock(&self.state.token_ttl);
        lock(&self.state.tokens)
            .issue(&self.state.client_id, ttl, self.now())
            .token
    }

    /// Requests received so far, per operation.
    pub fn request_count(&self) -> RequestCounts {
        *lock(&self.state.counts)
    }

    /// Stops accepting, closes open connections and waits for the server to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
    }
}
