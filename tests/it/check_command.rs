//! `check` against the simulated tenant: a healthy tenant gets every line and exit 0; bad
//! credentials, a wrong API version and an unreachable tenant each fail at the right step
//! with exit 1, and one failing tenant fails the whole check.

use std::path::PathBuf;
use std::process::Command;

use sailpoint_simulator::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Scenario, SimConfig, SimHandle, Simulator,
};

use crate::BIN;

/// A frozen clock: the counts `check` prints must equal the ground truth read after it,
/// so no scheduled run may start or finish in between.
async fn sim() -> SimHandle {
    Simulator::start(
        SimConfig::new(9)
            .with_scenario(Scenario::StuckAggregation)
            .with_manual_clock(chrono::Utc::now()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn tenant(name: &str, base_url: &str, secret: &str, api_version: &str) -> String {
    format!(
        "  - name: {name}\n    base_url: {base_url}\n    api_version: {api_version}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret: {secret}\n    request_timeout: 3s\n"
    )
}

fn config(dir: &tempfile::TempDir, tenants: &[String]) -> PathBuf {
    let path = dir.path().join("check.yaml");
    std::fs::write(&path, format!("tenants:\n{}", tenants.concat())).unwrap();
    path
}

/// Runs `check` off the async runtime's threads and returns (exit code, stdout).
pub(crate) async fn check(path: PathBuf) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("check")
            .arg("--config.file")
            .arg(path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The line of `check`'s output that reports `step`.
pub(crate) fn line<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(step))
        .unwrap_or_else(|| panic!("no `{step}` line in:\n{out}"))
}

#[tokio::test]
async fn a_healthy_tenant_passes_every_step() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &[tenant("acme", &sim.base_url(), DEMO_CLIENT_SECRET, "v2024")],
    );
    let (code, out) = check(path).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!("tenant acme ({}, v2024)\n", sim.base_url())),
        "{out}"
    );
    assert_eq!(line(&out, "reachable"), "  reachable       yes");
    assert!(
        line(&out, "authenticated").ends_with("/oauth/token)"),
        "{out}"
    );
    assert_eq!(
        line(&out, "pending tasks"),
        format!("  pending tasks   {}", sim.pending_tasks().len())
    );
    let completed = sim.tasks().iter().filter(|t| !t.is_pending()).count();
    assert!(
        line(&out, "completed tasks")
            .starts_with(&format!("  completed tasks {completed}, newest created ")),
        "{out}"
    );
    assert!(
        line(&out, "clock skew").contains(" s (tenant Date header minus local clock)"),
        "{out}"
    );
    assert_eq!(line(&out, "verdict"), "  verdict         OK");
    assert!(out.ends_with("all 1 tenant(s) OK\n"), "{out}");
    sim.shutdown().await;
}

#[tokio::test]
async fn each_failure_is_reported_at_its_step() {
    let sim = sim().await;
    // Bound but never listened on: connections are refused, and the port stays ours for
    // the whole test (a freed port could be taken by another test meanwhile).
    let gone_socket = tokio::net::TcpSocket::new_v4().unwrap();
    gone_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let gone = format!("http://{}", gone_socket.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        &[
            tenant("good", &sim.base_url(), DEMO_CLIENT_SECRET, "v2024"),
            tenant("badsecret", &sim.base_url(), "wrong-secret", "v2024"),
            tenant("badversion", &sim.base_url(), DEMO_CLIENT_SECRET, "v1999"),
            tenant("gone", &gone, DEMO_CLIENT_SECRET, "v2024"),
        ],
    );
    let (code, out) = check(path).await;
    assert_eq!(code, Some(1), "{out}");
    let section = |name: &str| {
        let start = out.find(&format!("tenant {name} (")).unwrap();
        let rest = &out[start + 1..];
        let end = rest.find("\ntenant ").map_or(out.len(), |e| start + 1 + e);
        out[start..end].to_string()
    };
    assert!(section("good").contains("verdict         OK"), "{out}");
    let bad = section("badsecret");
    assert!(
        bad.contains("authenticated   FAILED: token: token endpoint answered HTTP 401"),
        "{bad}"
    );
    assert!(!bad.contains("wrong-secret"), "the secret is never printed");
    let version = section("badversion");
    assert!(
        version.contains("api version     FAILED: getPendingTaskHeaders: HTTP 404"),
        "{version}"
    );
    let gone = section("gone");
    assert!(
        gone.contains("reachable       FAILED: token: connection failed: "),
        "{gone}"
    );
    assert!(
        !gone.contains("token: token:"),
        "the operation is named once: {gone}"
    );
    assert!(out.ends_with("3 of 4 tenant(s) FAILED\n"), "{out}");
    sim.shutdown().await;
}
