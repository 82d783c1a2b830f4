//! The collector against the simulated tenant over real loopback HTTP: after each
//! scenario the rendered metrics must equal the simulator's ground truth exactly.
//! Polls are driven one by one (`TenantPoller::poll`) on the simulator's manual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sailpoint_simulator::{Faults, NewTask, Scenario, SimHandle, TaskKind};
use sailpoint_task_exporter::collector::TaskSource;
use sailpoint_task_exporter::metrics::PollList;
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatus, TaskStatusMessage};
use sailpoint_task_exporter::sailpoint::{ApiError, Client, Page};
use test_support::exporter::*;

fn status(i: usize) -> CompletionStatus {
    match i % 5 {
        0 | 1 => CompletionStatus::Success,
        2 => CompletionStatus::Warning,
        3 => CompletionStatus::Error,
        _ => CompletionStatus::Terminated,
    }
}

fn warn_and_error() -> Vec<TaskStatusMessage> {
    serde_json::from_value(serde_json::json!([
        {"type": "WARN", "localizedText": null, "key": "w", "parameters": null},
        {"type": "ERROR", "localizedText": null, "key": "e", "parameters": null},
        {"type": "INFO", "localizedText": null, "key": "i", "parameters": null}
    ]))
    .unwrap()
}

/// Two hours of completed history and `pending` long-running tasks.
fn populate(sim: &SimHandle, pending: usize) {
    let now = sim.now();
    for i in 0..40usize {
        let created = now - secs(7200) + secs(150 * i as i64);
        let kind = if i % 4 == 0 {
            NewTask::new(TaskKind::EntitlementReset).on_source(SOURCES[i % 3])
        } else {
            NewTask::account_aggregation(SOURCES[i % 3])
        };
        sim.add_task(
            kind.created(created)
                .launched(created + secs(3))
                .completes(created + secs(60 + i as i64), status(i)),
        );
    }
    for i in 0..pending {
        let created = now - secs(3000) + secs(97 * i as i64);
        let launched = (i % 3 != 0).then_some(created + secs(7));
        let mut task = NewTask::group_aggregation(SOURCES[i % 3]).created(created);
        if let Some(l) = launched {
            task = task.launched(l);
        }
        sim.add_task(task);
    }
}

/// Activity of one 30-second step: tasks that start and finish before the next poll,
/// tasks that finish a few polls later, and completions of pending tasks.
fn activity(sim: &SimHandle, step: usize) {
    activity_with(sim, step, true);
}

fn activity_with(sim: &SimHandle, step: usize, complete_pending: bool) {
    let now = sim.now();
    sim.add_task(
        NewTask::account_aggregation(SOURCES[step % 3])
            .created(now + secs(2))
            .launched(now + secs(4))
            .completes(now + secs(20), status(step))
            .messages(if step.is_multiple_of(4) {
                warn_and_error()
            } else {
                Vec::new()
            }),
    );
    sim.add_task(
        NewTask::identity_refresh()
            .created(now + secs(1))
            .completes(now + secs(95), status(step + 1)),
    );
    if step.is_multiple_of(3) {
        sim.add_task(
            NewTask::group_aggregation(SOURCES[(step + 1) % 3])
                .created(now)
                .launched(now),
        );
    }
    let pending = if complete_pending {
        sim.pending_tasks()
    } else {
        Vec::new()
    };
    if let Some(t) = pending.get(step % 5) {
        let s = status(step + 2);
        sim.complete_task(
            &t.id,
            s,
            if step.is_multiple_of(2) {
                warn_and_error()
            } else {
                Vec::new()
            },
        );
    }
}

async fn primed(sim: &Arc<SimHandle>) -> (Exporter, DateTime<Utc>) {
    let mut exp = exporter(sim, |_| {});
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    (exp, primed_at)
}

#[tokio::test]
async fn completions_while_both_lists_shift_under_paging_are_counted_exactly() {
    let sim = start_sim(Scenario::Empty, 1).await;
    populate(&sim, 14);
    let (mut exp, primed_at) = primed(&sim).await;
    assert_matches_truth(&exp, &sim, primed_at);
    sim.set_faults(Faults {
        page_shift: true,
        ..Faults::none()
    });
    for step in 0..24 {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        exp.poller.poll(PollList::Pending).await.unwrap();
        if step % 2 == 1 {
            exp.poller.poll(PollList::Completed).await.unwrap();
        }
        // Keep the pending list longer than a page so that it keeps shifting.
        sim.add_task(NewTask::group_aggregation(SOURCES[step % 3]).created(sim.now()));
    }
    let lookups = sim.request_count().get_task_status + sim.request_count().get_task_status_list;
    settle(&sim, &mut exp).await;
    assert_matches_truth(&exp, &sim, primed_at);
    assert!(
        lookups > 24,
        "the shifting lists must have been paged ({lookups} list/get requests)"
    );
}

#[tokio::test]
async fn a_task_that_starts_and_finishes_between_two_pending_polls_is_counted_once() {
    let sim = start_sim(Scenario::Empty, 2).await;
    let (mut exp, primed_at) = primed(&sim).await;
    let now = sim.now();
    sim.add_task(
        NewTask::account_aggregation("Workday")
            .created(now + secs(5))
            .launched(now + secs(6))
            .completes(now + secs(20), CompletionStatus::Error),
    );
    sim.advance(Duration::from_secs(30));
    assert_eq!(exp.poller.poll_pending().await.unwrap(), 0);
    assert_eq!(exp.poller.poll_completed().await.unwrap(), 1);
    sim.advance(Duration::from_secs(30));
    assert_eq!(exp.poller.poll_pending().await.unwrap(), 0);
    assert_eq!(exp.poller.poll_completed().await.unwrap(), 0);
    assert_matches_truth(&exp, &sim, primed_at);
    let s = exp.samples();
    let labels = [
        ("task_name", "Cloud Account Aggregation"),
        ("source", "Workday [source]"),
        ("status", "error"),
    ];
    use test_support::exposition::value;
    let counted = value(&s, "sailpoint_tasks_completed_total", &labels);
    let seconds = value(&s, "sailpoint_task_duration_seconds_sum", &labels);
    assert_eq!(
        (counted, seconds),
        (Some(1.0), Some(14.0)),
        "count, duration"
    );
}

#[tokio::test]
async fn tasks_running_far_longer_than_the_overlap_are_counted_once() {
    let sim = start_sim(Scenario::Empty, 3).await;
    populate(&sim, 8);
    let (mut exp, primed_at) = primed(&sim).await;
    let started = sim.now();
    let long = sim.add_task(
        NewTask::identity_refresh()
            .created(started)
            .launched(started + secs(30)),
    );
    // Six hours in five-minute steps: the overlap is two minutes.
    for step in 0..72usize {
        sim.advance(Duration::from_secs(300));
        if step.is_multiple_of(6) {
            activity_with(&sim, step, false);
        }
        exp.cycle().await;
    }
    assert!(sim.complete_task(&long, CompletionStatus::Success, Vec::new()));
    for t in sim.pending_tasks() {
        sim.complete_task(&t.id, CompletionStatus::Warning, Vec::new());
    }
    settle(&sim, &mut exp).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

#[tokio::test]
async fn rate_limits_server_errors_broken_bodies_and_timeouts_lose_and_double_nothing() {
    let sim = start_sim(Scenario::Empty, 4).await;
    populate(&sim, 12);
    // Every answer of the two slow steps comes after twice the request timeout, so those
    // requests time out however loaded the machine is; every other failure is counted as
    // it happens (in the loop and in settle), so the poll-error count is exact.
    let timeout = Duration::from_secs(1);
    let mut exp = exporter(&sim, |t| {
        t.max_retries = 1;
        t.request_timeout = timeout;
    });
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    let noisy = Faults {
        rate_limit_every: Some(5),
        rate_limit_burst: 2,
        retry_after: Duration::ZERO,
        server_error_rate: 0.15,
        malformed_rate: 0.05,
        truncated_rate: 0.05,
        reset_rate: 0.05,
        page_shift: true,
        ..Faults::none()
    };
    let mut failed = 0;
    for step in 0..24 {
        sim.set_faults(if (10..12).contains(&step) {
            Faults {
                latency: timeout * 2,
                ..Faults::none()
            }
        } else {
            noisy.clone()
        });
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        let (p, c) = exp.cycle().await;
        failed += usize::from(!p) + usize::from(!c);
    }
    let failed_while_settling = settle(&sim, &mut exp).await;
    assert_matches_truth(&exp, &sim, primed_at);
    assert!(failed > 0, "some polls must have failed");
    let failed = failed + failed_while_settling;
    let errors = total(&exp, "sailpoint_exporter_poll_errors_total", &[]);
    assert_eq!(errors, failed as f64);
    for reason in ["rate_limited", "server_error", "timeout"] {
        assert!(
            total(
                &exp,
                "sailpoint_exporter_api_retries_total",
                &[("reason", reason)]
            ) > 0.0,
            "no {reason} retry happened"
        );
    }
    assert_eq!(total(&exp, "sailpoint_up", &[]), 1.0);
}

/// The real client, revoking every token after the first page of each completed read:
/// the token expires in the middle of a poll.
struct RevokingMidPoll {
    client: Client,
    sim: Arc<SimHandle>,
}

impl TaskSource for RevokingMidPoll {
    type Error = ApiError;
    async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, ApiError> {
        let tasks = TaskSource::pending_tasks(&self.client).await;
        self.sim.revoke_tokens();
        tasks
    }
    async fn completed_page(&self, offset: u32, limit: u32) -> Result<Page, ApiError> {
        let page = self.client.completed_page(offset, limit).await;
        self.sim.revoke_tokens();
        page
    }
    async fn tasks_by_ids(&self, ids: &[String]) -> Result<Vec<TaskStatus>, ApiError> {
        self.client.tasks_by_ids(ids).await
    }
    async fn task_status(&self, id: &str) -> Result<Option<TaskStatus>, ApiError> {
        TaskSource::task_status(&self.client, id).await
    }
}

#[tokio::test]
async fn a_token_expiring_mid_poll_is_refreshed_and_nothing_is_lost() {
    let sim = start_sim(Scenario::Empty, 5).await;
    populate(&sim, 12);
    let revoker = Arc::clone(&sim);
    let mut exp = exporter_with(
        &sim,
        |_| {},
        move |client| RevokingMidPoll {
            client,
            sim: revoker,
        },
    );
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    for step in 0..10 {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        assert_eq!(
            exp.cycle().await,
            (true, true),
            "a refreshed token keeps polls whole"
        );
    }
    settle(&sim, &mut exp).await;
    assert_matches_truth(&exp, &sim, primed_at);
    assert!(total(&exp, "sailpoint_exporter_token_refreshes_total", &[]) > 10.0);
    assert!(
        total(
            &exp,
            "sailpoint_exporter_api_requests_total",
            &[("code", "401")]
        ) > 10.0
    );
}

/// Activity `steps`, one poll cycle each, then settled: the metrics equal the ground truth.
async fn run_and_settle(
    sim: &SimHandle,
    exp: &mut Exporter,
    steps: std::ops::Range<usize>,
    primed_at: DateTime<Utc>,
) {
    for step in steps {
        sim.advance(Duration::from_secs(30));
        activity(sim, step);
        exp.cycle().await;
    }
    settle(sim, exp).await;
    assert_matches_truth(exp, sim, primed_at);
}

#[tokio::test]
async fn a_restarted_exporter_primes_without_counting_the_backlog() {
    let sim = start_sim(Scenario::Empty, 6).await;
    populate(&sim, 10);
    let (mut first, first_primed) = primed(&sim).await;
    run_and_settle(&sim, &mut first, 0..8, first_primed).await;
    drop(first);
    // Down for ten minutes while tasks keep completing.
    for step in 8..28 {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
    }
    let (mut second, second_primed) = primed(&sim).await;
    assert_matches_truth(&second, &sim, second_primed);
    use test_support::exposition::sum;
    assert_eq!(
        sum(&second.samples(), "sailpoint_tasks_completed_total", &[]),
        0.0,
        "backlog not counted"
    );
    run_and_settle(&sim, &mut second, 28..40, second_primed).await;
}
