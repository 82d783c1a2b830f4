//! Deterministic generation of a tenant: sources with failure profiles, their
//! aggregation schedules, a history of completed tasks and the pending set at start.
//!
//! Every random choice comes from an [`StdRng`] seeded from the configured seed and a
//! fixed "stream" number plus counters (schedule, run number), never from shared
//! mutable state. So a scheduled run looks the same however often the tenant is
//! asked in between, and the same seed always gives the same tenant.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{Scenario, SimConfig};
use super::task::{AggregationResults, Outcome, Plan, SimSource, SimTask, TaskKind};

/// Independent random streams, one per purpose.
pub(crate) mod stream {
    pub const SOURCES: u64 = 1;
    pub const HISTORY: u64 = 2;
    pub const PENDING: u64 = 3;
    pub const RUNS: u64 = 4;
    pub const SCRIPTED: u64 = 5;
    pub const SHIFT: u64 = 6;
    pub const FAULTS: u64 = 7;
    pub const TENANT: u64 = 8;
}

/// A random generator for one purpose and position, derived from the seed.
pub(crate) fn rng(seed: u64, stream: u64, a: u64, b: u64) -> StdRng {
    let mut x = splitmix(seed ^ splitmix(stream));
    x = splitmix(x ^ a);
    x = splitmix(x ^ b.rotate_left(32));
    StdRng::seed_from_u64(x)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a source's tasks tend to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Healthy,
    /// Aggregations take 20-45 minutes.
    Slow,
    /// More warnings and errors, and one run in a hundred never finishes.
    Flaky,
    /// Every aggregation ends in ERROR.
    Failing,
}

/// A source and its profile.
#[derive(Debug, Clone)]
pub(crate) struct SourceSpec {
    pub source: SimSource,
    pub profile: Profile,
    /// What the source's live account aggregations report (`aggregation-anomalies`).
    pub results: AggregationResults,
    /// From when on (`created`) `results` applies; earlier runs report normally.
    pub results_from: Option<DateTime<Utc>>,
}

/// A recurring task: an aggregation of one source or the tenant's identity refresh.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub index: u64,
    pub kind: TaskKind,
    pub source: Option<u32>,
    pub next: DateTime<Utc>,
    pub interval: Duration,
    pub run: u64,
}

/// Converts nominal (speed 1) seconds into simulated durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    speed: f64,
}

impl Pace {
    pub(crate) fn new(speed: f64) -> Pace {
        Pace { speed }
    }

    pub(crate) fn secs(self, nominal: f64) -> Duration {
        let ms = (nominal * 1000.0 / self.speed).clamp(1.0, 1e15);
        Duration::milliseconds(ms as i64)
    }
}

/// The scenario's numbers.
struct Shape {
    sources: usize,
    history: usize,
    pending: usize,
    window_hours: f64,
    failing: Option<usize>,
    stuck: bool,
    schedules: bool,
    anomalies: bool,
}

fn shape(cfg: &SimConfig) -> Shape {
    let steady = Shape {
        sources: 6,
        history: 600,
        pending: 3,
        window_hours: 72.0,
        failing: None,
        stuck: false,
        schedules: true,
        anomalies: false,
    };
    let base = match cfg.scenario {
        Scenario::Steady => steady,
        Scenario::StuckAggregation => Shape {
            stuck: true,
            ..steady
        },
        Scenario::FailingSource => Shape {
            failing: Some(FAILING_SOURCE),
            ..steady
        },
        Scenario::AggregationAnomalies => Shape {
            anomalies: true,
            ..steady
        },
        Scenario::Incident => Shape {
            failing: Some(FAILING_SOURCE),
            stuck: true,
            ..steady
        },
        Scenario::LargeHistory => Shape {
            sources: 12,
            history: 100_000,
            pending: 1_000,
            window_hours: 60.0 * 24.0,
            ..steady
        },
        Scenario::Empty => Shape {
            sources: 0,
            history: 0,
            pending: 0,
            schedules: false,
            ..steady
        },
        Scenario::Quiet => Shape {
            sources: 1,
            history: 0,
            pending: 0,
            schedules: false,
            ..steady
        },
    };
    Shape {
        sources: cfg.sources.unwrap_or(base.sources),
        history: cfg.history.unwrap_or(base.history),
        pending: cfg.pending.unwrap_or(base.pending),
        ..base
    }
}

/// Index of the source whose aggregations all fail in `failing-source` ("Salesforce").
pub(crate) const FAILING_SOURCE: usize = 3;

/// Nominal seconds after the start from which the anomalies of `aggregation-anomalies`
/// (or `SimConfig::anomalies`) begin.
pub(crate) const ANOMALY_ONSET_SECS: f64 = 7200.0;

/// Index of the source whose live account aggregations find no account in
/// `aggregation-anomalies` ("GitHub").
pub(crate) const EMPTY_SOURCE: usize = 5;

/// Index of the source whose live account aggregations delete two accounts in five in
/// `aggregation-anomalies` ("Active Directory").
pub(crate) const MASS_DELETION_SOURCE: usize = 0;

const SOURCE_NAMES: [&str; 16] = [
    "Active Directory",
    "Workday",
    "ServiceNow",
    "Salesforce",
    "Azure AD",
    "GitHub",
    "SAP ERP",
    "Okta",
    "Google Workspace",
    "AWS IAM",
    "Oracle EBS",
    "Slack",
    "Jira",
    "Zoom",
    "Box",
    "Epic EHR",
];

/// Everything the tenant starts with.
pub(crate) struct Blueprint {
    pub sources: Vec<SourceSpec>,
    pub schedules: Vec<Schedule>,
    /// History and pending tasks, not yet ordered.
    pub tasks: Vec<SimTask>,
}

/// Builds the tenant of `cfg` as it is at `start`.
pub(crate) fn build(cfg: &SimConfig, start: DateTime<Utc>) -> Blueprint {
    let pace = Pace::new(cfg.effective_speed());
    let shape = shape(cfg);
    let mut sources = sources(cfg.seed, shape.sources, shape.failing);
    if shape.anomalies || cfg.anomalies {
        // "Suddenly": two (nominal) hours after the start, so live aggregations with
        // normal results come first.
        let onset = start + pace.secs(ANOMALY_ONSET_SECS);
        for (index, results) in [
            (EMPTY_SOURCE, AggregationResults::Empty),
            (MASS_DELETION_SOURCE, AggregationResults::MassDeletion),
        ] {
            if let Some(s) = sources.get_mut(index) {
                s.results = results;
                s.results_from = Some(onset);
            }
        }
    }
    let schedules = if shape.schedules {
        schedules(cfg.seed, &sources, start, pace)
    } else {
        Vec::new()
    };
    let mut tasks = history(cfg.seed, &sources, &shape, start, pace);
    tasks.extend(pending(cfg.seed, &sources, shape.pending, start, pace));
    if shape.stuck && !sources.is_empty() {
        tasks.push(stuck_aggregation(cfg.seed, start, pace));
    }
    if cfg.scenario == Scenario::Quiet {
        tasks.extend(quiet_edge(cfg.seed, start, pace));
    }
    Blueprint {
        sources,
        schedules,
        tasks,
    }
}

fn sources(seed: u64, count: usize, failing: Option<usize>) -> Vec<SourceSpec> {
    (0..count)
        .map(|i| {
            let mut r = rng(seed, stream::SOURCES, i as u64, 0);
            let name = SOURCE_NAMES
                .get(i)
                .map_or_else(|| format!("Source {}", i + 1), |n| (*n).to_string());
            let profile = match i % 6 {
                _ if failing == Some(i) => Profile::Failing,
                1 => Profile::Slow,
                2 => Profile::Flaky,
                _ => Profile::Healthy,
            };
            SourceSpec {
                source: SimSource {
                    id: format!("{:032x}", r.r#gen::<u128>()),
                    name,
                },
                profile,
                results: AggregationResults::Normal,
                results_from: None,
            }
        })
        .collect()
}

fn schedules(seed: u64, sources: &[SourceSpec], start: DateTime<Utc>, pace: Pace) -> Vec<Schedule> {
    let mut plans: Vec<(TaskKind, Option<u32>, f64)> = Vec::new();
    for i in 0..sources.len() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        plans.push((TaskKind::AccountAggregation, Some(i), 3600.0));
        plans.push((TaskKind::GroupAggregation, Some(i), 6.0 * 3600.0));
    }
    plans.push((TaskKind::IdentityRefresh, None, 2.0 * 3600.0));
    plans
        .into_iter()
        .enumerate()
        .map(|(index, (kind, source, every))| {
            let index = index as u64;
            let mut r = rng(seed, stream::SOURCES, 1000 + index, 1);
            Schedule {
                index,
                kind,
                source,
                next: start + pace.secs(r.gen_range(1.0..every)),
                interval: pace.secs(every),
                run: 0,
            }
        })
        .collect()
}

/// Nominal duration in seconds of one run.
fn duration(kind: &TaskKind, profile: Option<Profile>, r: &mut StdRng) -> f64 {
    match (kind, profile) {
        (TaskKind::AccountAggregation | TaskKind::GroupAggregation, Some(Profile::Slow)) => {
            r.gen_range(1200.0..2700.0)
        }
        (TaskKind::AccountAggregation, _) => r.gen_range(30.0..300.0),
        (TaskKind::GroupAggregation, _) => r.gen_range(10.0..120.0),
        (TaskKind::IdentityRefresh, _) => r.gen_range(60.0..600.0),
        _ => r.gen_range(5.0..60.0),
    }
}

fn outcome(kind: &TaskKind, profile: Option<Profile>, r: &mut StdRng) -> Outcome {
    let roll: f64 = r.r#gen();
    let table: &[(f64, Outcome)] = match (kind, profile) {
        (TaskKind::IdentityRefresh, _) | (_, None) => &[(0.03, Outcome::Warning)],
        (_, Some(Profile::Failing)) => &[(1.0, Outcome::Error)],
        (_, Some(Profile::Flaky)) => &[
            (0.15, Outcome::Warning),
            (0.23, Outcome::TempError),
            (0.28, Outcome::Error),
            (0.30, Outcome::Terminated),
        ],
        _ => &[
            (0.04, Outcome::Warning),
            (0.05, Outcome::TempError),
            (0.06, Outcome::Error),
        ],
    };
    table
        .iter()
        .find(|(limit, _)| roll < *limit)
        .map_or(Outcome::Success, |(_, o)| *o)
}

fn size(kind: &TaskKind, r: &mut StdRng) -> u32 {
    match kind {
        TaskKind::GroupAggregation => r.gen_range(20..2_000),
        TaskKind::IdentityRefresh => r.gen_range(100..20_000),
        _ => r.gen_range(500..60_000),
    }
}

fn pick_kind(has_sources: bool, r: &mut StdRng) -> TaskKind {
    if !has_sources {
        return TaskKind::IdentityRefresh;
    }
    match r.gen_range(0..100) {
        0..55 => TaskKind::AccountAggregation,
        55..80 => TaskKind::GroupAggregation,
        80..95 => TaskKind::IdentityRefresh,
        _ => TaskKind::EntitlementReset,
    }
}

/// A task of `kind` created at `created`, with its launch, size and suffix drawn from
/// `r`; the plan is left to the caller.
fn fresh(
    kind: TaskKind,
    source: Option<u32>,
    created: DateTime<Utc>,
    pace: Pace,
    r: &mut StdRng,
) -> SimTask {
    let source = if kind == TaskKind::IdentityRefresh {
        None
    } else {
        source
    };
    let suffix = (kind == TaskKind::EntitlementReset).then(|| r.r#gen::<u128>());
    SimTask {
        id: r.r#gen(),
        seq: 0,
        size: size(&kind, r),
        suffix,
        kind,
        source,
        created,
        launch_at: Some(created + pace.secs(r.gen_range(1.0..30.0))),
        plan: Plan::Never,
        done: None,
        modified: None,
        results: AggregationResults::Normal,
    }
}

fn profile_of(sources: &[SourceSpec], source: Option<u32>) -> Option<Profile> {
    source
        .and_then(|i| sources.get(i as usize))
        .map(|s| s.profile)
}

fn random_source(sources: &[SourceSpec], r: &mut StdRng) -> Option<u32> {
    (!sources.is_empty()).then(|| r.gen_range(0..sources.len()) as u32)
}

fn history(
    seed: u64,
    sources: &[SourceSpec],
    shape: &Shape,
    start: DateTime<Utc>,
    pace: Pace,
) -> Vec<SimTask> {
    let n = shape.history;
    if n == 0 {
        return Vec::new();
    }
    let mut r = rng(seed, stream::HISTORY, 0, 0);
    let end = start - pace.secs(2700.0 + 60.0);
    let begin = end - pace.secs(shape.window_hours * 3600.0);
    let slot_ms = ((end - begin).num_milliseconds() / n as i64).max(1);
    (0..n)
        .map(|i| {
            let created =
                begin + Duration::milliseconds(slot_ms * i as i64 + r.gen_range(0..slot_ms));
            let kind = pick_kind(!sources.is_empty(), &mut r);
            let mut task = fresh(kind, random_source(sources, &mut r), created, pace, &mut r);
            let profile = profile_of(sources, task.source);
            let launched = task.launch_at.unwrap_or(created);
            let at = launched + pace.secs(duration(&task.kind, profile, &mut r));
            let ending = outcome(&task.kind, profile, &mut r);
            task.done = Some(super::task::Done {
                at,
                status: ending.status(),
                messages: super::task::Messages::Of(ending),
            });
            task
        })
        .collect()
}

fn pending(
    seed: u64,
    sources: &[SourceSpec],
    n: usize,
    start: DateTime<Utc>,
    pace: Pace,
) -> Vec<SimTask> {
    let mut r = rng(seed, stream::PENDING, 0, 0);
    (0..n)
        .map(|_| {
            let created = start - pace.secs(r.gen_range(1.0..7200.0));
            let kind = match r.gen_range(0..10) {
                _ if sources.is_empty() => TaskKind::IdentityRefresh,
                0..6 => TaskKind::AccountAggregation,
                6..9 => TaskKind::GroupAggregation,
                _ => TaskKind::IdentityRefresh,
            };
            let mut task = fresh(kind, random_source(sources, &mut r), created, pace, &mut r);
            let profile = profile_of(sources, task.source);
            let earliest = task.launch_at.unwrap_or(created).max(start);
            task.plan = if r.gen_bool(0.05) {
                Plan::Never
            } else {
                let at = earliest + pace.secs(r.gen_range(60.0..3.0 * 3600.0));
                Plan::outcome(at, outcome(&task.kind, profile, &mut r))
            };
            task
        })
        .collect()
}

/// The `stuck-aggregation` task: "Active Directory" account aggregation running for
/// three hours that never finishes.
fn stuck_aggregation(seed: u64, start: DateTime<Utc>, pace: Pace) -> SimTask {
    let mut r = rng(seed, stream::PENDING, 1, 1);
    // A fixed real age, whatever the speed: the point of the scenario is a task that has
    // been pending for hours, past the shipped alert's 3 h threshold, from the first minute.
    let created = start - Duration::seconds(3 * 3600 + 60);
    let mut task = fresh(TaskKind::AccountAggregation, Some(0), created, pace, &mut r);
    task.launch_at = Some(created + pace.secs(5.0));
    task.size = 50_000;
    task
}

/// The only history of the `quiet` scenario: two aggregations at the 24 h lookback edge,
/// one just inside (created 23 h 59 min 30 s ago), one just outside (24 h 20 s ago), each
/// finished within a minute.
fn quiet_edge(seed: u64, start: DateTime<Utc>, pace: Pace) -> Vec<SimTask> {
    [(24 * 3600 - 30, 0u64), (24 * 3600 + 20, 1)]
        .into_iter()
        .map(|(age, n)| {
            let mut r = rng(seed, stream::PENDING, 2, n);
            let created = start - Duration::seconds(age);
            let mut task = fresh(TaskKind::AccountAggregation, Some(0), created, pace, &mut r);
            task.launch_at = Some(created + Duration::seconds(2));
            task.plan = Plan::outcome(created + Duration::seconds(40), Outcome::Success);
            task
        })
        .collect()
}

/// Run number `schedule.run` of `schedule`, created at `schedule.next`. `blocked` means
/// an earlier run of the same aggregation is still running, so this one fails at once.
pub(crate) fn scheduled_run(
    seed: u64,
    sources: &[SourceSpec],
    schedule: &Schedule,
    blocked: bool,
    pace: Pace,
) -> SimTask {
    let mut r = rng(seed, stream::RUNS, schedule.index, schedule.run);
    let created = schedule.next;
    let mut task = fresh(
        schedule.kind.clone(),
        schedule.source,
        created,
        pace,
        &mut r,
    );
    let profile = profile_of(sources, task.source);
    if task.kind == TaskKind::AccountAggregation {
        task.results = task
            .source
            .and_then(|i| sources.get(i as usize))
            .filter(|s| s.results_from.is_some_and(|from| created >= from))
            .map_or(AggregationResults::Normal, |s| s.results);
    }
    let launched = task.launch_at.unwrap_or(created);
    task.plan = if blocked {
        Plan::outcome(launched + pace.secs(2.0), Outcome::Blocked)
    } else if profile == Some(Profile::Flaky) && r.gen_bool(0.01) {
        Plan::Never
    } else {
        let at = launched + pace.secs(duration(&task.kind, profile, &mut r));
        Plan::outcome(at, outcome(&task.kind, profile, &mut r))
    };
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tenant_and_exact_counts() {
        let start = DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cfg = SimConfig::new(42).with_history(1000).with_pending(20);
        let a = build(&cfg, start);
        let b = build(&cfg, start);
        let ids = |bp: &Blueprint| bp.tasks.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.tasks.iter().filter(|t| t.done.is_some()).count(), 1000);
        assert_eq!(a.tasks.iter().filter(|t| t.done.is_none()).count(), 20);
        assert!(a.tasks.iter().all(|t| t.created < start));
        assert!(
            a.tasks
                .iter()
                .filter_map(|t| t.done.as_ref())
                .all(|d| d.at < start)
        );
        let other = build(&SimConfig::new(43).with_history(1000), start);
        assert_ne!(ids(&a)[..10], ids(&other)[..10]);
    }
}
