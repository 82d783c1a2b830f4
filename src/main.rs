//! The `sailpoint-task-exporter` binary: parses the command line and hands over to
//! [`sailpoint_task_exporter::cli::run`].

use std::process::ExitCode;

use clap::Parser;
use sailpoint_task_exporter::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Cli::parse()).await
}
