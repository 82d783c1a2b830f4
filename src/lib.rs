//! sailpoint-task-exporter: a Prometheus exporter for SailPoint Identity Security Cloud
//! task status.
//!
//! Data flows one way: [`config`] → [`collector`] pollers (using the [`sailpoint`] client)
//! → [`metrics`] state → [`http`] serving; the pollers also feed the on-call [`status`]
//! page, and with `storage.path`, [`storage`] keeps each tenant's state across restarts.
//! The simulated tenant is its own crate (`sailpoint_simulator`, in `crates/simulator`),
//! used only by [`cli`] (`demo`, `simulate`) and the tests; [`cli`] holds the command line.

#![warn(missing_docs)]

pub mod cli;
pub mod collector;
pub mod config;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod sailpoint;
pub mod shard;
pub mod status;
pub mod storage;

#[cfg(test)]
mod layering_tests;
