//! The on-call status page: what is stuck, what failed and why, per tenant.
//!
//! Metrics cannot carry task ids to clear or the message texts of a failed aggregation;
//! the pollers see both at every poll. They hand what they see to a bounded per-tenant
//! [`board`] (one-way: pollers → board → HTTP), which is turned into a [`snapshot`] —
//! served as JSON at `/api/v1/status` — and rendered server-side as HTML by [`page`] at
//! `/`, and one task (the target of the metrics' exemplars) at `/task/{id}`. Every value that came from the API is truncated on the way in ([`text`]) and
//! HTML-escaped on the way out.
//!
//! - [`board`]: [`StatusBoard`] (the registry of tenants, answering the HTTP server) and
//!   [`TenantStatus`] (one tenant's handle, fed by its poller);
//! - [`snapshot`]: the serialisable view, the one data structure behind both formats;
//! - [`page`]: the HTML and its stylesheet;
//! - [`text`]: escaping, truncation, shell quoting and age formatting.

pub mod board;
pub mod page;
pub mod snapshot;
pub mod text;

pub use board::{CliTarget, PageInfo, StatusBoard, TenantStatus};
pub use snapshot::Snapshot;

impl crate::http::StatusSource for StatusBoard {
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
