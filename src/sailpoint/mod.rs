//! The SailPoint v2024 task-status API: typed models, filter builder, token source,
//! rate limiter and the client for the five operations.

pub mod model;
