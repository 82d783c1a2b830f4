//! sailpoint-task-exporter: a Prometheus exporter for SailPoint Identity Security Cloud
//! task status.
//!
//! Data flows one way: [`config`] → [`collector`] pollers (using the [`sailpoint`] client)
//! → [`metrics`] state → [`http`] serving; the pollers also feed the on-call [`status`]
//! page, and with `storage.path`, [`storage`] keeps each tenant's state across restarts.
//! [`simulator`] is a faithful fake tenant used by
//! `demo`, the tests and dashboard development; [`cli`] holds the command line.

#![warn(missing_docs)]

pub mod cli;
pub mod collector;
pub mod config;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod sailpoint;
pub mod shard;
pub mod simulator;
pub mod status;
pub mod storage;
