//! The exporter daemon: wires settings → pollers → metric state → HTTP server, and owns
//! the process life cycle (signals, reload, graceful shutdown).
//!
//! Each tenant runs as its own collector with its own stop switch, so a reload can restart
//! exactly the tenants whose settings changed and leave the others — and their counters —
//! untouched. Shutdown order: stop accepting scrapes, drain in-flight requests, stop the
//! pollers, return.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::collector::{CollectorHandle, Readiness, TenantCollector, Tracker};
use crate::config::{Overrides, Settings, TenantSettings};
use crate::http::{self, ServerConfig};
use crate::metrics::{Exposition, Format, Metrics, MetricsSource};
use crate::status::{CliTarget, PageInfo, StatusBoard};
use crate::storage::Store;

/// The crate version, for build info and the landing page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The source revision embedded by `build.rs`.
pub const REVISION: &str = env!("SAILPOINT_EXPORTER_REVISION");

/// Where a reload reads its settings from.
#[derive(Debug, Clone)]
pub struct ReloadSource {
    /// The configuration file re-read on SIGHUP.
    pub path: PathBuf,
    /// The flags, which keep overriding the file after a reload.
    pub overrides: Overrides,
    /// Also reload on `POST /-/reload` (`--web.enable-lifecycle`).
    pub lifecycle_endpoint: bool,
}

/// What `/metrics` and `/-/ready` read: the registry and the tenants' readiness.
struct ExporterState {
    metrics: Arc<Metrics>,
    tenants: Mutex<HashMap<String, Readiness>>,
    /// Once every tenant has primed, the exporter stays ready: a reload that restarts a
    /// tenant must not take the exporter out of service while it primes again.
    ever_ready: AtomicBool,
}

impl MetricsSource for ExporterState {
    fn prerendered(&self, format: Format) -> Option<Exposition> {
        self.metrics.prerendered(format)
    }

    fn exposition(&self, format: Format) -> Exposition {
        self.metrics.exposition(format)
    }

    fn is_ready(&self) -> bool {
        if self.ever_ready.load(Ordering::Acquire) {
            return true;
        }
        let ready = match self.tenants.lock() {
            Ok(t) => t.values().all(Readiness::is_ready),
            Err(_) => false,
        };
        if ready {
            self.ever_ready.store(true, Ordering::Release);
        }
        ready
    }
}

/// One tenant's running collector and the settings it runs with: a reload restarts it
/// when its new settings differ (`!=`, secrets compared in constant time, so a rotated
/// secret restarts it too).
struct RunningTenant {
    settings: TenantSettings,
    /// Stops the collector when cancelled — or dropped, so that no path out of the
    /// daemon (an error included) leaves a poller running.
    stop: DropGuard,
    handle: CollectorHandle,
}

/// The set of running tenants.
struct Tenants {
    metrics: Arc<Metrics>,
    /// One HTTP client (TLS configuration, connection pools) for every tenant.
    http: reqwest::Client,
    board: Arc<StatusBoard>,
    state: Arc<ExporterState>,
    /// The state directory (`storage.path`), owned with its lock for the process's life.
    store: Option<Arc<Store>>,
    running: HashMap<String, RunningTenant>,
}

impl Tenants {
    /// Starts a tenant's collector, continuing from `resume` (the exactly-once state of
    /// its previous collector) when given.
    fn start(
        &mut self,
        tenant: &TenantSettings,
        resume: Option<Tracker>,
        start_delay: Duration,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let handle = TenantCollector {
            tenant,
            metrics: self.metrics.clone(),
            http: &self.http,
            store: self.store.as_ref(),
            board: Some(&self.board),
            resume,
            start_delay,
            shutdown: stop.clone(),
        }
        .start()?;
        if let Ok(mut t) = self.state.tenants.lock() {
            t.insert(tenant.name.clone(), handle.readiness());
        }
        self.running.insert(
            tenant.name.clone(),
            RunningTenant {
                settings: tenant.clone(),
                stop: stop.drop_guard(),
                handle,
            },
        );
        Ok(())
    }

    /// Stops a tenant's collector and returns its exactly-once state.
    async fn stop(&mut self, name: &str) -> Option<Tracker> {
        let mut tracker = None;
        if let Some(RunningTenant { stop, handle, .. }) = self.running.remove(name) {
            drop(stop);
            tracker = handle.join().await;
        }
        if let Ok(mut t) = self.state.tenants.lock() {
            t.remove(name);
        }
        tracker
    }

    /// Stops every tenant: all are told at once, then each is awaited (each writes its
    /// state file a last time).
    async fn stop_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        let mut handles = Vec::with_capacity(running.len());
        for (name, RunningTenant { stop, handle, .. }) in running {
            drop(stop);
            handles.push((name, handle));
        }
        for (name, handle) in handles {
            handle.join().await;
            if let Ok(mut t) = self.state.tenants.lock() {
                t.remove(&name);
            }
        }
    }

    /// Applies a new, valid configuration: restarts changed tenants, starts new ones,
    /// stops removed ones; unchanged tenants keep running with their counters. A changed
    /// tenant that still reads the same tenant (same `base_url`) continues from its
    /// exactly-once state, so nothing that completes while it restarts is lost.
    async fn apply(&mut self, new: &Settings, old: &Settings) -> anyhow::Result<()> {
        if new.web != old.web
            || new.metrics != old.metrics
            || new.status != old.status
            || new.storage != old.storage
        {
            tracing::warn!(
                "web, metrics, status or storage settings changed: they take effect after a restart"
            );
        }
        let wanted: HashMap<&str, &TenantSettings> =
            new.tenants.iter().map(|t| (t.name.as_str(), t)).collect();
        let previous: HashMap<&str, &TenantSettings> =
            old.tenants.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut resume: HashMap<String, Tracker> = HashMap::new();
        let running: Vec<String> = self.running.keys().cloned().collect();
        for name in running {
            match wanted.get(name.as_str()) {
                None => {
                    tracing::info!(tenant = %name, "tenant removed by reload: stopping it and dropping its series");
                    self.stop(&name).await;
                    self.board.remove(&name);
                    self.metrics.remove(&name);
                }
                Some(t) if !self.running.get(&name).is_some_and(|r| r.settings == **t) => {
                    tracing::info!(tenant = %name, "tenant settings changed: restarting it");
                    let tracker = self.stop(&name).await;
                    let same_tenant = previous
                        .get(name.as_str())
                        .is_some_and(|p| p.base_url == t.base_url);
                    if let (Some(tracker), true) = (tracker, same_tenant) {
                        resume.insert(name.clone(), tracker);
                    }
                }
                Some(_) => {}
            }
        }
        for tenant in &new.tenants {
            if !self.running.contains_key(&tenant.name) {
                self.start(tenant, resume.remove(&tenant.name), Duration::ZERO)?;
            }
        }
        Ok(())
    }
}

/// Binds the address `/metrics` is served on (`web.listen_address`).
pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    TcpListener::bind(&settings.web.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", settings.web.listen_address))
}

/// Runs the daemon with `settings` (and the TLS / basic-auth `web` configuration, loaded
/// by [`load_web_config`]) until `shutdown` resolves. With `reload`, SIGHUP re-reads that
/// file and applies it (an invalid file is refused and logged).
pub async fn run(
    settings: Settings,
    web: Option<http::WebConfig>,
    reload: Option<ReloadSource>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = bind(&settings).await?;
    run_on(listener, settings, web, reload, shutdown).await
}

/// [`run`] on a listener bound beforehand by [`bind`] (`demo` binds first so that it
/// announces only addresses that are really served).
pub async fn run_on(
    listener: TcpListener,
    settings: Settings,
    web: Option<http::WebConfig>,
    reload: Option<ReloadSource>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let settings = own_shard(settings);
    // First: a second process on the same state directory stops here, before it polls.
    let store = settings
        .storage
        .path
        .as_deref()
        .map(Store::open)
        .transpose()?;
    let metrics = Arc::new(Metrics::new(&settings.metrics, VERSION, REVISION)?);
    // Dropped on every way out (an error included), each guard stops what it guards.
    let renderer_stop = CancellationToken::new();
    let renderer = metrics.spawn_renderer(renderer_stop.clone());
    let renderer_stop = renderer_stop.drop_guard();
    let state = Arc::new(ExporterState {
        metrics: metrics.clone(),
        tenants: Mutex::new(HashMap::new()),
        ever_ready: AtomicBool::new(false),
    });
    // Without a configuration file (`demo`), the page's commands cannot say `--tenant`.
    let cli = match &reload {
        Some(reload) => CliTarget::ByName {
            config_file: Some(
                std::path::absolute(&reload.path).unwrap_or_else(|_| reload.path.clone()),
            ),
        },
        None => CliTarget::ByUrl,
    };
    let board = Arc::new(
        StatusBoard::new(
            settings.status.clone(),
            PageInfo {
                telemetry_path: settings.web.telemetry_path.clone(),
                version: VERSION.to_string(),
                revision: REVISION.to_string(),
            },
        )
        .with_cli_target(cli),
    );
    let mut tenants = Tenants {
        metrics: metrics.clone(),
        http: crate::sailpoint::http_client().context("cannot build the HTTP client")?,
        board: board.clone(),
        state: state.clone(),
        store,
        running: HashMap::new(),
    };
    let count = settings.tenants.len();
    for (position, tenant) in settings.tenants.iter().enumerate() {
        let delay = startup_delay(position, count, tenant.pending_interval);
        tenants.start(tenant, None, delay)?;
    }
    metrics.config_reloaded(true);
    let mut server_config = ServerConfig::new(
        settings.web.telemetry_path.clone(),
        VERSION,
        REVISION,
        settings.tenants.iter().map(|t| t.name.clone()).collect(),
    );
    server_config.status = Some(board);
    if let Some(web) = web {
        server_config.tls = web.tls;
        server_config.access = web.access;
    }
    let requests = if reload.as_ref().is_some_and(|r| r.lifecycle_endpoint) {
        let (tx, rx) = mpsc::channel(4);
        server_config.reload = Some(tx);
        Some(rx)
    } else {
        None
    };
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        server_config,
        state,
        server_stop.clone().cancelled_owned(),
    ));
    let server_stop = server_stop.drop_guard();
    supervise(&mut tenants, settings, reload, requests, &metrics, shutdown).await;
    drop(server_stop);
    match server.await {
        Ok(result) => result.context("HTTP server")?,
        Err(e) => tracing::error!(error = %e, "HTTP server task ended abnormally"),
    }
    tenants.stop_all().await;
    drop(renderer_stop);
    let _ = renderer.await;
    tracing::info!("stopped");
    Ok(())
}

/// Time between the first requests of two tenants at start: priming reads a tenant's
/// whole lookback, so hundreds of tenants priming at once would burst.
const STARTUP_STEP: Duration = Duration::from_millis(100);

/// When the tenant at `position` of `count` makes its first request at start: tenants
/// are spread evenly, `STARTUP_STEP` apart, over at most one pending interval (so the
/// last tenant is never later than its first regular poll would have been).
fn startup_delay(position: usize, count: usize, pending_interval: Duration) -> Duration {
    let window = STARTUP_STEP
        .saturating_mul(u32::try_from(count).unwrap_or(u32::MAX))
        .min(pending_interval);
    match (u32::try_from(position), u32::try_from(count)) {
        (Ok(position), Ok(count)) if count > 0 => window / count * position,
        _ => Duration::ZERO,
    }
}

/// Keeps the tenants of this replica's shard, and says which they are.
fn own_shard(settings: Settings) -> Settings {
    let (count, index, all) = (
        settings.sharding.count,
        settings.sharding.index(),
        settings.tenants.len(),
    );
    let settings = settings.own_shard();
    if count > 1 {
        tracing::info!(
            shard = index,
            shards = count,
            tenants = settings.tenants.len(),
            configured = all,
            "sharding: this replica polls the tenants of its shard"
        );
    }
    if settings.tenants.is_empty() {
        tracing::warn!(
            shard = index,
            shards = count,
            "no tenant of the configuration falls in this shard: nothing to poll"
        );
    }
    settings
}

/// A problem with the `--web.config.file` (TLS / basic auth); reported at start.
#[derive(Debug, thiserror::Error)]
#[error("web config file {path}: {source}")]
pub struct WebConfigFileError {
    /// The web config file as given.
    pub path: String,
    /// What was wrong with it.
    #[source]
    pub source: http::WebConfigError,
}

/// Reads the exporter-toolkit web configuration named by `web.config_file`, if any.
pub fn load_web_config(settings: &Settings) -> Result<Option<http::WebConfig>, WebConfigFileError> {
    let path = settings.web.config_file.trim();
    if path.is_empty() {
        return Ok(None);
    }
    http::WebConfig::load(std::path::Path::new(path))
        .map(Some)
        .map_err(|source| WebConfigFileError {
            path: path.to_string(),
            source,
        })
}

/// Waits for shutdown, applying reloads on SIGHUP and `POST /-/reload` meanwhile.
async fn supervise(
    tenants: &mut Tenants,
    mut current: Settings,
    reload: Option<ReloadSource>,
    mut requests: Option<mpsc::Receiver<http::ReloadRequest>>,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let mut hangups = hangup_signals();
    tokio::pin!(shutdown);
    loop {
        let reply = tokio::select! {
            _ = &mut shutdown => return,
            Some(()) = next_hangup(&mut hangups) => None,
            Some(reply) = next_request(&mut requests) => Some(reply),
        };
        let outcome = match &reload {
            Some(source) => reload_now(tenants, &mut current, source, metrics).await,
            None => {
                tracing::info!("reload ignored: no configuration file to reload");
                Err("no configuration file to reload".to_string())
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

async fn next_request(
    requests: &mut Option<mpsc::Receiver<http::ReloadRequest>>,
) -> Option<http::ReloadRequest> {
    match requests {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Re-reads the configuration file and applies it; an invalid file changes nothing.
async fn reload_now(
    tenants: &mut Tenants,
    current: &mut Settings,
    source: &ReloadSource,
    metrics: &Metrics,
) -> Result<(), String> {
    let new = match load_off_thread(source).await {
        Ok(new) => own_shard(new),
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the running configuration stays");
            metrics.config_reloaded(false);
            return Err(e.to_string());
        }
    };
    match tenants.apply(&new, current).await {
        Ok(()) => {
            tracing::info!(file = %source.path.display(), "configuration reloaded");
            metrics.config_reloaded(true);
            *current = new;
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed");
            metrics.config_reloaded(false);
            Err(format!("{e:#}"))
        }
    }
}

/// Loads the reload source on a blocking thread: it reads the configuration and any
/// secret files, which must not stall the async workers serving scrapes.
async fn load_off_thread(source: &ReloadSource) -> anyhow::Result<Settings> {
    let (path, overrides) = (source.path.clone(), source.overrides.clone());
    let loaded = tokio::task::spawn_blocking(move || Settings::load(&path, &overrides)).await?;
    Ok(loaded?)
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(h: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    {
        match h {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = h;
        std::future::pending().await
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    #[test]
    fn startup_is_spread_over_at_most_a_pending_interval() {
        let thirty = Duration::from_secs(30);
        assert_eq!(startup_delay(0, 1, thirty), Duration::ZERO);
        assert_eq!(startup_delay(1, 2, thirty), Duration::from_millis(100));
        assert_eq!(
            startup_delay(199, 200, thirty),
            Duration::from_millis(19_900)
        );
        // 500 tenants × 100 ms would be 50 s: squeezed into the 30 s pending interval.
        assert_eq!(startup_delay(250, 500, thirty), Duration::from_secs(15));
        assert_eq!(
            startup_delay(499, 500, thirty),
            Duration::from_millis(29_940)
        );
        assert_eq!(startup_delay(3, 4, Duration::from_secs(0)), Duration::ZERO);
    }

    fn tenant() -> TenantSettings {
        TenantSettings::with_defaults(
            "acme",
            "http://127.0.0.1:1".parse().expect("constant URL"),
            Credentials::StaticToken("t".to_string().into()),
        )
    }

    /// One edit of a tenant's settings.
    type Change = fn(&mut TenantSettings);

    #[test]
    fn every_polling_setting_restarts_the_tenant() {
        let base = tenant();
        assert_eq!(tenant(), base, "equal settings keep the tenant running");
        let changes: [(&str, Change); 6] = [
            ("poll_timeout", |t| t.poll_timeout = Duration::from_secs(7)),
            ("max_retries", |t| t.max_retries = 0),
            ("max_body_bytes", |t| t.max_body_bytes = 4096),
            ("pending_interval", |t| {
                t.pending_interval = Duration::from_secs(7)
            }),
            ("client_credentials", |t| {
                t.credentials = Credentials::ClientCredentials {
                    client_id: "t".into(),
                    client_secret: "t".to_string().into(),
                }
            }),
            ("token", |t| {
                t.credentials = Credentials::StaticToken("u".to_string().into())
            }),
        ];
        for (name, change) in changes {
            let mut t = tenant();
            change(&mut t);
            assert_ne!(t, base, "{name} must restart the tenant");
        }
    }
}
