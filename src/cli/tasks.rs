//! `tasks`: the operator's command line over the five task-status operations.

use std::process::ExitCode;

use clap::Args;

use super::GlobalOpts;

/// Arguments of `tasks` (being built).
#[derive(Debug, Args)]
pub struct TasksArgs {}

/// Runs `tasks`.
pub async fn run(_args: TasksArgs, _global: &GlobalOpts) -> ExitCode {
    eprintln!("tasks: not implemented yet");
    ExitCode::from(super::EXIT_FAILURE)
}
