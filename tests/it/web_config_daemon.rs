//! The shipped `config/web-config.yml` example, end to end: `promtool check web-config`
//! accepts it (with real certificate files in place of the example paths), and the real
//! daemon started with `--web.config.file` serves HTTPS with mutual TLS and basic auth,
//! refuses plain HTTP, a wrong password and a client without a certificate, and leaves
//! `/-/healthy` open. An invalid web config file stops the daemon at start with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sailpoint_simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Scenario, SimConfig, Simulator};
use test_support::web::{Pki, get_as};

use crate::BIN;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Kills the daemon even when an assertion fails.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shipped example with its certificate paths pointing at files in `dir`.
fn example_in(dir: &Path, pki: &Pki) -> PathBuf {
    std::fs::write(dir.join("server.crt"), &pki.server_pem).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
    std::fs::write(dir.join("client-ca.crt"), &pki.ca_pem).unwrap();
    let text = std::fs::read_to_string(repo("config/web-config.yml"))
        .unwrap()
        .replace(
            "/etc/sailpoint-task-exporter/tls/",
            &format!("{}/", dir.display()),
        );
    let path = dir.join("web-config.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The address the daemon logged as `serving metrics address=…` (it listens on port 0,
/// so no port is picked and freed for someone else to take first).
async fn listen_address(daemon: &mut Daemon, log: &Path) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter(|l| l.contains("serving metrics"))
            .flat_map(str::split_whitespace)
            .find_map(|w| w.strip_prefix("address=")?.parse().ok());
        if let Some(addr) = found {
            return addr;
        }
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("daemon exited with {status}:\n{text}");
        }
        assert!(Instant::now() < deadline, "daemon did not listen:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn daemon_config(dir: &Path, base_url: &str, web: &Path) -> PathBuf {
    let path = dir.join("exporter.yaml");
    std::fs::write(
        &path,
        format!(
            "web:\n  listen_address: \"127.0.0.1:0\"\n  config_file: {}\ntenants:\n  - name: sim\n    base_url: {base_url}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret: {DEMO_CLIENT_SECRET}\n    pending_interval: 1s\n    completed_interval: 1s\n",
            web.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn promtool_accepts_the_shipped_example() {
    let dir = tempfile::tempdir().unwrap();
    let web = example_in(dir.path(), &Pki::generate());
    let out = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .expect("promtool is missing: run `bash scripts/test.sh`, which installs Debian's prometheus package");
    assert!(
        out.status.success(),
        "promtool check web-config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_daemon_serves_https_with_mtls_and_basic_auth() {
    let sim = Simulator::start(
        SimConfig::new(1).with_scenario(Scenario::Steady),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate();
    let web = example_in(dir.path(), &pki);
    let config = daemon_config(dir.path(), &sim.base_url(), &web);
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(BIN)
            .args(["serve", "--config.file"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let port = listen_address(&mut daemon, &log).await.port();
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let identity = reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap();
    let with_cert = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .identity(identity)
        .build()
        .unwrap();
    let without_cert = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");

    // Wait until the daemon answers over TLS.
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        match with_cert.get(format!("{base}/-/healthy")).send().await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("daemon never answered over TLS: {e}"),
        }
    };
    assert_eq!(
        healthy.status(),
        200,
        "/-/healthy is open without credentials"
    );

    let metrics = format!("{base}/metrics");
    for (what, login) in [
        ("anonymous", None),
        ("wrong", Some(("prometheus", "wrong"))),
    ] {
        let refused = get_as(&with_cert, &metrics, login).await.unwrap();
        assert_eq!(refused.status(), 401, "{what}");
        assert!(refused.headers().contains_key("www-authenticate"), "{what}");
    }
    let ok = get_as(&with_cert, &metrics, Some(("prometheus", "change-me"))).await;
    let ok = ok.unwrap();
    assert_eq!(ok.status(), 200);
    let body = ok.text().await.unwrap();
    assert!(body.contains("sailpoint_exporter_build_info{"), "{body}");

    let refused = get_as(&without_cert, &metrics, Some(("prometheus", "change-me"))).await;
    assert!(
        refused.is_err(),
        "mTLS: a client without a certificate is refused"
    );
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/-/healthy"))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be served on the TLS port"
    );
    sim.shutdown().await;
}

#[test]
fn an_invalid_web_config_stops_the_daemon_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n").unwrap();
    let config = daemon_config(dir.path(), "http://127.0.0.1:1", &web);
    let out = Command::new(BIN)
        .args(["serve", "--config.file"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("web config file"), "{stderr}");
    assert!(stderr.contains(&web.display().to_string()), "{stderr}");
}
