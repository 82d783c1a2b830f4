//! The configuration files shipped in `deploy/` are accepted by the daemon's own settings
//! loader, so a deployment kit cannot drift from the config schema unnoticed.
//!
//! `cargo test --test it deploy::` runs these (the kit's other checks are
//! `tests/deploy/check.sh`). The secret paths of the examples (a Kubernetes Secret mount,
//! a systemd credential) do not exist here, so each test points `client_secret_file` at a
//! temporary file after checking the shipped path is the documented one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::FileFormat;
use sailpoint_task_exporter::config::{Credentials, Overrides, Settings};
use secrecy::ExposeSecret;

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key` in a ConfigMap's `data`, written as a `|` block scalar.
fn configmap_block(manifest: &str, key: &str) -> String {
    let header = format!("  {key}: |");
    let mut lines = manifest.lines().skip_while(|l| l.trim_end() != header);
    assert!(lines.next().is_some(), "no `{header}` in the ConfigMap");
    lines
        .take_while(|l| l.trim().is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces the one `client_secret_file:` value after checking it is `expected`.
fn with_secret_file(config: &str, expected: &str, replacement: &Path) -> String {
    let line = format!("client_secret_file: {expected}");
    assert_eq!(
        config.matches(&line).count(),
        1,
        "expected `{line}` once in:\n{config}"
    );
    config.replace(
        &line,
        &format!("client_secret_file: {}", replacement.display()),
    )
}

fn secret_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("client-secret");
    std::fs::write(&path, "deploy-test-secret\n").expect("write secret");
    path
}

/// Loads the shipped config `what` with its secret path (checked to be `secret_path`)
/// pointing at a temporary file, and checks the shipped defaults.
fn load_shipped(what: &str, config: &str, secret_path: &str) -> Settings {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = with_secret_file(config, secret_path, &secret_file(&dir));
    let settings = Settings::from_text(&text, FileFormat::Yaml, &Overrides::default())
        .unwrap_or_else(|e| panic!("{what} rejected: {e}\n{text}"));
    assert_shipped_defaults(&settings);
    settings
}

fn assert_shipped_defaults(settings: &Settings) {
    assert_eq!(settings.web.listen_address, "0.0.0.0:11011");
    assert_eq!(settings.tenants.len(), 1);
    let tenant = &settings.tenants[0];
    assert_eq!(tenant.name, "acme");
    assert_eq!(tenant.api_root(), "https://acme.api.identitynow.com/v2024");
    assert_eq!(tenant.pending_interval, Duration::from_secs(30));
    assert_eq!(tenant.completed_interval, Duration::from_secs(60));
    // lookback >= the 26h SailPointSourceNoSuccessfulAggregation threshold
    assert_eq!(tenant.lookback, Duration::from_secs(48 * 3600));
    assert_eq!(tenant.rate_limit.requests, 90);
    assert_eq!(tenant.rate_limit.per, Duration::from_secs(10));
    let Credentials::ClientCredentials {
        client_id,
        client_secret,
    } = tenant.credentials()
    else {
        panic!("expected client credentials");
    };
    let secret = client_secret.expose_secret();
    assert_eq!(
        (client_id.as_str(), secret),
        ("0123456789abcdef0123456789abcdef", "deploy-test-secret")
    );
}

#[test]
fn kubernetes_configmap_config_is_valid() {
    let manifest = repo_file("deploy/kubernetes/configmap.yaml");
    let config = configmap_block(&manifest, "sailpoint-task-exporter.yaml");
    let secret = "/etc/sailpoint-task-exporter/secrets/client-secret";
    let settings = load_shipped("ConfigMap config", &config, secret);
    assert_eq!(settings.metrics.max_pending_task_series, 50);
    assert_eq!(settings.tenants[0].page_size, 250);
}

#[test]
fn systemd_example_config_is_valid() {
    let config = repo_file("deploy/systemd/sailpoint-task-exporter.yaml");
    let secret = "/run/credentials/sailpoint-task-exporter.service/client-secret";
    load_shipped("systemd example config", &config, secret);
}

#[test]
fn shipped_secret_path_missing_is_a_clear_error() {
    // Outside the pod the mounted secret does not exist: the loader must say which key.
    let manifest = repo_file("deploy/kubernetes/configmap.yaml");
    let config = configmap_block(&manifest, "sailpoint-task-exporter.yaml");
    let err = Settings::from_text(&config, FileFormat::Yaml, &Overrides::default())
        .expect_err("the secret file does not exist here");
    assert!(err.to_string().contains("client_secret_file"), "{err}");
    assert!(!err.to_string().contains("deploy-test-secret"), "{err}");
}
