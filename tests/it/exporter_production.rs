//! The collector against a tenant with production's habits (the simulator's [`Habits`]):
//! off-spec records, a quiet history, lagging views, reordered ties, a skewed clock with a
//! long pending outage, a pending replica that lags, a task whose lookup fails forever, a reload that raises `overlap`,
//! an exporter clock that steps back. Every test ends with the rendered metrics equal to
//! the simulator's ground truth, counters compared from 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sailpoint_simulator::{Faults, Habits, NewTask, Scenario, SimHandle};
use sailpoint_task_exporter::collector::TenantPoller;
use sailpoint_task_exporter::metrics::PollList;
use sailpoint_task_exporter::sailpoint::Client;
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatus};
use test_support::exporter::*;

fn status(i: usize) -> CompletionStatus {
    match i % 4 {
        0 | 1 => CompletionStatus::Success,
        2 => CompletionStatus::Warning,
        _ => CompletionStatus::Error,
    }
}

fn with_habits(sim: &SimHandle, habits: Habits) {
    sim.set_faults(Faults {
        habits,
        ..Faults::none()
    });
}

/// Two hours of history and `pending` long-running tasks.
fn populate(sim: &SimHandle, pending: usize) {
    let now = sim.now();
    for i in 0..30usize {
        let created = now - secs(7200) + secs(200 * i as i64);
        sim.add_task(
            NewTask::account_aggregation(SOURCES[i % 3])
                .created(created)
                .launched(created + secs(3))
                .completes(created + secs(60 + i as i64), status(i)),
        );
    }
    add_running_groups(sim, pending, now - secs(3000), secs(97), secs(5));
}

/// `n` group aggregations over the three sources, the first created at `first`, one every
/// `every`, each launched `wait` after it was created, none finished.
fn add_running_groups(
    sim: &SimHandle,
    n: usize,
    first: DateTime<Utc>,
    every: chrono::Duration,
    wait: chrono::Duration,
) {
    for i in 0..n {
        let created = first + every * i as i32;
        sim.add_task(
            NewTask::group_aggregation(SOURCES[i % 3])
                .created(created)
                .launched(created + wait),
        );
    }
}

/// One 30-second step of activity: a quick task, a task that runs about three minutes,
/// and the completion of one long-pending task.
fn activity(sim: &SimHandle, step: usize) {
    let now = sim.now();
    sim.add_task(
        NewTask::account_aggregation(SOURCES[step % 3])
            .created(now + secs(2))
            .launched(now + secs(4))
            .completes(now + secs(20), status(step)),
    );
    sim.add_task(
        NewTask::identity_refresh()
            .created(now + secs(1))
            .completes(now + secs(185), status(step + 1)),
    );
    if let Some(t) = sim.pending_tasks().get(step % 4)
        && t.created < now - secs(600)
    {
        sim.complete_task(&t.id, status(step + 2), Vec::new());
    }
}

async fn run(sim: &SimHandle, exp: &mut Exporter, steps: std::ops::Range<usize>) {
    for step in steps {
        sim.advance(Duration::from_secs(30));
        activity(sim, step);
        exp.poller.poll(PollList::Pending).await.unwrap();
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
}

/// Quiet polls (no faults, habits kept) until the exporter has seen everything.
async fn quiet_polls(sim: &SimHandle, exp: &mut Exporter, n: usize) {
    for _ in 0..n {
        sim.advance(Duration::from_secs(30));
        exp.poller.poll(PollList::Pending).await.unwrap();
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
}

async fn primed(
    sim: &Arc<SimHandle>,
    tweak: impl FnOnce(&mut TenantSettingsAlias),
) -> (Exporter, DateTime<Utc>) {
    let mut exp = exporter(sim, tweak);
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    (exp, primed_at)
}

/// A populated tenant (seed `seed`, 10 pending) and an exporter primed against it whose
/// clock is the tenant's plus `offset()`.
async fn primed_off_the_tenant_clock(
    seed: u64,
    offset: impl Fn() -> chrono::Duration + Send + Sync + 'static,
) -> (Arc<SimHandle>, Exporter, DateTime<Utc>) {
    let sim = start_sim(Scenario::Empty, seed).await;
    populate(&sim, 10);
    let clock_sim = Arc::clone(&sim);
    let mut exp = exporter(&sim, |_| {});
    exp.poller = exp
        .poller
        .with_clock(Arc::new(move || clock_sim.now() + offset()));
    exp.poller.prime().await.unwrap();
    let primed_at = sim.now();
    (sim, exp, primed_at)
}

/// Eight quiet polls later the metrics equal the ground truth, the tenant is up, and no
/// poll failed.
async fn settles_exactly_without_errors(
    sim: &Arc<SimHandle>,
    exp: &mut Exporter,
    primed_at: DateTime<Utc>,
) {
    quiet_polls(sim, exp, 8).await;
    assert_matches_truth(exp, sim, primed_at);
    assert_eq!(total(exp, "sailpoint_up", &[]), 1.0);
    let errors = total(exp, "sailpoint_exporter_poll_errors_total", &[]);
    assert_eq!(errors, 0.0, "poll errors");
}

type TenantSettingsAlias = sailpoint_task_exporter::config::TenantSettings;

/// A tenant with `pending` tasks and the production habits `habit` sets, and an exporter
/// primed against it.
async fn habit_world(
    seed: u64,
    pending: usize,
    habit: impl FnOnce(&mut Habits),
) -> (Arc<SimHandle>, Exporter, DateTime<Utc>) {
    let sim = start_sim(Scenario::Empty, seed).await;
    populate(&sim, pending);
    let mut habits = Habits::default();
    habit(&mut habits);
    with_habits(&sim, habits);
    let (exp, primed_at) = primed(&sim, |_| {}).await;
    (sim, exp, primed_at)
}

fn counted(exp: &Exporter) -> f64 {
    total(exp, "sailpoint_tasks_completed_total", &[])
}

#[tokio::test]
async fn off_spec_fields_do_not_blind_the_tenant_and_are_counted() {
    let (sim, mut exp, primed_at) = habit_world(1, 12, |h| h.off_spec_fields = true).await;
    // A pending task served with percentComplete 12.5 still has its per-task series,
    // with the field's default.
    let spoiled = sim
        .pending_tasks()
        .into_iter()
        .find(|t| t.id.ends_with(['0', '1', '2', '3']))
        .expect("the scenario spoils a pending task");
    assert_eq!(
        total(
            &exp,
            "sailpoint_pending_task_progress_ratio",
            &[("id", spoiled.id.as_str())]
        ),
        0.0
    );
    assert_eq!(
        test_support::exporter::count(
            &exp,
            "sailpoint_pending_task_progress_ratio",
            &[("id", spoiled.id.as_str())]
        ),
        1
    );
    run(&sim, &mut exp, 0..12).await;
    settles_exactly_without_errors(&sim, &mut exp, primed_at).await;
    let defaulted = total(
        &exp,
        "sailpoint_exporter_invalid_records_total",
        &[("reason", "defaulted")],
    );
    assert!(
        defaulted >= 3.0,
        "three fields per spoiled record: {defaulted}"
    );
    assert_eq!(
        total(
            &exp,
            "sailpoint_exporter_invalid_records_total",
            &[("reason", "skipped")]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_quiet_tenant_counts_nothing_from_before_the_start() {
    // Nothing in the last 24 h but a task created 23 h 59.5 min ago, and one created
    // 24 h 20 s ago: both finished long before the exporter starts.
    let sim = start_sim(Scenario::Quiet, 2).await;
    assert_eq!(sim.tasks().len(), 2);
    let (mut exp, primed_at) = primed(&sim, |t| t.lookback = Duration::from_secs(24 * 3600)).await;
    quiet_polls(&sim, &mut exp, 10).await;
    assert_eq!(counted(&exp), 0.0, "history must not be counted");
    assert_matches_truth(&exp, &sim, primed_at);
    // A completion after the start is counted exactly once.
    sim.add_task(
        NewTask::account_aggregation("Active Directory")
            .created(sim.now())
            .completes(sim.now() + secs(10), CompletionStatus::Error),
    );
    quiet_polls(&sim, &mut exp, 6).await;
    assert_eq!(counted(&exp), 1.0);
    assert_matches_truth(&exp, &sim, primed_at);
}

#[tokio::test]
async fn a_reload_that_raises_overlap_recounts_nothing() {
    let sim = start_sim(Scenario::Empty, 3).await;
    populate(&sim, 10);
    let (mut exp, primed_at) = primed(&sim, |_| {}).await;
    // Twenty minutes with the default 2-minute overlap: the dedupe set forgets.
    run(&sim, &mut exp, 0..40).await;
    assert_matches_truth(&exp, &sim, primed_at);
    // The reload: a new poller with a one-hour overlap continues from the tracker.
    let mut settings = exp.settings.clone();
    settings.overlap = Some(Duration::from_secs(3600));
    let tenant = exp.metrics.tenant(TENANT);
    let client = Client::new(&settings, Arc::new(tenant.clone())).unwrap();
    let clock_sim = Arc::clone(&sim);
    let tracker = exp.poller.tracker().clone();
    exp.poller = TenantPoller::new(&settings, client, tenant)
        .with_clock(Arc::new(move || clock_sim.now()))
        .resuming(tracker);
    exp.settings = settings;
    run(&sim, &mut exp, 40..50).await;
    quiet_polls(&sim, &mut exp, 8).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

#[tokio::test]
async fn an_exporter_clock_that_steps_back_recounts_nothing() {
    let step_back = Arc::new(AtomicI64::new(0));
    let back = Arc::clone(&step_back);
    let (sim, mut exp, primed_at) =
        primed_off_the_tenant_clock(4, move || -secs(back.load(Ordering::Relaxed))).await;
    run(&sim, &mut exp, 0..30).await;
    step_back.store(3600, Ordering::Relaxed);
    run(&sim, &mut exp, 30..40).await;
    quiet_polls(&sim, &mut exp, 8).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

/// The exporter's clock two days ahead of the tenant's: the tenant's `Date` is followed
/// and the gap reported (skew gauge, counting degraded), and the completed path keeps
/// reading (before: the `Date` was ignored, the floor landed a day in the tenant's future
/// and every task the pending path did not see was missed).
#[tokio::test]
async fn an_exporter_clock_two_days_ahead_is_reported_and_not_obeyed() {
    let (sim, mut exp, primed_at) = primed_off_the_tenant_clock(20, || secs(2 * 86_400)).await;
    run(&sim, &mut exp, 0..10).await;
    // Tasks that start and finish between two pending polls: only the completed path
    // can count them.
    for step in 0..10 {
        sim.advance(Duration::from_secs(30));
        let now = sim.now();
        sim.add_task(
            NewTask::account_aggregation(SOURCES[step % 3])
                .created(now - secs(25))
                .completes(now - secs(10), status(step)),
        );
        exp.poller.poll(PollList::Pending).await.unwrap();
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    quiet_polls(&sim, &mut exp, 8).await;
    assert_matches_truth(&exp, &sim, primed_at);
    let skew = total(&exp, "sailpoint_exporter_clock_skew_seconds", &[]);
    assert!((-172_801.0..=-172_799.0).contains(&skew), "skew {skew}");
    assert_eq!(
        total(&exp, "sailpoint_exporter_counting_degraded", &[]),
        1.0
    );
}

async fn lagging_pending_view(shows_status: bool, seed: u64) {
    let sim = start_sim(Scenario::Empty, seed).await;
    populate(&sim, 12);
    // Finished tasks linger in pending-tasks for ten minutes, far beyond the overlap.
    with_habits(
        &sim,
        Habits {
            pending_view_lag: Duration::from_secs(600),
            pending_view_shows_status: shows_status,
            ..Habits::default()
        },
    );
    let (mut exp, primed_at) = primed(&sim, |_| {}).await;
    run(&sim, &mut exp, 0..30).await;
    quiet_polls(&sim, &mut exp, 30).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

#[tokio::test]
async fn finished_tasks_the_pending_view_keeps_showing_with_a_status_count_once() {
    lagging_pending_view(true, 5).await;
}

#[tokio::test]
async fn finished_tasks_the_pending_view_keeps_showing_as_pending_count_once() {
    lagging_pending_view(false, 6).await;
}

/// 30 % of the pending-tasks answers come from a replica 240 s behind (twice the
/// 120 s overlap): finished tasks listed as pending again long after they were counted,
/// the newest missing. Counted once each, exactly the truth (before: a re-listed task
/// whose dedupe entry had expired after `overlap` was adopted and counted again at its
/// next lookup — 6 too many here).
#[tokio::test]
async fn a_pending_replica_that_lags_counts_each_task_once() {
    let (sim, mut exp, primed_at) = habit_world(19, 12, |h| {
        h.pending_replica_lag = Duration::from_secs(240);
        h.pending_replica_share = 0.3;
    })
    .await;
    run(&sim, &mut exp, 0..40).await;
    quiet_polls(&sim, &mut exp, 12).await;
    assert_matches_truth(&exp, &sim, primed_at);
    assert_eq!(total(&exp, "sailpoint_up", &[]), 1.0);
}

#[tokio::test]
async fn a_completed_list_that_lags_loses_nothing() {
    let (sim, mut exp, primed_at) =
        habit_world(7, 12, |h| h.completed_list_lag = Duration::from_secs(90)).await;
    run(&sim, &mut exp, 0..24).await;
    quiet_polls(&sim, &mut exp, 8).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

#[tokio::test]
async fn equal_created_values_reordered_between_requests_hide_no_task() {
    let (sim, mut exp, primed_at) = habit_world(8, 6, |h| h.reorder_ties = true).await;
    for step in 0..16usize {
        sim.advance(Duration::from_secs(30));
        // Bursts of tasks created in the same second, across page boundaries (page 5).
        let at = sim.now() + secs(1);
        for i in 0..(3 + step % 5) {
            sim.add_task(
                NewTask::account_aggregation(SOURCES[i % 3])
                    .created(at)
                    .completes(at + secs(5 + i as i64), status(step + i)),
            );
        }
        exp.poller.poll(PollList::Pending).await.unwrap();
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    quiet_polls(&sim, &mut exp, 8).await;
    assert_matches_truth(&exp, &sim, primed_at);
}

/// The tenant's clock is `offset` seconds off ours while pending-tasks fails for five
/// minutes (overlap is two): a task created during the outage, finished before it ends,
/// never appears in a pending snapshot and must come from the completed list.
async fn skewed_clock_and_pending_outage(offset: i64, seed: u64) {
    let sim = start_sim(Scenario::Empty, seed).await;
    populate(&sim, 8);
    let habits = Habits {
        clock_offset_secs: offset,
        ..Habits::default()
    };
    with_habits(&sim, habits.clone());
    let (mut exp, primed_at) = primed(&sim, |t| t.max_retries = 0).await;
    run(&sim, &mut exp, 0..6).await;
    println!(
        "floor {:?} now {} counted {}",
        exp.poller.tracker().floor(),
        sim.now(),
        counted(&exp)
    );
    let skew = total(&exp, "sailpoint_exporter_clock_skew_seconds", &[]);
    assert!(
        (skew - offset as f64).abs() <= 1.0,
        "skew gauge {skew}, tenant offset {offset}"
    );
    with_habits(
        &sim,
        Habits {
            pending_outage: true,
            ..habits.clone()
        },
    );
    let hidden_start = sim.now() + secs(10);
    sim.add_task(
        NewTask::account_aggregation("Workday")
            .created(hidden_start)
            .launched(hidden_start + secs(2))
            .completes(hidden_start + secs(240), CompletionStatus::Error),
    );
    for step in 6..16 {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        assert!(exp.poller.poll(PollList::Pending).await.is_err());
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    with_habits(&sim, habits);
    run(&sim, &mut exp, 16..20).await;
    quiet_polls(&sim, &mut exp, 8).await;
    let shifted = primed_at + secs(offset);
    assert_matches_tasks(&exp, &sim.tasks_as_served(), shifted);
}

#[tokio::test]
async fn a_tenant_clock_behind_ours_keeps_the_outage_protection() {
    skewed_clock_and_pending_outage(-600, 9).await;
}

#[tokio::test]
async fn a_tenant_clock_ahead_of_ours_keeps_the_outage_protection() {
    skewed_clock_and_pending_outage(600, 10).await;
}

async fn broken_lookup(code: u16, seed: u64) {
    let sim = start_sim(Scenario::Empty, seed).await;
    populate(&sim, 8);
    let (mut exp, primed_at) = primed(&sim, |t| t.max_retries = 1).await;
    run(&sim, &mut exp, 0..4).await;
    let victim = sim
        .pending_tasks()
        .into_iter()
        .next()
        .expect("a pending task");
    with_habits(
        &sim,
        Habits {
            broken_lookup: Some((victim.id.clone(), code)),
            ..Habits::default()
        },
    );
    run(&sim, &mut exp, 4..14).await;
    quiet_polls(&sim, &mut exp, 4).await;
    assert_eq!(
        total(
            &exp,
            "sailpoint_exporter_poll_errors_total",
            &[("list", "pending")]
        ),
        0.0,
        "one task's lookup must not fail the pending poll"
    );
    assert_eq!(
        total(&exp, "sailpoint_exporter_lookups_set_aside_total", &[]),
        1.0
    );
    let visible: Vec<TaskStatus> = sim
        .tasks_as_served()
        .into_iter()
        .filter(|t| t.id != victim.id)
        .collect();
    assert_matches_tasks(&exp, &visible, primed_at);
}

#[tokio::test]
async fn a_task_whose_lookup_answers_403_forever_is_set_aside() {
    broken_lookup(403, 11).await;
}

#[tokio::test]
async fn a_task_whose_lookup_answers_500_forever_is_set_aside() {
    broken_lookup(500, 12).await;
}

#[tokio::test]
async fn a_pending_list_failing_longer_than_lookback_stays_bounded_and_says_so() {
    let sim = start_sim(Scenario::Empty, 13).await;
    populate(&sim, 6);
    let (mut exp, primed_at) = primed(&sim, |t| {
        t.lookback = Duration::from_secs(600);
        t.max_retries = 0; // the outage's 500s are not retried: the test stays fast
    })
    .await;
    run(&sim, &mut exp, 0..4).await;
    assert_eq!(
        total(&exp, "sailpoint_exporter_counting_degraded", &[]),
        0.0
    );
    with_habits(
        &sim,
        Habits {
            pending_outage: true,
            ..Habits::default()
        },
    );
    // Forty minutes of failing pending polls, four times the lookback.
    let mut list_requests = 0;
    for step in 4..84 {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        assert!(exp.poller.poll(PollList::Pending).await.is_err());
        let before = sim.request_count().get_task_status_list;
        exp.poller.poll(PollList::Completed).await.unwrap();
        list_requests = sim.request_count().get_task_status_list - before;
    }
    assert_eq!(
        total(&exp, "sailpoint_exporter_counting_degraded", &[]),
        1.0,
        "the lost guarantee is visible"
    );
    // Ten minutes of tasks (two per step, plus re-read boundaries): bounded by lookback,
    // not by the forty minutes of the outage.
    let recent = total(
        &exp,
        "sailpoint_exporter_tracked_tasks",
        &[("state", "recent")],
    );
    assert!(recent <= 50.0, "dedupe set holds {recent} ids");
    assert!(
        list_requests <= 13,
        "one completed read took {list_requests} pages"
    );
    println!(
        "after 40 min of pending failures: {recent} ids held, {list_requests} pages per completed read"
    );
    with_habits(&sim, Habits::default());
    run(&sim, &mut exp, 84..90).await;
    quiet_polls(&sim, &mut exp, 8).await;
    assert_eq!(
        total(&exp, "sailpoint_exporter_counting_degraded", &[]),
        1.0,
        "degraded until the lookback window is exact again"
    );
    quiet_polls(&sim, &mut exp, 20).await;
    assert_eq!(
        total(&exp, "sailpoint_exporter_counting_degraded", &[]),
        0.0
    );
    // Nothing here ran longer than lookback, so even the degraded reads missed nothing.
    assert_matches_truth(&exp, &sim, primed_at);
}

/// The ground truth less the task the `unreadable_ids_ending` habit hides.
fn readable(sim: &SimHandle, unreadable: &str) -> Vec<TaskStatus> {
    sim.tasks_as_served()
        .into_iter()
        .filter(|t| t.id != unreadable)
        .collect()
}

fn skipped(exp: &Exporter) -> f64 {
    total(
        exp,
        "sailpoint_exporter_invalid_records_total",
        &[("reason", "skipped")],
    )
}

fn unreadable(id: &str) -> Habits {
    Habits {
        unreadable_ids_ending: Some(id.to_string()),
        ..Habits::default()
    }
}

#[tokio::test]
async fn a_burst_of_600_with_one_unreadable_record_counts_599_and_skips_1() {
    let sim = start_sim(Scenario::Empty, 21).await;
    populate(&sim, 4);
    let (mut exp, primed_at) = primed(&sim, |t| t.page_size = 250).await;
    quiet_polls(&sim, &mut exp, 2).await;
    // 600 tasks created and finished between two pending polls (a catch-up after an
    // outage, a busy hour): only the completed read can count them, over three pages.
    let start = sim.now() + secs(1);
    let mut newest = String::new();
    for i in 0..600i64 {
        let created = start + chrono::Duration::milliseconds(40 * i);
        newest = sim.add_task(
            NewTask::account_aggregation(SOURCES[i as usize % 3])
                .created(created)
                .launched(created + secs(1))
                .completes(created + secs(3), status(i as usize)),
        );
    }
    // The newest one, the first record of the first page, cannot be read.
    with_habits(&sim, unreadable(&newest));
    let before = counted(&exp);
    sim.advance(Duration::from_secs(30));
    assert_eq!(exp.poller.poll_pending().await.unwrap(), 0);
    assert_eq!(exp.poller.poll_completed().await.unwrap(), 599);
    assert_eq!(counted(&exp) - before, 599.0);
    assert_eq!(skipped(&exp), 1.0);
    assert_matches_tasks(&exp, &readable(&sim, &newest), primed_at);
    quiet_polls(&sim, &mut exp, 6).await;
    assert_eq!(
        counted(&exp) - before,
        599.0,
        "nothing twice, nothing later"
    );
    assert_matches_tasks(&exp, &readable(&sim, &newest), primed_at);
    assert_eq!(total(&exp, "sailpoint_up", &[]), 1.0);
}

#[tokio::test]
async fn a_pending_list_of_300_with_one_unreadable_record_follows_every_other_task() {
    let sim = start_sim(Scenario::Empty, 22).await;
    add_running_groups(&sim, 300, sim.now() - secs(4000), secs(10), secs(2));
    // The oldest pending task, the first record of the first page, cannot be read.
    let oldest = sim
        .pending_tasks()
        .into_iter()
        .min_by_key(|t| t.created)
        .expect("pending tasks");
    with_habits(&sim, unreadable(&oldest.id));
    let (mut exp, primed_at) = primed(&sim, |t| t.page_size = 250).await;
    // The pending gauges hold all 299 others (the second page too).
    assert_matches_tasks(&exp, &readable(&sim, &oldest.id), primed_at);
    // Every third task finishes, among them the 50 of the second page: they were created
    // long before any completed read's bound, so only the pending path can count them.
    sim.advance(Duration::from_secs(10));
    let mut finished = 0;
    for (i, t) in sim.pending_tasks().into_iter().enumerate() {
        if i % 3 == 0 && t.id != oldest.id {
            sim.complete_task(&t.id, status(i), Vec::new());
            finished += 1;
        }
    }
    quiet_polls(&sim, &mut exp, 4).await;
    assert_eq!(counted(&exp), f64::from(finished));
    assert_matches_tasks(&exp, &readable(&sim, &oldest.id), primed_at);
    assert_eq!(skipped(&exp), 5.0, "priming and four pending polls read it");
    assert_eq!(total(&exp, "sailpoint_up", &[]), 1.0);
}

#[tokio::test]
async fn an_unreadable_record_in_an_id_batch_costs_only_that_task() {
    let sim = start_sim(Scenario::Empty, 23).await;
    add_running_groups(&sim, 60, sim.now() - secs(4000), secs(10), secs(2));
    let (mut exp, primed_at) = primed(&sim, |_| {}).await;
    quiet_polls(&sim, &mut exp, 1).await;
    // All 60 finish; the oldest one becomes unreadable. The pending poll looks them up in
    // two batches (50 + 10 ids): the record skipped in its batch is looked up alone, fails
    // the same way for 5 polls and is set aside; the 59 others are counted at once.
    let pending = sim.pending_tasks();
    for (i, t) in pending.iter().enumerate() {
        sim.complete_task(&t.id, status(i), Vec::new());
    }
    let oldest = pending
        .iter()
        .min_by_key(|t| t.created)
        .expect("pending tasks")
        .id
        .clone();
    with_habits(&sim, unreadable(&oldest));
    sim.advance(Duration::from_secs(30));
    assert_eq!(exp.poller.poll_pending().await.unwrap(), 59);
    quiet_polls(&sim, &mut exp, 6).await;
    assert_eq!(counted(&exp), 59.0);
    assert_eq!(
        total(&exp, "sailpoint_exporter_lookups_set_aside_total", &[]),
        1.0
    );
    assert_eq!(skipped(&exp), 10.0, "its batch and its GET, in 5 polls");
    assert_eq!(
        total(&exp, "sailpoint_exporter_poll_errors_total", &[]),
        0.0
    );
    assert_matches_tasks(&exp, &readable(&sim, &oldest), primed_at);
}

/// A task-status list that sends at most 3 records a page (the exporter asks for 5):
/// every page is short and the first is not the end. Each step finishes five tasks
/// between two completed reads, three of them unseen by the pending poll. Before: the
/// read ended at the first page and lost the rest of each window.
#[tokio::test]
async fn a_list_capping_its_pages_is_counted_exactly() {
    capped_world(25, 3).await;
}

/// A sorted task-status list that sends one record a page: followed to the bound, one
/// task a request. Before: every read stopped after its second page (a cap of one was
/// never followed), and 58 of the 70 completions were counted.
#[tokio::test]
async fn a_list_capped_at_one_record_is_counted_exactly() {
    capped_world(31, 1).await;
}

/// Twelve steps against a task-status list capped at `cap` records a page, each
/// finishing five tasks between two completed reads, three of them unseen by the pending
/// poll; then the metrics equal the truth.
async fn capped_world(seed: u64, cap: usize) {
    let (sim, mut exp, primed_at) = habit_world(seed, 12, |h| h.list_page_cap = Some(cap)).await;
    for step in 0..12usize {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        exp.poller.poll(PollList::Pending).await.unwrap();
        for k in 0..3i64 {
            let at = sim.now() + secs(1 + k);
            sim.add_task(
                NewTask::account_aggregation(SOURCES[(step + k as usize) % 3])
                    .created(at)
                    .launched(at + secs(2))
                    .completes(at + secs(10), status(step + k as usize)),
            );
        }
        sim.advance(Duration::from_secs(30));
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    settles_exactly_without_errors(&sim, &mut exp, primed_at).await;
}

/// A pending-tasks endpoint that sends at most 3 records a page (the exporter asks for
/// 5) while 12 long-running tasks are pending: the tasks beyond the first page must be
/// tracked, or their completions, far below every completed read's bound, are never
/// counted. Before: the listing ended at the first page.
#[tokio::test]
async fn a_pending_list_capping_its_pages_is_counted_exactly() {
    let (sim, mut exp, primed_at) = habit_world(26, 12, |h| h.pending_page_cap = Some(3)).await;
    assert_eq!(
        total(&exp, "sailpoint_tasks_pending", &[]),
        sim.pending_tasks().len() as f64
    );
    run(&sim, &mut exp, 0..16).await;
    settles_exactly_without_errors(&sim, &mut exp, primed_at).await;
    assert_eq!(
        total(&exp, "sailpoint_tasks_pending", &[]),
        sim.pending_tasks().len() as f64
    );
}

#[tokio::test]
async fn a_list_ignoring_sorters_is_counted_exactly() {
    let (sim, mut exp, primed_at) = habit_world(24, 12, |h| h.ignore_sorters = true).await;
    for step in 0..16usize {
        sim.advance(Duration::from_secs(30));
        activity(&sim, step);
        exp.poller.poll(PollList::Pending).await.unwrap();
        // Created and finished between two pending polls: only a completed read that
        // does not stop at the first (oldest) page can count it.
        let at = sim.now() + secs(1);
        sim.add_task(
            NewTask::account_aggregation(SOURCES[step % 3])
                .created(at)
                .launched(at + secs(2))
                .completes(at + secs(16), status(step)),
        );
        exp.poller.poll(PollList::Completed).await.unwrap();
    }
    settles_exactly_without_errors(&sim, &mut exp, primed_at).await;
    assert_eq!(
        total(&exp, "sailpoint_exporter_unsorted_reads_total", &[]),
        25.0,
        "priming and all 24 completed reads met an unsorted first page"
    );
}

/// The pending set read from the task-status list (`pending_source:
/// completion_status_isnull`) of a server capping its pages at 3: the pending listing,
/// like the completed read, does not end at its first short page. Before: every pending
/// snapshot held the first 3 of 12 long-running tasks (the gauge said 3); the others,
/// created long before any completed bound, were not counted when they finished (38
/// counted of 43).
#[tokio::test]
async fn a_capped_list_read_as_the_pending_source_counts_exactly() {
    let sim = start_sim(Scenario::Empty, 43).await;
    populate(&sim, 12);
    with_habits(
        &sim,
        Habits {
            list_page_cap: Some(3),
            ..Habits::default()
        },
    );
    let (mut exp, primed_at) = primed(&sim, |t| {
        t.pending_source = sailpoint_task_exporter::config::PendingSource::CompletionStatusIsnull
    })
    .await;
    assert_eq!(total(&exp, "sailpoint_tasks_pending", &[]), 12.0);
    run(&sim, &mut exp, 0..16).await;
    settles_exactly_without_errors(&sim, &mut exp, primed_at).await;
    assert_eq!(counted(&exp), 43.0);
}
