//! `tasks`: the operator's command line over the five task-status operations.
//!
//! When an alert says an aggregation is stuck, the operator inspects the task and, if it
//! is dead, clears it — with the daemon's binary, configuration and credentials, and the
//! same client (rate limit, retries, typed errors). `pending`, `list` and `get` only read;
//! `complete` is the one write, and it is a dry run unless `--yes` is given.

mod args;
mod error;
mod output;
mod patch;
mod progress;
mod render;
mod tenant;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;

pub use args::{
    CLIENT_SECRET_ENV, CompleteArgs, GetArgs, ListArgs, OutputFormat, PendingArgs, StatusArg,
    TasksArgs, TasksCommand, TenantArgs,
};
pub use error::TasksError;
pub use patch::completion_patch;

use crate::sailpoint::model::{CompletionStatus, TaskStatus};
use crate::sailpoint::{ApiError, Client, ListQuery, NoopObserver};
use output::Printer;
use progress::ProgressLine;

/// Runs `tasks`; returns 0 on success, 1 on an API or network failure (or a refusal), 2 on
/// a usage or configuration error. Errors go to stderr.
pub async fn run(args: TasksArgs) -> ExitCode {
    match execute(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            if let Some(hint) = err.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}

async fn execute(args: TasksArgs) -> Result<(), TasksError> {
    let tenant = tenant::select(&args.tenant, &args.config_file)?;
    let client = Client::new(&tenant, Arc::new(NoopObserver))?;
    let printer = Printer::new(args.output);
    match args.command {
        TasksCommand::Pending(a) => pending(&client, &a, &printer).await,
        TasksCommand::List(a) => list(&client, &a, &printer).await,
        TasksCommand::Get(a) => get(&client, &a, &printer).await,
        TasksCommand::Complete(a) => {
            let endpoint = format!("PATCH {}/task-status/{}", tenant.api_root(), a.id);
            complete(&client, &a, &endpoint, &printer).await
        }
    }
}

/// `tasks pending [--count]`.
async fn pending(client: &Client, a: &PendingArgs, printer: &Printer) -> Result<(), TasksError> {
    if a.count {
        let count = client.pending_count().await?;
        return printer.count(count);
    }
    let tasks = client.pending_tasks().await?;
    printer.tasks(&tasks, "no pending tasks")
}

/// `tasks list`: one page, or every page with `--all`.
async fn list(client: &Client, a: &ListArgs, printer: &Printer) -> Result<(), TasksError> {
    let query = ListQuery {
        filters: a.filters.clone().filter(|f| !f.trim().is_empty()),
        sorters: Some(a.sorters.clone()).filter(|s| !s.trim().is_empty()),
        count: false,
    };
    let tasks = if a.all {
        read_all(client, query).await?
    } else {
        client.list_page(&query, a.offset, a.limit).await?.items
    };
    printer.tasks(&tasks, "no tasks match")
}

/// Every page of the list; a task seen twice (the list shifted while paging) is kept once.
/// The total is only asked for (`count=true` costs the API work) when a progress line
/// will show it.
async fn read_all(client: &Client, mut query: ListQuery) -> Result<Vec<TaskStatus>, ApiError> {
    let interactive = std::io::stderr().is_terminal();
    query.count = interactive;
    let mut progress = ProgressLine::new(interactive);
    let mut total = None;
    let mut seen = HashSet::new();
    let mut tasks = Vec::new();
    let pages = client.list_stream(query);
    futures::pin_mut!(pages);
    while let Some(page) = pages.next().await {
        let page = page?;
        total = total.or(page.total);
        tasks.extend(page.items.into_iter().filter(|t| seen.insert(t.id.clone())));
        progress.update(tasks.len() as u64, total);
    }
    progress.finish();
    Ok(tasks)
}

/// `tasks get ID`.
async fn get(client: &Client, a: &GetArgs, printer: &Printer) -> Result<(), TasksError> {
    let task = client.task_status(&a.id).await?;
    printer.task(&task)
}

/// `tasks complete ID --status S [--yes] [--force]`: checks the task is pending, then
/// prints the patch (dry run) or sends it and prints the updated task.
async fn complete(
    client: &Client,
    a: &CompleteArgs,
    endpoint: &str,
    printer: &Printer,
) -> Result<(), TasksError> {
    let task = client.task_status(&a.id).await?;
    if !task.is_pending() && !a.force {
        return Err(TasksError::Refused(not_pending_message(&task)));
    }
    let patch = completion_patch(&CompletionStatus::from(a.status), Utc::now());
    if !a.yes {
        eprintln!("dry run: nothing was sent; add --yes to send this patch: {endpoint}");
        return printer.patch(&patch);
    }
    let updated = client.update_task_status(&a.id, &patch).await?;
    printer.task(&updated)
}

fn not_pending_message(task: &TaskStatus) -> String {
    format!(
        "task {} is not pending (status {}, completed {}); refusing to change it \
         (use --force to overwrite a finished task)",
        render::clean(&task.id),
        render::status_text(task),
        render::time_text(task.completed.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_task_and_its_state() {
        let task: TaskStatus = serde_json::from_value(serde_json::json!({
            "id": "abc", "created": "2024-01-01T00:00:00Z",
            "completed": "2024-01-01T01:00:00.500Z", "completionStatus": "SUCCESS"
        }))
        .unwrap();
        assert_eq!(
            not_pending_message(&task),
            "task abc is not pending (status SUCCESS, completed 2024-01-01T01:00:00Z); \
             refusing to change it (use --force to overwrite a finished task)"
        );
    }
}
