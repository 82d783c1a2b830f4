//! Configuration reload (SIGHUP) and graceful shutdown (SIGTERM) of the real
//! `sailpoint-task-exporter serve` binary, against simulated tenants in this process.
//!
//! Each tenant has its own simulator on a manual clock with scripted tasks, so the number
//! of completions each tenant must have counted is known exactly at every step.

use test_support::exposition;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use exposition::Sample;
use sailpoint_simulator::{
    DEMO_CLIENT_SECRET, Faults, NewTask, Scenario, SimConfig, SimHandle, Simulator,
};
use sailpoint_task_exporter::sailpoint::model::CompletionStatus;
use test_support::daemon::{Daemon, config_dir};

/// Scraping the daemon under test, parsed.
trait Scrape {
    async fn metrics(&self) -> Vec<Sample>;
    async fn wait_for(&self, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample>;
}

impl Scrape for Daemon {
    async fn metrics(&self) -> Vec<Sample> {
        self.samples().await
    }

    /// Scrapes until `check` holds (up to 30 s); returns the samples that satisfied it.
    async fn wait_for(&self, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        self.wait_for_samples(what, Duration::from_secs(30), check)
            .await
    }
}

/// An empty simulated tenant on a manual clock.
async fn sim() -> SimHandle {
    let cfg = SimConfig::new(11)
        .with_scenario(Scenario::Empty)
        .with_manual_clock(Utc::now().trunc_subsecs(0));
    Simulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// One tenant entry of the configuration file: 1 s intervals unless `settings` (key,
/// value pairs) say otherwise.
fn tenant_yaml(name: &str, sim: &SimHandle, settings: &[(&str, &str)]) -> String {
    let mut entry = format!(
        "  - name: {name}\n    base_url: {}\n    client_id: {}\n    client_secret: {DEMO_CLIENT_SECRET}\n",
        sim.base_url(),
        sim.client_id()
    );
    let defaults = [("pending_interval", "1s"), ("completed_interval", "1s")];
    for (key, value) in defaults
        .iter()
        .filter(|(k, _)| settings.iter().all(|(s, _)| s != k))
    {
        entry.push_str(&format!("    {key}: {value}\n"));
    }
    for (key, value) in settings {
        entry.push_str(&format!("    {key}: {value}\n"));
    }
    entry
}

fn config_yaml(tenants: &[String]) -> String {
    format!(
        "web:\n  listen_address: \"127.0.0.1:0\"\ntenants:\n{}",
        tenants.concat()
    )
}

/// Adds `n` account aggregations that run for one simulated second and lets them finish.
fn complete_tasks(sim: &SimHandle, n: usize) {
    let now = sim.now();
    for _ in 0..n {
        sim.add_task(
            NewTask::account_aggregation("Reload Source")
                .created(now)
                .launched(now)
                .completes(now + TimeDelta::seconds(1), CompletionStatus::Success),
        );
    }
    sim.advance(Duration::from_secs(2));
}

fn completed(samples: &[Sample], tenant: &str) -> f64 {
    exposition::sum(
        samples,
        "sailpoint_tasks_completed_total",
        &[("tenant", tenant)],
    )
}

fn gauge(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition::value(samples, name, labels)
}

fn last_poll(samples: &[Sample], tenant: &str, list: &str) -> f64 {
    gauge(
        samples,
        "sailpoint_exporter_last_poll_success_timestamp_seconds",
        &[("tenant", tenant), ("list", list)],
    )
    .unwrap_or(0.0)
}

const RELOAD_OK: &str = "sailpoint_exporter_config_last_reload_successful";
const RELOAD_TIME: &str = "sailpoint_exporter_config_last_reload_success_timestamp_seconds";

/// Log lines that mention the tenant (`tenant=A` or `tenant="A"`) and contain `text`.
fn log_lines(log: &str, tenant: &str, text: &str) -> usize {
    let labels = [format!("tenant={tenant}"), format!("tenant=\"{tenant}\"")];
    log.lines()
        .filter(|l| l.contains(text) && l.split_whitespace().any(|w| labels.iter().any(|x| x == w)))
        .count()
}

/// Writes `yaml` to `path` (in a temporary folder, next to the daemon's log), starts the
/// daemon with it and waits until it is ready.
async fn start_ready(path: &Path, yaml: impl AsRef<[u8]>) -> Daemon {
    std::fs::write(path, yaml).unwrap();
    let log = path.with_file_name("daemon.log");
    let daemon = Daemon::start(crate::BIN, path, &log).await;
    daemon.wait_ready().await;
    daemon
}

/// Completes three tasks on `a` and two on `b` and waits until tenants A and B count them.
async fn three_on_a_two_on_b(daemon: &Daemon, a: &SimHandle, b: &SimHandle) {
    complete_tasks(a, 3);
    complete_tasks(b, 2);
    daemon
        .wait_for("A = 3 and B = 2 completions", |s| {
            completed(s, "A") == 3.0 && completed(s, "B") == 2.0
        })
        .await;
}

/// Reloads with `yaml` and waits until the daemon reports a successful load after now.
async fn reload(daemon: &Daemon, path: &Path, yaml: &str) -> Vec<Sample> {
    let before = gauge(&daemon.metrics().await, RELOAD_TIME, &[]).unwrap_or(0.0);
    std::fs::write(path, yaml).unwrap();
    daemon.signal("HUP");
    // The two reload gauges are separate series, set one after the other; a scrape can
    // fall between the two writes, so wait until both show the reload.
    daemon
        .wait_for("a successful reload", |s| {
            gauge(s, RELOAD_TIME, &[]).unwrap_or(0.0) > before
                && gauge(s, RELOAD_OK, &[]) == Some(1.0)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_only_the_changed_tenant_and_refuses_an_invalid_file() {
    let (a, b, c) = (sim().await, sim().await, sim().await);
    let (_dir, path) = config_dir();
    let a_yaml = tenant_yaml("A", &a, &[]);
    let b_yaml = |interval: &str| tenant_yaml("B", &b, &[("pending_interval", interval)]);
    let daemon = start_ready(&path, config_yaml(&[a_yaml.clone(), b_yaml("1s")])).await;

    three_on_a_two_on_b(&daemon, &a, &b).await;

    // B's pending interval changes: only B restarts; A keeps its counters and state.
    let samples = reload(
        &daemon,
        &path,
        &config_yaml(&[a_yaml.clone(), b_yaml("2s")]),
    )
    .await;
    let reloaded_at = gauge(&samples, RELOAD_TIME, &[]).unwrap();
    assert_eq!(gauge(&samples, RELOAD_OK, &[]), Some(1.0));
    assert_eq!(
        completed(&samples, "A"),
        3.0,
        "A's counters reset by the reload"
    );
    let log = daemon.log_text();
    assert_eq!(
        log_lines(&log, "B", "tenant settings changed: restarting it"),
        1,
        "{log}"
    );
    assert_eq!(log_lines(&log, "A", "restarting"), 0, "{log}");
    daemon
        .wait_for("B polled again after the reload", |s| {
            last_poll(s, "B", "pending") > reloaded_at
                && last_poll(s, "B", "completed") > reloaded_at
        })
        .await;
    complete_tasks(&a, 2);
    complete_tasks(&b, 2);
    daemon
        .wait_for("A = 5 and B = 4 completions", |s| {
            completed(s, "A") == 5.0 && completed(s, "B") == 4.0
        })
        .await;
    assert_eq!(
        log_lines(&daemon.log_text(), "A", "primed"),
        1,
        "A was primed again"
    );

    // An invalid file is refused: the gauge drops to 0 and the running tenants go on.
    let before = completed(&daemon.metrics().await, "A");
    std::fs::write(&path, "tenants:\n  - name: A\n    base_url: not a url\n").unwrap();
    daemon.signal("HUP");
    daemon
        .wait_for("the refused reload", |s| {
            gauge(s, RELOAD_OK, &[]) == Some(0.0)
        })
        .await;
    assert!(
        daemon.log_text().contains("reload refused"),
        "{}",
        daemon.log_text()
    );
    complete_tasks(&a, 1);
    let samples = daemon
        .wait_for("A = 6 after the refused reload", |s| {
            completed(s, "A") == before + 1.0
        })
        .await;
    assert_eq!(completed(&samples, "A"), 6.0);

    // A new tenant C appears with a reload.
    let c_yaml = tenant_yaml("C", &c, &[]);
    let samples = reload(
        &daemon,
        &path,
        &config_yaml(&[a_yaml, b_yaml("2s"), c_yaml]),
    )
    .await;
    assert_eq!(gauge(&samples, RELOAD_OK, &[]), Some(1.0));
    assert!(gauge(&samples, "sailpoint_up", &[("tenant", "C")]).is_some());
    daemon
        .wait_for("C primed", |s| last_poll(s, "C", "completed") > 0.0)
        .await;
    complete_tasks(&c, 2);
    let samples = daemon
        .wait_for("C up with 2 completions", |s| {
            gauge(s, "sailpoint_up", &[("tenant", "C")]) == Some(1.0) && completed(s, "C") == 2.0
        })
        .await;
    assert_eq!(completed(&samples, "A"), 6.0);
    assert_eq!(completed(&samples, "B"), 4.0);
    assert!(
        !daemon.log_text().contains("panicked"),
        "{}",
        daemon.log_text()
    );
}

/// Removal is removal: a tenant removed by a reload loses every series (and its status
/// page entry) at the next scrape, so no frozen `sailpoint_up` or last-poll value keeps an
/// alert firing; added again, it resumes from its state file and counts what completed
/// while it was away, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_removed_by_reload_leaves_no_series_and_resumes_when_added_again() {
    let (a, b) = (sim().await, sim().await);
    let (dir, path) = config_dir();
    let storage = format!("storage:\n  path: {}\n", dir.path().join("state").display());
    let with_storage = |tenants: &[String]| format!("{storage}{}", config_yaml(tenants));
    let (a_yaml, b_yaml) = (tenant_yaml("A", &a, &[]), tenant_yaml("B", &b, &[]));
    let daemon = start_ready(&path, with_storage(&[a_yaml.clone(), b_yaml.clone()])).await;
    three_on_a_two_on_b(&daemon, &a, &b).await;

    let samples = reload(&daemon, &path, &with_storage(std::slice::from_ref(&a_yaml))).await;
    let of_b: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.labels.get("tenant").is_some_and(|t| t == "B"))
        .collect();
    assert!(
        of_b.is_empty(),
        "B's series are still served: {} of them, e.g. {:?}",
        of_b.len(),
        of_b.first()
    );
    assert_eq!(completed(&samples, "A"), 3.0);
    assert_eq!(
        gauge(&samples, "sailpoint_up", &[("tenant", "A")]),
        Some(1.0)
    );
    let status = match daemon.get("/api/v1/status").await {
        Ok((200, body)) => body,
        other => panic!("status API: {other:?}"),
    };
    assert!(!status.contains("\"B\""), "{status}");

    // One completion while B is not watched; added again, B resumes from its file (2) and
    // counts it (3), without priming.
    complete_tasks(&b, 1);
    reload(&daemon, &path, &with_storage(&[a_yaml, b_yaml])).await;
    let samples = daemon
        .wait_for("B back with 3 completions", |s| {
            gauge(s, "sailpoint_up", &[("tenant", "B")]) == Some(1.0) && completed(s, "B") == 3.0
        })
        .await;
    assert_eq!(completed(&samples, "A"), 3.0);
    let log = daemon.log_text();
    assert_eq!(log_lines(&log, "B", "primed"), 1, "B primed again:\n{log}");
    assert_eq!(
        log_lines(&log, "B", "resuming from the state file"),
        1,
        "{log}"
    );
}

/// A tenant restarted by a reload must not lose the completions that happened between
/// its last poll before the reload and its first poll after it: its counters live on in
/// the same process, so nothing tells Prometheus that anything was missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_restarted_by_reload_counts_completions_of_the_restart_window() {
    let b = sim().await;
    let (_dir, path) = config_dir();
    // Long intervals: after priming, B does not poll again before the reload.
    let slow = tenant_yaml(
        "B",
        &b,
        &[("pending_interval", "1m"), ("completed_interval", "2m")],
    );
    let daemon = start_ready(&path, config_yaml(&[slow])).await;

    complete_tasks(&b, 3);
    let fast = tenant_yaml("B", &b, &[]);
    let samples = reload(&daemon, &path, &config_yaml(&[fast])).await;
    let reloaded_at = gauge(&samples, RELOAD_TIME, &[]).unwrap();
    let samples = daemon
        .wait_for("two polls of each list after the reload", |s| {
            last_poll(s, "B", "pending") > reloaded_at + 1.5
                && last_poll(s, "B", "completed") > reloaded_at + 1.5
        })
        .await;
    assert_eq!(
        completed(&samples, "B"),
        3.0,
        "completions finished while the tenant restarted were taken for backlog"
    );
}

/// A changed `poll_timeout` must take effect on reload like any other tenant setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_changed_poll_timeout() {
    let b = sim().await;
    // Every answer takes 1.5 s: a 1 s poll deadline can never be met, 20 s always.
    b.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::none()
    });
    let (dir, path) = config_dir();
    let with_timeout = |t: &str| {
        config_yaml(&[tenant_yaml(
            "B",
            &b,
            &[("request_timeout", "10s"), ("poll_timeout", t)],
        )])
    };
    std::fs::write(&path, with_timeout("1s")).unwrap();
    let daemon = Daemon::start(crate::BIN, &path, &dir.path().join("daemon.log")).await;
    daemon
        .wait_for("a failed poll under the 1 s deadline", |s| {
            exposition::sum(
                s,
                "sailpoint_exporter_poll_errors_total",
                &[("tenant", "B")],
            ) >= 1.0
        })
        .await;

    reload(&daemon, &path, &with_timeout("20s")).await;
    let samples = daemon
        .wait_for("B up once polls may take 20 s", |s| {
            gauge(s, "sailpoint_up", &[("tenant", "B")]) == Some(1.0)
        })
        .await;
    assert_eq!(gauge(&samples, RELOAD_OK, &[]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_promptly_with_exit_code_zero() {
    let a = sim().await;
    let (_dir, path) = config_dir();
    let mut daemon = start_ready(&path, config_yaml(&[tenant_yaml("A", &a, &[])])).await;
    // A scrape is in flight or just done, and polls are running on their schedule.
    assert_eq!(daemon.get("/metrics").await.map(|r| r.0), Ok(200));

    let sent = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(5)).await;
    let took = sent.elapsed();
    let log = daemon.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status; log:\n{log}"
    );
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    println!("SIGTERM to exit: {took:?}");
}
