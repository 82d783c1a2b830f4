//! [`TaskSource`]: the four reads the collector needs from a tenant.
//!
//! The pollers are written against this trait rather than the HTTP client so that the
//! exactly-once logic can be exercised with in-memory fakes; the real implementation is
//! the SailPoint client.

use std::future::Future;

use crate::sailpoint::model::TaskStatus;

/// The largest number of ids asked for in one `id in (...)` list request; keeps the URL
/// well under common 8 KiB limits (50 × ~40 encoded bytes).
pub const IDS_PER_REQUEST: usize = 50;

/// Read access to one tenant's task status.
pub trait TaskSource: Send + Sync {
    /// Why a read failed; any error fails the whole poll.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The whole pending set (every page).
    fn pending_tasks(&self) -> impl Future<Output = Result<Vec<TaskStatus>, Self::Error>> + Send;

    /// One page of `GET /task-status?sorters=-created`.
    fn completed_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TaskStatus>, Self::Error>> + Send;

    /// Tasks with the given ids (at most [`IDS_PER_REQUEST`]) in one request
    /// (`filters=id in (...)`). Ids that are missing from the answer are looked up one by
    /// one with [`TaskSource::task_status`] (v2024 lists completed tasks only).
    fn tasks_by_ids(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<TaskStatus>, Self::Error>> + Send;

    /// `GET /task-status/{id}`; `Ok(None)` on 404.
    fn task_status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<TaskStatus>, Self::Error>> + Send;
}

/// The `filters` value selecting tasks by id: `id in ("a","b")`, with `\` and `"`
/// escaped as the filter grammar requires (ids come from the API and are not trusted).
pub fn ids_filter(ids: &[String]) -> String {
    let quoted: Vec<String> = ids
        .iter()
        .map(|id| format!("\"{}\"", id.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("id in ({})", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_filter_quotes_and_escapes() {
        let ids = vec!["a1".to_string(), "b\"2\\".to_string()];
        assert_eq!(ids_filter(&ids), r#"id in ("a1","b\"2\\")"#);
    }
}
