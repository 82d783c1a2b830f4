//! `POST /-/reload` with `--web.enable-lifecycle`: a valid file is applied and answered 200,
//! an invalid one is refused with 500 naming the key (the running configuration stays),
//! other methods get 405, and without the flag the endpoint answers 403.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sailpoint_task_exporter::simulator::{
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

async fn start(config: &Path, lifecycle: bool) -> (Daemon, String) {
    let log = config.with_extension("log");
    let flags: &[&str] = if lifecycle {
        &["--web.enable-lifecycle"]
    } else {
        &[]
    };
    let daemon = Daemon::start_with(crate::BIN, config, &log, flags).await;
    let base = daemon.url("");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(format!("{base}/-/ready")).await {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!(
                "daemon never became ready: {other:?}\n{}",
                daemon.log_text()
            ),
        }
    }
    (daemon, base)
}

async fn reload_gauge(base: &str) -> String {
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

fn config_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("exporter.yaml")
}

#[tokio::test]
async fn post_reload_applies_a_valid_file_and_refuses_an_invalid_one() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_path(&dir);
    write_config(&path, &sim, "1s");
    let (_daemon, base) = start(&path, true).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/-/reload");

    write_config(&path, &sim, "2s");
    let ok = client.post(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "OK\n");
    assert_eq!(
        reload_gauge(&base).await,
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
        reload_gauge(&base).await,
        "sailpoint_exporter_config_last_reload_successful 0"
    );
    let up = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let path = config_path(&dir);
    write_config(&path, &sim, "1s");
    let (_daemon, base) = start(&path, false).await;
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
