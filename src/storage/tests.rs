//! State files: round trip, and every file that must be set aside rather than resumed.

use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::config::MetricsSettings;
use crate::metrics::Metrics;
use crate::sailpoint::ApiObserver;

const DAY: Duration = Duration::from_secs(86_400);
const URL: &str = "https://acme.api.identitynow.com/";

/// The exactly-once state as storage sees it: any serialisable value (the collector's
/// tracker in production; its files' compatibility is tested in the collector).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counting {
    ids: Vec<String>,
}

fn counting() -> Counting {
    Counting {
        ids: vec!["t1".to_string(), "t2".to_string()],
    }
}

/// Loads the tenant `acme` of `url` as of `now`, with a lookback of a day.
fn load(store: &Store, url: &str, now: DateTime<Utc>) -> Loaded<Counting> {
    store.load("acme", url, DAY, now)
}

fn metrics() -> (Metrics, TenantMetrics) {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("acme");
    (m, t)
}

fn saved(dir: &Path) -> Arc<Store> {
    let store = Store::open(dir).unwrap();
    let (_, t) = metrics();
    t.token_refresh();
    store
        .tenant("acme", URL)
        .write(&counting(), &t.snapshot())
        .unwrap();
    store
}

fn set_aside_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("acme.json."))
        .collect();
    names.sort();
    names
}

#[test]
fn a_written_state_is_resumed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = saved(dir.path());
    match load(&store, URL, Utc::now()) {
        Loaded::Resumed {
            state, counting, ..
        } => {
            assert_eq!(*counting, self::counting());
            let token = state
                .values
                .get(&crate::metrics::catalogue::TOKEN_REFRESHES, &[]);
            assert_eq!(token, Some(&crate::metrics::state::Value::Counter(1)));
        }
        other => panic!("{other:?}"),
    }
    assert!(set_aside_files(dir.path()).is_empty());
}

#[test]
fn no_file_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(load(&store, URL, Utc::now()), Loaded::Missing));
}

fn assert_set_aside(dir: &Path, store: &Store, url: &str, now: DateTime<Utc>, reason: &str) {
    match load(store, url, now) {
        Loaded::SetAside(r) => assert_eq!(r, reason),
        other => panic!("{reason}: {other:?}"),
    }
    let aside = set_aside_files(dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].starts_with(&format!("acme.json.{reason}-")),
        "{aside:?}"
    );
    assert!(!store.path("acme").exists(), "renamed, not left in place");
    assert!(
        matches!(load(store, url, now), Loaded::Missing),
        "the next start finds nothing"
    );
}

#[test]
fn a_corrupt_file_is_set_aside() {
    for bytes in [&b"{\"format\": 1, \"tenant\": \"acme\""[..], b"\0\0\0", b""] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.path("acme"), bytes).unwrap();
        assert_set_aside(dir.path(), &store, URL, Utc::now(), "corrupt");
    }
}

#[test]
fn a_valid_header_with_a_broken_body_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let header = format!(
        "{{\"format\":1,\"tenant\":\"acme\",\"base_url\":\"{URL}\",\"saved_at\":\"{}\",\"tracker\":7,\"metrics\":{{}}}}",
        Utc::now().to_rfc3339()
    );
    fs::write(store.path("acme"), header).unwrap();
    assert_set_aside(dir.path(), &store, URL, Utc::now(), "corrupt");
}

/// Writes a state, optionally edits its file, then loads it with `url` at `now`:
/// it must be set aside for `reason`.
fn saved_then_set_aside(edit: fn(&str) -> String, url: &str, now: DateTime<Utc>, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = saved(dir.path());
    let text = fs::read_to_string(store.path("acme")).unwrap();
    fs::write(store.path("acme"), edit(&text)).unwrap();
    assert_set_aside(dir.path(), &store, url, now, reason);
}

#[test]
fn another_tenants_file_is_set_aside() {
    let other = "https://other.api.identitynow.com/";
    saved_then_set_aside(str::to_string, other, Utc::now(), "foreign");
}

#[test]
fn an_unknown_format_version_is_set_aside() {
    let edit = |text: &str| text.replacen("\"format\":1", "\"format\":99", 1);
    saved_then_set_aside(edit, URL, Utc::now(), "version");
}

#[test]
fn a_state_older_than_lookback_is_set_aside() {
    let later = Utc::now() + chrono::Duration::hours(25);
    saved_then_set_aside(str::to_string, URL, later, "too_old");
}

#[test]
fn a_failed_write_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A non-empty directory where the state file goes makes the rename fail.
    fs::create_dir_all(store.path("acme").join("x")).unwrap();
    let (_, t) = metrics();
    assert!(
        store
            .tenant("acme", URL)
            .write(&counting(), &t.snapshot())
            .is_err()
    );
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_unwritable_directory_is_counted_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: nothing can be created under it, even as root.
    let blocked = dir.path().join("state");
    fs::write(&blocked, b"not a directory").unwrap();
    let store = Store::open(&blocked).unwrap();
    let (m, t) = metrics();
    t.apply(|u| u.storage_enabled());
    let writer = store.tenant("acme", URL);
    writer
        .save(writer.snapshot(&counting(), t.snapshot()), &t)
        .await;
    writer
        .save(writer.snapshot(&counting(), t.snapshot()), &t)
        .await;
    let s = test_support::exposition::parse(&String::from_utf8(m.render()).unwrap());
    assert_eq!(
        test_support::exposition::value(
            &s,
            "sailpoint_exporter_state_writes_failed_total",
            &[("tenant", "acme")]
        ),
        Some(2.0)
    );
    assert_eq!(
        test_support::exposition::value(
            &s,
            "sailpoint_exporter_state_last_write_success_timestamp_seconds",
            &[]
        ),
        None
    );
}

#[test]
fn open_removes_only_the_temporary_files_an_exporter_left() {
    let dir = tempfile::tempdir().unwrap();
    let own = [".acme.json.tmp", ".acme.json.4242-17.tmp"];
    let foreign = [
        ".other.tmp",
        "notes.tmp",
        ".acme.json.x-1.tmp",
        "acme.json.4242-17.tmp",
    ];
    for name in own.iter().chain(&foreign) {
        fs::write(dir.path().join(name), b"half").unwrap();
    }
    let _store = Store::open(dir.path()).unwrap();
    for name in own {
        assert!(!dir.path().join(name).exists(), "{name} left");
    }
    for name in foreign {
        assert!(dir.path().join(name).exists(), "{name} removed");
    }
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let refused = Store::open(dir.path()).unwrap_err();
    assert_eq!(refused.dir, dir.path());
    assert_eq!(refused.holder, Some(std::process::id()));
    assert!(
        refused.to_string().starts_with(&format!(
            "state directory {} is in use by another sailpoint-task-exporter (pid {})",
            dir.path().display(),
            std::process::id()
        )),
        "{refused}"
    );
    drop(first);
    assert!(
        Store::open(dir.path()).is_ok(),
        "the lock ends with its store"
    );
}

#[cfg(unix)]
#[test]
fn state_files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = saved(&state);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&store.path("acme")), 0o600);
    assert_eq!(mode(&state.join(LOCK_FILE)), 0o600);
}

/// Of two snapshots of a tenant, the later-numbered one stays on disk whatever order the
/// writes land in (a write abandoned by a stopped poller finishes after its successor's).
#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let writer = store.tenant("acme", URL);
    let (_, t) = metrics();
    let older = writer.snapshot(&counting(), t.snapshot());
    t.token_refresh();
    t.token_refresh();
    let newer = writer.snapshot(&counting(), t.snapshot());
    writer.write_in_order(&newer).unwrap();
    writer.write_in_order(&older).unwrap();
    match load(&store, URL, Utc::now()) {
        Loaded::Resumed { state, .. } => {
            let token = state
                .values
                .get(&crate::metrics::catalogue::TOKEN_REFRESHES, &[]);
            assert_eq!(token, Some(&crate::metrics::state::Value::Counter(2)));
        }
        other => panic!("{other:?}"),
    }
}

/// Every float of a tenant's values as bits, with counters and bucket counts, keyed by
/// family and labels: two states are restored exactly when these are equal.
fn exact_values(state: &TenantState) -> Vec<(String, crate::metrics::state::Labels, Vec<u64>)> {
    use crate::metrics::state::Value;
    let mut out = Vec::new();
    for family in crate::metrics::catalogue::tenant_families() {
        let Some(series) = state.values.series(family) else {
            continue;
        };
        for (labels, value) in &series.0 {
            let bits = match value {
                Value::Counter(n) => vec![*n],
                Value::Sum(x) | Value::Gauge(x) => vec![x.to_bits()],
                Value::Histogram(h) => {
                    let mut b = h.counts.clone();
                    b.extend([h.sum.to_bits(), h.count]);
                    b
                }
            };
            out.push((family.name.to_string(), labels.clone(), bits));
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Saved values come back bit for bit: a restored counter, sum, histogram sum, count
    /// or bucket a hair lower would read as a counter reset to Prometheus.
    #[test]
    fn every_value_comes_back_bit_for_bit(
        tasks in proptest::collection::vec(
            (0i64..10_000_000, 0i64..100_000_000, 0i64..3_600_000, -1e12f64..1e12),
            1..40,
        ),
        skew in -86_400.0f64..86_400.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, t) = metrics();
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let ms = |n: i64| base + chrono::Duration::milliseconds(n);
        t.apply(|u| {
            for (i, (created, wait, run, result)) in tasks.iter().enumerate() {
                let task: crate::sailpoint::model::TaskStatus = serde_json::from_value(serde_json::json!({
                    "id": format!("t{i}"),
                    "name": format!("Task {}", i % 3),
                    "created": ms(*created),
                    "launched": ms(created + wait),
                    "completed": ms(created + wait + run),
                    "completionStatus": "SUCCESS",
                    "returns": [{"displayLabel": "n", "attributeName": "n"}],
                    "attributes": {"n": result},
                }))
                .unwrap();
                u.record_completion(&task);
            }
            u.set_clock_skew(skew);
        });
        let before = t.snapshot();
        store.tenant("acme", URL).write(&counting(), &before).unwrap();
        match load(&store, URL, Utc::now()) {
            Loaded::Resumed { state, .. } => {
                proptest::prop_assert_eq!(exact_values(&state), exact_values(&before));
            }
            other => proptest::prop_assert!(false, "{:?}", other),
        }
    }
}
