//! What the HTTP server needs to know: the paths and build facts it shows, and the limits
//! that keep one misbehaving client from starving Prometheus.

use std::sync::Arc;
use std::time::Duration;

use super::access::AccessPolicy;
use crate::status::StatusSource;

/// One `POST /-/reload`: the slot the daemon answers with the reload's outcome (an error
/// message that names the problem when the new configuration was refused).
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Everything [`serve`](super::serve) needs besides the listener and the metrics source.
///
/// Built by the caller from the validated settings; the server does not read config files,
/// so it can be started the same way by the daemon, `demo` and the tests.
#[derive(Clone)]
pub struct ServerConfig {
    /// Path that serves the exposition text, e.g. `/metrics`. Must start with `/`; it is
    /// matched before the fixed paths, so it may shadow `/` if an operator insists.
    pub telemetry_path: String,
    /// Version shown on the landing page.
    pub version: String,
    /// Source revision (git hash) shown on the landing page.
    pub revision: String,
    /// Tenant names listed on the landing page, so an operator can see what this instance
    /// watches without reading its config.
    pub tenants: Vec<String>,
    /// Robustness limits; [`ServerLimits::default`] suits a Prometheus target.
    pub limits: ServerLimits,
    /// Who may see what. `None` serves everyone; a web config with `basic_auth_users`
    /// sets [`BasicAuthUsers`](super::BasicAuthUsers) here, without touching the routing.
    /// `/-/healthy` is never gated.
    pub access: Option<Arc<dyn AccessPolicy>>,
    /// TLS for every connection (see [`TlsFiles`](super::TlsFiles) and
    /// [`WebConfig`](super::WebConfig)); `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The lifecycle endpoint: when set, `POST /-/reload` asks the daemon to reload its
    /// configuration through this channel and answers with the outcome. `None` answers
    /// `403` (as Prometheus does without `--web.enable-lifecycle`).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// The status page: when set, `/` serves it and `/api/v1/status` its JSON, behind the
    /// same access policy as the metrics. `None` keeps the static landing page.
    pub status: Option<Arc<dyn StatusSource>>,
}

impl ServerConfig {
    /// A config with default limits and no access policy.
    pub fn new(
        telemetry_path: impl Into<String>,
        version: impl Into<String>,
        revision: impl Into<String>,
        tenants: Vec<String>,
    ) -> Self {
        ServerConfig {
            telemetry_path: telemetry_path.into(),
            version: version.into(),
            revision: revision.into(),
            tenants,
            limits: ServerLimits::default(),
            access: None,
            tls: None,
            reload: None,
            status: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("telemetry_path", &self.telemetry_path)
            .field("version", &self.version)
            .field("revision", &self.revision)
            .field("tenants", &self.tenants)
            .field("limits", &self.limits)
            .field("access", &self.access.as_ref().map(|_| "custom"))
            .field("tls", &self.tls.is_some())
            .field("status", &self.status.is_some())
            .finish()
    }
}

/// Limits against slow, greedy or hostile clients.
///
/// The defaults assume a handful of Prometheus servers scraping every 15–60 s, plus the
/// occasional human with a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time a client has to send a complete request head (slowloris defence); also bounds
    /// the TLS handshake. hyper also
    /// applies it while a kept-alive connection waits for its next request, so it doubles
    /// as the idle keep-alive timeout. Default 10 s.
    pub header_read_timeout: Duration,
    /// Connections served at once. Connections beyond the cap are accepted, answered with
    /// a canned `503` (just closed under TLS) and closed at once, so the kernel backlog never fills and a client
    /// learns immediately (a failed scrape) instead of hanging. Default 256.
    pub max_connections: usize,
    /// Largest request head (request line plus headers) accepted; larger ones get `431`.
    /// hyper cannot go below 8192, so smaller values are raised to 8192. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Time to produce one response once its head is read; on expiry the client gets
    /// `503`. Default 10 s (Prometheus' default scrape timeout).
    pub request_timeout: Duration,
    /// Longest a response write may make no progress (the client stopped reading) before
    /// the connection is closed. Default 10 s.
    pub write_timeout: Duration,
    /// Whether a connection may carry more than one request. Default true: Prometheus
    /// reuses its connection between scrapes.
    pub keep_alive: bool,
    /// After shutdown is requested, time allowed for in-flight requests to finish before
    /// the remaining connections are dropped. Default 10 s.
    pub shutdown_grace: Duration,
}

/// hyper refuses read buffers smaller than this (it panics); see `max_header_bytes`.
pub(crate) const MIN_HEADER_BYTES: usize = 8192;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            keep_alive: true,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerLimits {
    /// The read-buffer cap handed to hyper, never below its minimum.
    pub(crate) fn effective_header_bytes(&self) -> usize {
        self.max_header_bytes.max(MIN_HEADER_BYTES)
    }
}
