//! The exporter's HTTP server: `/metrics` for Prometheus, the on-call status page (or a
//! landing page), and liveness and readiness endpoints for orchestrators.
//!
//! It knows nothing about SailPoint or the metrics registry: it asks a [`MetricsSource`]
//! for the rendered exposition in the format the scrape negotiated ([`Format`]) and for
//! readiness, both answered from memory, so a
//! scrape never waits on the tenant. The daemon, `demo` and the tests start it the same
//! way, with [`serve`].
//!
//! Robustness (see [`ServerLimits`]): a header-read deadline against slowloris clients
//! (also the idle keep-alive timeout), a cap on concurrent connections, `431` for oversized
//! request heads, a per-request deadline, a write-stall deadline for clients that stop
//! reading, and accept-error back-off. Shutdown drains
//! in-flight requests for a bounded time.
//!
//! Security (exporter-toolkit `--web.config.file`, see [`WebConfig`]): optional TLS
//! (rustls; the handshake must finish within the header-read timeout) and an optional
//! [`AccessPolicy`] such as [`BasicAuthUsers`] (bcrypt) gating every path except
//! `/-/healthy`. Connections are served by a function generic over the IO type, so plain
//! and TLS streams share routing and limits.

mod access;
mod basic_auth;
mod connections;
mod encoding;
mod landing;
mod routes;
mod settings;
mod tls;
mod web_config;
mod web_config_error;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use crate::metrics::Format;
pub use access::{AccessPolicy, Denied};
pub use basic_auth::BasicAuthUsers;
pub use connections::BUSY_RESPONSE;
pub use routes::{CONTENT_SECURITY_POLICY_VALUE, METRICS_CONTENT_TYPE};
pub use settings::{ReloadRequest, ServerConfig, ServerLimits};
pub use tls::{ClientAuth, TlsFiles, TlsVersion};
pub use web_config::{WebConfig, WebConfigError};

/// Where the server gets what it serves.
///
/// A trait rather than two closures so one object (the metrics state) can implement both
/// and be shared as one `Arc`. Both methods are called on the request path: they must
/// answer from memory and never call SailPoint.
pub trait MetricsSource: Send + Sync + 'static {
    /// The current exposition in the Prometheus text format 0.0.4. Runs on a blocking
    /// thread, so taking a lock is acceptable; taking seconds is not (the request
    /// deadline answers `503`).
    fn render(&self) -> Vec<u8>;
    /// The exposition in `format` kept pre-rendered, when the source keeps one and it is
    /// current. Called on the async worker, so it must only copy (no rendering, no
    /// waiting); the default keeps nothing and every scrape goes to
    /// [`MetricsSource::rerender`].
    fn prerendered(&self, format: Format) -> Option<Prerendered> {
        let _ = format;
        None
    }
    /// Renders (and may keep) the exposition in `format`, or in another the source
    /// serves (the default renders [`MetricsSource::render`]'s text whatever was asked);
    /// runs on a blocking thread like [`MetricsSource::render`].
    fn rerender(&self, format: Format) -> Prerendered {
        let _ = format;
        Prerendered {
            format: Format::Text,
            text: Some(self.render().into()),
            gzip: None,
        }
    }
    /// Whether the exporter has data worth scraping (every tenant polled once);
    /// `/-/ready` answers `200` when true, `503` otherwise.
    fn is_ready(&self) -> bool;
}

/// One rendered exposition: its text, its gzip encoding, or both (a source keeps what is
/// cheap for it; the server compresses the text, or decodes the gzip while sending it, on
/// demand). Cloning copies reference-counted handles, not the bytes.
#[derive(Debug, Clone)]
pub struct Prerendered {
    /// The format of the body (its `Content-Type`).
    pub format: Format,
    /// The body; None to decode `gzip` while sending it.
    pub text: Option<bytes::Bytes>,
    /// The same body gzip-compressed; None to compress it on demand.
    pub gzip: Option<bytes::Bytes>,
}

/// The on-call status page served at `/` (HTML) and `/api/v1/status` (JSON) when the
/// server is given one ([`ServerConfig::status`]); without it `/` is the static landing
/// page. Like [`MetricsSource`], answered from memory on a blocking thread.
pub trait StatusSource: Send + Sync + 'static {
    /// The page, a complete HTML document (every value already escaped).
    fn page(&self) -> Vec<u8>;
    /// The same data as JSON.
    fn json(&self) -> Vec<u8>;
    /// The page's stylesheet, served at `/status.css` (the Content-Security-Policy allows
    /// same-origin styles only).
    fn stylesheet(&self) -> &'static str;
    /// The page of one task, served at `/task/{id}` (where the exemplars of the task
    /// metrics link): None when the source does not know the task (`404`).
    fn task(&self, id: &str) -> Option<Vec<u8>> {
        let _ = id;
        None
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (at most `limits.shutdown_grace`) and returns.
///
/// Takes a bound listener (not an address) so the caller reports bind errors itself and
/// tests can use port 0. Returns `InvalidInput` for a config it cannot honour (telemetry
/// path not starting with `/`, zero connection cap or zero timeouts); per-connection and
/// accept errors are logged, never returned.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    source: Arc<dyn MetricsSource>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    validate(&config)?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, path = %config.telemetry_path, "serving metrics");
    }
    let routes = Arc::new(routes::Routes::new(&config, source));
    connections::Acceptor::new(listener, routes, &config.limits, config.tls.clone())
        .run(shutdown)
        .await;
    tracing::info!("HTTP server stopped");
    Ok(())
}

fn validate(config: &ServerConfig) -> io::Result<()> {
    let limits = &config.limits;
    let problem = if !config.telemetry_path.starts_with('/') {
        Some("telemetry path must start with '/'")
    } else if limits.max_connections == 0
        || limits.max_connections > tokio::sync::Semaphore::MAX_PERMITS
    {
        Some("max_connections must be between 1 and Semaphore::MAX_PERMITS")
    } else if [
        limits.header_read_timeout,
        limits.request_timeout,
        limits.write_timeout,
    ]
    .iter()
    .any(Duration::is_zero)
    {
        Some("header_read_timeout, request_timeout and write_timeout must be positive")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(io::Error::new(io::ErrorKind::InvalidInput, problem)),
        None => Ok(()),
    }
}
