//! The integration tests: one crate (`cargo test --test it`), one module per subject, so
//! the library, reqwest, hyper and rustls are linked once. `cargo test --test it soak::`
//! runs one module; shared helpers come from the dev-only `test-support` crate.
//!
//! Everything here shares one process: a test must not change the environment, the
//! current directory or a signal disposition, nor listen on a fixed port (each binds
//! port 0 or starts the binary as a child process with its own environment).

/// The exporter binary Cargo built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_sailpoint-task-exporter");

mod catalogue;
mod check_command;
mod cli_tasks;
mod cli_tasks_usage;
mod client_simulator;
mod config_examples;
mod deploy;
mod e2e_prometheus;
mod exporter_production;
mod exporter_promtool;
mod exporter_returns;
mod exporter_simulator;
mod http_server;
mod http_web_config;
mod models;
mod persistence;
mod properties;
mod redirect;
mod reload;
mod reload_endpoint;
mod remembered_memory;
mod sharding;
mod simulator_contract;
mod simulator_sdk;
mod soak;
mod status_page;
mod web_config_daemon;
