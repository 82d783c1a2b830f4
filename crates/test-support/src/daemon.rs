//! The real binary as a child process, for the integration tests that run it: start it,
//! wait for its listen address, scrape it, signal it, wait for it to exit.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::exposition::{self, Sample};

/// The daemon as a child process; killed when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `bin serve` with `config`, stderr to `log`, and waits for its listen address.
    /// `bin` is the binary Cargo built for the test (`CARGO_BIN_EXE_*`, which only the
    /// integration-test crate can name).
    pub async fn start(bin: &str, config: &Path, log: &Path) -> Daemon {
        Daemon::start_with(bin, config, log, &[]).await
    }

    /// [`Daemon::start`] with extra flags (e.g. `--web.enable-lifecycle`).
    pub async fn start_with(bin: &str, config: &Path, log: &Path, flags: &[&str]) -> Daemon {
        let stderr = File::create(log).expect("create the daemon log");
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config.file")
            .arg(config)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon");
        let mut daemon = Daemon {
            child,
            log: log.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(addr) = listen_address(&daemon.log_text()) {
                daemon.addr = addr;
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("daemon exited with {status}:\n{}", daemon.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not listen:\n{}",
                daemon.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's process id (for `/proc` figures and signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL of `path` on the daemon's listen address.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the daemon has logged so far (empty when the log cannot be read).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `HUP`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// `GET path` with a fresh client (5 s timeout): the status and the body, or why the
    /// request failed.
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(|e| e.to_string())?))
    }

    /// `/metrics` in OpenMetrics (with exemplars), asked for as Prometheus asks for it
    /// (panics with the log when the request fails).
    pub async fn openmetrics_text(&self) -> String {
        let response = reqwest::Client::new()
            .get(self.url("/metrics"))
            .header("Accept", "application/openmetrics-text;version=1.0.0")
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let body = match response {
            Ok(response) => response.text().await,
            Err(e) => Err(e),
        };
        body.unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.log_text()))
    }

    /// The body of a successful `/metrics` scrape (panics with the log otherwise).
    pub async fn metrics_text(&self) -> String {
        match self.get("/metrics").await {
            Ok((200, body)) => body,
            other => panic!("scrape failed: {other:?}\n{}", self.log_text()),
        }
    }

    /// Waits up to 30 s for `/-/ready` to answer 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(self.get("/-/ready").await, Ok((200, _))) {
            assert!(Instant::now() < deadline, "not ready:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes every 100 ms until `check` holds on the exposition text (up to `limit`);
    /// returns the text that satisfied it.
    pub async fn wait_for_metrics(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.metrics_text().await;
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The samples of a successful `/metrics` scrape.
    pub async fn samples(&self) -> Vec<Sample> {
        exposition::parse(&self.metrics_text().await)
    }

    /// [`Daemon::wait_for_metrics`] with `check` on the samples; returns the samples that
    /// satisfied it.
    pub async fn wait_for_samples(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let text = self
            .wait_for_metrics(what, limit, |text| check(&exposition::parse(text)))
            .await;
        exposition::parse(&text)
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary folder for one daemon (config, log, state), and the path its config file
/// gets there (`exporter.yaml`); the folder is removed when dropped.
pub fn config_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("exporter.yaml");
    (dir, path)
}

/// The `address=` of the daemon's "serving metrics" log line.
pub fn listen_address(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|l| l.contains("serving metrics"))
        .flat_map(str::split_whitespace)
        .find_map(|w| w.strip_prefix("address=")?.parse().ok())
}
