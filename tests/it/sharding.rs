//! Sharding across replicas with the real binaries: `simulate --tenants 200` serves 200
//! tenants under path prefixes, and two `serve` daemons read the same 200-tenant
//! configuration as shards 0/2 (`--shard.index 0`) and 1/2 (`--shard.index-from-hostname`
//! with a StatefulSet-like host name). Together they must report every tenant up exactly
//! once, each tenant on the replica its name hashes to.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sailpoint_simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use sailpoint_task_exporter::shard::shard_of;

use test_support::daemon::{Daemon, listen_address};

const TENANTS: usize = 200;
use crate::BIN;

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line of `log` that `find` recognises (30 s at most).
async fn wait_log<T>(child: &mut Child, log: &Path, find: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(found) = find(&text) {
            return found;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("process exited with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "nothing found in the log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The address of `simulate --tenants`: the `first=http://ADDR/t1` field of its log.
fn simulator_address(log: &str) -> Option<SocketAddr> {
    log.split_whitespace().find_map(|w| {
        w.strip_prefix("first=http://")?
            .strip_suffix("/t1")?
            .parse()
            .ok()
    })
}

/// `sailpoint_up` per tenant, from an exposition.
fn up_by_tenant(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("sailpoint_up{tenant=\""))
        .filter_map(|rest| {
            let (tenant, value) = rest.split_once("\"} ")?;
            Some((tenant.to_string(), value.trim().to_string()))
        })
        .collect()
}

async fn scrape(client: &reqwest::Client, addr: SocketAddr) -> String {
    match client.get(format!("http://{addr}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Scrapes until every tenant of the replica reports up = 1 (90 s at most); returns them.
async fn wait_all_up(
    client: &reqwest::Client,
    addr: SocketAddr,
    expected: &BTreeSet<String>,
    log: &dyn Fn() -> String,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let up = up_by_tenant(&scrape(client, addr).await);
        if up.keys().collect::<BTreeSet<_>>() == expected.iter().collect()
            && up.values().all(|v| v == "1")
        {
            return up;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {} tenants up on {addr}: {} reported, {} up\n{}",
            expected.len(),
            up.len(),
            up.values().filter(|v| *v == "1").count(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts `command` with stderr to `log` (nothing on stdin or stdout), killed when dropped.
fn spawn_logged(command: &mut Command, log: &Path) -> Guard {
    let stderr = File::create(log).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    Guard(
        child
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_cover_two_hundred_tenants_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim_log = dir.path().join("simulate.log");
    let mut sim = spawn_logged(
        Command::new(BIN)
            .args(["simulate", "--listen", "127.0.0.1:0", "--tenants", "200"])
            .args(["--scenario", "steady", "--speed", "60"])
            .env("SAILPOINT_SIM_CLIENT_SECRET", DEMO_CLIENT_SECRET),
        &sim_log,
    );
    let sim_addr = wait_log(&mut sim.0, &sim_log, simulator_address).await;

    let mut config = String::from("web:\n  listen_address: \"127.0.0.1:0\"\ntenants:\n");
    for k in 1..=TENANTS {
        config.push_str(&format!(
            "  - {{ name: t{k}, base_url: \"http://{sim_addr}/t{k}\", client_id: {DEMO_CLIENT_ID}, client_secret: {DEMO_CLIENT_SECRET}, pending_interval: 2s, completed_interval: 3s, lookback: 1h, request_timeout: 20s }}\n"
        ));
    }
    let config_path = dir.path().join("tenants.yaml");
    std::fs::write(&config_path, config).unwrap();

    let zero = Daemon::start_with(
        crate::BIN,
        &config_path,
        &dir.path().join("shard-0.log"),
        &["--shard.count", "2", "--shard.index", "0"],
    )
    .await;
    let one_log = dir.path().join("shard-1.log");
    let mut one = spawn_logged(
        Command::new(BIN)
            .arg("serve")
            .arg("--config.file")
            .arg(&config_path)
            .args(["--shard.count", "2", "--shard.index-from-hostname"])
            .env("HOSTNAME", "sailpoint-task-exporter-1"),
        &one_log,
    );
    let one_addr = wait_log(&mut one.0, &one_log, listen_address).await;

    let names: Vec<String> = (1..=TENANTS).map(|k| format!("t{k}")).collect();
    let expected = |shard: u32| -> BTreeSet<String> {
        names
            .iter()
            .filter(|n| shard_of(n, 2) == shard)
            .cloned()
            .collect()
    };
    let (want_zero, want_one) = (expected(0), expected(1));
    assert_eq!((want_zero.len(), want_one.len()), (85, 115));

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let zero_addr: SocketAddr = zero.url("").trim_start_matches("http://").parse().unwrap();
    let up_zero = wait_all_up(&client, zero_addr, &want_zero, &|| zero.log_text()).await;
    let up_one = wait_all_up(&client, one_addr, &want_one, &|| {
        std::fs::read_to_string(&one_log).unwrap_or_default()
    })
    .await;

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for tenant in up_zero.keys().chain(up_one.keys()) {
        *seen.entry(tenant.as_str()).or_default() += 1;
    }
    assert_eq!(seen.len(), TENANTS, "every tenant is covered");
    assert!(
        seen.values().all(|n| *n == 1),
        "no tenant is polled twice: {seen:?}"
    );
    let log_one = std::fs::read_to_string(&one_log).unwrap_or_default();
    assert!(
        log_one.contains("shard=1 shards=2 tenants=115 configured=200"),
        "{log_one}"
    );
}
