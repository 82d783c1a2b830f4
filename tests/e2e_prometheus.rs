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
//! Needs `/usr/bin/prometheus` (Debian package `prometheus`, installed by
//! `bash scripts/test.sh`) and `python3` (for `tests/deploy/promql_exprs.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatus};
use sailpoint_task_exporter::simulator::{
    DEMO_CLIENT_SECRET, Faults, Scenario, SimConfig, SimHandle, Simulator,
};
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
    stuck: SimHandle,
    failing: SimHandle,
}

async fn start_tenants() -> Tenants {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let stuck = SimConfig::new(51)
        .with_scenario(Scenario::StuckAggregation)
        .with_speed(1.0);
    let failing = SimConfig::new(52)
        .with_scenario(Scenario::FailingSource)
        .with_speed(300.0)
        .with_faults(Faults {
            rate_limit_every: Some(7),
            rate_limit_burst: 1,
            retry_after: Duration::from_secs(1),
            ..Faults::none()
        });
    Tenants {
        stuck: Simulator::start(stuck, listen).await.expect("start stuck"),
        failing: Simulator::start(failing, listen)
            .await
            .expect("start failing"),
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
    let started = Instant::now();
    loop {
        proc.assert_running();
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < STARTUP,
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
    Expected {
        stuck_id: stuck.id.clone(),
        stuck_group: group_of(STUCK, stuck),
        failing_group: group_of(FAILING, &failed),
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

/// Whether any sample of an instant (`value`) or range (`values`) result is a number:
/// a panel of NaNs (e.g. a quantile of empty buckets) shows nothing in Grafana.
fn has_number(rows: &[Value]) -> bool {
    let is_number = |sample: &Value| sample[1].as_str().is_some_and(|v| v != "NaN");
    rows.iter().any(|row| {
        row["value"].is_array() && is_number(&row["value"])
            || row["values"]
                .as_array()
                .is_some_and(|values| values.iter().any(is_number))
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
    let mut exporter = ProcessGuard::spawn(
        "sailpoint-task-exporter",
        Command::new(env!("CARGO_BIN_EXE_sailpoint-task-exporter"))
            .arg("serve")
            .arg("--config.file")
            .arg(&exporter_config),
        dir.path().join("exporter.log"),
    );
    let exporter_port = exporter.logged_listen_port().await;
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

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    wait_ready(
        &http,
        &format!("http://127.0.0.1:{exporter_port}/-/ready"),
        &mut exporter,
    )
    .await;
    wait_ready(
        &http,
        &format!("http://127.0.0.1:{prom_port}/-/ready"),
        &mut prom,
    )
    .await;
    let started = Instant::now();
    let api = PromApi {
        http,
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

    let complaints = prom.log_lines_with(&["level=warn", "level=error"]);
    assert!(
        complaints.is_empty(),
        "Prometheus logged warnings or errors (rule evaluation, alert templates):\n{}",
        complaints.join("\n")
    );

    drop(prom);
    drop(exporter);
    tenants.stuck.shutdown().await;
    tenants.failing.shutdown().await;
}
