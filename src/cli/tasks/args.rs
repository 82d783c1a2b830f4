//! The `tasks` command line: subcommands, options and their `--help` texts.
//!
//! Tenant and output options are `global`, so an operator can write them before or after
//! the subcommand (`tasks --tenant acme get ID` and `tasks get ID --tenant acme` both work).

use clap::{Args, Subcommand, ValueEnum};
use url::Url;

use crate::sailpoint::model::CompletionStatus;

/// Environment variable holding the client secret in `--base-url` mode. A secret on the
/// command line would show in `ps` and shell history, so there is no flag for it.
pub const CLIENT_SECRET_ENV: &str = "SAILPOINT_CLIENT_SECRET";

const TASKS_HELP: &str = "\
Tenant selection:
  With a configuration file (--config.file), --tenant NAME picks a tenant; it may be
  omitted when the file has exactly one. Without a configuration file, give --base-url and
  --client-id; the client secret is read from the environment variable
  SAILPOINT_CLIENT_SECRET (never from a flag).

Exit codes: 0 success, 1 API or network error (the message names the operation, the HTTP
status and SailPoint's trackingId), 2 usage or configuration error.

Examples:
  sailpoint-task-exporter tasks pending
  sailpoint-task-exporter tasks --tenant acme list --filters 'completionStatus eq \"ERROR\"'
  SAILPOINT_CLIENT_SECRET=... sailpoint-task-exporter tasks \\
      --base-url https://acme.api.identitynow.com --client-id 2c91... get 2c9180835d2e5168015d32f890ca1581
  sailpoint-task-exporter tasks complete 2c9180835d2e5168015d32f890ca1581 --status error --yes";

/// `tasks`: the five task-status operations for operators, with the daemon's
/// configuration, credentials, rate limits and retries.
#[derive(Debug, Args)]
#[command(after_help = TASKS_HELP)]
pub struct TasksArgs {
    /// Configuration file (YAML or TOML by extension) the tenant is read from, unless
    /// `--base-url` is given.
    #[arg(
        long = "config.file",
        global = true,
        default_value = "sailpoint-task-exporter.yaml",
        env = "SAILPOINT_EXPORTER_CONFIG"
    )]
    pub config_file: std::path::PathBuf,
    /// Which tenant to talk to (from the configuration file or from flags).
    #[command(flatten)]
    pub tenant: Box<TenantArgs>,
    /// Output format: an aligned table for people, or one JSON document for scripts
    /// (the API's own field names).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The operation to run.
    #[command(subcommand)]
    pub command: TasksCommand,
}

/// Which tenant to talk to: a configured one, or one given entirely by flags.
#[derive(Debug, Clone, Default, Args)]
pub struct TenantArgs {
    /// Tenant name from the configuration file (default: the only configured tenant).
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "base_url")]
    pub tenant: Option<String>,
    /// API base URL, e.g. `https://acme.api.identitynow.com`; no configuration file is
    /// read. Needs --client-id and the secret in SAILPOINT_CLIENT_SECRET.
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<Url>,
    /// OAuth client id (of a personal access token for `complete`), with --base-url.
    #[arg(long, global = true, value_name = "ID", requires = "base_url")]
    pub client_id: Option<String>,
    /// Token endpoint, with --base-url (default: {base-url}/oauth/token).
    #[arg(long, global = true, value_name = "URL", requires = "base_url")]
    pub token_url: Option<Url>,
    /// API version path segment: v2024 (default), v2025, beta...; overrides the
    /// configured one.
    #[arg(long, global = true, value_name = "VERSION")]
    pub api_version: Option<String>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document: a list, an object, or {"count": N}.
    Json,
}

/// The four operator actions.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List the pending (queued or running) tasks, all pages.
    #[command(after_help = "\
Reads GET /task-status/pending-tasks page by page (or `completionStatus isnull` when the
tenant is configured with pending_source: completion_status_isnull). With --count, only
asks for the number (HEAD ... ?count=true) and prints it.

Examples:
  sailpoint-task-exporter tasks pending
  sailpoint-task-exporter tasks pending --count
  sailpoint-task-exporter tasks pending --output json | jq -r '.[].id'")]
    Pending(PendingArgs),
    /// List completed tasks (GET /task-status), one page or all of them.
    #[command(after_help = "\
Without --all, one page of --limit tasks from --offset is read. With --all, every page is
read (a progress indicator shows on stderr when it is a terminal). The API keeps 90 days.
Filterable fields (v2024): id, sourceId, completionStatus, type (eq, in); use upper-case
statuses. Times in the table are UTC.

Examples:
  sailpoint-task-exporter tasks list --limit 20
  sailpoint-task-exporter tasks list --all --filters 'completionStatus in (\"ERROR\",\"TERMINATED\")'
  sailpoint-task-exporter tasks list --filters 'sourceId eq \"2c9180835d2e5168015d32f890ca1581\"' --sorters created")]
    List(ListArgs),
    /// Show one task with its messages (GET /task-status/{id}).
    #[command(after_help = "\
Example:
  sailpoint-task-exporter tasks get 2c9180835d2e5168015d32f890ca1581
  sailpoint-task-exporter tasks get 2c9180835d2e5168015d32f890ca1581 --output json")]
    Get(GetArgs),
    /// Mark a stuck pending task as finished (PATCH /task-status/{id}).
    #[command(after_help = "\
Sends a JSON Patch replacing /completionStatus (upper-case) and /completed (now, UTC).
Without --yes nothing is sent: the patch is printed so it can be reviewed. A task that is
not pending is refused unless --force is given.

The PATCH needs a user-context token: a personal access token (PAT) with the scope
idn:task-management:write, owned by an admin user level; API-client tokens get HTTP 403.

Examples:
  sailpoint-task-exporter tasks complete 2c9180835d2e5168015d32f890ca1581 --status error
  sailpoint-task-exporter tasks complete 2c9180835d2e5168015d32f890ca1581 --status error --yes")]
    Complete(CompleteArgs),
}

/// Options of `tasks pending`.
#[derive(Debug, Clone, Args)]
pub struct PendingArgs {
    /// Print only the number of pending tasks (one HEAD request).
    #[arg(long)]
    pub count: bool,
}

/// Largest page the API serves.
const MAX_LIMIT: i64 = 250;

/// Options of `tasks list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Filter expression in SailPoint's filter syntax, e.g. 'completionStatus eq "ERROR"'.
    #[arg(long, value_name = "EXPR")]
    pub filters: Option<String>,
    /// Sort order: -created (newest first) or created.
    #[arg(
        long,
        value_name = "SORTERS",
        default_value = "-created",
        allow_hyphen_values = true
    )]
    pub sorters: String,
    /// Tasks to read in one page (1-250).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT), conflicts_with = "all")]
    pub limit: u32,
    /// Tasks to skip before the page.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "all")]
    pub offset: u32,
    /// Read every page to the end (up to 90 days of history).
    #[arg(long)]
    pub all: bool,
}

/// Options of `tasks get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Task id (32 hex characters), e.g. from `tasks pending` or the metric's `id` label.
    pub id: String,
}

/// Options of `tasks complete`.
#[derive(Debug, Clone, Args)]
pub struct CompleteArgs {
    /// Task id.
    pub id: String,
    /// Completion status to record.
    #[arg(long, value_enum)]
    pub status: StatusArg,
    /// Send the PATCH (without it, only print the patch).
    #[arg(long)]
    pub yes: bool,
    /// Overwrite a task that is not pending.
    #[arg(long)]
    pub force: bool,
}

/// The completion statuses an operator may record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// ERROR: the task died (the usual choice for a stuck task).
    Error,
    /// TERMINATED: the task was stopped on purpose.
    Terminated,
    /// SUCCESS: the task did its work but its record never closed.
    Success,
    /// WARNING: finished with problems.
    Warning,
    /// TEMPERROR: a temporary failure; a later run may succeed.
    Temperror,
}

impl From<StatusArg> for CompletionStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Error => CompletionStatus::Error,
            StatusArg::Terminated => CompletionStatus::Terminated,
            StatusArg::Success => CompletionStatus::Success,
            StatusArg::Warning => CompletionStatus::Warning,
            StatusArg::Temperror => CompletionStatus::TempError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        tasks: TasksArgs,
    }

    fn parse(args: &[&str]) -> Result<TasksArgs, clap::Error> {
        let argv = std::iter::once("tasks").chain(args.iter().copied());
        Harness::try_parse_from(argv).map(|h| h.tasks)
    }

    #[test]
    fn sorters_accepts_a_leading_hyphen() {
        let a = parse(&["list", "--sorters", "-created"]).unwrap();
        let TasksCommand::List(l) = a.command else {
            panic!("not list")
        };
        assert_eq!(l.sorters, "-created");
        assert_eq!(l.limit, 50);
        assert_eq!(l.offset, 0);
        assert!(!l.all);
    }

    #[test]
    fn global_options_go_after_the_subcommand() {
        let a = parse(&["get", "abc", "--tenant", "acme", "-o", "json"]).unwrap();
        assert_eq!(a.tenant.tenant.as_deref(), Some("acme"));
        assert_eq!(a.output, OutputFormat::Json);
    }

    #[test]
    fn usage_errors_are_refused_by_the_parser() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["list", "--all", "--limit", "5"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["list", "--limit", "251"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["list", "--limit", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["complete", "x", "--status", "done"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(kind(&["complete", "x"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&[
                "pending",
                "--tenant",
                "a",
                "--base-url",
                "http://127.0.0.1:1"
            ]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["pending", "--client-id", "x"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["pending", "--client-secret", "x"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn status_maps_to_the_wire_form() {
        let a = parse(&["complete", "x", "--status", "temperror", "--yes"]).unwrap();
        let TasksCommand::Complete(c) = a.command else {
            panic!("not complete")
        };
        assert!(c.yes);
        assert!(!c.force);
        assert_eq!(CompletionStatus::from(c.status).as_str(), "TEMPERROR");
        assert_eq!(CompletionStatus::from(StatusArg::Error).as_str(), "ERROR");
    }
}
