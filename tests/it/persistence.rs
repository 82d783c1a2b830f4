//! State across restarts (`--storage.path`) and consistent scrapes, with the real
//! `sailpoint-task-exporter serve` binary against a simulated tenant in this process.
//!
//! The simulator's tasks are the ground truth: every task is added after the first
//! start primed, so every completion must be counted exactly once across SIGKILLs at
//! random moments and the downtimes between them — counters, histograms and
//! last-completed gauges compared from 0.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use sailpoint_simulator::{
    DEMO_CLIENT_SECRET, Faults, NewTask, Scenario, SimConfig, SimHandle, Simulator,
};
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatusMessage};
use test_support::exposition::{self, Sample};

use test_support::daemon::{Daemon, config_dir};
use test_support::exporter::{
    DURATION_BUCKETS, QUEUE_WAIT_BUCKETS, TENANT, assert_samples_match_truth,
};

async fn scrape(daemon: &Daemon) -> Vec<Sample> {
    daemon.samples().await
}

/// Scrapes until `check` holds (up to 60 s); returns the samples that satisfied it.
async fn wait_for(daemon: &Daemon, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    daemon
        .wait_for_samples(what, Duration::from_secs(60), check)
        .await
}

/// A temporary folder with an empty `state` directory in it (the `storage.path`).
fn with_state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("state");
    std::fs::create_dir(&storage).unwrap();
    (dir, storage)
}

/// An empty simulated tenant on a manual clock.
async fn sim() -> SimHandle {
    sim_seeded(23).await
}

/// [`sim`] with another seed (its own task ids and clock).
async fn sim_seeded(seed: u64) -> SimHandle {
    let cfg = SimConfig::new(seed)
        .with_scenario(Scenario::Empty)
        .with_manual_clock(Utc::now().trunc_subsecs(0));
    Simulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The daemon's configuration: the harness's buckets (so its exact bucket comparison
/// applies), state in `storage`, 1 s intervals.
fn config(sim: &SimHandle, storage: &Path) -> String {
    config_for(&[(TENANT, sim)], storage)
}

/// [`config`] for several tenants, each (name, simulator).
fn config_for(tenants: &[(&str, &SimHandle)], storage: &Path) -> String {
    let list = |b: &[f64]| {
        b.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut yaml = format!(
        "web:\n  listen_address: \"127.0.0.1:0\"\nmetrics:\n  duration_buckets: [{}]\n  queue_wait_buckets: [{}]\nstorage:\n  path: {}\ntenants:\n",
        list(&DURATION_BUCKETS),
        list(&QUEUE_WAIT_BUCKETS),
        storage.display(),
    );
    for (name, sim) in tenants {
        yaml.push_str(&format!(
            "  - name: {name}\n    base_url: {}\n    client_id: {}\n    client_secret: {DEMO_CLIENT_SECRET}\n    pending_interval: 1s\n    completed_interval: 1s\n    lookback: 1h\n",
            sim.base_url(),
            sim.client_id(),
        ));
    }
    yaml
}

const SOURCES: [&str; 3] = ["Active Directory", "Workday", "ServiceNow"];
const STATUSES: [CompletionStatus; 4] = [
    CompletionStatus::Success,
    CompletionStatus::Error,
    CompletionStatus::Warning,
    CompletionStatus::Terminated,
];

/// Adds `n` tasks with random source, status, queue wait and run time (all whole
/// seconds), and lets simulated time pass until they have all finished.
fn complete_tasks(sim: &SimHandle, rng: &mut rand::rngs::StdRng, n: usize) {
    let now = sim.now();
    for _ in 0..n {
        let wait = TimeDelta::seconds(rng.gen_range(0..5));
        let run = TimeDelta::seconds(rng.gen_range(1..400));
        let status = STATUSES[rng.gen_range(0..STATUSES.len())].clone();
        let messages = if status == CompletionStatus::Success {
            Vec::new()
        } else {
            vec![TaskStatusMessage {
                level: "ERROR".into(),
                key: "failed".into(),
                ..TaskStatusMessage::default()
            }]
        };
        sim.add_task(
            NewTask::account_aggregation(SOURCES[rng.gen_range(0..SOURCES.len())])
                .created(now)
                .launched(now + wait)
                .completes(now + wait + run, status)
                .messages(messages),
        );
    }
    sim.advance(Duration::from_secs(410));
}

fn completed_total(samples: &[Sample]) -> f64 {
    exposition::sum(
        samples,
        "sailpoint_tasks_completed_total",
        &[("tenant", TENANT)],
    )
}

async fn start(config: &Path, log: &Path) -> Daemon {
    let daemon = Daemon::start(crate::BIN, config, log).await;
    daemon.wait_ready().await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_neither_loses_nor_double_counts_a_completion() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("state");
    let config_path = dir.path().join("exporter.yaml");
    std::fs::write(&config_path, config(&sim, &storage)).unwrap();
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let log = |i: usize| dir.path().join(format!("daemon-{i}.log"));

    let mut daemon = start(&config_path, &log(0)).await;
    // Everything after this instant is counted: the tenant is primed, and no task exists.
    let primed_at = sim.now();
    for round in 1..=5 {
        let n = rng.gen_range(1..8);
        complete_tasks(&sim, &mut rng, n);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..2500))).await;
        daemon.signal("KILL");
        assert!(
            daemon.wait_exit(Duration::from_secs(10)).await.is_some(),
            "seed {seed}: the daemon did not die"
        );
        // Completions while the exporter is down.
        let n = rng.gen_range(0..8);
        complete_tasks(&sim, &mut rng, n);
        if round == 3 {
            // What a kill in the middle of a write leaves behind: a torn temporary file.
            std::fs::write(
                storage.join(format!(".{TENANT}.json.tmp")),
                b"{\"format\":1,",
            )
            .unwrap();
        }
        daemon = start(&config_path, &log(round)).await;
        assert!(
            daemon.log_text().contains("resuming from the state file"),
            "seed {seed}: round {round} did not resume:\n{}",
            daemon.log_text()
        );
    }
    let want = sim.tasks().len() as f64;
    let samples = wait_for(&daemon, "every completion counted", |s| {
        completed_total(s) >= want
    })
    .await;
    assert_eq!(completed_total(&samples), want, "seed {seed}");
    // Two more rounds of polls, then the exact comparison: nothing counted twice late.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let samples = scrape(&daemon).await;
    assert_samples_match_truth(&samples, &sim, primed_at, Duration::from_secs(3600));
    let errors: f64 = exposition::sum(
        &samples,
        "sailpoint_task_messages_total",
        &[("level", "error")],
    );
    let failed = sim
        .tasks()
        .iter()
        .filter(|t| t.completion_status != Some(CompletionStatus::Success))
        .count();
    assert_eq!(errors, failed as f64, "seed {seed}: error messages");
    assert_eq!(
        exposition::value(
            &samples,
            "sailpoint_exporter_state_writes_failed_total",
            &[("tenant", TENANT)]
        ),
        Some(0.0)
    );
    assert!(!storage.join(format!(".{TENANT}.json.tmp")).exists());
}

/// The samples of `tenant`, relabelled as the harness's [`TENANT`] (its comparison with
/// the ground truth reads that tenant).
fn as_harness_tenant(samples: &[Sample], tenant: &str) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.labels.get("tenant").is_some_and(|t| t == tenant))
        .map(|s| {
            let mut s = s.clone();
            s.labels.insert("tenant".into(), TENANT.into());
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tenants_in_one_daemon_each_count_exactly_through_a_kill() {
    const NAMES: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
    let sims = futures::future::join_all((0..NAMES.len() as u64).map(|k| sim_seeded(31 + k))).await;
    let (dir, config_path) = config_dir();
    let tenants: Vec<(&str, &SimHandle)> = NAMES.iter().copied().zip(sims.iter()).collect();
    std::fs::write(
        &config_path,
        config_for(&tenants, &dir.path().join("state")),
    )
    .unwrap();
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let log = |i: usize| dir.path().join(format!("daemon-{i}.log"));

    let mut daemon = start(&config_path, &log(0)).await;
    let primed_at: Vec<_> = sims.iter().map(|sim| sim.now()).collect();
    for round in 1..=4 {
        // Each tenant moves on its own: some rounds bring it nothing.
        for sim in &sims {
            if rng.gen_bool(0.7) {
                let n = rng.gen_range(1..6);
                complete_tasks(sim, &mut rng, n);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..2000))).await;
        if round == 2 {
            daemon.signal("KILL");
            assert!(daemon.wait_exit(Duration::from_secs(10)).await.is_some());
            let n = rng.gen_range(1..4);
            complete_tasks(&sims[0], &mut rng, n);
            daemon = start(&config_path, &log(round)).await;
        }
    }
    let total = |s: &[Sample], tenant: &str| {
        exposition::sum(s, "sailpoint_tasks_completed_total", &[("tenant", tenant)])
    };
    wait_for(&daemon, "every tenant's completions counted", |s| {
        NAMES
            .iter()
            .zip(&sims)
            .all(|(name, sim)| total(s, name) >= sim.tasks().len() as f64)
    })
    .await;
    // Two more rounds of polls, then the exact comparison, tenant by tenant.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let samples = scrape(&daemon).await;
    for ((name, sim), primed_at) in NAMES.iter().zip(&sims).zip(primed_at) {
        assert_eq!(
            total(&samples, name),
            sim.tasks().len() as f64,
            "seed {seed}: {name}"
        );
        assert_samples_match_truth(
            &as_harness_tenant(&samples, name),
            sim,
            primed_at,
            Duration::from_secs(3600),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_state_file_is_set_aside_counted_and_the_tenant_starts_fresh() {
    let sim = sim().await;
    let (dir, storage) = with_state_dir();
    let foreign = format!(
        "{{\"format\":1,\"tenant\":\"{TENANT}\",\"base_url\":\"https://elsewhere.example/\",\"saved_at\":\"{}\"}}",
        Utc::now().to_rfc3339()
    );
    std::fs::write(storage.join(format!("{TENANT}.json")), foreign).unwrap();
    let config_path = dir.path().join("exporter.yaml");
    std::fs::write(&config_path, config(&sim, &storage)).unwrap();
    let daemon = start(&config_path, &dir.path().join("daemon.log")).await;
    let samples = scrape(&daemon).await;
    let set_aside = |reason: &str| {
        exposition::value(
            &samples,
            "sailpoint_exporter_state_set_aside_total",
            &[("tenant", TENANT), ("reason", reason)],
        )
    };
    assert_eq!(set_aside("foreign"), Some(1.0));
    assert_eq!(set_aside("corrupt"), Some(0.0));
    let aside: Vec<String> = std::fs::read_dir(&storage)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{TENANT}.json.foreign-")))
        .collect();
    assert_eq!(aside.len(), 1, "kept for inspection");
    // The fresh tenant writes its own state.
    wait_for(&daemon, "a state write", |s| {
        exposition::value(
            s,
            "sailpoint_exporter_state_last_write_success_timestamp_seconds",
            &[("tenant", TENANT)],
        )
        .is_some()
    })
    .await;
    let text = std::fs::read_to_string(storage.join(format!("{TENANT}.json"))).unwrap();
    assert!(text.contains(&sim.base_url()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_storage_path_is_counted_while_serving_goes_on() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: unwritable even for root.
    let storage = dir.path().join("state");
    std::fs::write(&storage, b"").unwrap();
    let config_path = dir.path().join("exporter.yaml");
    std::fs::write(&config_path, config(&sim, &storage)).unwrap();
    let daemon = start(&config_path, &dir.path().join("daemon.log")).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    complete_tasks(&sim, &mut rng, 3);
    let samples = wait_for(&daemon, "3 completions and failed writes", |s| {
        completed_total(s) == 3.0
            && exposition::value(
                s,
                "sailpoint_exporter_state_writes_failed_total",
                &[("tenant", TENANT)],
            )
            .is_some_and(|n| n >= 2.0)
    })
    .await;
    assert_eq!(
        exposition::value(&samples, "sailpoint_up", &[("tenant", TENANT)]),
        Some(1.0)
    );
    assert_eq!(
        daemon
            .log_text()
            .matches("cannot write the state file")
            .count(),
        1,
        "logged once, not at every poll"
    );
}

/// A scraper hammering `/metrics` while polls apply: every scrape sees whole polls. A
/// pending task's series never disappears while it is pending, and no group's counter is
/// ever ahead of (or behind) its duration histogram's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hammering_scraper_never_sees_half_a_poll() {
    let sim = sim().await;
    let (dir, config_path) = config_dir();
    let yaml = config(&sim, &dir.path().join("state"))
        .replace("pending_interval: 1s", "pending_interval: 100ms")
        .replace("completed_interval: 1s", "completed_interval: 100ms");
    std::fs::write(&config_path, yaml).unwrap();
    let daemon = start(&config_path, &dir.path().join("daemon.log")).await;
    // A task pending for the whole test.
    let stuck = sim.add_task(NewTask::account_aggregation("Stuck").launched(sim.now()));
    wait_for(&daemon, "the stuck task's series", |s| {
        exposition::value(
            s,
            "sailpoint_pending_task_created_timestamp_seconds",
            &[("id", &stuck)],
        )
        .is_some()
    })
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = daemon.url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut scrapes, mut last_total) = (0, 0.0);
    while Instant::now() < deadline {
        if scrapes % 20 == 0 {
            complete_tasks(&sim, &mut rng, 2);
        }
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        let s = exposition::parse(&body);
        scrapes += 1;
        assert!(
            exposition::value(
                &s,
                "sailpoint_pending_task_created_timestamp_seconds",
                &[("id", &stuck)]
            )
            .is_some(),
            "scrape {scrapes}: the pending task's series is missing"
        );
        assert_eq!(
            exposition::value(
                &s,
                "sailpoint_tasks_pending",
                &[("source", "Stuck [source]")]
            ),
            Some(1.0),
            "scrape {scrapes}"
        );
        for counter in s
            .iter()
            .filter(|x| x.name == "sailpoint_tasks_completed_total")
        {
            let labels: Vec<(&str, &str)> = counter
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                exposition::value(&s, "sailpoint_task_duration_seconds_count", &labels)
                    .unwrap_or(0.0),
                counter.value,
                "scrape {scrapes}: counter and histogram of {labels:?}"
            );
        }
        let total = completed_total(&s);
        assert!(total >= last_total, "scrape {scrapes}: a counter went down");
        last_total = total;
    }
    assert!(scrapes > 50, "only {scrapes} scrapes");
    assert!(last_total > 0.0, "polls applied while scraping");
}

/// The OpenMetrics exposition (exemplars), as Prometheus asks for it.
async fn openmetrics(daemon: &Daemon) -> String {
    daemon.openmetrics_text().await
}

/// The lines of `text` that carry an exemplar naming `id`.
fn exemplar_lines(text: &str, id: &str) -> Vec<String> {
    let needle = format!("# {{task_id=\"{id}\"}}");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_survive_a_restart_with_the_values() {
    let sim = sim().await;
    let (dir, path) = config_dir();
    std::fs::write(&path, config(&sim, &dir.path().join("state"))).unwrap();
    let daemon = start(&path, &dir.path().join("first.log")).await;
    let now = sim.now();
    let id = sim.add_task(
        NewTask::account_aggregation("Workday")
            .created(now)
            .launched(now + TimeDelta::seconds(2))
            .completes(now + TimeDelta::seconds(62), CompletionStatus::Success),
    );
    sim.advance(Duration::from_secs(70));
    wait_for(&daemon, "the completion", |s| completed_total(s) == 1.0).await;
    let before = exemplar_lines(&openmetrics(&daemon).await, &id);
    // The counter, the duration bucket and the queue-wait bucket that hold the task.
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before[0].starts_with("sailpoint_task_duration_seconds_bucket{"));
    assert!(before[0].contains(&format!("# {{task_id=\"{id}\"}} 60 ")));
    drop(daemon);

    let daemon = start(&path, &dir.path().join("second.log")).await;
    let after = exemplar_lines(&openmetrics(&daemon).await, &id);
    assert_eq!(
        after, before,
        "the same exemplars after the restart, nothing new counted"
    );
}

/// One owner per state directory: a second exporter on the same `storage.path` (an HA
/// pair on a shared volume, a pod still running on a partitioned node) exits 2 naming the
/// directory and the holder's pid, touching nothing; the first goes on, and a foreign
/// temporary file in the directory is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_exporter_on_the_same_state_directory_exits_2_naming_the_holder() {
    let sim = sim().await;
    let (dir, storage) = with_state_dir();
    std::fs::write(storage.join(".someone-else.tmp"), b"not ours").unwrap();
    let path = dir.path().join("exporter.yaml");
    std::fs::write(&path, config(&sim, &storage)).unwrap();
    let first = start(&path, &dir.path().join("first.log")).await;
    let state_file = storage.join(format!("{TENANT}.json"));
    wait_for(&first, "the first state write", |_| state_file.exists()).await;
    let before = std::fs::read(&state_file).unwrap();

    let log = dir.path().join("second.log");
    let mut child = std::process::Command::new(crate::BIN)
        .arg("serve")
        .arg("--config.file")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the second exporter is still running:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state directory {} is in use by another sailpoint-task-exporter (pid {})",
            storage.display(),
            first.pid()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("serving metrics"), "{stderr}");
    assert!(storage.join(".someone-else.tmp").exists());
    // The first one still owns its state: it keeps serving and writing.
    complete_tasks(&sim, &mut rand::rngs::StdRng::seed_from_u64(5), 1);
    wait_for(&first, "the first exporter counts on", |s| {
        completed_total(s) == 1.0
    })
    .await;
    wait_for(&first, "its state written again", |_| {
        std::fs::read(&state_file).is_ok_and(|now| now != before)
    })
    .await;
}

/// Counter-type samples (`counter` families, and a histogram's buckets, `_sum` and
/// `_count`) of the exporter's own families, by name and labels: what must never go down.
fn counter_series(text: &str) -> std::collections::BTreeMap<String, f64> {
    let counters: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, kind)| {
            name.starts_with("sailpoint_") && matches!(*kind, "counter" | "histogram")
        })
        .map(|(name, _)| name)
        .collect();
    exposition::parse(text)
        .into_iter()
        .filter(|s| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| counters.contains(f)))
                .unwrap_or(&s.name);
            counters.contains(family)
        })
        .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
        .collect()
}

/// No counter of any family ever goes down across a crash: SIGKILL at random moments —
/// during stretches of failing polls (which move the request, retry and poll-error
/// counters), while tasks are pending, and whenever a state write happens to be under way
/// — and every counter series of the last scrape before the kill is compared with the
/// first scrape after the restart. Replay a failure with `KILL_SEED=<seed>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_counter_goes_down_across_sigkills_at_random_moments() {
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("state");
    let config_path = dir.path().join("exporter.yaml");
    // One retry, so a failing stretch fails polls (not only retries) within a second.
    let yaml = config(&sim, &storage).replace(
        "    lookback: 1h\n",
        "    lookback: 1h\n    max_retries: 1\n    request_timeout: 2s\n",
    );
    std::fs::write(&config_path, yaml).unwrap();
    let log = |i: usize| dir.path().join(format!("daemon-{i}.log"));
    let mut daemon = start(&config_path, &log(0)).await;
    let failing = Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    };
    for round in 1..=8 {
        let fail = rng.gen_bool(0.5);
        sim.set_faults(if fail {
            failing.clone()
        } else {
            Faults::default()
        });
        let n = rng.gen_range(0..5);
        complete_tasks(&sim, &mut rng, n);
        // Some tasks stay pending for a few rounds (the simulated clock moves 410 s a
        // round).
        let now = sim.now();
        for _ in 0..rng.gen_range(0..3) {
            sim.add_task(
                NewTask::account_aggregation(SOURCES[0])
                    .created(now)
                    .launched(now)
                    .completes(now + TimeDelta::seconds(900), CompletionStatus::Success),
            );
        }
        // Scrape back to back until a random moment, then kill right after the last one.
        let until = Instant::now() + Duration::from_millis(rng.gen_range(200..2500));
        let mut before = daemon.metrics_text().await;
        while Instant::now() < until {
            before = daemon.metrics_text().await;
        }
        daemon.signal("KILL");
        assert!(
            daemon.wait_exit(Duration::from_secs(10)).await.is_some(),
            "KILL_SEED={seed}: the daemon did not die"
        );
        daemon = Daemon::start(crate::BIN, &config_path, &log(round)).await;
        let after = counter_series(&daemon.metrics_text().await);
        let before = counter_series(&before);
        assert!(
            before.len() > 50,
            "KILL_SEED={seed}: {} counter series",
            before.len()
        );
        for (series, was) in &before {
            let now = after.get(series).copied().unwrap_or(0.0);
            // Exactly: saved values come back bit for bit (serde_json's float_roundtrip).
            assert!(
                now >= *was,
                "KILL_SEED={seed}: round {round} ({}): {series} went down from {was} to {now}\n{}",
                if fail {
                    "failing polls"
                } else {
                    "working polls"
                },
                daemon.log_text()
            );
        }
        if !fail {
            daemon.wait_ready().await;
        }
    }
}
