//! The status page as the person on call sees it: the real daemon against a simulated
//! tenant with a stuck aggregation, a failing source and a source whose name is HTML,
//! read by headless Chromium (Debian's `chromium`, installed by
//! `scripts/install-test-deps.sh`). The rendered DOM must carry the stuck task's id and
//! the exact command that clears it, the failing source's message texts and the HTML
//! name as inert text; a screenshot is saved to `target/status-page.png` (and to
//! `docs/status-page.png`, shown in the README, with `UPDATE_DOCS_SCREENSHOT=1`).
//!
//! The JSON at `/api/v1/status` is compared with the simulator's ground truth exactly;
//! both need the web config's basic auth like `/metrics`; tenants follow reloads.
//!
//! Without `chromium` on PATH the browser test FAILS, unless `SKIP_BROWSER_TESTS=1` is
//! set, in which case it prints a SKIP line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sailpoint_simulator::{
    ClockMode, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, NewTask, Scenario, SimConfig, SimHandle,
    Simulator,
};
use sailpoint_task_exporter::sailpoint::model::{
    CompletionStatus, LocalizedMessage, TaskStatus, TaskStatusMessage,
};
use serde_json::Value;
use test_support::daemon::Daemon;
use test_support::web::get_as;

const TENANT: &str = "sim";
/// The name of the hostile source (the simulator shows it as `<name> [source]`).
const EVIL: &str = "<img src=x onerror=alert(1)>";
const EVIL_MESSAGE: &str = "Connector said <script>alert(2)</script> & gave up";
const STUCK_AFTER: chrono::Duration = chrono::Duration::hours(3);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn message(level: &str, text: &str) -> TaskStatusMessage {
    TaskStatusMessage {
        level: level.to_string(),
        localized_text: Some(LocalizedMessage {
            locale: "en-US".to_string(),
            message: text.to_string(),
        }),
        key: "test.message".to_string(),
        parameters: None,
    }
}

/// The `incident` tenant (stuck Active Directory aggregation, failing Salesforce) on a
/// frozen clock, plus a source named like an HTML tag with a stuck and a failed
/// aggregation.
async fn incident_tenant() -> SimHandle {
    let cfg = SimConfig {
        clock: ClockMode::manual_now(),
        ..SimConfig::new(11).with_scenario(Scenario::Incident)
    };
    let sim = Simulator::start(cfg, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("start the simulator");
    let now = sim.now();
    sim.add_task(
        NewTask::account_aggregation(EVIL)
            .created(now - chrono::Duration::hours(4))
            .launched(now - chrono::Duration::hours(4)),
    );
    sim.add_task(
        NewTask::group_aggregation(EVIL)
            .created(now - chrono::Duration::minutes(20))
            .launched(now - chrono::Duration::minutes(19))
            .completes(now - chrono::Duration::minutes(10), CompletionStatus::Error)
            .messages(vec![
                message("INFO", "started"),
                message("ERROR", EVIL_MESSAGE),
            ]),
    );
    sim
}

/// The daemon's configuration: one tenant per name, all on `sim`, 1 s polls, a lookback
/// of 48 h so every completion of the last 24 h is primed.
fn config_yaml(sim: &SimHandle, tenants: &[&str], web_config: Option<&Path>) -> String {
    let mut text = String::from("web:\n  listen_address: \"127.0.0.1:0\"\n");
    if let Some(web) = web_config {
        text.push_str(&format!("  config_file: {}\n", web.display()));
    }
    text.push_str("tenants:\n");
    for name in tenants {
        text.push_str(&format!(
            "  - name: {name}\n    base_url: {}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret: {DEMO_CLIENT_SECRET}\n    pending_interval: 1s\n    completed_interval: 1s\n    lookback: 48h\n",
            sim.base_url()
        ));
    }
    text
}

/// The daemon started with `yaml` written to `dir`/exporter.yaml (its log beside it).
async fn start_daemon(dir: &Path, yaml: &str) -> Daemon {
    let config = dir.join("exporter.yaml");
    std::fs::write(&config, yaml).expect("write config");
    Daemon::start(crate::BIN, &config, &dir.join("daemon.log")).await
}

/// The status page at `url`.
async fn page_at(url: &str) -> String {
    let response = http().get(url).send().await.expect("GET /");
    response.text().await.expect("page")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// `/api/v1/status` once every listed tenant is up with a pending and completed poll.
async fn status_when_up(daemon: &Daemon, tenants: &[&str], auth: Option<(&str, &str)>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = match get_as(&http(), &daemon.url("/api/v1/status"), auth).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        if let Some(json) = all_up(&last, tenants) {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "tenants {tenants:?} not up in time; last answer: {last}\n{}",
        daemon.log_text()
    )
}

/// The status JSON in `body` when it lists exactly `tenants`, each up.
fn all_up(body: &str, tenants: &[&str]) -> Option<Value> {
    let json = serde_json::from_str::<Value>(body).ok()?;
    let listed = json["tenants"].as_array()?;
    let names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
    let up = listed.iter().all(|t| t["state"] == "up");
    (names == tenants && up).then_some(json)
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|t| t["id"].as_str().expect("an id").to_string())
        .collect()
}

fn is_aggregation_of(task: &TaskStatus, source: &str) -> bool {
    task.unique_name.contains("Aggregation") && task.source_name() == Some(source)
}

fn failed(task: &TaskStatus) -> bool {
    matches!(
        task.completion_status,
        Some(CompletionStatus::Error | CompletionStatus::Terminated)
    )
}

/// Text as the browser serialises a text node (`&`, `<`, `>` escaped).
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Chromium binary, or None when the test is explicitly skipped; panics when it is
/// missing without the skip switch (a browser test that silently passes proves nothing).
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var("SKIP_BROWSER_TESTS").as_deref() == Ok("1") => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIP: status page browser test (SKIP_BROWSER_TESTS=1, no chromium on PATH)\n",
            );
            None
        }
        None => panic!(
            "chromium is not installed: run scripts/install-test-deps.sh (Debian package \
             'chromium'), or set SKIP_BROWSER_TESTS=1 to skip this test explicitly"
        ),
    }
}

/// Runs headless Chromium with `args` and returns its stdout; fails after two minutes.
fn run_chromium(binary: &Path, profile: &Path, args: &[String]) -> String {
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("poll chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 2 minutes: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("chromium output");
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_what_is_stuck_and_what_failed_in_a_real_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let sim = incident_tenant().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(dir.path(), &config_yaml(&sim, &[TENANT], None)).await;
    let status = status_when_up(&daemon, &[TENANT], None).await;
    let now = time(&status["generated_at"]);
    let config = dir.path().join("exporter.yaml");
    let tenant = &status["tenants"][0];
    let truth = sim.tasks();

    // Stuck: every task pending since before now − 3 h, oldest first, with its command.
    let mut stuck: Vec<TaskStatus> = sim
        .pending_tasks()
        .into_iter()
        .filter(|t| t.created <= now - STUCK_AFTER)
        .collect();
    stuck.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    let stuck_ids: Vec<String> = stuck.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids(&tenant["pending"]["stuck"]), stuck_ids);
    assert_eq!(
        stuck.len(),
        2,
        "the Active Directory one and the HTML-named one"
    );
    let ad = &stuck[1];
    assert_eq!(ad.source_name(), Some("Active Directory [source]"));
    let ad_command = format!(
        "sailpoint-task-exporter tasks complete {} --status error --config.file {} --tenant {TENANT}",
        ad.id,
        config.display()
    );
    assert_eq!(
        tenant["pending"]["stuck"][1]["clear_command"],
        ad_command.as_str()
    );
    // Pasted in another directory, the command works: it reads the task and prints the
    // patch that would clear it (sending nothing without --yes).
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let bin_dir = std::path::Path::new(crate::BIN)
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pasted = std::process::Command::new("sh")
        .args(["-c", &ad_command])
        .current_dir(elsewhere.path())
        .env("PATH", path)
        .env_remove("SAILPOINT_EXPORTER_CONFIG")
        .output()
        .expect("run the pasted command");
    let stdout = String::from_utf8_lossy(&pasted.stdout);
    assert_eq!(
        pasted.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    assert!(
        stdout.contains("\"path\": \"/completionStatus\",\n    \"value\": \"ERROR\""),
        "{stdout}"
    );
    assert_eq!(tenant["pending"]["stuck_total"], 2);
    assert_eq!(tenant["pending"]["total"], sim.pending_tasks().len());

    // Salesforce: every aggregation fails; the newest failure and the 24 h count.
    let salesforce = "Salesforce [source]";
    let mut sf_failures: Vec<&TaskStatus> = truth
        .iter()
        .filter(|t| is_aggregation_of(t, salesforce) && failed(t))
        .collect();
    sf_failures.sort_by_key(|t| (t.completed, t.id.clone()));
    let newest = sf_failures.last().expect("Salesforce failed");
    let in_24h = sf_failures
        .iter()
        .filter(|t| {
            t.completed
                .is_some_and(|c| c > now - chrono::Duration::hours(24) && c <= now)
        })
        .count();
    let sources = tenant["sources"].as_array().expect("sources");
    let sf = sources
        .iter()
        .find(|s| s["source"] == salesforce)
        .expect("Salesforce listed");
    assert_eq!(sf["last_failure"]["id"], newest.id.as_str());
    assert_eq!(sf["failures_24h"], in_24h);
    assert!(in_24h >= 20, "an aggregation every hour fails: {in_24h}");
    assert_eq!(sf["last_success"], Value::Null);
    assert_eq!(sf["success_overdue"], true);

    // Recent failures: the 50 newest non-success completions the exporter read.
    let bound = now - chrono::Duration::hours(48);
    let mut failures: Vec<&TaskStatus> = truth
        .iter()
        .filter(|t| !t.is_pending() && t.created >= bound)
        .filter(|t| t.completion_status != Some(CompletionStatus::Success))
        .collect();
    failures.sort_by(|a, b| (b.completed, &b.id).cmp(&(a.completed, &a.id)));
    failures.truncate(50);
    let expected: Vec<String> = failures.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids(&tenant["recent_failures"]), expected);
    let sf_message = newest.messages[0]
        .localized_text
        .as_ref()
        .expect("a text")
        .message
        .clone();
    assert_eq!(
        sf_message,
        "Error connecting to Salesforce: java.net.ConnectException: Connection refused"
    );
    let evil_failure = tenant["recent_failures"]
        .as_array()
        .expect("failures")
        .iter()
        .find(|f| f["source"] == format!("{EVIL} [source]"))
        .expect("the HTML-named source's failure");
    assert_eq!(
        evil_failure["messages"],
        serde_json::json!([{"level": "ERROR", "text": EVIL_MESSAGE}])
    );

    // The same, as a person sees it.
    let profile = dir.path().join("chromium-profile");
    let dom = run_chromium(&browser, &profile, &["--dump-dom".into(), daemon.url("/")]);
    for expected in [
        format!("Tenant {TENANT}"),
        ">UP<".to_string(),
        ad.id.clone(),
        ad_command.clone(),
        dom_text(&sf_message),
        dom_text(EVIL_MESSAGE),
        dom_text(&format!("{EVIL} [source]")),
        format!("Pending now ({})", sim.pending_tasks().len()),
        "Stuck: pending longer than 3h (2)".to_string(),
    ] {
        assert!(dom.contains(&expected), "page lacks {expected:?}:\n{dom}");
    }
    assert!(
        !dom.contains("<img"),
        "an <img> element was created:\n{dom}"
    );
    assert!(
        !dom.contains("<script"),
        "a <script> element was created:\n{dom}"
    );

    let shot = repo("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &browser,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".into(),
            daemon.url("/"),
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "not a real PNG"
    );
    if std::env::var("UPDATE_DOCS_SCREENSHOT").as_deref() == Ok("1") {
        std::fs::copy(&shot, repo("docs/status-page.png")).expect("update docs screenshot");
    }
    let shipped = std::fs::read(repo("docs/status-page.png")).expect("docs/status-page.png");
    assert!(
        shipped.starts_with(b"\x89PNG"),
        "the README's screenshot is a PNG"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_json_need_the_same_basic_auth_as_the_metrics() {
    let sim = incident_tenant().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let hash = bcrypt::hash("on-call-secret", 4).expect("bcrypt");
    let web = dir.path().join("web-config.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  oncall: {hash}\n")).expect("web config");
    let daemon = start_daemon(dir.path(), &config_yaml(&sim, &[TENANT], Some(&web))).await;
    status_when_up(&daemon, &[TENANT], Some(("oncall", "on-call-secret"))).await;
    for path in ["/", "/api/v1/status", "/status.css", "/metrics"] {
        let url = daemon.url(path);
        for (what, login) in [
            ("without credentials", None),
            ("with a wrong password", Some(("oncall", "guess"))),
        ] {
            let refused = get_as(&http(), &url, login).await.expect("GET");
            assert_eq!(refused.status(), 401, "{path} {what}");
        }
        let allowed = get_as(&http(), &url, Some(("oncall", "on-call-secret"))).await;
        let allowed = allowed.expect("GET");
        assert_eq!(allowed.status(), 200, "{path} with the password");
        if path != "/metrics" {
            let csp = allowed.headers()["content-security-policy"]
                .to_str()
                .expect("ASCII");
            assert!(
                csp.starts_with("default-src 'none'; style-src 'self';"),
                "{csp}"
            );
            assert_eq!(allowed.headers()["x-content-type-options"], "nosniff");
        }
        let content_type = allowed.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .to_string();
        let want = match path {
            "/" => "text/html; charset=utf-8",
            "/api/v1/status" => "application/json",
            "/status.css" => "text/css; charset=utf-8",
            _ => "text/plain; version=0.0.4; charset=utf-8",
        };
        assert_eq!(content_type, want, "{path}");
    }
    let healthy = http()
        .get(daemon.url("/-/healthy"))
        .send()
        .await
        .expect("GET");
    assert_eq!(healthy.status(), 200, "liveness stays open");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_added_or_removed_by_a_reload_appear_and_disappear() {
    let sim = incident_tenant().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(dir.path(), &config_yaml(&sim, &["alpha"], None)).await;
    let config = dir.path().join("exporter.yaml");
    status_when_up(&daemon, &["alpha"], None).await;

    std::fs::write(&config, config_yaml(&sim, &["alpha", "beta"], None)).expect("write config");
    daemon.signal("HUP");
    let both = status_when_up(&daemon, &["alpha", "beta"], None).await;
    assert_eq!(
        both["tenants"][1]["pending"]["stuck_total"], 2,
        "beta polls too"
    );

    std::fs::write(&config, config_yaml(&sim, &["beta"], None)).expect("write config");
    daemon.signal("HUP");
    status_when_up(&daemon, &["beta"], None).await;
    let page = page_at(&daemon.url("/")).await;
    assert!(page.contains("Tenant beta"), "{page}");
    assert!(
        !page.contains("Tenant alpha"),
        "a removed tenant disappears:\n{page}"
    );
    sim.shutdown().await;
}

/// A port that was free a moment ago (the demo prints the address it was given, so it
/// cannot listen on port 0); the test retries when someone else took it meanwhile.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Kills the demo even when an assertion fails.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_prints_the_page_url_and_the_page_shows_its_incident() {
    let dir = tempfile::tempdir().expect("temp dir");
    for attempt in 0..3 {
        let port = free_port();
        let out = dir.path().join(format!("demo-{attempt}.out"));
        let child = Command::new(crate::BIN)
            .args(["demo", "--listen", "127.0.0.1:0", "--web.listen-address"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("demo stdout"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start demo");
        let mut demo = Demo(child);
        let page_line = format!(
            "  status page:       http://127.0.0.1:{port}/  (JSON: http://127.0.0.1:{port}/api/v1/status)"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = false;
        let status = loop {
            if demo.0.try_wait().expect("poll demo").is_some() {
                exited = true;
                break None;
            }
            let printed = std::fs::read_to_string(&out).unwrap_or_default();
            if printed.lines().any(|l| l == page_line) {
                let answer = http()
                    .get(format!("http://127.0.0.1:{port}/api/v1/status"))
                    .send()
                    .await;
                if let Ok(answer) = answer {
                    let json: Value = answer.json().await.expect("status JSON");
                    let t = &json["tenants"][0];
                    if t["state"] == "up"
                        && !t["recent_failures"].as_array().is_none_or(Vec::is_empty)
                    {
                        break Some(json);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "demo did not serve its page:\n{printed}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let Some(status) = status else {
            assert!(exited && attempt < 2, "the demo kept failing to start");
            continue;
        };
        let tenant = &status["tenants"][0];
        assert_eq!(tenant["name"], "simulated");
        let stuck = tenant["pending"]["stuck"].as_array().expect("stuck tasks");
        assert!(
            stuck
                .iter()
                .any(|s| s["source"] == "Active Directory [source]"
                    && s["task_name"] == "Cloud Account Aggregation"
                    && s["age_seconds"]
                        .as_i64()
                        .is_some_and(|a| a >= 3 * 3600 + 60)),
            "the demo's stuck aggregation: {stuck:?}"
        );
        let salesforce = tenant["recent_failures"]
            .as_array()
            .expect("failures")
            .iter()
            .find(|f| f["source"] == "Salesforce [source]")
            .expect("a Salesforce failure");
        assert_eq!(
            salesforce["messages"],
            serde_json::json!([{"level": "ERROR",
                "text": "Error connecting to Salesforce: java.net.ConnectException: Connection refused"}])
        );
        let page = page_at(&format!("http://127.0.0.1:{port}/")).await;
        assert!(page.contains("Error connecting to Salesforce"));
        let command = stuck[0]["clear_command"].as_str().expect("a command");
        let sim_url = std::fs::read_to_string(dir.path().join(format!("demo-{attempt}.out")))
            .expect("demo output")
            .lines()
            .find_map(|l| l.strip_prefix("  simulated tenant:  "))
            .and_then(|l| l.split_whitespace().next())
            .expect("the simulated tenant's URL")
            .to_string();
        assert_eq!(
            command,
            format!(
                "sailpoint-task-exporter tasks complete {} --status error --base-url {sim_url} --client-id sim-client",
                stuck[0]["id"].as_str().expect("an id")
            ),
            "demo has no configuration file: the command names the tenant by URL"
        );
        assert!(page.contains(command), "{page}");
        return;
    }
}

#[test]
fn demo_on_a_busy_port_fails_before_announcing_any_url() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = busy.local_addr().expect("its address").port();
    let out = Command::new(crate::BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--web.listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "", "nothing is announced");
    assert!(
        stderr.contains(&format!("demo: cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

/// The OpenMetrics exposition once `needle` is in it.
async fn openmetrics_with(daemon: &Daemon, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = daemon.openmetrics_text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle} not in the exposition:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exemplar_links_to_the_task_page_of_the_task_it_names() {
    let sim = incident_tenant().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(dir.path(), &config_yaml(&sim, &[TENANT], None)).await;
    let status = status_when_up(&daemon, &[TENANT], None).await;

    // A task that ends after priming is counted, and becomes the exemplar.
    let now = sim.now();
    let id = sim.add_task(
        NewTask::account_aggregation("HR")
            .created(now - chrono::Duration::minutes(5))
            .launched(now - chrono::Duration::minutes(4)),
    );
    assert!(sim.complete_task(
        &id,
        CompletionStatus::Error,
        vec![message("ERROR", EVIL_MESSAGE)]
    ));
    let exemplar = format!("# {{task_id=\"{id}\"}} 1 ");
    let text = openmetrics_with(&daemon, &exemplar).await;
    let counter = text
        .lines()
        .find(|l| l.contains(&exemplar))
        .expect("the counter line");
    assert!(
        counter.starts_with("sailpoint_tasks_completed_total{")
            && counter.contains("status=\"error\""),
        "{counter}"
    );
    let bucket = format!("le=\"300.0\"}} 1 # {{task_id=\"{id}\"}} 240 ");
    assert!(
        text.lines().any(
            |l| l.starts_with("sailpoint_task_duration_seconds_bucket{") && l.contains(&bucket)
        ),
        "the 240 s run is the 300 s bucket's exemplar:\n{text}"
    );

    let page = http()
        .get(daemon.url(&format!("/task/{id}")))
        .send()
        .await
        .expect("GET /task");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ASCII")
            .starts_with("default-src 'none'")
    );
    let html = page.text().await.expect("body");
    for shown in [
        format!("Tenant {TENANT}"),
        "<tr><th>Status</th><td>ERROR</td></tr>".to_string(),
        "<tr><th>Duration</th><td>240 s".to_string(),
        "<tr><th>Source</th><td>HR [source]</td></tr>".to_string(),
        "Connector said &lt;script&gt;alert(2)&lt;/script&gt; &amp; gave up".to_string(),
    ] {
        assert!(html.contains(&shown), "{shown} not in\n{html}");
    }
    assert!(!html.contains("<script>"));

    // A stuck task's page gives the command that clears it, as the status page does.
    let stuck = &status["tenants"][0]["pending"]["stuck"][0];
    let stuck_id = stuck["id"].as_str().expect("a stuck id");
    let stuck_page = http()
        .get(daemon.url(&format!("/task/{stuck_id}")))
        .send()
        .await
        .expect("GET /task")
        .text()
        .await
        .expect("body");
    let command = stuck["clear_command"].as_str().expect("its command");
    assert!(stuck_page.contains("PENDING, stuck"), "{stuck_page}");
    assert!(
        stuck_page.contains(&format!(
            "<code class=\"cmd\">{}</code>",
            dom_escape(command)
        )),
        "{command} not in\n{stuck_page}"
    );

    for unknown in ["/task/no-such-task", "/task/", "/task/%ff"] {
        let missing = http().get(daemon.url(unknown)).send().await.expect("GET");
        assert_eq!(missing.status(), 404, "{unknown}");
    }
    sim.shutdown().await;
}

/// `s` as the page escapes it.
fn dom_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
