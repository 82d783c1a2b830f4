//! `POST /-/reload` with `--web.enable-lifecycle`: a valid file is applied and answered 200,
//! an invalid one is refused with 500 naming the key (the running configuration stays),
//! other methods get 405, and without the flag the endpoint answers 403.

use std::path::{Path, PathBuf};

use sailpoint_simulator::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Scenario, SimConfig, SimHandle, Simulator,
};
use test_support::daemon::Daemon;

/// The daemon listens on port 0; its address comes from its log.
fn write_config(path: &Path, sim: &SimHandle, pending_interval: &str) {
    std::fs::write(
        path,
        format!(
            "web:\n  listen_address: \"127.0.0.1:0\"\ntenants:\n  - name: a\n    base_url: {}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret: {DEMO_CLIENT_SECRET}\n    pending_interval: {pending_interval}\n    completed_interval: 1s\n",
            sim.base_url()
        ),
    )
    .unwrap();
}

/// A daemon for `sim` in a temporary folder (pending interval 1 s), with the lifecycle API
/// when `lifecycle`, once ready: the folder, the config file, the daemon and its base URL.
async fn start(sim: &SimHandle, lifecycle: bool) -> (tempfile::TempDir, PathBuf, Daemon, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yaml");
    write_config(&path, sim, "1s");
    let flags: &[&str] = if lifecycle {
        &["--web.enable-lifecycle"]
    } else {
        &[]
    };
    let log = path.with_extension("log");
    let daemon = Daemon::start_with(crate::BIN, &path, &log, flags).await;
    daemon.wait_ready().await;
    let base = daemon.url("");
    (dir, path, daemon, base)
}

/// The line of the last reload's outcome in the daemon's exposition.
async fn reload_gauge(daemon: &Daemon) -> String {
    let body = daemon.metrics_text().await;
    body.lines()
        .find(|l| l.starts_with("sailpoint_exporter_config_last_reload_successful "))
        .unwrap_or_else(|| panic!("no reload gauge in:\n{body}"))
        .to_string()
}

async fn sim() -> SimHandle {
    Simulator::start(
        SimConfig::new(3).with_scenario(Scenario::Steady),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn post_reload_applies_a_valid_file_and_refuses_an_invalid_one() {
    let sim = sim().await;
    let (_dir, path, daemon, base) = start(&sim, true).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/-/reload");

    write_config(&path, &sim, "2s");
    let ok = client.post(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "OK\n");
    assert_eq!(
        reload_gauge(&daemon).await,
        "sailpoint_exporter_config_last_reload_successful 1"
    );

    std::fs::write(&path, "tenants: []\n").unwrap();
    let refused = client.put(&url).send().await.unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(
        refused.text().await.unwrap(),
        "reload refused: configuration key `tenants`: at least one tenant is required\n"
    );
    assert_eq!(
        reload_gauge(&daemon).await,
        "sailpoint_exporter_config_last_reload_successful 0"
    );
    let up = daemon.metrics_text().await;
    assert!(
        up.contains("sailpoint_up{tenant=\"a\"}"),
        "the old configuration keeps running"
    );

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST, PUT");
    sim.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_the_endpoint_is_forbidden() {
    let sim = sim().await;
    let (_dir, _path, _daemon, base) = start(&sim, false).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        "lifecycle API is not enabled (start with --web.enable-lifecycle)\n"
    );
    sim.shutdown().await;
}
