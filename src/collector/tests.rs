//! Exactly-once rules (docs/design.md, "Counting exactly once"), checked against an in-memory [`TaskSource`] with
//! exact expectations on the rendered metrics.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::poller::{PollOutcome, TenantPoller};
use super::source::TaskSource;
use crate::config::{Credentials, MetricsSettings, TenantSettings};
use crate::metrics::{Metrics, PollList};
use crate::sailpoint::Page;
use crate::sailpoint::model::TaskStatus;
use test_support::exposition::{self, Sample};

#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
struct FakeError;

#[derive(Default)]
struct FakeState {
    tasks: BTreeMap<String, TaskStatus>,
    /// Every call fails while set.
    failing: bool,
    /// Fail the call with this index (0-based, counted over all calls).
    fail_call: Option<usize>,
    calls: Vec<String>,
    /// Pending ids the pending list "skips" (offset paging while the list shifts).
    skip_pending: HashSet<String>,
    /// Completed tasks inserted just before the page at this offset is served.
    insert_before_offset: Option<(u32, Vec<TaskStatus>)>,
    /// Calls never answer (for deadline tests).
    hang: bool,
    /// The `Date` the pending list answers with.
    date: Option<DateTime<Utc>>,
    /// While set, the pending list answers with these tasks: a replica that lags (it
    /// shows finished tasks as pending); lookups stay current.
    lagging_pending: Option<Vec<TaskStatus>>,
    /// Completed tasks served as unreadable records: sent (counted in
    /// [`Page::received`]) but skipped by decoding.
    unreadable: HashSet<String>,
    /// The completed list ignores `sorters` and answers oldest first.
    oldest_first: bool,
    /// The `X-Total-Count` every completed page carries (sent unasked, and wrong).
    total: Option<u64>,
    /// Ids whose `GET` answers with another task (a proxy's cache gone wrong).
    misdirected: HashSet<String>,
    /// The completed list sends at most this many records per page, whatever `limit`
    /// asks (a server or proxy that caps pages below the API's 250).
    page_cap: Option<u32>,
    /// While set, every completed page request past offset 0 first adds a task that
    /// just finished, numbered from this (tasks finishing while the list is paged).
    grow_per_page: Option<i64>,
    /// Caps of the next completed page requests, one each, before `page_cap` applies
    /// again (a server whose pages are short by varying amounts).
    next_caps: std::collections::VecDeque<u32>,
}

/// A tenant in memory; the clone handed to the poller shares the state.
#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    fn put(&self, task: TaskStatus) {
        self.with(|s| s.tasks.insert(task.id.clone(), task));
    }
    fn complete(&self, id: &str, at: DateTime<Utc>, status: &str) {
        self.with(|s| {
            let t = s.tasks.get_mut(id).unwrap();
            t.completed = Some(at);
            t.completion_status = Some(status.into());
        });
    }
    fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }
    fn begin(&self, call: String) -> Result<(), FakeError> {
        self.with(|s| {
            let index = s.calls.len();
            s.calls.push(call);
            if s.failing || s.fail_call == Some(index) {
                Err(FakeError)
            } else {
                Ok(())
            }
        })
    }
    async fn hang_if_asked(&self) {
        if self.with(|s| s.hang) {
            std::future::pending::<()>().await;
        }
    }
    fn completed_sorted(s: &FakeState) -> Vec<TaskStatus> {
        let mut done: Vec<TaskStatus> = s
            .tasks
            .values()
            .filter(|t| !t.is_pending())
            .cloned()
            .collect();
        done.sort_by_key(|t| std::cmp::Reverse(t.created));
        if s.oldest_first {
            done.reverse();
        }
        done
    }
}

impl TaskSource for Fake {
    type Error = FakeError;

    async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, FakeError> {
        self.hang_if_asked().await;
        self.begin("pending".into())?;
        Ok(self.with(|s| {
            if let Some(view) = &s.lagging_pending {
                return view.clone();
            }
            s.tasks
                .values()
                .filter(|t| t.is_pending() && !s.skip_pending.contains(&t.id))
                .cloned()
                .collect()
        }))
    }

    async fn pending_tasks_dated(
        &self,
    ) -> Result<(Vec<TaskStatus>, Option<DateTime<Utc>>), FakeError> {
        let tasks = self.pending_tasks().await?;
        Ok((tasks, self.with(|s| s.date)))
    }

    async fn completed_page(&self, offset: u32, limit: u32) -> Result<Page, FakeError> {
        self.hang_if_asked().await;
        self.begin(format!("page {offset}"))?;
        Ok(self.with(|s| {
            if s.insert_before_offset
                .as_ref()
                .is_some_and(|(o, _)| *o == offset)
                && let Some((_, tasks)) = s.insert_before_offset.take()
            {
                for t in tasks {
                    s.tasks.insert(t.id.clone(), t);
                }
            }
            if offset > 0
                && let Some(n) = s.grow_per_page.as_mut()
            {
                *n += 1;
                let t = done(
                    task(
                        &format!("g{n:03}"),
                        "Cloud Account Aggregation",
                        Some("AD"),
                        40 + *n,
                        Some(40 + *n),
                    ),
                    50 + *n,
                    "SUCCESS",
                );
                s.tasks.insert(t.id.clone(), t);
            }
            let sent: Vec<TaskStatus> = Fake::completed_sorted(s)
                .into_iter()
                .skip(offset as usize)
                .take(limit.min(s.next_caps.pop_front().or(s.page_cap).unwrap_or(limit)) as usize)
                .collect();
            Page {
                received: sent.len(),
                items: sent
                    .into_iter()
                    .filter(|t| !s.unreadable.contains(&t.id))
                    .collect(),
                total: s.total,
            }
        }))
    }

    async fn tasks_by_ids(&self, ids: &[String]) -> Result<Vec<TaskStatus>, FakeError> {
        self.begin(format!("ids {}", ids.len()))?;
        // v2024 semantics: the list only returns completed tasks.
        Ok(self.with(|s| {
            ids.iter()
                .filter_map(|id| s.tasks.get(id))
                .filter(|t| !t.is_pending())
                .cloned()
                .collect()
        }))
    }

    async fn task_status(&self, id: &str) -> Result<Option<TaskStatus>, FakeError> {
        self.begin(format!("get {id}"))?;
        Ok(self.with(|s| {
            let mut task = s.tasks.get(id).cloned();
            if s.misdirected.contains(id)
                && let Some(t) = task.as_mut()
            {
                t.id = format!("not-{id}");
            }
            task
        }))
    }
}

const T0: &str = "2024-05-01T12:00:00Z";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0)
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(secs)
}

fn ts(secs: i64) -> String {
    crate::sailpoint::model::format_timestamp(&at(secs))
}

/// A task created at `created` seconds after T0, launched `launched` seconds after T0.
fn task(
    id: &str,
    name: &str,
    source: Option<&str>,
    created: i64,
    launched: Option<i64>,
) -> TaskStatus {
    let target = source.map(|s| json!({"id": "src", "type": "APPLICATION", "name": s}));
    serde_json::from_value(json!({
        "id": id, "type": "QUARTZ", "uniqueName": name, "description": "", "parentName": null,
        "attributes": {}, "created": ts(created), "modified": null,
        "launched": launched.map(ts), "launcher": "System", "completed": null,
        "completionStatus": null, "messages": [], "returns": [], "progress": null,
        "percentComplete": 0, "target": target
    }))
    .unwrap()
}

fn done(mut t: TaskStatus, completed: i64, status: &str) -> TaskStatus {
    t.completed = Some(at(completed));
    t.completion_status = Some(status.into());
    t
}

struct Harness {
    fake: Fake,
    metrics: Arc<Metrics>,
    poller: TenantPoller<Fake>,
    now: Arc<Mutex<DateTime<Utc>>>,
}

fn tenant_settings() -> TenantSettings {
    let mut t = TenantSettings::with_defaults(
        "acme",
        "http://127.0.0.1:1".parse().unwrap(),
        Credentials::StaticToken("x".to_string().into()),
    );
    t.pending_interval = Duration::from_secs(30);
    t.completed_interval = Duration::from_secs(60);
    t.overlap = Some(Duration::from_secs(120));
    t.lookback = Duration::from_secs(24 * 3600);
    t.page_size = 250;
    t
}

fn harness_with(t: TenantSettings, m: MetricsSettings) -> Harness {
    let fake = Fake::default();
    let metrics = Arc::new(Metrics::new(&m, "test", "abc").unwrap());
    let now = Arc::new(Mutex::new(at(0)));
    let clock_now = Arc::clone(&now);
    let poller = TenantPoller::new(&t, fake.clone(), metrics.tenant("acme"))
        .with_clock(Arc::new(move || *clock_now.lock().unwrap()));
    Harness {
        fake,
        metrics,
        poller,
        now,
    }
}

fn harness() -> Harness {
    harness_with(tenant_settings(), MetricsSettings::default())
}

/// A harness whose tracker has primed (on an empty tenant).
async fn primed() -> Harness {
    primed_with([]).await
}

/// A harness primed on a tenant holding `tasks`.
async fn primed_with(tasks: impl IntoIterator<Item = TaskStatus>) -> Harness {
    let mut h = harness();
    for task in tasks {
        h.fake.put(task);
    }
    h.prime().await;
    h
}

/// The labels of a group's completions.
fn completion<'a>(task_name: &'a str, source: &'a str, status: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("task_name", task_name),
        ("source", source),
        ("status", status),
    ]
}

/// A harness whose metric settings `limit` changes.
fn harness_limited(limit: impl FnOnce(&mut MetricsSettings)) -> Harness {
    let mut m = MetricsSettings::default();
    limit(&mut m);
    harness_with(tenant_settings(), m)
}

/// A harness whose tenant settings `tune` changes.
fn harness_tuned(tune: impl FnOnce(&mut TenantSettings)) -> Harness {
    let mut t = tenant_settings();
    tune(&mut t);
    harness_with(t, MetricsSettings::default())
}

impl Harness {
    fn set_now(&self, secs: i64) {
        *self.now.lock().unwrap() = at(secs);
    }
    fn samples(&self) -> Vec<Sample> {
        exposition::parse(&String::from_utf8(self.metrics.render()).unwrap())
    }
    /// `sailpoint_tasks_completed_total` of the tasks that ended with `status`.
    fn counted(&self, status: &str) -> Option<f64> {
        v(&self.samples(), COMPLETED, &[("status", status)])
    }
    /// Asserts every expected value against the exposition as it is now.
    fn assert_values(&self, expected: &[Expected<'_>]) {
        assert_values(&self.samples(), expected);
    }
    async fn prime(&mut self) {
        let outcome = self.poller.prime().await.unwrap();
        assert!(matches!(outcome, PollOutcome::Primed { .. }));
    }
    async fn pending(&mut self) -> usize {
        self.poller.poll_pending().await.unwrap()
    }
    async fn completed(&mut self) -> usize {
        self.poller.poll_completed().await.unwrap()
    }
}

fn v(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition::value(s, name, labels)
}

/// One expected value: family, labels, and the value (`None`: no such series).
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<f64>);

/// Asserts every expected value against the samples, naming the one that differs.
fn assert_values(s: &[Sample], expected: &[Expected<'_>]) {
    for (name, labels, want) in expected {
        assert_eq!(v(s, name, labels), *want, "{name} {labels:?}");
    }
}

const COMPLETED: &str = "sailpoint_tasks_completed_total";

#[tokio::test]
async fn task_seen_pending_then_completed_is_counted_once_with_exact_values() {
    let mut h = harness();
    h.fake.put(task(
        "a",
        "Cloud Account Aggregation",
        Some("AD"),
        -100,
        Some(-90),
    ));
    h.prime().await;
    let s = h.samples();
    let group = [
        ("tenant", "acme"),
        ("task_name", "Cloud Account Aggregation"),
        ("source", "AD"),
    ];
    assert_values(
        &s,
        &[
            ("sailpoint_tasks_pending", &group, Some(1.0)),
            (
                "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
                &group,
                Some(at(-100).timestamp() as f64),
            ),
        ],
    );

    h.fake.complete("a", at(30), "SUCCESS");
    h.set_now(31);
    assert_eq!(h.pending().await, 1);
    h.set_now(61);
    assert_eq!(
        h.completed().await,
        0,
        "the completed path must not count it again"
    );
    assert_eq!(h.pending().await, 0);

    let s = h.samples();
    let ok = [group[0], group[1], group[2], ("status", "success")];
    assert_eq!(v(&s, COMPLETED, &ok), Some(1.0));
    for other in ["warning", "error", "terminated", "temperror"] {
        assert_eq!(
            v(
                &s,
                COMPLETED,
                &[group[0], group[1], group[2], ("status", other)]
            ),
            Some(0.0),
            "{other}"
        );
    }
    assert_values(
        &s,
        &[
            ("sailpoint_task_duration_seconds_count", &ok, Some(1.0)),
            ("sailpoint_task_duration_seconds_sum", &ok, Some(120.0)),
            ("sailpoint_task_queue_wait_seconds_sum", &group, Some(10.0)),
            (
                "sailpoint_task_last_completed_timestamp_seconds",
                &ok,
                Some(at(30).timestamp() as f64),
            ),
            ("sailpoint_task_last_duration_seconds", &ok, Some(120.0)),
        ],
    );
    assert_eq!(
        v(&s, "sailpoint_tasks_pending", &group),
        Some(0.0),
        "a known group with nothing pending shows 0"
    );
    assert_eq!(
        v(
            &s,
            "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
            &group
        ),
        None,
        "and has no oldest pending task"
    );
    assert_eq!(v(&s, "sailpoint_up", &[("tenant", "acme")]), Some(1.0));
}

#[tokio::test]
async fn task_that_starts_and_finishes_between_pending_polls_is_counted_by_the_completed_path() {
    let mut h = primed().await;
    h.fake.put(done(
        task("b", "Cloud Group Aggregation", Some("HR"), 5, Some(6)),
        20,
        "ERROR",
    ));
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    h.set_now(60);
    assert_eq!(h.completed().await, 1);
    h.set_now(120);
    assert_eq!(h.completed().await, 0);
    let labels = completion("Cloud Group Aggregation", "HR", "error");
    h.assert_values(&[
        (COMPLETED, &labels, Some(1.0)),
        ("sailpoint_task_duration_seconds_sum", &labels, Some(14.0)),
    ]);
}

#[tokio::test]
async fn task_running_far_longer_than_the_overlap_is_counted_by_the_pending_path() {
    let mut h = harness();
    h.fake
        .put(task("long", "Identity Refresh", None, -3600, Some(-3600)));
    // Plenty of recent history so the completed path has pages to read.
    for i in 0..10 {
        h.fake.put(done(
            task(&format!("old{i}"), "Old", None, -7200 + i, None),
            -7000,
            "SUCCESS",
        ));
    }
    h.prime().await;
    let mut now = 0;
    for _ in 0..20 {
        now += 30;
        h.set_now(now);
        h.pending().await;
        if now % 60 == 0 {
            h.completed().await;
        }
    }
    let completed_at = now + 5;
    h.fake.complete("long", at(completed_at), "WARNING");
    now += 30;
    h.set_now(now);
    assert_eq!(h.pending().await, 1);
    now += 30;
    h.set_now(now);
    assert_eq!(h.completed().await, 0);
    let labels = completion("Identity Refresh", "", "warning");
    h.assert_values(&[
        (COMPLETED, &labels, Some(1.0)),
        (
            "sailpoint_task_duration_seconds_sum",
            &labels,
            Some((completed_at + 3600) as f64),
        ),
    ]);
}

#[tokio::test]
async fn the_same_task_reported_by_both_paths_is_counted_once_in_either_order() {
    for completed_first in [true, false] {
        let mut h = harness();
        h.prime().await;
        h.fake.put(task("c", "Task", None, 10, Some(10)));
        h.set_now(30);
        h.pending().await;
        assert!(h.poller.tracker().pending().contains("c"));
        h.fake.complete("c", at(40), "SUCCESS");
        h.set_now(60);
        let mut counted = 0;
        let order = if completed_first {
            [PollList::Completed, PollList::Pending]
        } else {
            [PollList::Pending, PollList::Completed]
        };
        for list in order {
            if let PollOutcome::Counted(n) = h.poller.poll(list).await.unwrap() {
                counted += n;
            }
        }
        assert_eq!(counted, 1, "completed_first={completed_first}");
        assert!(!h.poller.tracker().pending().contains("c"));
        assert_eq!(h.counted("success"), Some(1.0));
    }
}

#[tokio::test]
async fn duplicates_across_shifting_pages_are_counted_once() {
    let mut h = harness_tuned(|t| t.page_size = 2);
    h.prime().await;
    for i in 0..5 {
        h.fake.put(done(
            task(&format!("d{i}"), "Task", None, 10 + i, None),
            20 + i,
            "SUCCESS",
        ));
    }
    // Two new completions arrive at the head while the poll reads page 2: the list shifts
    // down, so page 2 repeats d3/d2 that page 1 already returned... and so on.
    let newer = vec![
        done(task("n1", "Task", None, 50, None), 51, "SUCCESS"),
        done(task("n2", "Task", None, 51, None), 52, "SUCCESS"),
    ];
    h.fake.with(|s| s.insert_before_offset = Some((2, newer)));
    h.set_now(60);
    let first = h.completed().await;
    h.set_now(120);
    let second = h.completed().await;
    assert_eq!(
        (first, second),
        (5, 2),
        "the poll reads the five, the next one the two new ones"
    );
    assert_eq!(h.counted("success"), Some(7.0));
}

#[tokio::test]
async fn a_failed_poll_applies_nothing_and_the_next_one_recovers() {
    let mut h = primed_with([
        task("a", "Task", None, -10, None),
        task("b", "Task", None, -5, None),
    ])
    .await;
    h.fake.complete("a", at(10), "SUCCESS");
    h.fake.with(|s| s.tasks.remove("b"));
    // The list call succeeds, the follow-up of the departed tasks fails: nothing applies.
    let fail_at = h.fake.calls().len() + 1;
    h.fake.with(|s| s.fail_call = Some(fail_at));
    h.set_now(30);
    assert!(h.poller.poll_pending().await.is_err());
    assert_eq!(h.poller.tracker().pending().len(), 2, "old snapshot kept");
    let s = h.samples();
    assert_values(
        &s,
        &[
            ("sailpoint_up", &[], Some(0.0)),
            (
                "sailpoint_exporter_poll_errors_total",
                &[("list", "pending")],
                Some(1.0),
            ),
        ],
    );
    assert_eq!(
        v(&s, "sailpoint_tasks_pending", &[("task_name", "Task")]),
        Some(2.0),
        "last good values kept"
    );
    assert_eq!(v(&s, COMPLETED, &[("status", "success")]), Some(0.0));

    h.set_now(60);
    assert_eq!(h.pending().await, 1);
    let s = h.samples();
    assert_eq!(v(&s, COMPLETED, &[("status", "success")]), Some(1.0));
    assert_eq!(
        v(&s, "sailpoint_tasks_pending", &[("task_name", "Task")]),
        Some(0.0),
        "a known group with nothing pending shows 0"
    );
    assert_eq!(v(&s, "sailpoint_up", &[]), Some(1.0));
    assert_eq!(
        h.poller.tracker().pending().len(),
        0,
        "b was 404 and is forgotten"
    );
}

#[tokio::test]
async fn a_task_that_is_gone_after_leaving_pending_is_forgotten() {
    let mut h = primed_with([task("x", "Task", None, -10, None)]).await;
    h.fake.with(|s| s.tasks.remove("x"));
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    assert!(h.poller.tracker().pending().is_empty());
    assert_eq!(h.fake.calls().last().map(String::as_str), Some("get x"));
    h.set_now(60);
    assert_eq!(h.pending().await, 0);
    assert_eq!(
        h.fake.calls().last().map(String::as_str),
        Some("pending"),
        "not looked up again"
    );
}

#[tokio::test]
async fn a_pending_task_skipped_by_the_list_is_kept() {
    let mut h = primed_with([task("s", "Task", None, -10, None)]).await;
    h.fake.with(|s| s.skip_pending.insert("s".into()));
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    assert!(h.poller.tracker().pending().contains("s"));
    h.fake.with(|s| s.skip_pending.clear());
    h.fake.complete("s", at(40), "SUCCESS");
    h.set_now(60);
    assert_eq!(h.pending().await, 1);
}

#[tokio::test]
async fn priming_sets_last_completed_without_counting_the_backlog() {
    let mut h = harness();
    // id, name, source, created, launched, completed, status
    let history = [
        ("p1", "Agg", Some("AD"), -600, Some(-590), -500, "SUCCESS"),
        ("p2", "Agg", Some("AD"), -400, Some(-390), -300, "SUCCESS"),
        ("p3", "Agg", Some("AD"), -200, None, -100, "ERROR"),
        (
            "ancient", "Ancient", None, -100_000, None, -99_000, "SUCCESS",
        ),
    ];
    for (id, name, source, created, launched, completed, status) in history {
        h.fake.put(done(
            task(id, name, source, created, launched),
            completed,
            status,
        ));
    }
    let outcome = h.poller.poll(PollList::Pending).await.unwrap();
    assert_eq!(
        outcome,
        PollOutcome::Primed {
            primed: 3,
            counted: 0
        }
    );
    let s = h.samples();
    let ok = [
        ("task_name", "Agg"),
        ("source", "AD"),
        ("status", "success"),
    ];
    let err = [("task_name", "Agg"), ("source", "AD"), ("status", "error")];
    assert_values(
        &s,
        &[(COMPLETED, &ok, Some(0.0)), (COMPLETED, &err, Some(0.0))],
    );
    assert_eq!(
        v(&s, "sailpoint_task_duration_seconds_count", &ok),
        Some(0.0),
        "a primed group's histogram exists at 0"
    );
    assert_values(
        &s,
        &[
            (
                "sailpoint_task_last_completed_timestamp_seconds",
                &ok,
                Some(at(-300).timestamp() as f64),
            ),
            ("sailpoint_task_last_duration_seconds", &ok, Some(90.0)),
            ("sailpoint_task_last_duration_seconds", &err, Some(100.0)),
        ],
    );
    assert_eq!(
        v(
            &s,
            "sailpoint_task_last_completed_timestamp_seconds",
            &[("task_name", "Ancient")]
        ),
        None,
        "outside the lookback"
    );
    assert!(
        h.poller
            .ready_flag()
            .load(std::sync::atomic::Ordering::Acquire)
    );
    h.set_now(60);
    assert_eq!(h.completed().await, 0, "backlog is never counted");
}

#[tokio::test]
async fn nothing_is_counted_until_priming_succeeds() {
    let mut h = harness();
    h.fake
        .put(done(task("p", "Agg", None, -60, None), -30, "SUCCESS"));
    h.fake.with(|s| s.failing = true);
    assert!(h.poller.poll(PollList::Completed).await.is_err());
    assert!(!h.poller.tracker().is_primed());
    assert!(
        !h.poller
            .ready_flag()
            .load(std::sync::atomic::Ordering::Acquire)
    );
    h.fake.with(|s| s.failing = false);
    assert_eq!(
        h.poller.poll(PollList::Completed).await.unwrap(),
        PollOutcome::Primed {
            primed: 1,
            counted: 0
        }
    );
    assert_eq!(h.counted("success"), Some(0.0));
}

#[tokio::test]
async fn unknown_and_mixed_case_statuses_null_launched_and_null_target() {
    let mut h = primed().await;
    let mut no_status = task("n", "Task", None, 3, None);
    no_status.completed = Some(at(9));
    h.fake
        .put(done(task("m", "Task", None, 1, None), 11, "Success"));
    h.fake
        .put(done(task("u", "Task", None, 2, Some(4)), 12, "Paused"));
    h.fake.put(no_status);
    let mut identity = done(task("i", "Task", None, 4, None), 14, "TempError");
    identity.target = Some(crate::sailpoint::model::Target {
        id: "id".into(),
        target_type: Some("IDENTITY".into()),
        name: "Jane".into(),
    });
    h.fake.put(identity);
    h.set_now(60);
    assert_eq!(h.completed().await, 4);
    let s = h.samples();
    let g = |status| [("task_name", "Task"), ("source", ""), ("status", status)];
    assert_eq!(v(&s, COMPLETED, &g("success")), Some(1.0));
    assert_eq!(v(&s, COMPLETED, &g("paused")), Some(1.0));
    assert_eq!(v(&s, COMPLETED, &g("unknown")), Some(1.0));
    assert_eq!(
        v(&s, COMPLETED, &g("temperror")),
        Some(1.0),
        "IDENTITY target has no source"
    );
    assert_eq!(
        v(&s, "sailpoint_task_duration_seconds_sum", &g("success")),
        Some(10.0),
        "null launched: completed - created"
    );
    assert_eq!(
        v(&s, "sailpoint_task_duration_seconds_sum", &g("paused")),
        Some(8.0)
    );
    assert_eq!(
        v(
            &s,
            "sailpoint_task_queue_wait_seconds_count",
            &[("task_name", "Task")]
        ),
        Some(1.0),
        "only launched tasks wait"
    );
    assert_eq!(
        v(
            &s,
            "sailpoint_task_queue_wait_seconds_sum",
            &[("task_name", "Task")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn negative_durations_are_clamped_and_messages_counted_by_level() {
    let mut h = primed().await;
    let mut t = done(task("w", "Task", None, 10, Some(20)), 15, "WARNING");
    t.messages = serde_json::from_value(json!([
        {"type": "WARN", "localizedText": null, "key": "k", "parameters": null},
        {"type": "error", "localizedText": null, "key": "k", "parameters": null},
        {"type": "ERROR", "localizedText": null, "key": "k", "parameters": null},
        {"type": "INFO", "localizedText": null, "key": "k", "parameters": null}
    ]))
    .unwrap();
    h.fake.put(t);
    h.set_now(60);
    assert_eq!(h.completed().await, 1);
    h.assert_values(&[
        (
            "sailpoint_task_duration_seconds_sum",
            &[("status", "warning")],
            Some(0.0),
        ),
        (
            "sailpoint_task_messages_total",
            &[("level", "warn")],
            Some(1.0),
        ),
        (
            "sailpoint_task_messages_total",
            &[("level", "error")],
            Some(2.0),
        ),
        ("sailpoint_task_messages_total", &[("level", "info")], None),
    ]);
}

#[tokio::test]
async fn last_completed_only_moves_forward() {
    let mut h = primed().await;
    // Newest-first reading records the newer task before the older one.
    h.fake
        .put(done(task("new", "Task", None, 20, Some(20)), 50, "SUCCESS"));
    h.fake
        .put(done(task("old", "Task", None, 10, Some(10)), 30, "SUCCESS"));
    h.set_now(60);
    assert_eq!(h.completed().await, 2);
    h.assert_values(&[
        (
            "sailpoint_task_last_completed_timestamp_seconds",
            &[("status", "success")],
            Some(at(50).timestamp() as f64),
        ),
        (
            "sailpoint_task_last_duration_seconds",
            &[("status", "success")],
            Some(30.0),
        ),
    ]);
}

#[tokio::test]
async fn failing_pending_polls_do_not_lose_tasks_created_meanwhile() {
    let mut h = primed().await;
    // Pending polls fail for an hour; completed polls keep succeeding.
    let mut now = 0;
    h.fake.put(task("q", "Task", None, 600, Some(600)));
    while now < 3600 {
        now += 60;
        h.set_now(now);
        h.fake.with(|s| s.failing = true);
        assert!(h.poller.poll_pending().await.is_err());
        h.fake.with(|s| s.failing = false);
        if now == 2700 {
            h.fake.complete("q", at(2690), "SUCCESS");
        }
        h.completed().await;
    }
    assert_eq!(h.counted("success"), Some(1.0));
}

#[tokio::test]
async fn a_task_completing_while_pending_polls_fail_is_read_by_the_first_completed_poll_after() {
    // The case the S* refinement exists for: the completed path ran while the task was
    // pending, pending polls failed until after it completed.
    let mut h = primed().await;
    h.fake.put(task("late", "Task", None, 100, Some(100)));
    h.set_now(1800);
    h.completed().await; // sees nothing completed; watermark does not move
    h.fake.put(done(
        task("other", "Task", None, 1700, None),
        1750,
        "SUCCESS",
    ));
    h.set_now(1860);
    assert_eq!(h.completed().await, 1); // watermark now 1700
    h.fake.complete("late", at(1900), "ERROR");
    h.set_now(1950);
    assert_eq!(h.pending().await, 0, "late was never in a pending snapshot");
    h.set_now(1980);
    assert_eq!(
        h.completed().await,
        1,
        "L = min(watermark, S*) - overlap reaches back to it"
    );
    assert_eq!(h.counted("error"), Some(1.0));
}

#[tokio::test]
async fn counted_tasks_are_remembered_for_lookback_and_no_longer() {
    let mut h = harness_tuned(|t| t.lookback = Duration::from_secs(3600));
    h.prime().await;
    let mut now = 0;
    let mut max_recent = 0;
    let mut counted = 0;
    for minute in 0..600 {
        // Two tasks per minute, each running 20 s.
        for k in 0..2 {
            let created = minute * 60 + k * 25;
            h.fake.put(done(
                task(
                    &format!("t{minute}-{k}"),
                    "Task",
                    None,
                    created,
                    Some(created),
                ),
                created + 20,
                "SUCCESS",
            ));
        }
        now += 30;
        h.set_now(now);
        counted += h.pending().await;
        now += 30;
        h.set_now(now);
        counted += h.pending().await;
        counted += h.completed().await;
        max_recent = max_recent.max(h.poller.tracker().recent().len());
    }
    assert_eq!(counted, 1200);
    // A task is forgotten once it ended more than lookback (1 h) ago: 120 completions
    // of the last hour (2 a minute; from minute 540 on, ending at :20 and :45).
    assert_eq!(h.poller.tracker().recent().len(), 120);
    assert_eq!(max_recent, 120, "the memory grew past the lookback window");
    assert_eq!(
        v(
            &h.samples(),
            "sailpoint_exporter_tracked_tasks",
            &[("state", "recent")]
        ),
        Some(h.poller.tracker().recent().len() as f64)
    );
}

/// A pending view answered now and then by a replica that lags re-lists a task long
/// counted as pending; the next current listing misses it, its lookup shows it finished.
/// It was counted once and stays counted once, however long after its overlap.
#[tokio::test]
async fn a_lagging_replica_relisting_a_counted_task_does_not_count_it_again() {
    let mut h = primed().await;
    h.fake.put(task("x", "Task", None, 10, Some(10)));
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    h.fake.complete("x", at(40), "SUCCESS");
    h.set_now(60);
    assert_eq!(h.pending().await, 1);
    // Far past the overlap (120 s): many polls, with short tasks moving the watermark
    // (and so the floor) on.
    for step in 1..=20 {
        let t = 60 + step * 60;
        h.fake.put(done(
            task(&format!("q{step}"), "Task", None, t - 20, Some(t - 20)),
            t - 10,
            "SUCCESS",
        ));
        h.set_now(t);
        assert_eq!(h.pending().await, 0);
        assert_eq!(h.completed().await, 1);
    }
    assert!(h.poller.tracker().floor() > Some(at(10)));
    let stale = task("x", "Task", None, 10, Some(10));
    h.fake.with(|s| s.lagging_pending = Some(vec![stale]));
    h.set_now(1290);
    assert_eq!(h.pending().await, 0);
    h.fake.with(|s| s.lagging_pending = None);
    h.set_now(1320);
    assert_eq!(h.pending().await, 0, "counted again");
    assert_eq!(h.completed().await, 0);
    assert_eq!(h.counted("success"), Some(21.0));
    assert!(h.poller.tracker().pending().is_empty());
}

#[tokio::test]
async fn pending_gauges_are_replaced_and_per_task_series_capped() {
    let mut h = harness_limited(|m| m.max_pending_task_series = 2);
    let mut a = task("a", "Agg", Some("AD"), -30, None);
    a.percent_complete = 40;
    h.fake.put(a);
    h.fake.put(task("b", "Agg", Some("AD"), -20, None));
    h.fake.put(task("c", "Refresh", None, -10, None));
    h.prime().await;
    let s = h.samples();
    assert_eq!(
        exposition::count(&s, "sailpoint_pending_task_created_timestamp_seconds", &[]),
        2
    );
    assert_eq!(
        v(&s, "sailpoint_pending_task_progress_ratio", &[("id", "a")]),
        Some(0.4)
    );
    assert_eq!(
        v(
            &s,
            "sailpoint_pending_task_created_timestamp_seconds",
            &[("id", "c")]
        ),
        None,
        "only the two oldest"
    );
    assert_eq!(
        v(&s, "sailpoint_tasks_pending", &[("task_name", "Agg")]),
        Some(2.0)
    );
    h.fake.complete("a", at(5), "SUCCESS");
    h.set_now(30);
    assert_eq!(h.pending().await, 1);
    h.assert_values(&[
        (
            "sailpoint_pending_task_created_timestamp_seconds",
            &[("id", "a")],
            None,
        ),
        (
            "sailpoint_pending_task_created_timestamp_seconds",
            &[("id", "c")],
            Some(at(-10).timestamp() as f64),
        ),
        (
            "sailpoint_tasks_pending",
            &[("task_name", "Agg")],
            Some(1.0),
        ),
        (
            "sailpoint_tasks_pending_oldest_created_timestamp_seconds",
            &[("task_name", "Agg")],
            Some(at(-20).timestamp() as f64),
        ),
    ]);
}

#[tokio::test]
async fn groups_beyond_max_groups_fold_into_other() {
    let mut h = harness_limited(|m| m.max_groups = 2);
    h.prime().await;
    for (i, name) in ["A", "B", "C", "D"].iter().enumerate() {
        h.fake.put(done(
            task(name, name, Some("S"), i as i64, None),
            10,
            "SUCCESS",
        ));
    }
    h.set_now(60);
    assert_eq!(h.completed().await, 4);
    let s = h.samples();
    // Newest first: D and C are admitted, B and A fold.
    assert_values(
        &s,
        &[
            (
                COMPLETED,
                &[("task_name", "D"), ("status", "success")],
                Some(1.0),
            ),
            (
                COMPLETED,
                &[("task_name", "C"), ("status", "success")],
                Some(1.0),
            ),
            (
                COMPLETED,
                &[
                    ("task_name", "other"),
                    ("source", "other"),
                    ("status", "success"),
                ],
                Some(2.0),
            ),
            ("sailpoint_exporter_groups_folded_total", &[], Some(2.0)),
        ],
    );
    let names: HashSet<&str> = s
        .iter()
        .filter(|x| x.name == COMPLETED)
        .filter_map(|x| x.labels.get("task_name").map(String::as_str))
        .collect();
    assert_eq!(names, HashSet::from(["C", "D", "other"]));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_poll_fails_at_its_deadline() {
    let mut h = harness_tuned(|t| t.poll_timeout = Duration::from_secs(5));
    h.prime().await;
    h.fake.with(|s| s.hang = true);
    let err = h.poller.poll_completed().await.unwrap_err();
    assert!(err.to_string().contains("5s"), "{err}");
    h.assert_values(&[
        (
            "sailpoint_exporter_poll_errors_total",
            &[("list", "completed")],
            Some(1.0),
        ),
        ("sailpoint_up", &[], Some(0.0)),
    ]);
}

#[tokio::test(start_paused = true)]
async fn run_polls_both_lists_and_stops_on_shutdown() {
    let h = harness();
    h.fake
        .put(done(task("p", "Agg", None, -60, None), -30, "SUCCESS"));
    let fake = h.fake.clone();
    let ready = h.poller.ready_flag();
    let stop = tokio_util::sync::CancellationToken::new();
    let job = tokio::spawn(h.poller.run(stop.clone()));
    // Each interval adds up to 5 % jitter (at most 2 s), and the next poll is due an
    // interval after the last one was due: the fourth pending poll is at most 4 × 31.5 s
    // = 126 s in, the fifth at least 150 s.
    tokio::time::sleep(Duration::from_secs(127)).await;
    assert!(ready.load(std::sync::atomic::Ordering::Acquire));
    let calls = fake.calls();
    let pending = calls.iter().filter(|c| *c == "pending").count();
    let pages = calls.iter().filter(|c| c.starts_with("page")).count();
    // Priming, then pending at ~30/60/90/120 s, completed at ~60/120 s. The list is one
    // task newer than every bound, so each completed read confirms its short page with
    // an empty one: two pages a read.
    assert_eq!((pending, pages), (5, 6), "{calls:?}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), job)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unvalidated_huge_lookback_and_overlap_do_not_panic() {
    // Settings built in code skip validation; the tracker must saturate, not overflow.
    let mut h = harness_tuned(|t| {
        t.lookback = Duration::MAX;
        t.overlap = Some(Duration::MAX);
    });
    h.fake
        .put(done(task("a", "Task", None, -50, None), -10, "SUCCESS"));
    h.prime().await;
    h.fake
        .put(done(task("b", "Task", None, 5, None), 8, "SUCCESS"));
    h.set_now(60);
    assert_eq!(h.completed().await, 1);
    assert_eq!(h.completed().await, 0, "b is counted once");
    assert_eq!(h.counted("success"), Some(1.0));
}

#[tokio::test]
async fn a_task_pending_at_start_that_completes_while_priming_is_counted() {
    let mut h = harness();
    h.fake
        .put(task("stuck", "Agg", Some("AD"), -600, Some(-590)));
    h.fake.put(done(
        task("old", "Agg", Some("AD"), -400, Some(-390)),
        -300,
        "SUCCESS",
    ));
    // Between the pending snapshot and the history read, "stuck" completes (at the
    // snapshot's own second: the fake's clock does not move during the poll).
    let finished = done(
        task("stuck", "Agg", Some("AD"), -600, Some(-590)),
        0,
        "ERROR",
    );
    h.fake
        .with(|s| s.insert_before_offset = Some((0, vec![finished])));
    let outcome = h.poller.poll(PollList::Pending).await.unwrap();
    assert_eq!(
        outcome,
        PollOutcome::Primed {
            primed: 1,
            counted: 1
        }
    );
    let s = h.samples();
    let err = [("task_name", "Agg"), ("source", "AD"), ("status", "error")];
    let ok = [
        ("task_name", "Agg"),
        ("source", "AD"),
        ("status", "success"),
    ];
    assert_eq!(
        v(&s, COMPLETED, &err),
        Some(1.0),
        "completed after start: counted"
    );
    assert_eq!(v(&s, COMPLETED, &ok), Some(0.0), "backlog: not counted");
    assert_eq!(
        v(&s, "sailpoint_task_duration_seconds_sum", &err),
        Some(590.0)
    );
    // And never again, by either path.
    h.set_now(60);
    assert_eq!(h.pending().await, 0);
    assert_eq!(h.completed().await, 0);
    assert_eq!(v(&h.samples(), COMPLETED, &err), Some(1.0));
}

/// `(le, cumulative count)` of every bucket of `family` with `labels`, sorted by `le`.
fn buckets(s: &[Sample], family: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let name = format!("{family}_bucket");
    let mut out: Vec<(f64, f64)> = s
        .iter()
        .filter(|x| {
            x.name == name
                && labels
                    .iter()
                    .all(|(k, want)| x.labels.get(*k).is_some_and(|got| got == want))
        })
        .map(|x| {
            let le = x.labels.get("le").map(String::as_str).unwrap_or_default();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, x.value)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[tokio::test]
async fn every_histogram_bucket_counts_the_observed_durations_and_waits() {
    // Boundaries exactly on observed values: `le` is inclusive, the unit is seconds, and
    // the configured buckets (not the defaults) are used.
    let settings = MetricsSettings {
        duration_buckets: vec![10.0, 60.0, 61.0, 3600.0],
        queue_wait_buckets: vec![0.5, 5.0, 30.0],
        ..MetricsSettings::default()
    };
    let mut h = harness_with(tenant_settings(), settings);
    // (id, created, launched, completed): durations 10, 60, 61, 3600 (from `created`,
    // never launched), 3601; queue waits 5, 0, 30, 5.
    let runs = [
        ("a", 1, Some(6), 16),
        ("b", 2, Some(2), 62),
        ("c", 3, Some(33), 94),
        ("d", 4, None, 3604),
        ("e", 5, Some(10), 3611),
    ];
    for (id, created, launched, _) in runs {
        h.fake.put(task(id, "Agg", Some("AD"), created, launched));
    }
    h.set_now(40);
    h.prime().await;
    for (id, _, _, completed) in runs {
        h.fake.complete(id, at(completed), "SUCCESS");
    }
    h.set_now(3700);
    assert_eq!(h.pending().await, 5);
    let s = h.samples();
    let group = [("tenant", "acme"), ("task_name", "Agg"), ("source", "AD")];
    let ok = [group[0], group[1], group[2], ("status", "success")];
    assert_eq!(
        buckets(&s, "sailpoint_task_duration_seconds", &ok),
        vec![
            (10.0, 1.0),
            (60.0, 2.0),
            (61.0, 3.0),
            (3600.0, 4.0),
            (f64::INFINITY, 5.0)
        ]
    );
    assert_eq!(
        buckets(&s, "sailpoint_task_queue_wait_seconds", &group),
        vec![(0.5, 1.0), (5.0, 3.0), (30.0, 4.0), (f64::INFINITY, 4.0)]
    );
}

#[tokio::test]
async fn a_date_header_sets_the_skew_and_one_a_month_away_is_followed_and_reported() {
    let mut h = harness();
    // The tenant's clock ten minutes behind ours.
    h.fake.with(|s| s.date = Some(at(-600)));
    h.fake.put(task("a", "Task", None, -660, None));
    h.prime().await;
    let skew = [("tenant", "acme")];
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_clock_skew_seconds", &skew),
        Some(-600.0)
    );
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_counting_degraded", &skew),
        Some(0.0)
    );
    // A month ahead in one answer: reported (gauge, degraded), not yet followed (one
    // `Date` never moves the bounds later), so a task created after the start is still
    // counted.
    h.fake.with(|s| s.date = Some(at(30 * 24 * 3600)));
    h.fake
        .put(done(task("b", "Task", None, 5, None), 8, "SUCCESS"));
    h.set_now(60);
    assert_eq!(h.pending().await, 0);
    assert_eq!(h.completed().await, 1);
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_clock_skew_seconds", &skew),
        Some(30.0 * 24.0 * 3600.0 - 60.0)
    );
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_counting_degraded", &skew),
        Some(1.0)
    );
    // The clocks agree again: no longer degraded.
    h.fake.with(|s| s.date = Some(at(90)));
    h.set_now(90);
    assert_eq!(h.pending().await, 0);
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_counting_degraded", &skew),
        Some(0.0)
    );
}

/// A completed list failing for longer than lookback: the first read after it is capped
/// at `now − lookback` (a task created and finished in the gap may be missed), and
/// counting stays degraded until that window has passed, long enough for an alert with
/// `for:` to see it (before: 1 for a single completed poll).
#[tokio::test]
async fn counting_stays_degraded_until_the_lookback_window_is_exact_again() {
    let mut h = harness_tuned(|t| t.lookback = Duration::from_secs(600));
    h.prime().await;
    let degraded = |h: &Harness| v(&h.samples(), "sailpoint_exporter_counting_degraded", &[]);
    h.fake.with(|s| s.failing = true);
    for step in 1..=40 {
        h.set_now(step * 30);
        assert!(h.poller.poll_pending().await.is_err());
        assert!(h.poller.poll_completed().await.is_err());
    }
    h.fake.with(|s| s.failing = false);
    let mut seen = Vec::new();
    for step in 41..=70 {
        h.set_now(step * 30);
        h.pending().await;
        h.completed().await;
        seen.push(degraded(&h));
    }
    // Degraded from the first read after the outage (at 1 230 s) until lookback (600 s)
    // after the last degraded read (at 1 260 s: S* lags one completed poll).
    let ones = seen.iter().filter(|d| **d == Some(1.0)).count();
    assert_eq!(seen.first(), Some(&Some(1.0)));
    assert_eq!(ones, 20, "{seen:?}");
    assert_eq!(seen.last(), Some(&Some(0.0)));
}

/// Without a `Date` to correct it, an exporter clock that jumps two days ahead would put
/// the floor a day into the tenant's future; bounds stop `overlap` below the newest
/// `created` the tenant has shown, so a task that starts and finishes between two pending polls
/// is still counted.
#[tokio::test]
async fn the_floor_never_moves_past_the_newest_created_the_tenant_has_shown() {
    let mut h = primed_with([task("a", "Task", None, -30, None)]).await;
    h.fake
        .put(done(task("b", "Task", None, 30, Some(30)), 40, "SUCCESS"));
    h.set_now(2 * 86_400 + 60);
    assert_eq!(h.pending().await, 0);
    assert_eq!(h.completed().await, 1);
    assert!(h.poller.tracker().floor() <= Some(at(30)));
    assert_eq!(h.poller.tracker().newest_shown(), Some(at(30)));
    assert_eq!(h.counted("success"), Some(1.0));
}

/// `n` tasks created at 1..=n seconds and finished 5 s later: a burst between two pending
/// polls, never listed pending, so only the completed path can count it.
fn burst(h: &Harness, n: i64) {
    for i in 1..=n {
        h.fake.put(done(
            task(
                &format!("b{i:03}"),
                "Cloud Account Aggregation",
                Some("AD"),
                i,
                Some(i),
            ),
            i + 5,
            "SUCCESS",
        ));
    }
}

#[tokio::test]
async fn an_unreadable_record_in_a_full_page_does_not_end_the_completed_read() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    // The newest task, the first record of the first page, cannot be decoded: that page
    // keeps 9 of 10 records, and must not be taken for the end of the list.
    h.fake.with(|s| s.unreadable.insert("b025".into()));
    let (recorded, _) = burst_then_read(&mut h, 25).await;
    assert_eq!(recorded, 24);
    assert_eq!(
        h.fake.calls(),
        [
            "pending", "page 0", "pending", "page 0", "page 8", "page 17", "page 24"
        ],
        "the read goes on past the page that kept 9 of 10 (its boundary is re-read from \
         the kept tasks' positions: one record more than without the skipped one); the \
         short page at 17 is confirmed by the one at 24, which brings nothing new"
    );
    h.assert_values(&[
        (COMPLETED, &[("status", "success")], Some(24.0)),
        ("sailpoint_exporter_unsorted_reads_total", &[], Some(0.0)),
    ]);
}

/// `n` tasks finished hours ago (inside lookback, below the floor of the first completed
/// poll) and one finished five minutes ago, which sets that floor.
fn history_below_the_bound(h: &Harness, n: i64) {
    for i in 0..n {
        h.fake.put(done(
            task(&format!("old{i:02}"), "Old", None, -20_000 + i, None),
            -19_000,
            "SUCCESS",
        ));
    }
    h.fake.put(done(
        task("recent", "Old", None, -300, None),
        -200,
        "SUCCESS",
    ));
}

#[tokio::test]
async fn a_list_ignoring_sorters_is_read_to_its_end_and_counted_exactly() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    // History below the bound, then the burst: oldest first, the first page holds only
    // tasks below the bound.
    history_below_the_bound(&h, 15);
    h.fake.with(|s| s.oldest_first = true);
    h.prime().await;
    burst(&h, 25);
    h.set_now(40);
    assert_eq!(h.pending().await, 0);
    h.set_now(60);
    assert_eq!(
        h.completed().await,
        25,
        "a read stopping at the first page counts 0"
    );
    h.set_now(120);
    assert_eq!(h.completed().await, 0, "nothing twice");
    let s = h.samples();
    assert_eq!(v(&s, COMPLETED, &[("status", "success")]), Some(25.0));
    assert_eq!(
        v(&s, "sailpoint_exporter_unsorted_reads_total", &[]),
        Some(3.0),
        "priming and both completed reads met an unsorted page"
    );
    // Sorted again: the reads stop at the bound and the counter stays.
    h.fake.with(|s| s.oldest_first = false);
    h.set_now(180);
    assert_eq!(h.completed().await, 0);
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_unsorted_reads_total", &[]),
        Some(3.0)
    );
}

/// Successful completions counted so far (all groups).
fn successes(h: &Harness) -> Option<f64> {
    v(&h.samples(), COMPLETED, &[("status", "success")])
}

/// Primes `h`, finishes `n` tasks (see [`burst`]), polls the pending list at 40 s and
/// reads the completed list at 60 s: what that read recorded, and the calls it made.
async fn burst_then_read(h: &mut Harness, n: i64) -> (usize, Vec<String>) {
    h.prime().await;
    burst(h, n);
    h.set_now(40);
    assert_eq!(h.pending().await, 0);
    let before = h.fake.calls().len();
    h.set_now(60);
    let recorded = h.completed().await;
    (recorded, h.fake.calls()[before..].to_vec())
}

/// Two finished tasks, two hours and 100 s old: below and above the first completed
/// read's bound.
fn two_old_tasks(h: &Harness) {
    for (id, created) in [("old1", -7200), ("old2", -100)] {
        h.fake.put(done(
            task(id, "Old", None, created, None),
            created + 10,
            "SUCCESS",
        ));
    }
}

/// An `X-Total-Count` the read never asked for, smaller than the list: the read goes on
/// while pages are full (before: 10 of 25 counted, the rest lost once the floor passed).
#[tokio::test]
async fn an_x_total_count_smaller_than_the_list_does_not_end_the_completed_read() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    h.fake.with(|s| s.total = Some(10));
    let (recorded, _) = burst_then_read(&mut h, 25).await;
    assert_eq!(recorded, 25);
    h.set_now(120);
    assert_eq!(h.completed().await, 0, "nothing twice");
    assert_eq!(successes(&h), Some(25.0));
}

/// Pages of one task cannot show their order: an oldest-first list whose first page is
/// one old task below the bound must not end the read there (before: 0 of 3 counted,
/// with no unsorted read reported). The next page, newer than it, gives the order away.
#[tokio::test]
async fn a_list_ignoring_sorters_is_caught_with_pages_of_one_task() {
    let mut h = harness_tuned(|t| t.page_size = 1);
    two_old_tasks(&h);
    h.fake.with(|s| s.oldest_first = true);
    let (recorded, _) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    let s = h.samples();
    assert_eq!(successes(&h), Some(3.0));
    assert_eq!(
        v(&s, "sailpoint_exporter_unsorted_reads_total", &[]),
        Some(2.0),
        "priming and the completed read"
    );
}

/// The same pages of one task, sorted newest first: the read stops one page below the
/// bound, and no read is reported unsorted.
#[tokio::test]
async fn a_sorted_list_in_pages_of_one_task_stops_below_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 1);
    two_old_tasks(&h);
    let (recorded, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    assert_eq!(
        calls,
        ["page 0", "page 1", "page 2", "page 3", "page 4"],
        "three new tasks, old2 (above the bound), old1 (below it): the end"
    );
    assert_eq!(
        v(&h.samples(), "sailpoint_exporter_unsorted_reads_total", &[]),
        Some(0.0)
    );
}

/// A completed list that sends at most 3 records per page while the read asks for 10:
/// every page is short, and the first is not the end. Before: the read stopped at page
/// 0 and 3 of 8 completions were counted.
#[tokio::test]
async fn a_list_capped_below_the_page_size_is_read_to_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    two_old_tasks(&h);
    h.fake.with(|s| s.page_cap = Some(3));
    let (recorded, calls) = burst_then_read(&mut h, 8).await;
    assert_eq!(recorded, 8);
    assert_eq!(successes(&h), Some(8.0));
    assert_eq!(
        calls,
        ["page 0", "page 2", "page 4", "page 6", "page 8"],
        "eight new tasks and two old ones, three a page, each next page re-reading the \
         boundary task: page 8 holds old2 and old1, below the bound"
    );
}

/// A sorted list that sends one record per page while the read asks for 10: the read
/// follows it down to the bound, one task a request. Before: it stopped after the second
/// page (a cap of one was never followed) and counted 2 of 3.
#[tokio::test]
async fn a_sorted_list_capped_at_one_record_is_read_to_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    two_old_tasks(&h);
    h.fake.with(|s| s.page_cap = Some(1));
    let (recorded, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    assert_eq!(successes(&h), Some(3.0));
    assert_eq!(
        calls,
        ["page 0", "page 1", "page 2", "page 3", "page 4"],
        "three new tasks, old2 (above the bound), old1 (below it): the end"
    );
}

/// An oldest-first list whose oldest tasks, below the bound, share one `created` over
/// more than one page: those pages show no order, so reaching below the bound on them
/// ends nothing; the page after them shows the list unsorted, and it is read to its end.
/// Before: the second page, "after" a first one, was taken to show the order, the read
/// stopped there, and the three new completions were never counted (0 of 3; seen in a
/// daemon resumed from its state file, where one restart's tasks share a `created`).
#[tokio::test]
async fn pages_of_one_created_value_below_the_bound_do_not_end_an_unsorted_read() {
    let mut h = harness_tuned(|t| t.page_size = 2);
    h.fake.with(|s| s.oldest_first = true);
    for (id, created) in [
        ("o1", -7200),
        ("o2", -7200),
        ("o3", -7200),
        ("o4", -7200),
        ("n", -100),
    ] {
        h.fake.put(done(
            task(id, "Old", None, created, None),
            created + 10,
            "SUCCESS",
        ));
    }
    let (recorded, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    assert_eq!(successes(&h), Some(3.0));
    assert_eq!(
        calls,
        [
            "page 0", "page 2", "page 4", "page 5", "page 6", "page 7", "page 8"
        ],
        "o1-o4 over two pages, then n and b001: unsorted; each next page re-reads the \
         boundary task, to the empty page after b003"
    );
}

/// A sorted list whose pages are short by varying amounts (3 records, then 2, then 3
/// ...: a server that drops records after paging, or caps by size): a page shorter than
/// the short one before it is not the end of a sorted list. Before: the read stopped at
/// the second page and counted 4 of 8.
#[tokio::test]
async fn a_sorted_list_with_pages_short_by_varying_amounts_is_read_to_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    two_old_tasks(&h);
    h.prime().await;
    burst(&h, 8);
    h.set_now(40);
    assert_eq!(h.pending().await, 0);
    h.fake.with(|s| s.next_caps = [3, 2, 3, 2, 3, 2].into());
    let before = h.fake.calls().len();
    h.set_now(60);
    assert_eq!(h.completed().await, 8);
    assert_eq!(successes(&h), Some(8.0));
    assert_eq!(
        h.fake.calls()[before..],
        ["page 0", "page 2", "page 3", "page 5", "page 6", "page 8"],
        "each page re-reads the one before's last task; page 8 holds old2 and old1"
    );
}

/// The same list, and a task finishing while it is paged: it enters at the head and
/// shifts the list by one, so page 2 re-reads b002. With a cap of one that page is not
/// the end: the read goes on to the bound, and the next read counts the newcomer.
#[tokio::test]
async fn a_list_capped_at_one_record_that_shifts_is_still_read_to_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    two_old_tasks(&h);
    h.fake.with(|s| s.page_cap = Some(1));
    h.prime().await;
    burst(&h, 3);
    let newer = vec![done(task("n1", "Task", None, 50, None), 51, "SUCCESS")];
    h.fake.with(|s| s.insert_before_offset = Some((2, newer)));
    h.set_now(40);
    assert_eq!(h.pending().await, 0);
    let before = h.fake.calls().len();
    h.set_now(60);
    assert_eq!(h.completed().await, 3);
    assert_eq!(
        h.fake.calls()[before..],
        ["page 0", "page 1", "page 2", "page 3", "page 4", "page 5"],
        "page 2 re-reads b002; b001, old2 and old1 follow"
    );
    h.set_now(120);
    assert_eq!(h.completed().await, 1);
    assert_eq!(successes(&h), Some(3.0));
    let newcomer = [("task_name", "Task"), ("status", "success")];
    assert_eq!(v(&h.samples(), COMPLETED, &newcomer), Some(1.0));
}

/// An oldest-first list that gains a finished task with every page request: a read that
/// followed short pages would chase the newest end for as long as tasks keep finishing.
/// It stops at the first page shorter than the short one; the tasks it left are the next
/// read's, and every task is counted once.
#[tokio::test]
async fn a_read_does_not_chase_tasks_finishing_while_it_pages() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    h.fake.with(|s| s.oldest_first = true);
    h.fake.with(|s| s.grow_per_page = Some(0));
    let (_, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(
        calls,
        ["page 0", "page 2"],
        "page 2 re-reads b003 and the task added before it: shorter than page 0, the end"
    );
    let grown = h.fake.with(|s| s.grow_per_page.take()).unwrap_or(0);
    h.set_now(90);
    h.completed().await;
    assert_eq!(successes(&h), Some(3.0 + grown as f64));
}

/// The cost of confirming a short page: a young list (every task above the bound) ends
/// at the next page, which re-reads the boundary task and brings nothing new; a list
/// that reaches the bound costs nothing more.
#[tokio::test]
async fn a_short_page_costs_one_confirming_request_only_before_the_bound() {
    let mut h = harness_tuned(|t| t.page_size = 10);
    let (recorded, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    assert_eq!(
        calls,
        ["page 0", "page 2"],
        "page 2 re-reads the boundary task and brings nothing new: the end"
    );
    let mut h = harness_tuned(|t| t.page_size = 10);
    two_old_tasks(&h);
    let (recorded, calls) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
    assert_eq!(calls, ["page 0"]);
}

/// One pending answer whose `Date` is a year ahead, with a task listed pending: the
/// completed read must still reach a task that started and finished unseen just before
/// (before: its bound jumped to just after the pending task's `created`; 0 counted).
#[tokio::test]
async fn one_date_a_year_ahead_does_not_skip_an_unseen_completion() {
    let mut h = harness();
    h.prime().await;
    h.fake
        .put(done(task("c", "Task", None, 10, Some(10)), 20, "SUCCESS"));
    h.fake.put(task("d", "Task", None, 15, Some(15)));
    h.fake.with(|s| s.date = Some(at(25 + 365 * 86_400)));
    h.set_now(25);
    assert_eq!(h.pending().await, 0);
    h.fake.with(|s| s.date = Some(at(30)));
    h.set_now(30);
    assert_eq!(h.completed().await, 1);
    assert_eq!(successes(&h), Some(1.0));
}

/// Priming meets a `Date` a year ahead, then the tenant's clock is normal again: what
/// finishes afterwards, never listed pending, is counted (before: the completed path read
/// nothing for a year, and counting was not even reported degraded).
#[tokio::test]
async fn a_date_a_year_ahead_at_priming_does_not_blind_the_completed_path() {
    let mut h = harness();
    h.fake.with(|s| s.date = Some(at(365 * 86_400)));
    h.prime().await;
    h.fake.with(|s| s.date = Some(at(30)));
    h.fake
        .put(done(task("c", "Task", None, 10, Some(10)), 20, "SUCCESS"));
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    h.set_now(60);
    assert_eq!(h.completed().await, 1);
}

/// A tenant whose clock is really two days ahead (its `Date` and its tasks agree):
/// every completion counted exactly once throughout, before and after the skew is
/// confirmed (`Skew`'s own test shows when it is followed).
#[tokio::test]
async fn a_tenant_clock_two_days_ahead_is_counted_exactly() {
    let ahead = 2 * 86_400;
    let mut h = harness();
    h.fake.with(|s| s.date = Some(at(ahead)));
    h.prime().await;
    let mut truth = 0;
    for step in 1..=12_i64 {
        let now = step * 30;
        let id = format!("t{step}");
        // One task a poll, started and finished between pending polls (unseen), in the
        // tenant's time.
        h.fake.put(done(
            task(&id, "Task", None, ahead + now - 20, Some(ahead + now - 20)),
            ahead + now - 10,
            "SUCCESS",
        ));
        truth += 1;
        h.fake.with(|s| s.date = Some(at(ahead + now)));
        h.set_now(now);
        h.pending().await;
        if step % 2 == 0 {
            h.completed().await;
        }
    }
    assert_eq!(successes(&h), Some(truth as f64));
}

/// A lookup answered with another task says nothing of the one asked for: it stays
/// pending (before: dropped as if deleted, so a long-running task finishing later, below
/// every completed bound, was never counted).
#[tokio::test]
async fn a_lookup_answered_with_another_task_keeps_the_task_pending() {
    let mut h = harness();
    h.fake.put(task("a", "Long", None, -7200, Some(-7200)));
    h.prime().await;
    h.fake.with(|s| {
        s.skip_pending.insert("a".into());
        s.misdirected.insert("a".into());
    });
    h.set_now(30);
    assert_eq!(h.pending().await, 0);
    h.fake.with(|s| {
        s.skip_pending.clear();
        s.misdirected.clear();
    });
    h.fake.complete("a", at(40), "SUCCESS");
    h.set_now(60);
    assert_eq!(h.pending().await, 1);
    h.set_now(90);
    assert_eq!(h.completed().await, 0, "nothing twice");
    assert_eq!(successes(&h), Some(1.0));
}

#[tokio::test]
async fn an_unsorted_read_of_unreadable_and_old_records_is_not_taken_for_a_repeating_list() {
    let mut h = harness_tuned(|t| t.page_size = 5);
    // Three full pages of old tasks (below the bound), one of them unreadable, before
    // the new ones: an unsorted read passes them without calling the list repeating.
    history_below_the_bound(&h, 15);
    h.fake.with(|s| {
        s.oldest_first = true;
        s.unreadable.insert("old07".into());
    });
    let (recorded, _) = burst_then_read(&mut h, 3).await;
    assert_eq!(recorded, 3);
}
/// A [`Fake`] whose history reads take a while and record how many run at once.
#[derive(Clone)]
struct Gauged {
    fake: Fake,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

impl TaskSource for Gauged {
    type Error = FakeError;

    async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, FakeError> {
        self.fake.pending_tasks().await
    }

    async fn completed_page(&self, offset: u32, limit: u32) -> Result<Page, FakeError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        self.fake.completed_page(offset, limit).await
    }

    async fn tasks_by_ids(&self, ids: &[String]) -> Result<Vec<TaskStatus>, FakeError> {
        self.fake.tasks_by_ids(ids).await
    }

    async fn task_status(&self, id: &str) -> Result<Option<TaskStatus>, FakeError> {
        self.fake.task_status(id).await
    }
}

/// Peak memory at start must not depend on how many tenants start together: however many
/// prime at the same moment, at most `PRIMING_AT_ONCE` read their history at once (other
/// tests of this binary may hold slots too, which only lowers the figure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_a_fixed_number_of_tenants_prime_at_once() {
    let metrics = Arc::new(Metrics::new(&MetricsSettings::default(), "test", "abc").unwrap());
    let source = Gauged {
        fake: Fake::default(),
        in_flight: Arc::default(),
        most: Arc::default(),
    };
    let primes: Vec<_> = (0..12)
        .map(|i| {
            let name = format!("t{i}");
            let mut settings = tenant_settings();
            settings.name = name.clone();
            let mut poller = TenantPoller::new(&settings, source.clone(), metrics.tenant(&name));
            tokio::spawn(async move { poller.prime().await.is_ok() })
        })
        .collect();
    for prime in primes {
        assert!(prime.await.unwrap());
    }
    let most = source.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=super::poller::PRIMING_AT_ONCE).contains(&most),
        "{most} tenants primed at once"
    );
}

/// A state file written before issue 19 — the dedupe set as id → (created, recorded), no
/// ceiling or degraded fields — still resumes into a tracker, with its ids remembered.
#[tokio::test]
async fn a_state_file_of_the_earlier_shape_resumes() {
    use crate::storage::{Loaded, Store};
    const URL: &str = "https://acme.api.identitynow.com/";
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let metrics = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let (writer, tenant) = (store.tenant("acme", URL), metrics.tenant("acme"));
    let tracker = super::Tracker::new(super::tracker::TrackerConfig::default());
    writer
        .save(writer.snapshot(&tracker, tenant.snapshot()), &tenant)
        .await;
    let path = store.path("acme");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let tracker = file["tracker"].as_object_mut().unwrap();
    tracker.remove("newest_shown");
    tracker.remove("degraded_until");
    tracker.insert(
        "recent".into(),
        json!({"entries": {
            "2c9180835d2e5168015d32f890ca1581": ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"],
            "t1": ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"]
        }}),
    );
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let day = Duration::from_secs(86_400);
    match store.load::<super::Tracker>("acme", URL, day, Utc::now()) {
        Loaded::Resumed { counting, .. } => {
            let remembered = counting.recent();
            assert_eq!(remembered.len(), 2);
            assert!(remembered.contains("2c9180835d2e5168015d32f890ca1581"));
            assert!(remembered.contains("t1"));
        }
        other => panic!("{other:?}"),
    }
}
