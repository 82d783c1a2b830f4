//! End-to-end test of the whole monitoring path with a REAL Prometheus server (issue 5):
//! two simulated tenants in this process → the real `sailpoint-task-exporter serve` binary
//! → Debian's `prometheus` scraping it with the shipped rules file → the Grafana
//! dashboard's expressions and the alerts, read back through Prometheus's HTTP API.
//!
//! Tenants: `stuck` runs the `stuck-aggregation` scenario at real pace (speed 1), because
//! the simulator divides the stuck task's age by `speed` and the alert's 3h threshold
//! must stay the shipped one; `failing` runs `failing-source` at 300x with a 429 every
//! 7th request, so completions (the failing source's ERROR runs included) and rate-limit
//! retries happen within seconds. The only change to the rules is timing: every `for:`
//! becomes `0s` and the recording group's `interval: 1m` becomes `1s`; every expression
//! and threshold is the shipped one.
//!
//! Then the values: both simulators run on manual clocks that the test moves at wall-clock
//! pace, frozen while the exporter primes (so the primed backlog is known exactly) and
//! frozen again at the end. Once the exporter has polled the frozen tenants and
//! Prometheus has scraped that, the dashboard's expressions for pending tasks (counts,
//! oldest age, the per-task ages) and for completions per status over the run must equal
//! the simulators' ground truth, evaluated at the last scrape's timestamp. The only
//! inexactness allowed is the one `increase()` itself introduces: its extrapolation at the
//! start of a series whose first scraped value was not 0, computed from the samples
//! Prometheus actually holds.
//!
//! Needs `/usr/bin/prometheus` (Debian package `prometheus`, installed by
//! `bash scripts/test.sh`) and `python3` (for `tests/deploy/promql_exprs.py`).

use test_support::exposition;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;
use sailpoint_simulator::{DEMO_CLIENT_SECRET, Faults, Scenario, SimConfig, SimHandle, Simulator};
use sailpoint_task_exporter::metrics::normalize;
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatus};
use serde_json::Value;

/// Everything after the processes are up must be true within this.
const DEADLINE: Duration = Duration::from_secs(75);
/// Time allowed for a process to start answering `/-/ready`.
const STARTUP: Duration = Duration::from_secs(30);
const JOB: &str = "sailpoint-task-exporter";
const STUCK: &str = "stuck";
const FAILING: &str = "failing";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A child process killed (and reaped) when the test ends, however it ends.
struct ProcessGuard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ProcessGuard {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> ProcessGuard {
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ProcessGuard { name, child, log }
    }

    /// Panics with the log tail when the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// The port of the `serving metrics address=…` line the exporter logs once bound.
    async fn logged_listen_port(&mut self) -> u16 {
        let started = Instant::now();
        loop {
            self.assert_running();
            let found = self
                .log_lines_with(&["serving metrics"])
                .iter()
                .flat_map(|l| l.split_whitespace())
                .find_map(|w| w.strip_prefix("address=")?.parse::<SocketAddr>().ok());
            if let Some(addr) = found {
                return addr.port();
            }
            assert!(
                started.elapsed() < STARTUP,
                "{} did not log its address within {STARTUP:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Log lines containing any of `needles`.
    fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| needles.iter().any(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exporter started with `config` (log in `dir`), once ready: its process, its port
/// and an HTTP client for it.
async fn start_exporter(config: &Path, dir: &Path) -> (ProcessGuard, u16, reqwest::Client) {
    let mut exporter = ProcessGuard::spawn(
        "sailpoint-task-exporter",
        Command::new(crate::BIN)
            .arg("serve")
            .arg("--config.file")
            .arg(config),
        dir.join("exporter.log"),
    );
    let port = exporter.logged_listen_port().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    wait_ready(&http, &ready, &mut exporter).await;
    (exporter, port, http)
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn prometheus_binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus");
    assert!(
        path.is_file() && Path::new("/usr/bin/promtool").is_file(),
        "/usr/bin/prometheus and /usr/bin/promtool are missing: run `bash scripts/test.sh`, \
         which installs Debian's `prometheus` package"
    );
    path
}

/// The two simulated tenants and the ground truth the test checks against.
struct Tenants {
    stuck: Arc<SimHandle>,
    failing: Arc<SimHandle>,
}

impl Tenants {
    fn both(&self) -> [(&'static str, &Arc<SimHandle>); 2] {
        [(STUCK, &self.stuck), (FAILING, &self.failing)]
    }
}

async fn start_tenants() -> Tenants {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Manual clocks at the current time: they stand still until `run_clocks` moves them.
    let start = chrono::Utc::now();
    let stuck = SimConfig::new(51)
        .with_scenario(Scenario::StuckAggregation)
        .with_manual_clock(start)
        .with_speed(1.0);
    // Failing Salesforce, plus the aggregation anomalies: from two nominal hours on (24 s
    // here), GitHub's account aggregations find no account and Active Directory's delete
    // two accounts in five.
    let failing = SimConfig::new(52)
        .with_scenario(Scenario::FailingSource)
        .with_anomalies()
        .with_manual_clock(start)
        .with_speed(300.0)
        .with_faults(Faults {
            rate_limit_every: Some(7),
            rate_limit_burst: 1,
            retry_after: Duration::from_secs(1),
            ..Faults::none()
        });
    Tenants {
        stuck: Arc::new(Simulator::start(stuck, listen).await.expect("start stuck")),
        failing: Arc::new(
            Simulator::start(failing, listen)
                .await
                .expect("start failing"),
        ),
    }
}

/// Moves both tenants' clocks along with the wall clock until `stop`; they stand still
/// from then on.
async fn run_clocks(tenants: [Arc<SimHandle>; 2], stop: Arc<AtomicBool>) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let step = last.elapsed();
        last += step;
        for sim in &tenants {
            sim.advance(step);
        }
    }
}

fn tenant_yaml(name: &str, sim: &SimHandle) -> String {
    format!(
        "  - name: {name}\n    base_url: {url}\n    client_id: {id}\n    client_secret: {secret}\n    \
         pending_interval: 1s\n    completed_interval: 2s\n    lookback: 48h\n    \
         request_timeout: 5s\n    max_retries: 2\n",
        url = sim.base_url(),
        id = sim.client_id(),
        secret = DEMO_CLIENT_SECRET,
    )
}

fn write_daemon_config(dir: &Path, port: u16, t: &Tenants) -> PathBuf {
    let text = format!(
        "web:\n  listen_address: \"127.0.0.1:{port}\"\ntenants:\n{}{}",
        tenant_yaml(STUCK, &t.stuck),
        tenant_yaml(FAILING, &t.failing)
    );
    let path = dir.join("exporter.yaml");
    std::fs::write(&path, text).expect("write exporter config");
    path
}

/// The shipped rules with only their timing shortened: `for:` → 0s, group `interval:` → 1s.
fn fast_rules() -> String {
    let path = Path::new(ROOT).join("deploy/prometheus/sailpoint-task-exporter.rules.yml");
    let shipped = std::fs::read_to_string(&path).expect("read the shipped rules file");
    let for_re = Regex::new(r"(?m)^(\s+)for: \S+$").unwrap();
    let interval_re = Regex::new(r"(?m)^(\s+)interval: \S+$").unwrap();
    assert!(
        for_re.is_match(&shipped) && interval_re.is_match(&shipped),
        "the rules file has no `for:`/`interval:` lines to shorten: update this test"
    );
    let fast = for_re.replace_all(&shipped, "${1}for: 0s");
    let fast = interval_re
        .replace_all(&fast, "${1}interval: 1s")
        .into_owned();
    assert_eq!(
        fast.lines().count(),
        shipped.lines().count(),
        "shortening the timing must change lines in place only"
    );
    fast
}

fn write_prometheus_config(dir: &Path, exporter_port: u16) -> PathBuf {
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, fast_rules()).expect("write rules");
    let text = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"127.0.0.1:{exporter_port}\"]\n",
        rules = rules.display()
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, text).expect("write prometheus config");
    path
}

/// One dashboard expression, as printed by `tests/deploy/promql_exprs.py`.
struct PanelExpr {
    panel_id: i64,
    panel: String,
    ref_id: String,
    instant: bool,
    expr: String,
}

impl PanelExpr {
    fn key(&self) -> String {
        format!("{} (panel {}) [{}]", self.panel, self.panel_id, self.ref_id)
    }
}

fn dashboard_exprs() -> Vec<PanelExpr> {
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("tests/deploy/promql_exprs.py"))
        .output()
        .expect("run python3 tests/deploy/promql_exprs.py");
    assert!(
        out.status.success(),
        "promql_exprs.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exprs: Vec<PanelExpr> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            PanelExpr {
                panel_id: v["panel_id"].as_i64().unwrap_or_default(),
                panel: v["panel"].as_str().unwrap_or_default().to_string(),
                ref_id: v["ref_id"].as_str().unwrap_or_default().to_string(),
                instant: v["instant"].as_bool().unwrap_or(false),
                expr: v["expr"].as_str().expect("expr").to_string(),
            }
        })
        .collect();
    assert!(
        exprs.len() >= 20,
        "only {} dashboard expressions",
        exprs.len()
    );
    exprs
}

/// Prometheus's HTTP API on loopback.
struct PromApi {
    http: reqwest::Client,
    base: String,
}

impl PromApi {
    /// `data` of a successful answer, or the API's error text.
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// Result rows of an instant query evaluated at `time` (Unix seconds, as Prometheus
    /// printed it).
    async fn instant_at(&self, expr: &str, time: &str) -> Result<Vec<Value>, String> {
        let params = [("query", expr.to_string()), ("time", time.to_string())];
        let data = self.get("/api/v1/query", &params).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Result rows of an instant query.
    async fn instant(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self
            .get("/api/v1/query", &[("query", expr.to_string())])
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Series of a range query over the last 30 s, as Grafana runs a time-series panel.
    async fn range(&self, expr: &str) -> Result<Vec<Value>, String> {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let params = [
            ("query", expr.to_string()),
            ("start", format!("{:.3}", now - 30.0)),
            ("end", format!("{now:.3}")),
            ("step", "1".to_string()),
        ];
        let data = self.get("/api/v1/query_range", &params).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Rules whose last evaluation failed or that were never evaluated, with the reason.
    async fn unhealthy_rules(&self) -> Vec<String> {
        let data = match self.get("/api/v1/rules", &[]).await {
            Ok(data) => data,
            Err(e) => return vec![format!("/api/v1/rules: {e}")],
        };
        let groups = data["groups"].as_array().cloned().unwrap_or_default();
        if groups.len() != 2 {
            return vec![format!("{} rule groups loaded, expected 2", groups.len())];
        }
        groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("rule {} is {}: {}", r["name"], r["health"], r["lastError"]))
            .collect()
    }

    async fn firing_alerts(&self) -> Vec<Value> {
        let data = self.get("/api/v1/alerts", &[]).await.unwrap_or_default();
        data["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["state"] == "firing")
            .collect()
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str, proc: &mut ProcessGuard) {
    let deadline = Instant::now() + STARTUP;
    let answers_ok =
        async |url| matches!(http.get(url).send().await, Ok(r) if r.status().is_success());
    while !answers_ok(url).await {
        proc.assert_running();
        let late = Instant::now() >= deadline;
        assert!(
            !late,
            "{} not ready at {url} after {STARTUP:?}; log:\n{}",
            proc.name,
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn label<'a>(v: &'a Value, name: &str) -> &'a str {
    v["labels"][name].as_str().unwrap_or_default()
}

/// (tenant, task_name, source) of a task: the labels its alerts carry.
fn group_of(tenant: &str, t: &TaskStatus) -> (String, String, String) {
    (
        tenant.to_string(),
        t.unique_name.clone(),
        t.source_name().unwrap_or_default().to_string(),
    )
}

fn alert_groups(alerts: &[Value], name: &str) -> BTreeSet<(String, String, String)> {
    alerts
        .iter()
        .filter(|a| label(a, "alertname") == name)
        .map(|a| {
            (
                label(a, "tenant").to_string(),
                label(a, "task_name").to_string(),
                label(a, "source").to_string(),
            )
        })
        .collect()
}

/// What the alerts must show, from the simulators' ground truth.
struct Expected {
    stuck_id: String,
    stuck_group: (String, String, String),
    failing_group: (String, String, String),
    /// The source whose aggregations delete two accounts in five.
    mass_deletion_group: (String, String, String),
    /// The source whose aggregations find no account.
    empty_group: (String, String, String),
}

fn expected(t: &Tenants) -> Expected {
    let pending = t.stuck.pending_tasks();
    let stuck = pending.first().expect("the stuck tenant has pending tasks");
    assert_eq!(stuck.unique_name, "Cloud Account Aggregation");
    assert!(
        chrono::Utc::now() - stuck.created > chrono::Duration::hours(3),
        "the scenario's stuck task must already be older than the shipped 3h threshold"
    );
    let failed = t
        .failing
        .tasks()
        .into_iter()
        .find(|task| {
            task.completion_status == Some(CompletionStatus::Error)
                && task.unique_name == "Cloud Account Aggregation"
                && task.source_name().is_some_and(|s| s.contains("Salesforce"))
        })
        .expect("failing-source has failed Salesforce account aggregations");
    let account_aggregation = |source: &str| {
        (
            FAILING.to_string(),
            "Cloud Account Aggregation".to_string(),
            format!("{source} [source]"),
        )
    };
    Expected {
        stuck_id: stuck.id.clone(),
        stuck_group: group_of(STUCK, stuck),
        failing_group: group_of(FAILING, &failed),
        mass_deletion_group: account_aggregation("Active Directory"),
        empty_group: account_aggregation("GitHub"),
    }
}

/// Problems left with the alerts; empty when all expected alerts fire as they should.
fn alert_problems(alerts: &[Value], exp: &Expected) -> Vec<String> {
    let mut problems = Vec::new();
    let pending = alert_groups(alerts, "SailPointAggregationPendingTooLong");
    if pending != BTreeSet::from([exp.stuck_group.clone()]) {
        problems.push(format!(
            "SailPointAggregationPendingTooLong firing for {pending:?}, expected exactly {:?}",
            exp.stuck_group
        ));
    }
    let description = alerts
        .iter()
        .find(|a| label(a, "alertname") == "SailPointAggregationPendingTooLong")
        .and_then(|a| a["annotations"]["description"].as_str())
        .unwrap_or_default();
    let oldest = format!("Oldest pending task ids: {} (", exp.stuck_id);
    let inspect = format!("tasks get {} --tenant {STUCK}", exp.stuck_id);
    if !description.contains(&oldest) || !description.contains(&inspect) {
        problems.push(format!(
            "stuck-task alert description does not name {} first: {description:?}",
            exp.stuck_id
        ));
    }
    for name in [
        "SailPointAggregationFailing",
        "SailPointSourceNoSuccessfulAggregation",
    ] {
        let groups = alert_groups(alerts, name);
        if !groups.contains(&exp.failing_group) {
            problems.push(format!(
                "{name} not firing for {:?} (firing: {groups:?})",
                exp.failing_group
            ));
        }
    }
    for (name, group) in [
        ("SailPointAggregationMassDeletion", &exp.mass_deletion_group),
        ("SailPointAggregationEmpty", &exp.empty_group),
    ] {
        let groups = alert_groups(alerts, name);
        if groups != BTreeSet::from([group.clone()]) {
            problems.push(format!(
                "{name} firing for {groups:?}, expected exactly {group:?}"
            ));
        }
    }
    let limited: BTreeSet<String> = alerts
        .iter()
        .filter(|a| label(a, "alertname") == "SailPointExporterRateLimited")
        .map(|a| label(a, "tenant").to_string())
        .collect();
    if limited != BTreeSet::from([FAILING.to_string()]) {
        problems.push(format!(
            "SailPointExporterRateLimited firing for tenants {limited:?}, expected only {FAILING}"
        ));
    }
    problems
}

/// Status of one dashboard expression: `None` once it evaluated with data.
async fn expr_problem(api: &PromApi, e: &PanelExpr) -> Option<String> {
    let rows = match api.instant(&e.expr).await {
        Ok(rows) => rows,
        Err(err) => return Some(format!("instant query error: {err}")),
    };
    if !has_number(&rows) {
        return Some(format!(
            "instant query returned no data ({} series, all NaN)",
            rows.len()
        ));
    }
    if !e.instant {
        match api.range(&e.expr).await {
            Err(err) => return Some(format!("range query error: {err}")),
            Ok(series) if !has_number(&series) => {
                return Some(format!(
                    "range query returned no data ({} series, all NaN)",
                    series.len()
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

/// Re-evaluates the expressions still in `pending` (key → last problem), removing those
/// that now return data.
async fn check_exprs(api: &PromApi, exprs: &[PanelExpr], pending: &mut BTreeMap<String, String>) {
    for e in exprs {
        let key = e.key();
        if !pending.contains_key(&key) {
            continue;
        }
        match expr_problem(api, e).await {
            None => {
                pending.remove(&key);
            }
            Some(problem) => {
                if let Some(slot) = pending.get_mut(&key) {
                    *slot = format!("{problem}\n      {}", e.expr);
                }
            }
        }
    }
}

/// Whether any sample of an instant (`value`, or `histogram` for a native histogram) or
/// range (`values`, `histograms`) result is a number: a panel of NaNs (e.g. a quantile
/// of empty buckets) shows nothing in Grafana.
fn has_number(rows: &[Value]) -> bool {
    let is_number = |sample: &Value| sample[1].as_str().is_some_and(|v| v != "NaN");
    let is_histogram = |sample: &Value| sample[1]["count"].as_str().is_some_and(|v| v != "NaN");
    rows.iter().any(|row| {
        row["value"].is_array() && is_number(&row["value"])
            || row["histogram"].is_array() && is_histogram(&row["histogram"])
            || row["values"]
                .as_array()
                .is_some_and(|values| values.iter().any(is_number))
            || row["histograms"]
                .as_array()
                .is_some_and(|values| values.iter().any(is_histogram))
    })
}

/// Makes every poll of the `stuck` tenant fail (HTTP 500, retries exhausted) until
/// Prometheus has scraped its poll error counter, so the "Poll errors" panel has data;
/// then the tenant is healthy again.
async fn provoke_poll_errors(api: &PromApi, sim: &SimHandle, started: Instant) {
    sim.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::none()
    });
    let query = format!("sailpoint_exporter_poll_errors_total{{tenant=\"{STUCK}\"}}");
    while api.instant(&query).await.unwrap_or_default().is_empty() {
        assert!(
            started.elapsed() < DEADLINE,
            "no poll error of tenant {STUCK} reached Prometheus while its API answered 500"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sim.set_faults(Faults::none());
}

// ------------------------------------------------------------------ values vs. truth

/// Seconds since the epoch at millisecond precision, as the exporter exports timestamps.
fn unix_secs(t: &chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The completed tasks of each tenant when it primed: never counted.
fn backlogs(t: &Tenants) -> BTreeMap<&'static str, HashSet<String>> {
    t.both()
        .into_iter()
        .map(|(name, sim)| {
            let ids = sim
                .tasks()
                .into_iter()
                .filter(|task| !task.is_pending())
                .map(|task| task.id)
                .collect();
            (name, ids)
        })
        .collect()
}

/// (task_name, source) as the exporter labels a task.
fn group_labels(t: &TaskStatus) -> (String, String) {
    (
        normalize::task_name(&t.unique_name, &[]),
        normalize::source(t),
    )
}

/// What the dashboard must show for the frozen tenants.
#[derive(Debug, Default)]
struct Truth {
    /// Pending tasks per (task_name, source), over both tenants.
    pending: BTreeMap<Vec<String>, f64>,
    /// Oldest pending `created` per (task_name, source), over both tenants.
    oldest_created: BTreeMap<Vec<String>, f64>,
    /// `created` of the 50 oldest pending tasks of each tenant, per (tenant, id).
    task_created: BTreeMap<Vec<String>, f64>,
    /// Completions since priming per (tenant, task_name, source, status).
    completed: BTreeMap<Vec<String>, f64>,
}

/// Per-task pending series the exporter keeps per tenant (`max_pending_task_series`).
const PENDING_TASK_SERIES: usize = 50;

fn truth(t: &Tenants, backlogs: &BTreeMap<&'static str, HashSet<String>>) -> Truth {
    let mut truth = Truth::default();
    for (tenant, sim) in t.both() {
        let tasks = sim.tasks();
        let mut pending: Vec<&TaskStatus> = tasks.iter().filter(|t| t.is_pending()).collect();
        for task in &pending {
            let (name, source) = group_labels(task);
            let key = vec![name, source];
            *truth.pending.entry(key.clone()).or_default() += 1.0;
            let created = unix_secs(&task.created);
            let oldest = truth.oldest_created.entry(key).or_insert(created);
            *oldest = oldest.min(created);
        }
        pending.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        for task in pending.iter().take(PENDING_TASK_SERIES) {
            let key = vec![tenant.to_string(), task.id.clone()];
            truth.task_created.insert(key, unix_secs(&task.created));
        }
        let backlog = backlogs.get(tenant).cloned().unwrap_or_default();
        for task in tasks.iter().filter(|t| !t.is_pending()) {
            if backlog.contains(&task.id) {
                continue;
            }
            let (name, source) = group_labels(task);
            let key = vec![tenant.to_string(), name, source, normalize::status(task)];
            *truth.completed.entry(key).or_default() += 1.0;
        }
    }
    truth
}

/// Waits until the exporter has polled each list of each tenant successfully twice after
/// `since` (Unix seconds): the second poll started after the first ended, so it read
/// the tenants as they are now.
async fn settle_exporter(http: &reqwest::Client, port: u16, since: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut first: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
    while done.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the exporter did not poll the frozen tenants successfully: {done:?}"
        );
        let body = match http.get(&url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let samples = exposition::parse(&body);
        for tenant in [STUCK, FAILING] {
            for list in ["pending", "completed"] {
                let at = exposition::value(
                    &samples,
                    "sailpoint_exporter_last_poll_success_timestamp_seconds",
                    &[("tenant", tenant), ("list", list)],
                )
                .unwrap_or(0.0);
                match first.get(&(tenant, list)) {
                    None if at > since => {
                        first.insert((tenant, list), at);
                    }
                    Some(f) if at > *f => {
                        done.insert((tenant, list));
                    }
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The timestamp (as Prometheus prints it) of the first scrape of the exporter that
/// started after `after` (Unix seconds).
async fn scrape_after(api: &PromApi, after: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = format!("timestamp(up{{job=\"{JOB}\"}})");
    loop {
        let rows = api.instant(&query).await.unwrap_or_default();
        if let Some(ts) = rows.first().and_then(|r| r["value"][1].as_str())
            && ts.parse::<f64>().is_ok_and(|t| t > after)
        {
            return ts.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the exporter after {after}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Values per label set (the values of the labels a check compares by).
type Series = BTreeMap<Vec<String>, f64>;

/// An instant-query result as (values of `keys`) → value.
fn by_labels(rows: &[Value], keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
    rows.iter()
        .map(|r| {
            let v = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (metric_key(r, keys), v.unwrap_or(f64::NAN))
        })
        .collect()
}

/// The values of `keys` in a query result row's `metric` labels ("" when absent).
fn metric_key(row: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| row["metric"][*k].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Same keys, and values equal up to the rounding of one f64 subtraction (1e-6 s).
fn same_values(got: &BTreeMap<Vec<String>, f64>, want: &BTreeMap<Vec<String>, f64>) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((gk, gv), (wk, wv))| gk == wk && (gv - wv).abs() <= 1e-6 * wv.abs().max(1.0))
}

fn panel_expr<'a>(exprs: &'a [PanelExpr], title: &str, ref_id: &str) -> &'a PanelExpr {
    exprs
        .iter()
        .find(|e| e.panel == title && e.ref_id == ref_id)
        .unwrap_or_else(|| panic!("the dashboard has no panel {title:?} [{ref_id}]"))
}

/// Pending counts, oldest age per group and the per-task ages, at `time`.
async fn check_pending_panels(api: &PromApi, exprs: &[PanelExpr], time: &str, truth: &Truth) {
    let t: f64 = time.parse().expect("scrape timestamp");
    let checks: [(&str, &str, &[&str], Series); 3] = [
        (
            "Pending tasks by task and source",
            "A",
            &["task_name", "source"],
            truth.pending.clone(),
        ),
        (
            "Oldest pending task age",
            "A",
            &["task_name", "source"],
            truth
                .oldest_created
                .iter()
                .map(|(k, created)| (k.clone(), t - created))
                .collect(),
        ),
        (
            "Oldest pending tasks (ids for the CLI)",
            "A",
            &["tenant", "id"],
            truth
                .task_created
                .iter()
                .map(|(k, created)| (k.clone(), t - created))
                .collect(),
        ),
    ];
    for (title, ref_id, keys, want) in checks {
        let e = panel_expr(exprs, title, ref_id);
        let rows = api
            .instant_at(&e.expr, time)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.key()));
        let mut got = by_labels(&rows, keys);
        // Known groups with nothing pending show 0 (docs/metrics.md): the truth lists
        // only groups with pending tasks.
        if title == "Pending tasks by task and source" {
            got.retain(|_, v| *v != 0.0);
        }
        assert!(
            same_values(&got, &want),
            "{} at {time} differs from the simulators' truth:\n  got  {got:?}\n  want {want:?}\n  {}",
            e.key(),
            e.expr
        );
        println!("  {}: {} series equal the truth", e.key(), got.len());
    }
}

/// The two orders in which Prometheus versions cap the extrapolation of `increase()` at
/// the start of a series: the counter's zero point before the "more than 1.1 sample
/// intervals away" threshold (Debian 12's 2.42), or after it (later releases). They
/// differ only when the zero point lies between 0.5 and 1.1 sample intervals back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Extrapolation {
    ZeroPointFirst,
    ThresholdFirst,
}

/// `increase()` of one counter series, as Prometheus computes it from its samples
/// `(t, v)` in `(end - range, end]`: the rise from the first to the last sample
/// (there are no resets: the exporter ran throughout), extrapolated towards the range's
/// ends. `None` below two samples (Prometheus drops the series).
fn prometheus_increase(
    samples: &[(f64, f64)],
    range_start: f64,
    range_end: f64,
    way: Extrapolation,
) -> Option<f64> {
    let (&(t0, v0), &(t1, v1)) = (samples.first()?, samples.last()?);
    if samples.len() < 2 {
        return None;
    }
    let rise = v1 - v0;
    let sampled = t1 - t0;
    let average = sampled / (samples.len() - 1) as f64;
    let threshold = average * 1.1;
    let zero = if rise > 0.0 && v0 >= 0.0 {
        sampled * (v0 / rise)
    } else {
        f64::INFINITY
    };
    let mut to_start = t0 - range_start;
    match way {
        Extrapolation::ZeroPointFirst => {
            to_start = to_start.min(zero);
            if to_start >= threshold {
                to_start = average / 2.0;
            }
        }
        Extrapolation::ThresholdFirst => {
            if to_start >= threshold {
                to_start = average / 2.0;
            }
            to_start = to_start.min(zero);
        }
    }
    let mut to_end = range_end - t1;
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    Some(rise * (sampled + to_start + to_end) / sampled)
}

/// The `[range]` of the `increase(sailpoint_tasks_completed_total…[range])` in `expr`.
fn completed_range(expr: &str) -> String {
    let re = Regex::new(r"increase\(sailpoint_tasks_completed_total\{[^}]*\}\[(\w+)\]\)").unwrap();
    re.captures(expr)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| panic!("no increase(sailpoint_tasks_completed_total[…]) in {expr}"))
}

/// The completion panels at `time`: every counter's last sample equals the truth, and the
/// panel equals `increase()` of the truth, extrapolated as Prometheus does from the
/// samples it holds (the only inexact part: a series first scraped above 0 is
/// extrapolated back towards its zero point).
async fn check_completion_panels(api: &PromApi, exprs: &[PanelExpr], time: &str, truth: &Truth) {
    let t: f64 = time.parse().expect("scrape timestamp");
    let panels: [(&str, &[&str]); 2] = [
        ("Completions by status", &["status"]),
        ("Completions in range", &["task_name", "source", "status"]),
    ];
    for (title, keys) in panels {
        let e = panel_expr(exprs, title, "A");
        let range = completed_range(&e.expr);
        let range_secs = humantime::parse_duration(&range)
            .expect("a PromQL range humantime reads")
            .as_secs_f64();
        let raw = api
            .instant_at(&format!("sailpoint_tasks_completed_total[{range}]"), time)
            .await
            .unwrap_or_else(|err| panic!("raw samples: {err}"));
        let mut finals: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        let mut extrapolated = 0;
        let mut want: BTreeMap<Extrapolation, BTreeMap<Vec<String>, f64>> = BTreeMap::new();
        for series in &raw {
            let samples: Vec<(f64, f64)> = series["values"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| Some((v[0].as_f64()?, v[1].as_str()?.parse().ok()?)))
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                samples.windows(2).all(|w| w[0].1 <= w[1].1),
                "a completed counter went down: {series}"
            );
            let id = metric_key(series, &["tenant", "task_name", "source", "status"]);
            let last = samples.last().map_or(0.0, |s| s.1);
            if samples.first().is_some_and(|s| s.1 > 0.0 && s.1 < last) {
                extrapolated += 1;
            }
            let truth_final = truth.completed.get(&id).copied().unwrap_or(0.0);
            if last != 0.0 || truth_final != 0.0 {
                finals.insert(id.clone(), last);
            }
            // The truth's final value in place of the last sample: equal, checked below.
            let mut with_truth = samples.clone();
            if let Some(l) = with_truth.last_mut() {
                l.1 = truth_final;
            }
            let key = metric_key(series, keys);
            for way in [Extrapolation::ZeroPointFirst, Extrapolation::ThresholdFirst] {
                if let Some(inc) = prometheus_increase(&with_truth, t - range_secs, t, way) {
                    *want.entry(way).or_default().entry(key.clone()).or_default() += inc;
                }
            }
        }
        assert_eq!(
            finals, truth.completed,
            "sailpoint_tasks_completed_total at {time} differs from the simulators' truth"
        );
        let rows = api
            .instant_at(&e.expr, time)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.key()));
        let got = by_labels(&rows, keys);
        let matched = want.iter().find(|(_, w)| same_values(&got, w));
        assert!(
            matched.is_some(),
            "{} at {time} is not the increase of the truth:\n  got  {got:?}\n  want {want:?}\n  {}",
            e.key(),
            e.expr
        );
        let total: f64 = truth.completed.values().sum();
        println!(
            "  {}: {} series equal the truth's increase ({total} completions since priming; \
             {extrapolated} series first scraped above 0, extrapolated {:?})",
            e.key(),
            got.len(),
            matched.map(|(way, _)| way)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_work_against_a_real_prometheus() {
    let prometheus = prometheus_binary();
    let exprs = dashboard_exprs();
    let dir = tempfile::tempdir().expect("tempdir");
    let tenants = start_tenants().await;
    let exp = expected(&tenants);

    // The exporter listens on port 0 and logs its address: no port is freed for another
    // process to take first. (Prometheus cannot say which port it got; it keeps
    // free_port(), and exits loudly if the port was taken.)
    let exporter_config = write_daemon_config(dir.path(), 0, &tenants);
    // Every tenant primed against the frozen clocks: the backlog is known exactly; then
    // the clocks move at wall-clock pace.
    let (mut exporter, exporter_port, http) = start_exporter(&exporter_config, dir.path()).await;
    let backlogs = backlogs(&tenants);
    let clocks_stop = Arc::new(AtomicBool::new(false));
    let clocks = tokio::spawn(run_clocks(
        [Arc::clone(&tenants.stuck), Arc::clone(&tenants.failing)],
        Arc::clone(&clocks_stop),
    ));
    let prom_port = free_port();
    let prom_config = write_prometheus_config(dir.path(), exporter_port);
    let mut prom = ProcessGuard::spawn(
        "prometheus",
        Command::new(prometheus)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn"),
        dir.path().join("prometheus.log"),
    );

    wait_ready(
        &http,
        &format!("http://127.0.0.1:{prom_port}/-/ready"),
        &mut prom,
    )
    .await;
    let started = Instant::now();
    let api = PromApi {
        http: http.clone(),
        base: format!("http://127.0.0.1:{prom_port}"),
    };
    provoke_poll_errors(&api, &tenants.stuck, started).await;

    let up_query = format!("up{{job=\"{JOB}\"}} == 1");
    let mut pending: BTreeMap<String, String> = exprs
        .iter()
        .map(|e| (e.key(), "not evaluated yet".to_string()))
        .collect();
    let mut alerts_left = vec!["not checked yet".to_string()];
    let mut up = false;
    while started.elapsed() < DEADLINE && (!up || !pending.is_empty() || !alerts_left.is_empty()) {
        exporter.assert_running();
        prom.assert_running();
        up = api.instant(&up_query).await.is_ok_and(|r| r.len() == 1);
        check_exprs(&api, &exprs, &mut pending).await;
        alerts_left = alert_problems(&api.firing_alerts().await, &exp);
        alerts_left.extend(api.unhealthy_rules().await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();

    assert!(up, "`{up_query}` never returned a series");
    let report: Vec<String> = pending
        .iter()
        .map(|(panel, why)| format!("  {panel}: {why}"))
        .collect();
    assert!(
        report.is_empty(),
        "{} of {} dashboard expressions never returned data within {elapsed:?}:\n{}\n\
         exporter log:\n{}\nprometheus log:\n{}",
        report.len(),
        exprs.len(),
        report.join("\n"),
        exporter.log_tail(),
        prom.log_tail()
    );
    assert!(
        alerts_left.is_empty(),
        "alerts or rules not as expected within {elapsed:?}:\n  {}\nprometheus log:\n{}",
        alerts_left.join("\n  "),
        prom.log_tail()
    );
    eprintln!(
        "all {} dashboard expressions returned data and the alerts fired within {elapsed:?}",
        exprs.len()
    );

    // The values: freeze both tenants, let the exporter poll them and Prometheus scrape
    // that, then compare at that scrape's timestamp.
    clocks_stop.store(true, Ordering::Release);
    clocks.await.expect("clock task");
    tenants.stuck.set_faults(Faults::none());
    tenants.failing.set_faults(Faults::none());
    let frozen_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    settle_exporter(&http, exporter_port, frozen_at).await;
    let settled_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let time = scrape_after(&api, settled_at).await;
    let truth = truth(&tenants, &backlogs);
    println!("values at the scrape of {time} (tenants frozen at {frozen_at}):");
    check_pending_panels(&api, &exprs, &time, &truth).await;
    check_completion_panels(&api, &exprs, &time, &truth).await;

    let complaints = prom.log_lines_with(&["level=warn", "level=error"]);
    assert!(
        complaints.is_empty(),
        "Prometheus logged warnings or errors (rule evaluation, alert templates):\n{}",
        complaints.join("\n")
    );

    drop(prom);
    drop(exporter);
    for sim in [tenants.stuck, tenants.failing] {
        if let Ok(sim) = Arc::try_unwrap(sim) {
            sim.shutdown().await;
        }
    }
}

// ------------------------------------------------------------------------------------
// Exemplars and native histograms (issue 21): the same exporter scraped by two real
// Prometheus servers, one with `--enable-feature=exemplar-storage` (it asks for
// OpenMetrics) and one with `--enable-feature=native-histograms` (it asks for protobuf).

/// The durations (seconds) of the tasks the scripted tenant completes after priming:
/// each in its own native and classic bucket, median 100 s.
const SCRIPTED_DURATIONS: [i64; 5] = [10, 30, 100, 600, 3600];
const SCRIPTED: &str = "scripted";
const STEADY: &str = "steady";
const DURATION: &str = "sailpoint_task_duration_seconds";
/// The `source` label of the simulator's source "HR".
const HR: &str = "HR [source]";

/// A Prometheus server with `feature` enabled, scraping the exporter on `exporter_port`
/// every second with the shipped rules (timing shortened), in its own directory.
async fn start_prometheus(
    dir: &Path,
    feature: &str,
    exporter_port: u16,
    http: &reqwest::Client,
) -> (ProcessGuard, PromApi) {
    let dir = dir.join(feature);
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = write_prometheus_config(&dir, exporter_port);
    let port = free_port();
    let mut prom = ProcessGuard::spawn(
        "prometheus",
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--enable-feature={feature}"))
            .arg("--log.level=warn"),
        dir.join("prometheus.log"),
    );
    wait_ready(http, &format!("http://127.0.0.1:{port}/-/ready"), &mut prom).await;
    let api = PromApi {
        http: http.clone(),
        base: format!("http://127.0.0.1:{port}"),
    };
    (prom, api)
}

/// The first value of an instant query at `time`, waiting (rules evaluate every second)
/// until it has one.
async fn first_value(api: &PromApi, expr: &str, time: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = api.instant_at(expr, time).await;
        if let Some(v) = rows
            .as_ref()
            .ok()
            .and_then(|r| r.first())
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
        {
            return v;
        }
        assert!(Instant::now() < deadline, "{expr} at {time}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The samples of the text exposition at `url` (none when its body cannot be read).
async fn scrape(http: &reqwest::Client, url: &str) -> Vec<exposition::Sample> {
    let response = http.get(url).send().await;
    let response = response.unwrap_or_else(|e| panic!("scrape {url}: {e}"));
    exposition::parse(&response.text().await.unwrap_or_default())
}

/// `prometheus_tsdb_head_series` from the server's own `/metrics` (it does not scrape
/// itself here): every series it holds in memory, the exporter's and the rules'.
async fn head_series(api: &PromApi) -> f64 {
    let samples = scrape(&api.http, &format!("{}/metrics", api.base)).await;
    exposition::value(&samples, "prometheus_tsdb_head_series", &[])
        .unwrap_or_else(|| panic!("no prometheus_tsdb_head_series at {}", api.base))
}

/// What Prometheus 2.42's `rate(native[5m])` multiplies the increase of a histogram by,
/// from the samples it holds in the window ending at `time`: its extrapolation
/// (`extrapolatedRate` in promql/functions.go; no zero-floor for histograms) over the
/// range.
fn native_rate_factor(samples: &[(f64, f64)], time: f64, range: f64) -> f64 {
    let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
    let sampled = last - first;
    let average = sampled / (samples.len() - 1) as f64;
    let threshold = average * 1.1;
    let mut interval = sampled;
    for gap in [first - (time - range), time - last] {
        interval += if gap < threshold { gap } else { average / 2.0 };
    }
    interval / sampled / range
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_and_native_histograms_reach_a_real_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // `scripted`: nothing but what this test adds, on a frozen clock, so the durations
    // are exact; a pending HR aggregation makes its group (and its histograms at 0) known
    // from priming. `steady`: the realistic tenant at 60x, for the series count.
    let scripted = Simulator::start(
        SimConfig::new(61)
            .with_scenario(Scenario::Empty)
            .with_manual_clock(chrono::Utc::now()),
        listen,
    )
    .await
    .expect("start scripted");
    let now = scripted.now();
    scripted.add_task(
        sailpoint_simulator::NewTask::account_aggregation("HR")
            .created(now - chrono::Duration::minutes(1))
            .launched(now - chrono::Duration::minutes(1)),
    );
    let steady = Simulator::start(SimConfig::new(62).with_speed(60.0), listen)
        .await
        .expect("start steady");
    let config = dir.path().join("exporter.yaml");
    std::fs::write(
        &config,
        format!(
            "web:\n  listen_address: \"127.0.0.1:0\"\ntenants:\n{}{}",
            tenant_yaml(SCRIPTED, &scripted),
            tenant_yaml(STEADY, &steady)
        ),
    )
    .expect("write exporter config");
    let (mut exporter, exporter_port, http) = start_exporter(&config, dir.path()).await;
    let started = Instant::now();
    let (mut classic_prom, classic) =
        start_prometheus(dir.path(), "exemplar-storage", exporter_port, &http).await;
    let (mut native_prom, native) =
        start_prometheus(dir.path(), "native-histograms", exporter_port, &http).await;
    // Both have scraped the histograms at 0 before anything completes.
    let zero = format!(
        "{DURATION}_count{{tenant=\"{SCRIPTED}\"}} or histogram_count({DURATION}{{tenant=\"{SCRIPTED}\"}})"
    );
    for api in [&classic, &native] {
        let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let time = scrape_after(api, at).await;
        assert_eq!(first_value(api, &zero, &time).await, 0.0, "{}", api.base);
    }

    // The tasks run (the exporter sees them pending, as it sees every real task), then
    // complete on the frozen clock: each ran exactly its duration.
    let now = scripted.now();
    let mut ids = BTreeSet::new();
    for seconds in SCRIPTED_DURATIONS {
        ids.insert(
            scripted.add_task(
                sailpoint_simulator::NewTask::account_aggregation("HR")
                    .created(now - chrono::Duration::seconds(seconds + 5))
                    .launched(now - chrono::Duration::seconds(seconds)),
            ),
        );
    }
    let pending = format!("sailpoint_tasks_pending{{source=\"{HR}\",tenant=\"{SCRIPTED}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics_url = format!("http://127.0.0.1:{exporter_port}/metrics");
    loop {
        let samples = scrape(&http, &metrics_url).await;
        let value = exposition::value(
            &samples,
            "sailpoint_tasks_pending",
            &[("tenant", SCRIPTED), ("source", HR)],
        );
        if value == Some(6.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exporter never saw {pending} 6, but {value:?}:\n{:?}",
            samples
                .iter()
                .filter(|s| s.labels.get("tenant").map(String::as_str) == Some(SCRIPTED))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        assert!(scripted.complete_task(id, CompletionStatus::Success, Vec::new()));
    }
    // Ground truth: the simulator's own record of those tasks.
    let mut durations: Vec<f64> = scripted
        .tasks()
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(sailpoint_task_exporter::metrics::task_duration)
        .collect();
    durations.sort_by(f64::total_cmp);
    assert_eq!(durations, [10.0, 30.0, 100.0, 600.0, 3600.0]);
    let median = durations[2];

    // Counted by the exporter, then scraped by both.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = classic
            .instant(&format!("sum({DURATION}_count{{tenant=\"{SCRIPTED}\"}})"))
            .await
            .unwrap_or_default();
        if rows.first().and_then(|r| r["value"][1].as_str()) == Some("5") {
            break;
        }
        exporter.assert_running();
        assert!(
            Instant::now() < deadline,
            "the five completions never reached Prometheus"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let counted_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;

    // Exemplar storage: every bucket that holds one of the tasks names it.
    let range = [
        (
            "query",
            format!("{DURATION}_bucket{{tenant=\"{SCRIPTED}\"}}"),
        ),
        ("start", format!("{}", counted_at - 600.0)),
        ("end", format!("{}", counted_at + 60.0)),
    ];
    let exemplars = classic
        .get("/api/v1/query_exemplars", &range)
        .await
        .expect("query_exemplars");
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    for series in exemplars.as_array().cloned().unwrap_or_default() {
        for e in series["exemplars"].as_array().cloned().unwrap_or_default() {
            let id = e["labels"]["task_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let value = e["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1.0);
            seen.insert(id, value);
        }
    }
    let want: BTreeMap<String, f64> = scripted
        .tasks()
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(|t| {
            (
                t.id.clone(),
                sailpoint_task_exporter::metrics::task_duration(t),
            )
        })
        .collect();
    assert_eq!(
        seen, want,
        "the exemplars are the simulator's tasks and durations"
    );

    // Native histograms: the count of `rate()` is the five completions over the window
    // (as Prometheus extrapolates from the samples it holds), and the median falls in the
    // native bucket of the true median.
    let time = scrape_after(&native, counted_at).await;
    let t: f64 = time.parse().expect("a timestamp");
    let selector = format!("{DURATION}{{tenant=\"{SCRIPTED}\",source=\"{HR}\"}}");
    let raw = native
        .instant_at(&format!("{selector}[5m]"), &time)
        .await
        .expect("the raw samples");
    assert_eq!(raw.len(), 1, "one native series for the group: {raw:?}");
    let samples: Vec<(f64, f64)> = raw[0]["histograms"]
        .as_array()
        .expect("native samples")
        .iter()
        .map(|s| {
            let count = s[1]["count"].as_str().and_then(|c| c.parse().ok());
            (s[0].as_f64().expect("a time"), count.expect("a count"))
        })
        .collect();
    let increase = samples[samples.len() - 1].1 - samples[0].1;
    assert_eq!(
        increase, 5.0,
        "from 0 to the five completions within the window"
    );
    let rate = first_value(
        &native,
        &format!("histogram_count(rate({selector}[5m]))"),
        &time,
    )
    .await;
    let expected = 5.0 * native_rate_factor(&samples, t, 300.0);
    assert!(
        (rate - expected).abs() <= 1e-9 * expected,
        "histogram_count(rate) {rate}, the simulator's 5 completions give {expected}"
    );
    let upper = |i: i32| (f64::from(i) / 8.0).exp2();
    let bucket = (median.log2() * 8.0).ceil() as i32;
    let (low, high) = (upper(bucket - 1), upper(bucket));
    let quantile = first_value(
        &native,
        &format!("histogram_quantile(0.5, rate({selector}[5m]))"),
        &time,
    )
    .await;
    assert!(
        low < quantile && quantile <= high,
        "native p50 {quantile} outside the schema-3 bucket ({low}, {high}] of the true median {median}"
    );
    // The shipped recording rule answers in both worlds, each within its own buckets.
    let rule = format!(
        "tenant_task_name_source:sailpoint_task_duration_seconds:quantile_rate6h{{tenant=\"{SCRIPTED}\",quantile=\"0.5\"}}"
    );
    let native_rule = first_value(&native, &rule, &time).await;
    assert!(
        low < native_rule && native_rule <= high,
        "native rule p50 {native_rule}"
    );
    let classic_time = scrape_after(&classic, counted_at).await;
    let classic_rule = first_value(&classic, &rule, &classic_time).await;
    assert!(
        (60.0..=120.0).contains(&classic_rule),
        "classic rule p50 {classic_rule} outside the classic bucket (60, 120] of {median}"
    );

    // Every dashboard expression that reads a task histogram (directly or through a
    // recording rule) shows data from the native histograms too.
    let histogram_exprs: Vec<PanelExpr> = dashboard_exprs()
        .into_iter()
        .filter(|e| {
            e.expr.contains("sailpoint_task_duration_seconds")
                || e.expr.contains("sailpoint_task_queue_wait_seconds")
        })
        .collect();
    assert!(
        histogram_exprs.len() >= 4,
        "{} histogram expressions",
        histogram_exprs.len()
    );
    let mut pending: BTreeMap<String, String> = histogram_exprs
        .iter()
        .map(|e| (e.key(), "not evaluated yet".to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pending.is_empty() && Instant::now() < deadline {
        check_exprs(&native, &histogram_exprs, &mut pending).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        pending.is_empty(),
        "dashboard expressions without data from native histograms: {pending:#?}"
    );

    // What each costs Prometheus: the series in its head.
    let classic_series = head_series(&classic).await;
    let native_series = head_series(&native).await;
    eprintln!(
        "prometheus_tsdb_head_series after {:?}: classic (OpenMetrics) {classic_series}, \
         native (protobuf) {native_series}",
        started.elapsed()
    );
    assert!(
        native_series < classic_series,
        "native histograms must cost fewer series ({native_series} vs {classic_series})"
    );
    for prom in [&classic_prom, &native_prom] {
        let complaints = prom.log_lines_with(&["level=warn", "level=error"]);
        assert!(
            complaints.is_empty(),
            "{}:\n{}",
            prom.name,
            complaints.join("\n")
        );
    }
    classic_prom.assert_running();
    native_prom.assert_running();
    drop(classic_prom);
    drop(native_prom);
    drop(exporter);
    scripted.shutdown().await;
    steady.shutdown().await;
}
