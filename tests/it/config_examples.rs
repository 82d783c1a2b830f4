//! The shipped configuration examples load and validate, and bad files exit with code 2
//! and one message naming the key.

use std::path::Path;
use std::process::Command;

use sailpoint_task_exporter::config::{Overrides, Settings};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn simulator_example_is_valid() {
    let s = Settings::load(&repo("config/simulator.yaml"), &Overrides::default()).unwrap();
    assert_eq!(s.tenants.len(), 1);
    assert_eq!(s.tenants[0].name, "simulated");
    assert_eq!(s.tenants[0].api_root(), "http://127.0.0.1:11012/v2024");
}

#[test]
fn real_tenant_example_is_valid_once_its_secret_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "not-a-real-secret\n").unwrap();
    let text = std::fs::read_to_string(repo("config/sailpoint-task-exporter.yaml"))
        .unwrap()
        .replace(
            "/etc/sailpoint-task-exporter/client-secret",
            &secret.display().to_string(),
        );
    let s = Settings::from_text(&text, config::FileFormat::Yaml, &Overrides::default()).unwrap();
    let t = &s.tenants[0];
    assert_eq!(t.name, "acme");
    assert_eq!(
        t.token_endpoint(),
        "https://acme.api.identitynow.com/oauth/token"
    );
    assert_eq!(s.metrics.task_name_rewrites.len(), 1);
    assert_eq!(
        s.status,
        sailpoint_task_exporter::config::StatusSettings::default(),
        "the example shows the defaults"
    );
    assert!(!format!("{s:?}").contains("not-a-real-secret"));
}

#[test]
fn a_bad_file_exits_2_naming_the_key_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "tenants:\n  - name: acme\n    base_url: http://127.0.0.1:1\n    client_id: x\n    client_secret: y\n    rate_limit: { requests: 0, per: 10s }\n",
    )
    .unwrap();
    let out = Command::new(crate::BIN)
        .arg("--config.file")
        .arg(&file)
        .arg("--web.listen-address")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configuration key `tenants[0].rate_limit.requests`: must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_exits_2() {
    let out = Command::new(crate::BIN)
        .args(["check", "--config.file", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"));
}
