//! The on-call status page: what is stuck, what failed and why, per tenant.
//!
//! Metrics cannot carry task ids to clear or the message texts of a failed aggregation;
//! the pollers see both at every poll. They hand what they see to a bounded per-tenant
//! [`board`] (one-way: pollers → board → HTTP), which is turned into a [`snapshot`] —
//! served as JSON at `/api/v1/status` — and rendered server-side as HTML by [`page`] at
//! `/`, and one task (the target of the metrics' exemplars) at `/task/{id}`. Every value that came from the API is truncated on the way in ([`text`]) and
//! HTML-escaped on the way out.
//!
//! - [`board`]: [`StatusBoard`], the registry of tenants, answering the HTTP server
//!   through [`StatusSource`] (defined here, so the arrow runs status → http);
//! - [`record`]: [`TenantStatus`], one tenant's bounded record, fed by its poller;
//! - [`snapshot`]: the serialisable view, the one data structure behind both formats;
//! - [`page`]: the HTML and its stylesheet;
//! - [`text`]: escaping, truncation, shell quoting and age formatting.

pub mod board;
pub mod page;
pub mod record;
pub mod snapshot;
pub mod text;

pub use board::{CliTarget, PageInfo, StatusBoard};
pub use record::TenantStatus;
pub use snapshot::Snapshot;

/// What the HTTP server serves of the status: the page at `/` (HTML), its data at
/// `/api/v1/status` (JSON), its stylesheet, and one task at `/task/{id}`.
///
/// Defined here, by the producer, so the arrow runs status → http only; [`StatusBoard`]
/// is the one implementation. Every method answers from memory (it is called on a
/// blocking thread, so taking the board's locks is fine) and never calls SailPoint.
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
    fn task(&self, id: &str) -> Option<Vec<u8>>;
}

impl StatusSource for StatusBoard {
    fn page(&self) -> Vec<u8> {
        page::render(&self.snapshot(chrono::Utc::now()), self.page_info()).into_bytes()
    }

    fn json(&self) -> Vec<u8> {
        let snapshot = self.snapshot(chrono::Utc::now());
        let mut body = serde_json::to_vec_pretty(&snapshot).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialise the status snapshot");
            b"{}".to_vec()
        });
        body.push(b'\n');
        body
    }

    fn stylesheet(&self) -> &'static str {
        page::STYLESHEET
    }

    fn task(&self, id: &str) -> Option<Vec<u8>> {
        let now = chrono::Utc::now();
        let task = self.task(id, now)?;
        Some(page::render_task(&task, id, &now).into_bytes())
    }
}
