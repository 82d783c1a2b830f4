//! Test support of `sailpoint-task-exporter`, a dev-only crate (never a dependency of the
//! binary): what the integration tests (`tests/it/`) and the library's unit tests share.
//!
//! - [`exposition`]: a reader of the text exposition format (plain text parsing, no type of
//!   the exporter crosses it, so the library's unit tests use it too);
//! - [`exporter`]: the real client and poller against a simulated tenant, and an exact
//!   comparison of the rendered metrics with the simulator's ground truth;
//! - [`daemon`]: the `serve` binary as a child process, started and waited for;
//! - [`web`]: a throwaway PKI for the TLS tests, and requests with basic credentials.

#![warn(missing_docs)]

pub mod daemon;
pub mod exporter;
pub mod exposition;
pub mod web;
