//! The hook where authentication plugs in.
//!
//! Routing consults an [`AccessPolicy`] before answering, so authentication schemes stay
//! out of routing: the web config's `basic_auth_users` (bcrypt) is one such policy,
//! [`BasicAuthUsers`](super::BasicAuthUsers). Liveness (`/-/healthy`) is never gated: a kubelet probe carries no
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
