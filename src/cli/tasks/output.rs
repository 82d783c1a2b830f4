//! Writing results to stdout: a table or detail view for people, one JSON document for
//! scripts.
//!
//! JSON output serialises the API model itself, so scripts see SailPoint's own field
//! names: a list for `pending`/`list`, an object for `get`/`complete`, `{"count": N}` for
//! `pending --count`, the patch array for a dry run. A closed pipe (`| head`) ends the
//! output quietly instead of failing.

use std::io::Write;

use chrono::Utc;
use serde::Serialize;

use super::args::OutputFormat;
use super::error::TasksError;
use super::render;
use crate::sailpoint::model::{JsonPatchOperation, TaskStatus};

/// Prints results in the chosen format.
pub struct Printer {
    format: OutputFormat,
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: OutputFormat) -> Printer {
        Printer { format }
    }

    /// A list of tasks; in table mode an empty list is said on stderr, leaving stdout empty.
    pub fn tasks(&self, tasks: &[TaskStatus], empty: &str) -> Result<(), TasksError> {
        match self.format {
            OutputFormat::Json => json(&tasks),
            OutputFormat::Table if tasks.is_empty() => {
                eprintln!("{empty}");
                Ok(())
            }
            OutputFormat::Table => write(&render::table(tasks, Utc::now())),
        }
    }

    /// One task with its messages.
    pub fn task(&self, task: &TaskStatus) -> Result<(), TasksError> {
        match self.format {
            OutputFormat::Json => json(task),
            OutputFormat::Table => write(&render::detail(task, Utc::now())),
        }
    }

    /// The number of pending tasks.
    pub fn count(&self, count: u64) -> Result<(), TasksError> {
        match self.format {
            OutputFormat::Json => json(&serde_json::json!({ "count": count })),
            OutputFormat::Table => write(&format!("{count}\n")),
        }
    }

    /// The JSON Patch a dry run would send; JSON in both formats.
    pub fn patch(&self, patch: &[JsonPatchOperation]) -> Result<(), TasksError> {
        json(&patch)
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), TasksError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| TasksError::Output(std::io::Error::other(e)))?;
    text.push('\n');
    write(&text)
}

fn write(text: &str) -> Result<(), TasksError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(TasksError::Output(e)),
        _ => Ok(()),
    }
}
