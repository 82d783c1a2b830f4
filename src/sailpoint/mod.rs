//! The SailPoint v2024 task-status API: typed models, filter builder, token source,
//! request budget and retries, and the client for the five operations.

pub mod auth;
pub mod client;
pub mod error;
pub mod filter;
pub mod model;
pub mod operation;
pub mod paging;
pub mod ratelimit;
pub mod results;
pub mod tolerant;
pub mod transport;

pub use client::{Client, ListQuery, Page, http_client};
pub use error::ApiError;
pub use transport::{ApiObserver, NoopObserver, RetryReason};
