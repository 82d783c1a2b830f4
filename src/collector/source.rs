//! [`TaskSource`]: the four reads the collector needs from a tenant.
//!
//! The pollers are written against this trait rather than the HTTP client so that the
//! exactly-once logic can be exercised with in-memory fakes; the real implementation is
//! the SailPoint [`Client`].

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::sailpoint::filter::Filter;
use crate::sailpoint::model::TaskStatus;
use crate::sailpoint::{ApiError, Client, ListQuery, Page};

/// The largest number of ids asked for in one `id in (...)` list request; keeps the URL
/// well under common 8 KiB limits (50 × ~40 encoded bytes).
pub const IDS_PER_REQUEST: usize = 50;

/// The pending set and the tenant's clock when it was read, if known.
pub type DatedPending = (Vec<TaskStatus>, Option<DateTime<Utc>>);

/// Read access to one tenant's task status.
pub trait TaskSource: Send + Sync {
    /// Why a read failed; any error fails the whole poll.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The whole pending set (every page).
    fn pending_tasks(&self) -> impl Future<Output = Result<Vec<TaskStatus>, Self::Error>> + Send;

    /// The whole pending set and the tenant's clock when it was read (the `Date` of the
    /// first page), when known. Sources without a clock keep the default (`None`).
    fn pending_tasks_dated(
        &self,
    ) -> impl Future<Output = Result<DatedPending, Self::Error>> + Send {
        async { self.pending_tasks().await.map(|tasks| (tasks, None)) }
    }

    /// Whether `error`, from a lookup of specific ids, concerns only those tasks (a 403 or
    /// 500 for one id, an off-spec record) rather than the tenant (connection, timeout,
    /// authentication): then the rest of the poll can apply.
    fn concerns_only_the_task(_error: &Self::Error) -> bool {
        false
    }

    /// One page of `GET /task-status?sorters=-created`: the readable tasks and how many
    /// records the API sent ([`Page::received`]), which is what ends the read.
    fn completed_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Page, Self::Error>> + Send;

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

impl TaskSource for Client {
    type Error = ApiError;

    async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, ApiError> {
        Client::pending_tasks(self).await
    }

    async fn pending_tasks_dated(&self) -> Result<DatedPending, ApiError> {
        Client::pending_tasks_dated(self).await
    }

    fn concerns_only_the_task(error: &ApiError) -> bool {
        match error {
            ApiError::Status { status, .. } => !matches!(status, 401 | 429),
            ApiError::InvalidRecord { .. } | ApiError::Decode { .. } => true,
            _ => false,
        }
    }

    async fn completed_page(&self, offset: u32, limit: u32) -> Result<Page, ApiError> {
        self.list_page(&ListQuery::newest_first(), offset, limit)
            .await
    }

    async fn tasks_by_ids(&self, ids: &[String]) -> Result<Vec<TaskStatus>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = ListQuery::default().with_filter(&Filter::id_in(ids.iter().cloned()));
        let limit = u32::try_from(ids.len()).unwrap_or(u32::MAX).clamp(1, 250);
        Ok(self.list_page(&query, 0, limit).await?.items)
    }

    async fn task_status(&self, id: &str) -> Result<Option<TaskStatus>, ApiError> {
        match Client::task_status(self, id).await {
            Ok(task) => Ok(Some(task)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
