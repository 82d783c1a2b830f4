//! The hook where authentication plugs in.
//!
//! The exporter-toolkit web config (`basic_auth_users` with bcrypt hashes) is a later
//! issue; routing consults an [`AccessPolicy`] before answering so that issue only has to
//! supply a policy. Liveness (`/-/healthy`) is never gated: a kubelet probe carries no
//! credentials, and a dead-or-alive answer reveals nothing.

use hyper::HeaderMap;

/// Decides whether a request may be answered.
///
/// Called for every gated request on a blocking thread (never an async worker), so a slow
/// check such as bcrypt is allowed; it still counts against the request timeout, so
/// implementations should remember recent successes.
pub trait AccessPolicy: Send + Sync + 'static {
    /// `Ok(())` lets the request through; `Err` answers `401` with the challenge.
    fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), Denied>;
}

/// Why a request was refused, and how the client should authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Value of the `WWW-Authenticate` header, e.g. `Basic realm="sailpoint-task-exporter"`.
    pub challenge: String,
}
