//! End-to-end tests of `sailpoint-task-exporter tasks …`: the real binary against the
//! simulated tenant on loopback, checked against the simulator's ground truth.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sailpoint_simulator::{
    ClockMode, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, NewTask, Scenario, SimConfig, SimHandle,
    Simulator,
};
use sailpoint_task_exporter::sailpoint::model::{
    CompletionStatus, LocalizedMessage, TaskStatus, TaskStatusMessage,
};

use crate::BIN;

/// The outcome of one run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and the client secret `secret` in the environment, from an
/// empty working directory so no stray configuration file is picked up.
async fn run_with(args: &[&str], secret: Option<&str>, dir: &Path) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SAILPOINT_CLIENT_SECRET")
        .env_remove("SAILPOINT_EXPORTER_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(secret) = secret {
        cmd.env("SAILPOINT_CLIENT_SECRET", secret);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the binary did not finish within a minute")
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Runs `tasks <args> --base-url SIM --client-id ID` with the simulator's secret.
async fn tasks(sim: &SimHandle, args: &[&str]) -> Run {
    tasks_with_secret(sim, args, DEMO_CLIENT_SECRET).await
}

async fn tasks_with_secret(sim: &SimHandle, args: &[&str], secret: &str) -> Run {
    let base = sim.base_url();
    let mut all = vec!["tasks"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--base-url", &base, "--client-id", DEMO_CLIENT_ID]);
    let dir = tempfile::tempdir().unwrap();
    run_with(&all, Some(secret), dir.path()).await
}

/// An empty tenant frozen at the current second.
async fn empty_sim() -> (SimHandle, DateTime<Utc>) {
    let clock = ClockMode::manual_now();
    let ClockMode::Manual { start } = clock else {
        unreachable!()
    };
    let cfg = SimConfig::new(11)
        .with_scenario(Scenario::Empty)
        .with_manual_clock(start);
    (started(cfg).await, start)
}

/// An empty tenant with one Active Directory aggregation queued for four hours: the
/// tenant, its start and the task's id.
async fn with_a_queued_aggregation() -> (SimHandle, DateTime<Utc>, String) {
    let (sim, start) = empty_sim().await;
    let task = NewTask::account_aggregation("Active Directory").created(start - hours(4));
    let id = sim.add_task(task);
    (sim, start, id)
}

/// `task` created and launched `at` (no queue wait).
fn launched_at(task: NewTask, at: DateTime<Utc>) -> NewTask {
    task.created(at).launched(at)
}

/// The stuck-aggregation scenario (seed `seed`), its clock frozen at the wall clock.
async fn stuck_tenant(seed: u64) -> SimHandle {
    let cfg = SimConfig::new(seed).with_scenario(Scenario::StuckAggregation);
    started(cfg.with_manual_clock(Utc::now())).await
}

/// A simulated tenant started from `cfg` on loopback.
async fn started(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

fn message(level: &str, text: &str) -> TaskStatusMessage {
    TaskStatusMessage {
        level: level.into(),
        localized_text: Some(LocalizedMessage {
            locale: "en-US".into(),
            message: text.into(),
        }),
        key: "cli_test_message".into(),
        parameters: None,
    }
}

/// Splits a table into header and rows of cells, cutting every line at the character
/// positions where the header's columns start (so misalignment shows as wrong cells).
fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header: Vec<char> = lines.next().expect("a header line").chars().collect();
    let mut starts = Vec::new();
    for (i, c) in header.iter().enumerate() {
        if *c != ' ' && (i == 0 || header[i - 1] == ' ') {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        let chars: Vec<char> = line.chars().collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &from)| {
                let to = starts
                    .get(n + 1)
                    .copied()
                    .unwrap_or(chars.len())
                    .min(chars.len());
                chars[from.min(chars.len())..to]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let header_line: String = header.iter().collect();
    (cut(&header_line), lines.map(cut).collect())
}

/// A run that failed on an API answer: exit 1, nothing on stdout, and an error that starts
/// with `what` (operation and status) and carries SailPoint's tracking id.
fn assert_api_error(run: &Run, what: &str) {
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let prefix = format!("error: {what} (trackingId ");
    assert!(run.stderr.starts_with(&prefix), "{}", run.stderr);
}

/// The table's header, as an operator reads it.
const HEADER: &str = "ID TASK SOURCE STATUS CREATED LAUNCHED COMPLETED DURATION PROGRESS";

/// The table's column names.
fn columns() -> Vec<&'static str> {
    HEADER.split(' ').collect()
}

fn row_of<'a>(rows: &'a [Vec<String>], id: &str) -> &'a Vec<String> {
    rows.iter()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("no row for {id} in {rows:?}"))
}

fn by_id(mut tasks: Vec<TaskStatus>) -> Vec<TaskStatus> {
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    tasks
}

/// Tasks as the API puts them on the wire (millisecond timestamps), ordered by id, so
/// the CLI's JSON can be compared with the simulator's in-process ground truth.
fn wire(tasks: Vec<TaskStatus>) -> serde_json::Value {
    serde_json::to_value(by_id(tasks)).unwrap()
}

/// The CLI's JSON list, ordered by id.
fn wire_of(stdout: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(stdout).expect("stdout is JSON");
    let mut items = value.as_array().expect("a JSON list").clone();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::Value::Array(items)
}

fn progress_cell(t: &TaskStatus) -> String {
    match t.progress.as_deref() {
        Some(p) if !p.is_empty() => format!("{}% {p}", t.percent_complete),
        _ => format!("{}%", t.percent_complete),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_table_shows_the_stuck_task_with_exact_values() {
    let (sim, start) = empty_sim().await;
    // 3h 30m 15s ago: the CLI's wall clock runs a little ahead of the frozen simulator,
    // and the row must read "3h 30m" for the next 44 seconds.
    let created = start - hours(3) - chrono::Duration::minutes(30) - chrono::Duration::seconds(15);
    let stuck = sim.add_task(launched_at(
        NewTask::account_aggregation("Active Directory"),
        created,
    ));
    let queued = sim.add_task(NewTask::identity_refresh().created(start - hours(1)));

    let run = tasks(&sim, &["pending"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let (header, rows) = parse_table(&run.stdout);
    assert_eq!(header, columns());
    assert_eq!(rows.len(), 2);
    let truth = sim.task(&stuck).unwrap();
    let created_text = created.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        row_of(&rows, &stuck),
        &vec![
            stuck.clone(),
            "Cloud Account Aggregation".to_string(),
            "Active Directory [source]".to_string(),
            "PENDING".to_string(),
            created_text.clone(),
            created_text,
            "-".to_string(),
            "3h 30m".to_string(),
            progress_cell(&truth),
        ]
    );
    let q = row_of(&rows, &queued);
    assert_eq!(
        (q[2].as_str(), q[3].as_str(), q[5].as_str()),
        ("-", "PENDING", "-")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_json_and_count_equal_the_ground_truth() {
    let sim = stuck_tenant(5).await;
    let truth = sim.pending_tasks();
    assert!(!truth.is_empty(), "the scenario has pending tasks");

    let run = tasks(&sim, &["pending", "--output", "json"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(wire_of(&run.stdout), wire(truth.clone()));

    let run = tasks(&sim, &["pending", "--count"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, format!("{}\n", truth.len()));
    let run = tasks(&sim, &["pending", "--count", "-o", "json"]).await;
    let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got, serde_json::json!({ "count": truth.len() }));
    assert_eq!(sim.request_count().get_pending_task_headers, 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_table_row_has_exact_values() {
    let (sim, start) = empty_sim().await;
    let created = start - hours(2);
    let launched = created + chrono::Duration::seconds(30);
    let completed = launched + chrono::Duration::seconds(12 * 60 + 5);
    let id = sim.add_task(
        NewTask::account_aggregation("Workday")
            .created(created)
            .launched(launched)
            .completes(completed, CompletionStatus::Error),
    );
    let run = tasks(&sim, &["list"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let (header, rows) = parse_table(&run.stdout);
    assert_eq!(header, columns());
    let truth = sim.task(&id).unwrap();
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        rows,
        vec![vec![
            id.clone(),
            "Cloud Account Aggregation".to_string(),
            "Workday [source]".to_string(),
            "ERROR".to_string(),
            fmt(created),
            fmt(launched),
            fmt(completed),
            "12m 5s".to_string(),
            progress_cell(&truth),
        ]]
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_json_equals_the_ground_truth_across_pages() {
    let sim = started(
        SimConfig::new(3)
            .with_history(620)
            .with_manual_clock(Utc::now()),
    )
    .await;
    let mut truth: Vec<TaskStatus> = sim
        .tasks()
        .into_iter()
        .filter(|t| !t.is_pending())
        .collect();
    assert!(truth.len() > 500, "history spans several 250-task pages");
    truth.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));

    let run = tasks(&sim, &["list", "--all", "-o", "json"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let got: Vec<TaskStatus> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got.len(), truth.len());
    assert_eq!(wire_of(&run.stdout), wire(truth.clone()));
    assert!(
        got.windows(2).all(|w| w[0].created >= w[1].created),
        "newest first"
    );
    // `--all` asks for the total, so it stops after the last (possibly short) page.
    assert_eq!(
        sim.request_count().get_task_status_list,
        truth.len().div_ceil(250) as u64
    );

    let run = tasks(
        &sim,
        &["list", "--limit", "5", "--offset", "2", "-o", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let page: Vec<TaskStatus> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(page, got[2..7].to_vec());

    let run = tasks(
        &sim,
        &[
            "list",
            "--all",
            "--sorters",
            "created",
            "--filters",
            r#"completionStatus eq "ERROR""#,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let errors: Vec<TaskStatus> = serde_json::from_str(&run.stdout).unwrap();
    let expected: Vec<TaskStatus> = truth
        .iter()
        .filter(|t| t.completion_status == Some(CompletionStatus::Error))
        .cloned()
        .collect();
    assert!(!expected.is_empty(), "the steady tenant has failures");
    assert_eq!(wire_of(&run.stdout), wire(expected));
    assert!(
        errors.windows(2).all(|w| w[0].created <= w[1].created),
        "oldest first"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_one_task_with_its_messages() {
    let (sim, start) = empty_sim().await;
    let id = sim.add_task(
        launched_at(NewTask::group_aggregation("Salesforce"), start - hours(1))
            .completes(
                start - chrono::Duration::minutes(10),
                CompletionStatus::Warning,
            )
            .messages(vec![message("WARN", "3 groups skipped: missing owner")]),
    );
    let run = tasks(&sim, &["get", &id]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!("ID:          {id}\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("TASK:        Cloud Group Aggregation\n")
    );
    assert!(run.stdout.contains("SOURCE:      Salesforce [source]\n"));
    assert!(run.stdout.contains("STATUS:      WARNING\n"));
    assert!(run.stdout.contains("DURATION:    50m\n"));
    assert!(
        run.stdout
            .ends_with("MESSAGES:    1\n  WARN   3 groups skipped: missing owner\n")
    );

    let run = tasks(&sim, &["get", &id, "-o", "json"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got, serde_json::to_value(sim.task(&id).unwrap()).unwrap());
    assert_eq!(got["messages"][0]["type"], "WARN");

    let run = tasks(&sim, &["get", &id, "--api-version", "beta", "-o", "json"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let beta: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(beta, got);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_without_yes_prints_the_patch_and_sends_nothing() {
    let (sim, _, id) = with_a_queued_aggregation().await;
    // The patch stamps the CLI's wall clock, in milliseconds.
    let before = Utc::now().trunc_subsecs(3);
    let run = tasks(&sim, &["complete", &id, "--status", "error"]).await;
    let after = Utc::now();
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let patch: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let ops = patch.as_array().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        ops[0],
        serde_json::json!({"op": "replace", "path": "/completionStatus", "value": "ERROR"})
    );
    assert_eq!(ops[1]["op"], "replace");
    assert_eq!(ops[1]["path"], "/completed");
    let when = ops[1]["value"].as_str().unwrap();
    assert_eq!(when.len(), "2024-05-17T19:33:16.470Z".len());
    assert!(when.ends_with('Z'));
    let when: DateTime<Utc> = when.parse().unwrap();
    assert!(
        before <= when && when <= after,
        "{before} <= {when} <= {after}"
    );
    assert!(run.stderr.contains("dry run: nothing was sent"));
    assert!(sim.task(&id).unwrap().is_pending());
    assert_eq!(sim.request_count().update_task_status, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_yes_moves_the_task_out_of_the_pending_list() {
    let (sim, start, id) = with_a_queued_aggregation().await;
    let other = sim.add_task(NewTask::identity_refresh().created(start - hours(1)));

    let run = tasks(
        &sim,
        &[
            "complete",
            &id,
            "--status",
            "terminated",
            "--yes",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let printed: TaskStatus = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(printed.id, id);
    assert_eq!(
        printed.completion_status,
        Some(CompletionStatus::Terminated)
    );
    let truth = sim.task(&id).unwrap();
    assert_eq!(truth.completion_status, Some(CompletionStatus::Terminated));
    assert!(truth.completed.is_some());
    assert_eq!(sim.request_count().update_task_status, 1);

    let run = tasks(&sim, &["pending", "-o", "json"]).await;
    let pending: Vec<TaskStatus> = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<&str> = pending.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec![other.as_str()]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_prints_the_updated_task_for_people() {
    let (sim, start) = empty_sim().await;
    let id = sim.add_task(NewTask::account_aggregation("Okta").created(start - hours(4)));
    let run = tasks(&sim, &["complete", &id, "--status", "error", "--yes"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stdout.starts_with(&format!("ID:          {id}\n")));
    assert!(
        run.stdout.contains("STATUS:      ERROR\n"),
        "{}",
        run.stdout
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_refuses_a_task_that_is_not_pending() {
    let (sim, start) = empty_sim().await;
    let id = sim.add_task(
        launched_at(
            NewTask::account_aggregation("Active Directory"),
            start - hours(3),
        )
        .completes(start - hours(2), CompletionStatus::Success),
    );
    let before = sim.task(&id).unwrap();
    let run = tasks(&sim, &["complete", &id, "--status", "error", "--yes"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains(&format!("error: task {id} is not pending (status SUCCESS")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--force"));
    assert_eq!(sim.task(&id).unwrap(), before);
    assert_eq!(sim.request_count().update_task_status, 0);

    let run = tasks(
        &sim,
        &[
            "complete", &id, "--status", "error", "--yes", "--force", "-o", "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        sim.task(&id).unwrap().completion_status,
        Some(CompletionStatus::Error)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_an_api_error_naming_the_operation() {
    let (sim, _) = empty_sim().await;
    let missing = "0123456789abcdef0123456789abcdef";
    for args in [
        vec!["get", missing],
        vec!["complete", missing, "--status", "error"],
    ] {
        let run = tasks(&sim, &args).await;
        assert_api_error(&run, "getTaskStatus: HTTP 404");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_exit_1_without_showing_the_secret() {
    let (sim, _) = empty_sim().await;
    let secret = "wrong-secret-do-not-print";
    let run = tasks_with_secret(&sim, &["pending"], secret).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(run.stderr.contains("error: token:"), "{}", run.stderr);
    assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_is_an_api_error_with_tracking_id() {
    let (sim, _) = empty_sim().await;
    let run = tasks(&sim, &["list", "--filters", r#"nosuchfield eq "x""#]).await;
    assert_api_error(&run, "getTaskStatusList: HTTP 400");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_tenant_is_used_by_name() {
    let (sim, start) = empty_sim().await;
    let id = sim.add_task(NewTask::identity_refresh().created(start - hours(1)));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exporter.yaml");
    let yaml = format!(
        "tenants:\n  - name: acme\n    base_url: {}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret_env: SAILPOINT_CLIENT_SECRET\n  - name: globex\n    base_url: http://127.0.0.1:9\n    client_id: x\n    client_secret: y\n",
        sim.base_url()
    );
    std::fs::write(&file, yaml).unwrap();
    let cfg = file.to_str().unwrap();

    let run = run_with(
        &[
            "tasks",
            "--config.file",
            cfg,
            "--tenant",
            "acme",
            "pending",
            "-o",
            "json",
        ],
        Some(DEMO_CLIENT_SECRET),
        dir.path(),
    )
    .await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(wire_of(&run.stdout), wire(sim.pending_tasks()));
    assert_eq!(wire_of(&run.stdout)[0]["id"], id.as_str());

    let run = run_with(
        &["tasks", "--config.file", cfg, "pending"],
        Some(DEMO_CLIENT_SECRET),
        dir.path(),
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: the configuration has several tenants; choose one with --tenant NAME: acme, globex\n"
    );
    let run = run_with(
        &[
            "tasks",
            "--config.file",
            cfg,
            "pending",
            "--tenant",
            "initech",
        ],
        Some(DEMO_CLIENT_SECRET),
        dir.path(),
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("configured tenants: acme, globex"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stuck_aggregation_walkthrough_clears_the_stuck_task() {
    let sim = stuck_tenant(9).await;
    let now = sim.now();
    let before = sim.pending_tasks();
    let stuck = before
        .iter()
        .find(|t| now - t.created >= chrono::Duration::hours(3))
        .expect("the scenario has a task pending for three hours")
        .id
        .clone();

    let run = tasks(&sim, &["get", &stuck]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stdout.contains("STATUS:      PENDING\n"));
    let run = tasks(&sim, &["complete", &stuck, "--status", "error"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(sim.task(&stuck).unwrap().is_pending());
    let run = tasks(&sim, &["complete", &stuck, "--status", "error", "--yes"]).await;
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);

    let after = sim.pending_tasks();
    assert_eq!(after.len(), before.len() - 1);
    assert!(after.iter().all(|t| t.id != stuck));
    let run = tasks(&sim, &["pending", "--count"]).await;
    assert_eq!(run.stdout, format!("{}\n", after.len()));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_pending_list_leaves_stdout_empty() {
    let (sim, _) = empty_sim().await;
    let run = tasks(&sim, &["pending"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(run.stderr, "no pending tasks\n");
    let run = tasks(&sim, &["pending", "-o", "json"]).await;
    assert_eq!(run.code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap(),
        serde_json::json!([])
    );
    let run = tasks(&sim, &["pending", "--count"]).await;
    assert_eq!(run.stdout, "0\n");
    sim.shutdown().await;
}

/// `list --all` draws its progress line only on a terminal: run under `script(1)`, which
/// gives the binary a pseudo-terminal, with stdout redirected to a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_shows_progress_on_a_terminal_only() {
    // A missing tool fails the test: a silent skip would pass with the feature broken.
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .expect("script(1) is missing: install util-linux (Debian: bsdutils)");
    let sim = started(
        SimConfig::new(3)
            .with_history(600)
            .with_manual_clock(Utc::now()),
    )
    .await;
    let completed = sim.tasks().iter().filter(|t| !t.is_pending()).count();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tasks.json");
    let cmd = format!(
        "{BIN} tasks list --all -o json --base-url {} --client-id {DEMO_CLIENT_ID} > {}",
        sim.base_url(),
        json.display()
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("SAILPOINT_CLIENT_SECRET", DEMO_CLIENT_SECRET)
        .env_remove("SAILPOINT_EXPORTER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(
        terminal.contains(&format!("reading tasks: 250/{completed} (")),
        "{terminal:?}"
    );
    assert!(
        terminal.contains(&format!("reading tasks: {completed}/{completed} (100%)")),
        "{terminal:?}"
    );
    let written: Vec<TaskStatus> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written.len(), completed);

    // Not a terminal: no progress line.
    let run = tasks(&sim, &["list", "--all", "-o", "json"]).await;
    assert_eq!(run.code, 0);
    assert!(!run.stderr.contains("reading tasks"), "{}", run.stderr);
    sim.shutdown().await;
}
