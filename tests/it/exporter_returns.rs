//! What aggregations did, against the simulator's ground truth: the sum of every numeric
//! result over completed tasks (`sailpoint_task_returns_total`, counted exactly once, never
//! from priming) and the latest task's values (`sailpoint_task_return_value`, primed from
//! `lookback`), in the `aggregation-anomalies` scenario where one source suddenly finds no
//! account and another deletes two in five.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sailpoint_simulator::{Faults, Scenario, SimConfig, SimHandle, Simulator};
use sailpoint_task_exporter::metrics::{PollList, normalize};
use sailpoint_task_exporter::sailpoint::model::TaskStatus;
use sailpoint_task_exporter::sailpoint::results::task_results;
use test_support::exporter::*;

type Key = (String, String, String); // task_name, source, attribute
type Rank = (DateTime<Utc>, DateTime<Utc>, String); // completed, created, id

async fn anomalies() -> Arc<SimHandle> {
    let start = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // At 60x an hourly aggregation runs every simulated minute.
    let cfg = SimConfig::new(21)
        .with_scenario(Scenario::AggregationAnomalies)
        .with_speed(60.0)
        .with_manual_clock(start);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Arc::new(Simulator::start(cfg, listen).await.unwrap())
}

fn key(t: &TaskStatus, attribute: &str) -> Key {
    (
        normalize::task_name(&t.unique_name, &[]),
        normalize::source(t),
        attribute.to_string(),
    )
}

/// Sums over tasks completed after `primed_at`; latest values over everything completed
/// within the lookback or after the start.
fn truth(
    tasks: &[TaskStatus],
    primed_at: DateTime<Utc>,
    lookback: Duration,
) -> (BTreeMap<Key, f64>, BTreeMap<Key, f64>) {
    let horizon = primed_at - chrono::Duration::from_std(lookback).unwrap();
    let mut sums = BTreeMap::new();
    let mut latest: BTreeMap<(String, String), Rank> = BTreeMap::new();
    let mut values = BTreeMap::new();
    let mut done: Vec<&TaskStatus> = tasks.iter().filter(|t| !t.is_pending()).collect();
    done.sort_by_key(|t| (t.completed, t.created, t.id.clone()));
    for t in done {
        let completed = t.completed.expect("simulator sets completed");
        let counted = completed > primed_at;
        let results = task_results(t);
        if counted {
            for r in &results {
                if r.value >= 0.0 {
                    *sums.entry(key(t, &r.attribute)).or_insert(0.0) += r.value;
                }
            }
        }
        if (counted || t.created >= horizon) && !results.is_empty() {
            let group = (key(t, "").0, key(t, "").1);
            let rank = (completed, t.created, t.id.clone());
            if latest.get(&group).is_none_or(|current| *current < rank) {
                latest.insert(group, rank);
                for r in &results {
                    values.insert(key(t, &r.attribute), r.value);
                }
            }
        }
    }
    (sums, values)
}

fn family(exp: &Exporter, name: &str, nonzero: bool) -> BTreeMap<Key, f64> {
    exp.samples()
        .into_iter()
        .filter(|s| s.name == name && s.labels.get("tenant").map(String::as_str) == Some(TENANT))
        .filter(|s| !nonzero || s.value != 0.0)
        .map(|s| {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            ((l("task_name"), l("source"), l("attribute")), s.value)
        })
        .collect()
}

#[tokio::test]
async fn task_results_are_summed_once_and_the_latest_values_kept() {
    let sim = anomalies().await;
    let mut exp = exporter(&sim, |t| {
        t.lookback = Duration::from_secs(48 * 3600);
        t.page_size = 100;
    });
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    let (_, primed_values) = truth(&sim.tasks_as_served(), primed_at, exp.settings.lookback);
    assert_eq!(
        family(&exp, "sailpoint_task_returns_total", true),
        BTreeMap::new(),
        "priming counts no result"
    );
    assert_eq!(
        family(&exp, "sailpoint_task_return_value", false),
        primed_values,
        "latest values primed from lookback"
    );
    // Fifteen simulated hours at 60x (paging, shifts and ties are tested elsewhere).
    sim.set_faults(Faults::none());
    for _ in 0..30 {
        sim.advance(Duration::from_secs(30));
        exp.poller.poll(PollList::Pending).await.unwrap();
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    settle(&sim, &mut exp).await;
    let (sums, values) = truth(&sim.tasks_as_served(), primed_at, exp.settings.lookback);
    let nonzero_sums: BTreeMap<Key, f64> = sums.into_iter().filter(|(_, v)| *v != 0.0).collect();
    assert_eq!(
        family(&exp, "sailpoint_task_returns_total", true),
        nonzero_sums
    );
    assert_eq!(family(&exp, "sailpoint_task_return_value", false), values);
    // The scenario's two anomalies show in the latest values.
    let agg = "Cloud Account Aggregation".to_string();
    let v = |source: &str, attribute: &str| {
        values
            .get(&(agg.clone(), source.to_string(), attribute.to_string()))
            .copied()
    };
    assert_eq!(v("GitHub [source]", "total"), Some(0.0));
    let (deleted, total) = (
        v("Active Directory [source]", "deleted").unwrap(),
        v("Active Directory [source]", "total").unwrap(),
    );
    assert!(
        deleted >= 100.0 && deleted > 0.2 * total,
        "{deleted} of {total}"
    );
    assert!(
        nonzero_sums.keys().any(|k| k.2 == "deleted"),
        "deletions were counted: {nonzero_sums:?}"
    );
}
