//! The SailPoint v2024 task-status API: typed models, filter builder, token source,
//! request budget and retries, and the client for the five operations.

pub mod auth;
pub mod client;
pub mod error;
pub mod filter;
pub mod operation;
pub mod paging;
pub mod ratelimit;
pub mod results;
pub mod tolerant;
pub mod transport;

pub use client::{Client, ListQuery, Page, http_client};
pub use error::ApiError;
/// The wire types live in their own crate so the simulator can serve them without
/// depending on the exporter; re-exported here so `sailpoint::model::...` paths keep working.
pub use sailpoint_model as model;
pub use transport::{ApiObserver, NoopObserver, RetryReason};
