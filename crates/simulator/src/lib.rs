//! The simulated SailPoint tenant: a faithful, deterministic fake of the v2024
//! task-status API on loopback, used by `simulate` and `demo` and trusted by the
//! project's integration tests.
//!
//! It serves `POST /oauth/token` and the five task-status operations under
//! `/v2024`, `/v2025` and `/beta` with SailPoint's paging, filters, sorters, JSON Patch,
//! status codes and error bodies; its tasks follow a life cycle (scheduled
//! aggregations and identity refreshes that run, finish, fail or hang) evaluated
//! lazily against its clock. Scenarios, fault injection and the clock are described in
//! `crates/simulator/README.md`.
//!
//! Tests start it in-process:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sailpoint_simulator::{ClockMode, SimConfig, Simulator};
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

use sailpoint_model::{CompletionStatus, TaskStatus, TaskStatusMessage};

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
        let state = build_state(&cfg);
        let serving = Serving::spawn(listener, Router::Single(Arc::clone(&state)))?;
        Ok(SimHandle { serving, state })
    }

    /// Builds `count` independent tenants and serves them on one `listen` address under
    /// path prefixes: tenant `k` (1-based) is `http://ADDR/tk`, with its API at
    /// `/tk/v2024/...` and its token endpoint at `/tk/oauth/token`. Tenant `k` is `cfg`
    /// with seed `cfg.seed + k - 1`, so every tenant is its own world; all accept the
    /// same credentials. `count` is at least 1 and at most [`MAX_TENANTS`].
    pub async fn start_many(
        cfg: SimConfig,
        count: usize,
        listen: SocketAddr,
    ) -> std::io::Result<SimFleet> {
        if !(1..=MAX_TENANTS).contains(&count) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the number of tenants must be between 1 and {MAX_TENANTS}"),
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let states: Vec<Arc<SimState>> = (0..count as u64)
            .map(|k| {
                let mut one = cfg.clone();
                one.seed = cfg.seed.wrapping_add(k);
                build_state(&one)
            })
            .collect();
        let serving = Serving::spawn(listener, Router::Prefixed(states.clone()))?;
        Ok(SimFleet { serving, states })
    }
}

/// Most tenants one `simulate --tenants` process serves.
pub const MAX_TENANTS: usize = 10_000;

fn build_state(cfg: &SimConfig) -> Arc<SimState> {
    let clock = SimClock::new(cfg.clock);
    let tenant = Tenant::new(cfg, clock.now());
    let tenant_id = task::uuid(generator::rng(cfg.seed, generator::stream::TENANT, 9, 9).r#gen());
    Arc::new(SimState {
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
    })
}

/// Which tenant answers a request.
enum Router {
    /// One tenant at the root of the address.
    Single(Arc<SimState>),
    /// Tenant `k` under `/tk` (1-based index into the vector).
    Prefixed(Vec<Arc<SimState>>),
}

impl Router {
    async fn serve(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, server::ConnectionReset> {
        match self {
            Router::Single(state) => {
                let path = req.uri().path().to_string();
                server::serve(Arc::clone(state), &path, req).await
            }
            Router::Prefixed(states) => {
                let (state, rest) = match split_prefix(req.uri().path(), states) {
                    Some((state, rest)) => (Arc::clone(state), rest.to_string()),
                    None => return Ok(server::no_such_tenant()),
                };
                server::serve(state, &rest, req).await
            }
        }
    }
}

/// `/t17/v2024/task-status` → tenant 17 and `/v2024/task-status`.
fn split_prefix<'a, 'p>(
    path: &'p str,
    states: &'a [Arc<SimState>],
) -> Option<(&'a Arc<SimState>, &'p str)> {
    let trimmed = path.strip_prefix("/t")?;
    let (number, rest) = match trimmed.find('/') {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.starts_with('0') {
        return None;
    }
    let k: usize = number.parse().ok()?;
    states.get(k.checked_sub(1)?).map(|s| (s, rest))
}

/// A running accept loop: the address it listens on and how to stop it. A single tenant
/// and a fleet differ only in their [`Router`], so they share this.
struct Serving {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Starts answering on `listener` with `router`.
    fn spawn(listener: TcpListener, router: Router) -> std::io::Result<Serving> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, Arc::new(router), stopped));
        Ok(Serving { addr, stop, accept })
    }

    /// Stops accepting, closes open connections and waits for the server to end.
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Arc<Router>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let router = Arc::clone(&router);
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let router = Arc::clone(&router);
                            async move { router.serve(req).await }
                        });
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
    serving: Serving,
    state: Arc<SimState>,
}

impl SimHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr
    }

    /// `http://127.0.0.1:PORT`: the API base (`{base_url}/v2024/...`) and token host
    /// (`{base_url}/oauth/token`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.serving.addr)
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
        let (tenant, now) = self.state.settled();
        tenant.all(now)
    }

    /// Ground truth in the shape the API serves it under the current habits (clock offset
    /// and whole-second `created` applied): what an exporter must report.
    pub fn tasks_as_served(&self) -> Vec<TaskStatus> {
        let habits = self.state.habits();
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
        let (tenant, now) = self.state.settled();
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
        let (mut tenant, now) = self.state.settled();
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
        self.serving.shutdown().await;
    }
}

/// Many simulated tenants behind one address (see [`Simulator::start_many`]).
pub struct SimFleet {
    serving: Serving,
    states: Vec<Arc<SimState>>,
}

impl SimFleet {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr
    }

    /// How many tenants are served.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Always false: a fleet has at least one tenant.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// `http://127.0.0.1:PORT/tk`, the base URL of tenant `k` (1-based).
    pub fn base_url(&self, k: usize) -> String {
        format!("http://{}/t{k}", self.serving.addr)
    }

    /// Ground truth of tenant `k` (1-based): its pending tasks, oldest first.
    pub fn pending_tasks(&self, k: usize) -> Option<Vec<TaskStatus>> {
        let state = self.states.get(k.checked_sub(1)?)?;
        let (tenant, now) = state.settled();
        Some(
            tenant
                .all(now)
                .into_iter()
                .filter(TaskStatus::is_pending)
                .collect(),
        )
    }

    /// Requests tenant `k` (1-based) received so far, per operation.
    pub fn request_count(&self, k: usize) -> Option<RequestCounts> {
        let state = self.states.get(k.checked_sub(1)?)?;
        Some(*lock(&state.counts))
    }

    /// Stops accepting, closes open connections and waits for the server to end.
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn prefixes_name_one_based_tenants() {
        let states: Vec<Arc<SimState>> = (0..3)
            .map(|k| build_state(&SimConfig::new(k).with_scenario(Scenario::Empty)))
            .collect();
        let pick =
            |path: &str| split_prefix(path, &states).map(|(s, rest)| (s.seed, rest.to_string()));
        assert_eq!(pick("/t1/oauth/token"), Some((0, "/oauth/token".into())));
        assert_eq!(
            pick("/t3/v2024/task-status"),
            Some((2, "/v2024/task-status".into()))
        );
        assert_eq!(pick("/t2"), Some((1, String::new())));
        for bad in [
            "/t0/oauth/token",
            "/t4/oauth/token",
            "/t01/x",
            "/t/x",
            "/tx/x",
            "/v2024/task-status",
            "/t99999999999999999999999/x",
            "",
        ] {
            assert_eq!(pick(bad), None, "{bad}");
        }
    }

    async fn token(http: &reqwest::Client, base: &str) -> (u16, Option<String>) {
        let resp = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        (status, body["access_token"].as_str().map(str::to_string))
    }

    #[tokio::test]
    async fn a_fleet_serves_independent_tenants_under_prefixes() {
        let cfg = SimConfig::new(5).with_manual_clock(chrono::Utc::now());
        let fleet = Simulator::start_many(cfg, 2, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let (s1, t1) = token(&http, &fleet.base_url(1)).await;
        let (s2, t2) = token(&http, &fleet.base_url(2)).await;
        assert_eq!((s1, s2), (200, 200));
        let (t1, t2) = (t1.unwrap(), t2.unwrap());
        assert_eq!(token(&http, &fleet.base_url(3)).await, (404, None));
        let pending = |k: usize, token: String| {
            let url = format!(
                "{}/v2024/task-status/pending-tasks?count=true",
                fleet.base_url(k)
            );
            let http = http.clone();
            async move {
                let r = http.get(url).bearer_auth(token).send().await.unwrap();
                let total = r
                    .headers()
                    .get("X-Total-Count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok());
                (r.status().as_u16(), total)
            }
        };
        assert_eq!(pending(2, t1.clone()).await.0, 401, "tokens are per tenant");
        for (k, token) in [(1, t1), (2, t2)] {
            let truth = fleet.pending_tasks(k).unwrap().len();
            assert_eq!(pending(k, token).await, (200, Some(truth)), "tenant {k}");
        }
        let counts = fleet.request_count(1).unwrap();
        assert_eq!((counts.token, counts.get_pending_tasks), (1, 1));
        assert_eq!(fleet.request_count(2).unwrap().get_pending_tasks, 2);
        assert!(fleet.request_count(3).is_none());
        assert_ne!(
            fleet
                .pending_tasks(1)
                .unwrap()
                .first()
                .map(|t| t.id.clone()),
            fleet
                .pending_tasks(2)
                .unwrap()
                .first()
                .map(|t| t.id.clone()),
            "each tenant is its own world"
        );
        let too_many = Simulator::start_many(SimConfig::new(1), 0, "127.0.0.1:0".parse().unwrap());
        assert!(too_many.await.is_err());
        fleet.shutdown().await;
    }
}
