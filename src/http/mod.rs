//! The exporter's HTTP server: `/metrics` for Prometheus, the on-call status page (or a
//! landing page), and liveness and readiness endpoints for orchestrators.
//!
//! It knows nothing about SailPoint or the metrics registry: it asks a [`MetricsSource`]
//! (defined by `metrics`, the producer) for the [`Exposition`] in the format the scrape
//! negotiated ([`Format`]) and for readiness, and a [`StatusSource`] (defined by
//! `status`) for the status page, all answered from memory, so a scrape never waits on
//! the tenant. Data flows into this module, never out of it: it defines no trait for
//! the parts it serves. The daemon, `demo` and the tests start it the same way, with
//! [`serve`].
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

use crate::metrics::MetricsSource;
#[cfg(doc)]
use crate::metrics::{Exposition, Format};
#[cfg(doc)]
use crate::status::StatusSource;
pub use access::{AccessPolicy, Denied};
pub use basic_auth::BasicAuthUsers;
pub use connections::BUSY_RESPONSE;
pub use routes::{CONTENT_SECURITY_POLICY_VALUE, METRICS_CONTENT_TYPE};
pub use settings::{ReloadRequest, ServerConfig, ServerLimits};
pub use tls::{ClientAuth, TlsFiles, TlsVersion};
pub use web_config::{WebConfig, WebConfigError};

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
