//! Shared harness of the exporter integration tests: a simulated tenant on loopback, the
//! real client and poller against it, and an exact comparison of the rendered metrics
//! with the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::exposition::{self, Sample};
use chrono::{DateTime, Utc};
use sailpoint_simulator::{DEMO_CLIENT_SECRET, Faults, Scenario, SimConfig, SimHandle, Simulator};
use sailpoint_task_exporter::collector::{TaskSource, TenantPoller};
use sailpoint_task_exporter::config::{Credentials, MetricsSettings, TenantSettings};
use sailpoint_task_exporter::metrics::{Metrics, PollList, normalize};
use sailpoint_task_exporter::sailpoint::Client;
use sailpoint_task_exporter::sailpoint::model::TaskStatus;

/// The tenant name of every exporter in these tests.
pub const TENANT: &str = "sim";

/// The sources the tests spread their tasks over.
pub const SOURCES: [&str; 3] = ["Active Directory", "Workday", "Salesforce"];

/// `n` seconds, as the simulator's clock counts.
pub fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// The simulated tenant, shared with the poller's clock.
pub async fn start_sim(scenario: Scenario, seed: u64) -> Arc<SimHandle> {
    let start = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let cfg = SimConfig::new(seed)
        .with_scenario(scenario)
        .with_manual_clock(start);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Arc::new(Simulator::start(cfg, listen).await.unwrap())
}

/// Tenant settings for the simulator: small pages (so paging is exercised), fast
/// retries, no client-side throttling.
pub fn tenant_settings(sim: &SimHandle) -> TenantSettings {
    let mut t = TenantSettings::with_defaults(
        TENANT,
        sim.base_url().parse().unwrap(),
        Credentials::ClientCredentials {
            client_id: sim.client_id().to_string(),
            client_secret: DEMO_CLIENT_SECRET.to_string().into(),
        },
    );
    t.page_size = 5;
    t.rate_limit.requests = 100_000;
    t.rate_limit.per = Duration::from_secs(1);
    t.request_timeout = Duration::from_secs(5);
    t.poll_timeout = Duration::from_secs(60);
    t.max_retries = 3;
    t
}

/// Histogram buckets with boundaries exactly at durations and queue waits the tests
/// produce (16 s, 60 s and 94 s runs; 2 s, 3 s and 7 s waits), so the comparison with the
/// ground truth checks that `le` is inclusive, that the unit is seconds and that the
/// configured boundaries (not the defaults) are used.
pub const DURATION_BUCKETS: [f64; 10] = [
    10.0, 16.0, 30.0, 57.0, 60.0, 90.0, 94.0, 300.0, 3600.0, 21600.0,
];
/// See [`DURATION_BUCKETS`].
pub const QUEUE_WAIT_BUCKETS: [f64; 6] = [1.0, 2.0, 3.0, 6.999, 7.0, 60.0];

/// The metrics settings of every exporter in these tests.
pub fn metrics_settings() -> MetricsSettings {
    MetricsSettings {
        duration_buckets: DURATION_BUCKETS.to_vec(),
        queue_wait_buckets: QUEUE_WAIT_BUCKETS.to_vec(),
        ..MetricsSettings::default()
    }
}

/// One exporter instance (metrics + poller) against the simulator.
pub struct Exporter<S: TaskSource = Client> {
    /// The metric state the poller writes to.
    pub metrics: Arc<Metrics>,
    /// The tenant's poller, on the simulator's clock.
    pub poller: TenantPoller<S>,
    /// The settings the poller was built from.
    pub settings: TenantSettings,
}

/// An exporter against `sim`, with [`tenant_settings`] changed by `tweak`.
pub fn exporter(sim: &Arc<SimHandle>, tweak: impl FnOnce(&mut TenantSettings)) -> Exporter {
    exporter_with(sim, tweak, |client| client)
}

/// An exporter whose client is wrapped by `wrap` (to inject behaviour mid-poll).
pub fn exporter_with<S: TaskSource>(
    sim: &Arc<SimHandle>,
    tweak: impl FnOnce(&mut TenantSettings),
    wrap: impl FnOnce(Client) -> S,
) -> Exporter<S> {
    let mut settings = tenant_settings(sim);
    tweak(&mut settings);
    let metrics = Arc::new(Metrics::new(&metrics_settings(), "test", "abc").unwrap());
    let tenant = metrics.tenant(TENANT);
    let client = Client::new(&settings, Arc::new(tenant.clone())).unwrap();
    let clock_sim = Arc::clone(sim);
    let poller = TenantPoller::new(&settings, wrap(client), tenant)
        .with_clock(Arc::new(move || clock_sim.now()));
    Exporter {
        metrics,
        poller,
        settings,
    }
}

impl<S: TaskSource> Exporter<S> {
    /// The rendered exposition, read back.
    pub fn samples(&self) -> Vec<Sample> {
        exposition::parse(&String::from_utf8(self.metrics.render()).unwrap())
    }

    /// One pending poll, one completed poll; errors are returned, not panicked on.
    pub async fn cycle(&mut self) -> (bool, bool) {
        let p = self.poller.poll(PollList::Pending).await.is_ok();
        let c = self.poller.poll(PollList::Completed).await.is_ok();
        (p, c)
    }
}

/// Polls in quiet conditions until both lists succeed twice in a row (the exporter has
/// caught up with everything that happened). Returns how many of its polls failed (a
/// request can still time out on a loaded machine), so a test that counts poll errors
/// can add them to what it saw fail.
pub async fn settle<S: TaskSource>(sim: &SimHandle, exp: &mut Exporter<S>) -> usize {
    sim.set_faults(Faults::none());
    let mut good = 0;
    let mut failed = 0;
    for _ in 0..10 {
        sim.advance(Duration::from_secs(30));
        let (p, c) = exp.cycle().await;
        failed += usize::from(!p) + usize::from(!c);
        if p && c {
            good += 1;
            if good == 2 {
                return failed;
            }
        } else {
            good = 0;
        }
    }
    panic!("the exporter did not recover after the faults were removed");
}

/// A series key: (task_name, source, status).
pub type Key = (String, String, String);

fn group(t: &TaskStatus) -> (String, String) {
    (
        normalize::task_name(&t.unique_name, &[]),
        normalize::source(t),
    )
}

fn status(t: &TaskStatus) -> String {
    t.completion_status
        .as_ref()
        .map(|s| s.label())
        .unwrap_or_else(|| "unknown".into())
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

fn duration(t: &TaskStatus) -> f64 {
    seconds_between(t.launched.unwrap_or(t.created), t.completed.unwrap())
}

/// What the metrics must say, computed independently from the simulator's tasks.
#[derive(Debug, Default)]
pub struct Truth {
    /// Completions counted per (task_name, source, status).
    pub counted: BTreeMap<Key, u64>,
    /// Sum of the counted durations, in seconds.
    pub duration_sum: BTreeMap<Key, f64>,
    /// Every counted duration, for the histogram buckets.
    pub durations: BTreeMap<Key, Vec<f64>>,
    /// Counted queue waits per (task_name, source): how many, and their sum in seconds.
    pub queue_wait: BTreeMap<(String, String), (u64, f64)>,
    /// Every counted queue wait, for the histogram buckets.
    pub queue_waits: BTreeMap<(String, String), Vec<f64>>,
    /// The latest completion per key: its timestamp and duration, in seconds.
    pub last: BTreeMap<Key, (f64, f64)>,
    /// Pending tasks per (task_name, source): how many, and the oldest `created`.
    pub pending: BTreeMap<(String, String), (u64, f64)>,
    /// The ids of the oldest pending tasks that get a series of their own.
    pub oldest_pending_ids: BTreeSet<String>,
}

/// Ground truth for an exporter primed at `primed_at` with `lookback`: completions after
/// `primed_at` are counted; last-completed gauges cover the lookback history too.
pub fn truth(
    tasks: &[TaskStatus],
    primed_at: DateTime<Utc>,
    lookback: Duration,
    max_pending_series: usize,
) -> Truth {
    let mut t = Truth::default();
    let mut latest: BTreeMap<Key, (DateTime<Utc>, DateTime<Utc>, String)> = BTreeMap::new();
    let horizon = primed_at - chrono::Duration::from_std(lookback).unwrap();
    for task in tasks {
        let (name, source) = group(task);
        if task.is_pending() {
            let e = t.pending.entry((name, source)).or_insert((0, f64::MAX));
            e.0 += 1;
            e.1 = e.1.min(task.created.timestamp_millis() as f64 / 1000.0);
            continue;
        }
        let completed = task.completed.expect("simulator sets completed");
        let key = (name.clone(), source.clone(), status(task));
        let counted = completed > primed_at;
        if counted {
            *t.counted.entry(key.clone()).or_default() += 1;
            *t.duration_sum.entry(key.clone()).or_default() += duration(task);
            t.durations
                .entry(key.clone())
                .or_default()
                .push(duration(task));
            if let Some(l) = task.launched {
                let q = t
                    .queue_wait
                    .entry((name.clone(), source.clone()))
                    .or_default();
                q.0 += 1;
                q.1 += seconds_between(task.created, l);
                t.queue_waits
                    .entry((name, source))
                    .or_default()
                    .push(seconds_between(task.created, l));
            }
        }
        if counted || task.created >= horizon {
            let rank = (completed, task.created, task.id.clone());
            match latest.get(&key) {
                Some(current) if *current >= rank => {}
                _ => {
                    latest.insert(key.clone(), rank);
                    let ts = completed.timestamp_millis() as f64 / 1000.0;
                    t.last.insert(key, (ts, duration(task)));
                }
            }
        }
    }
    let mut pending: Vec<&TaskStatus> = tasks.iter().filter(|t| t.is_pending()).collect();
    pending.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    t.oldest_pending_ids = pending
        .iter()
        .take(max_pending_series)
        .map(|t| t.id.clone())
        .collect();
    t
}

fn series<'a>(samples: &'a [Sample], name: &str) -> impl Iterator<Item = &'a Sample> {
    let name = name.to_string();
    samples.iter().filter(move |s| {
        s.name == name && s.labels.get("tenant").map(String::as_str) == Some(TENANT)
    })
}

fn label(s: &Sample, k: &str) -> String {
    s.labels.get(k).cloned().unwrap_or_default()
}

fn key_of(s: &Sample) -> Key {
    (
        label(s, "task_name"),
        label(s, "source"),
        label(s, "status"),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Asserts that the rendered metrics equal the truth exactly (sums of fractional seconds
/// within 1e-6, the f64 rounding of a different summation order).
pub fn assert_matches_truth<S: TaskSource>(
    exp: &Exporter<S>,
    sim: &SimHandle,
    primed_at: DateTime<Utc>,
) {
    assert_matches_tasks(exp, &sim.tasks_as_served(), primed_at);
}

/// [`assert_matches_truth`] against a given set of tasks (the ground truth in the shape the
/// tenant serves it, less what a test knows the exporter cannot see).
pub fn assert_matches_tasks<S: TaskSource>(
    exp: &Exporter<S>,
    tasks: &[TaskStatus],
    primed_at: DateTime<Utc>,
) {
    assert_samples_match_tasks(&exp.samples(), tasks, primed_at, exp.settings.lookback);
}

/// [`assert_matches_truth`] on scraped samples (of tenant [`TENANT`]). Series at 0 (every
/// series of a known group exists from the start) are not compared with the truth's
/// absent keys: a 0 and an absent key say the same.
pub fn assert_samples_match_truth(
    s: &[Sample],
    sim: &SimHandle,
    primed_at: DateTime<Utc>,
    lookback: Duration,
) {
    assert_samples_match_tasks(s, &sim.tasks_as_served(), primed_at, lookback);
}

/// [`assert_samples_match_truth`] against a given set of tasks.
pub fn assert_samples_match_tasks(
    s: &[Sample],
    tasks: &[TaskStatus],
    primed_at: DateTime<Utc>,
    lookback: Duration,
) {
    let truth = truth(tasks, primed_at, lookback, 50);

    let counted: BTreeMap<Key, u64> = series(s, "sailpoint_tasks_completed_total")
        .filter(|x| x.value > 0.0)
        .map(|x| (key_of(x), x.value as u64))
        .collect();
    assert_eq!(counted, truth.counted, "sailpoint_tasks_completed_total");

    let counts: BTreeMap<Key, u64> = series(s, "sailpoint_task_duration_seconds_count")
        .filter(|x| x.value > 0.0)
        .map(|x| (key_of(x), x.value as u64))
        .collect();
    assert_eq!(
        counts, truth.counted,
        "sailpoint_task_duration_seconds_count"
    );
    for x in series(s, "sailpoint_task_duration_seconds_sum") {
        let want = truth.duration_sum.get(&key_of(x)).copied().unwrap_or(0.0);
        assert!(
            close(x.value, want),
            "duration sum {:?}: {} != {want}",
            key_of(x),
            x.value
        );
    }
    let waits: BTreeMap<(String, String), (u64, f64)> =
        series(s, "sailpoint_task_queue_wait_seconds_count")
            .filter(|x| x.value > 0.0)
            .map(|x| {
                let g = (label(x, "task_name"), label(x, "source"));
                let sum = series(s, "sailpoint_task_queue_wait_seconds_sum")
                    .find(|y| label(y, "task_name") == g.0 && label(y, "source") == g.1)
                    .map_or(f64::NAN, |y| y.value);
                (g, (x.value as u64, sum))
            })
            .collect();
    assert_eq!(
        waits.keys().collect::<Vec<_>>(),
        truth.queue_wait.keys().collect::<Vec<_>>(),
        "queue wait groups"
    );
    for (g, (n, sum)) in &waits {
        let (tn, tsum) = truth.queue_wait[g];
        assert!(
            *n == tn && close(*sum, tsum),
            "queue wait {g:?}: ({n}, {sum}) != ({tn}, {tsum})"
        );
    }

    let want_durations: BTreeMap<Vec<String>, Vec<f64>> = truth
        .durations
        .iter()
        .map(|((n, src, st), v)| (vec![n.clone(), src.clone(), st.clone()], v.clone()))
        .collect();
    assert_buckets(
        s,
        "sailpoint_task_duration_seconds",
        &["task_name", "source", "status"],
        &DURATION_BUCKETS,
        &want_durations,
    );
    let want_waits: BTreeMap<Vec<String>, Vec<f64>> = truth
        .queue_waits
        .iter()
        .map(|((n, src), v)| (vec![n.clone(), src.clone()], v.clone()))
        .collect();
    assert_buckets(
        s,
        "sailpoint_task_queue_wait_seconds",
        &["task_name", "source"],
        &QUEUE_WAIT_BUCKETS,
        &want_waits,
    );

    let last: BTreeMap<Key, f64> = series(s, "sailpoint_task_last_completed_timestamp_seconds")
        .map(|x| (key_of(x), x.value))
        .collect();
    let want_last: BTreeMap<Key, f64> = truth.last.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    assert_eq!(
        last, want_last,
        "sailpoint_task_last_completed_timestamp_seconds"
    );
    for x in series(s, "sailpoint_task_last_duration_seconds") {
        let want = truth.last[&key_of(x)].1;
        assert!(
            close(x.value, want),
            "last duration {:?}: {} != {want}",
            key_of(x),
            x.value
        );
    }

    let pending: BTreeMap<(String, String), (u64, f64)> = series(s, "sailpoint_tasks_pending")
        .filter(|x| x.value > 0.0)
        .map(|x| {
            let g = (label(x, "task_name"), label(x, "source"));
            let oldest = series(
                s,
                "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
            )
            .find(|y| label(y, "task_name") == g.0 && label(y, "source") == g.1)
            .map_or(f64::NAN, |y| y.value);
            (g, (x.value as u64, oldest))
        })
        .collect();
    assert_eq!(pending, truth.pending, "pending gauges");
    let ids: BTreeSet<String> = series(s, "sailpoint_pending_task_created_timestamp_seconds")
        .map(|x| label(x, "id"))
        .collect();
    assert_eq!(ids, truth.oldest_pending_ids, "per-task pending series");
}

/// The rendered `<family>_bucket` series of the tenant, per value of `keys`, as
/// `(le, count)` sorted by `le`; series whose `+Inf` bucket is 0 are left out (a
/// histogram that observed nothing says nothing about buckets).
pub fn rendered_buckets(
    samples: &[Sample],
    family: &str,
    keys: &[&str],
) -> BTreeMap<Vec<String>, Vec<(f64, u64)>> {
    let mut out: BTreeMap<Vec<String>, Vec<(f64, u64)>> = BTreeMap::new();
    for x in series(samples, &format!("{family}_bucket")) {
        let le = match label(x, "le").as_str() {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("{family}: bad le {other:?}")),
        };
        let key = keys.iter().map(|k| label(x, k)).collect();
        out.entry(key).or_default().push((le, x.value as u64));
    }
    for buckets in out.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out.retain(|_, b| b.last().is_some_and(|(_, n)| *n > 0));
    out
}

/// Asserts that every `le` bucket of `family` equals the count of ground-truth values
/// `<= le`, for every label set, with the configured `bounds`.
pub fn assert_buckets(
    samples: &[Sample],
    family: &str,
    keys: &[&str],
    bounds: &[f64],
    truth: &BTreeMap<Vec<String>, Vec<f64>>,
) {
    let want: BTreeMap<Vec<String>, Vec<(f64, u64)>> = truth
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), exposition::expected_buckets(v, bounds)))
        .collect();
    assert_eq!(
        rendered_buckets(samples, family, keys),
        want,
        "{family}_bucket differs from the ground truth"
    );
}

/// The value of a tenant-level series (e.g. poll errors, retries), 0 when absent.
pub fn total<S: TaskSource>(exp: &Exporter<S>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut all = vec![("tenant", TENANT)];
    all.extend_from_slice(labels);
    exposition::sum(&exp.samples(), name, &all)
}

/// How many series of a tenant match.
pub fn count<S: TaskSource>(exp: &Exporter<S>, name: &str, labels: &[(&str, &str)]) -> usize {
    let mut all = vec![("tenant", TENANT)];
    all.extend_from_slice(labels);
    exposition::count(&exp.samples(), name, &all)
}
