//! What a simulated tenant is started with: seed, scenario, clock, credentials, faults.
//!
//! Everything here is plain data with defaults, so a test can write
//! `SimConfig::new(7).with_scenario(Scenario::Empty).with_manual_clock(start)` and the
//! `simulate` subcommand can build the same value from flags.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use secrecy::SecretString;

/// The client id the simulated tenant accepts unless told otherwise.
pub const DEMO_CLIENT_ID: &str = "sim-client";
/// The client secret the simulated tenant accepts unless told otherwise. It protects
/// nothing but a loopback fake, so it may be documented.
pub const DEMO_CLIENT_SECRET: &str = "sim-secret-not-for-production";
/// SailPoint's documented token lifetime (`expires_in: 749`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(749);

/// Which tenant to simulate. See `crates/simulator/README.md` for what each contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scenario {
    /// A realistic tenant: six sources on schedules, a few failures, three days of history.
    #[default]
    Steady,
    /// `steady` plus one account aggregation that has been pending for three hours (3 h
    /// 1 min of real time at start, whatever the speed) and
    /// never finishes; later aggregations of that source fail because it blocks them.
    StuckAggregation,
    /// `steady`, but every aggregation of the source "Salesforce" ends in ERROR.
    FailingSource,
    /// `steady`, but from the start on every account aggregation of "GitHub" finds no
    /// account (`total` 0, SUCCESS) and every one of "Active Directory" deletes two
    /// accounts in five: the silent failures that a status cannot show.
    AggregationAnomalies,
    /// `stuck-aggregation` and `failing-source` at once: what `demo` shows by default, so
    /// its status page has a task to clear and a failure to read.
    Incident,
    /// Twelve sources, 100 000 completed tasks over 60 days and 1 000 pending ones
    /// (override with `history`/`pending`): the benchmark tenant.
    LargeHistory,
    /// No sources, no tasks, no schedules: tests script everything themselves.
    Empty,
    /// A quiet tenant (a production habit): one source, no schedules, and nothing in the
    /// last 24 h but one aggregation created 23 h 59 min 30 s ago; another was created
    /// 24 h 20 s ago. Both finished long before the start (real ages, whatever the speed):
    /// an exporter with `lookback: 24h` must count neither.
    Quiet,
}

impl Scenario {
    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::StuckAggregation => "stuck-aggregation",
            Scenario::FailingSource => "failing-source",
            Scenario::AggregationAnomalies => "aggregation-anomalies",
            Scenario::Incident => "incident",
            Scenario::LargeHistory => "large-history",
            Scenario::Empty => "empty",
            Scenario::Quiet => "quiet",
        }
    }
}

/// Where the simulated tenant takes "now" from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The wall clock (plus whatever `SimHandle::advance` added).
    Real,
    /// Frozen at `start` until a test calls `SimHandle::advance`.
    Manual {
        /// The instant the clock shows until advanced.
        start: DateTime<Utc>,
    },
}

impl ClockMode {
    /// A manual clock frozen at the current wall-clock second, so timestamps look
    /// current to a client that compares them with its own clock.
    pub fn manual_now() -> ClockMode {
        ClockMode::Manual {
            start: Utc::now().trunc_subsecs(0),
        }
    }
}

/// The tenant's own rate limit (SailPoint: 100 requests per 10 s per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Length of the sliding window.
    pub per: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests: 100,
            per: Duration::from_secs(10),
        }
    }
}

/// Misbehaviour to inject into API answers (never into the ground truth, which only
/// changes the way a real tenant would: `page_shift` adds and completes real tasks).
/// Faults apply to the five task-status operations, not to `/oauth/token`.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Every Nth API request starts a burst of 429s.
    pub rate_limit_every: Option<u64>,
    /// Probability that an API request starts a burst of 429s.
    pub rate_limit_probability: f64,
    /// Number of consecutive 429 answers in one burst (at least 1).
    pub rate_limit_burst: u32,
    /// The `Retry-After` value sent with injected 429s.
    pub retry_after: Duration,
    /// Probability of a 500 with an ErrorResponseDto body.
    pub server_error_rate: f64,
    /// Added to every API answer.
    pub latency: Duration,
    /// Between two page requests of one listing (any request with `offset > 0`), the
    /// oldest pending task completes and a new completed task appears at the head.
    pub page_shift: bool,
    /// Probability that a 200 JSON body is syntactically broken.
    pub malformed_rate: f64,
    /// Probability that a 200 JSON body is cut in half.
    pub truncated_rate: f64,
    /// Probability that the connection is closed without an answer.
    pub reset_rate: f64,
    /// The tenant's own per-client rate limit; `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Production habits: answers a real tenant gives that a tidy one would not.
    pub habits: Habits,
}

/// Ways a production tenant is unkind without failing a request (all off by default).
/// The ground truth is unchanged; [`crate::SimHandle::tasks_as_served`] gives
/// it in the shape the API serves it (clock offset and second-precision applied).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Habits {
    /// Some task records carry off-spec non-essential fields: a fractional
    /// `percentComplete` (12.5), a numeric `launcher`, an `attributes` that is a list.
    pub off_spec_fields: bool,
    /// Finished tasks are still listed by pending-tasks for this long after they end.
    pub pending_view_lag: Duration,
    /// With `pending_view_lag`: the lingering tasks are shown with their completion status
    /// already set (otherwise they are shown as still pending).
    pub pending_view_shows_status: bool,
    /// A share of the pending-tasks answers comes from a replica this far behind: it
    /// lists the tasks that were pending this long ago (finished ones shown as pending
    /// again, the newest missing). Zero: no replica.
    pub pending_replica_lag: Duration,
    /// With `pending_replica_lag`: the share (0-1) of pending-tasks requests the replica
    /// answers, drawn per request from the seed.
    pub pending_replica_share: f64,
    /// Finished tasks appear in `GET /task-status` only this long after they end (the
    /// by-id lookup is current).
    pub completed_list_lag: Duration,
    /// `created` is served with whole seconds, and tasks with equal `created` come in a
    /// different order in every list request.
    pub reorder_ties: bool,
    /// The tenant's clock runs ahead (positive) or behind (negative) the simulator's by
    /// this many seconds: every timestamp served and the `Date` header are shifted.
    pub clock_offset_secs: i64,
    /// The pending list (pending-tasks, and the `completionStatus isnull` listing) answers
    /// 500 while this is set.
    pub pending_outage: bool,
    /// This task id is hidden from every list and its `GET` answers this HTTP status,
    /// forever (a task the tenant can no longer show).
    pub broken_lookup: Option<(String, u16)>,
    /// Records whose id ends with this (lower-case hex; a whole id picks one task) are
    /// unreadable in every answer — lists, `id in (...)` batches and `GET`: a finished
    /// task's `completed` reads `"not-a-date"`, a pending task's `created` reads
    /// `"bogus"`. Such a task can never be counted; the others must be, exactly.
    pub unreadable_ids_ending: Option<String>,
    /// `GET /task-status` ignores `sorters` and answers oldest first (a proxy or an API
    /// change that drops the parameter).
    pub ignore_sorters: bool,
    /// `GET /task-status` sends at most this many records per page, whatever `limit`
    /// asks (a proxy or gateway that caps pages below the API's 250): every page is
    /// short, and a short page is not the end.
    pub list_page_cap: Option<usize>,
    /// The pending-tasks endpoint sends at most this many records per page, whatever
    /// `limit` asks.
    pub pending_page_cap: Option<usize>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rate_limit_every: None,
            rate_limit_probability: 0.0,
            rate_limit_burst: 1,
            retry_after: Duration::from_secs(1),
            server_error_rate: 0.0,
            latency: Duration::ZERO,
            page_shift: false,
            malformed_rate: 0.0,
            truncated_rate: 0.0,
            reset_rate: 0.0,
            rate_limit: None,
            habits: Habits::default(),
        }
    }
}

impl Faults {
    /// No faults at all (the default).
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// Everything a simulated tenant is started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds every random choice; same seed + scenario + clock steps + requests = same data.
    pub seed: u64,
    /// Which tenant to build.
    pub scenario: Scenario,
    /// Wall clock or manual clock.
    pub clock: ClockMode,
    /// Divides schedule intervals, task durations and the history window (timestamps
    /// stay real times). 1.0 = real pace; 60.0 = an hour per minute.
    pub speed: f64,
    /// The only client id `/oauth/token` accepts.
    pub client_id: String,
    /// The only client secret `/oauth/token` accepts (redacted in `Debug`).
    pub client_secret: SecretString,
    /// `expires_in` of issued tokens; tokens expire against the simulated clock.
    pub token_ttl: Duration,
    /// Faults injected from the start (change them with `SimHandle::set_faults`).
    pub faults: Faults,
    /// Completed tasks in the history at start; `None` = the scenario's default.
    pub history: Option<usize>,
    /// Pending tasks at start; `None` = the scenario's default.
    pub pending: Option<usize>,
    /// Number of sources; `None` = the scenario's default.
    pub sources: Option<usize>,
    /// The anomalies of `aggregation-anomalies` on top of any scenario (GitHub's account
    /// aggregations find no account, Active Directory's delete two accounts in five, both
    /// from two nominal hours after the start).
    pub anomalies: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            scenario: Scenario::Steady,
            clock: ClockMode::Real,
            speed: 1.0,
            client_id: DEMO_CLIENT_ID.to_string(),
            client_secret: SecretString::from(DEMO_CLIENT_SECRET),
            token_ttl: DEFAULT_TOKEN_TTL,
            faults: Faults::default(),
            history: None,
            pending: None,
            sources: None,
            anomalies: false,
        }
    }
}

impl SimConfig {
    /// The default tenant with the given seed.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }

    /// Sets the scenario.
    pub fn with_scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// Freezes the clock at `start`; tests move it with `SimHandle::advance`.
    pub fn with_manual_clock(mut self, start: DateTime<Utc>) -> Self {
        self.clock = ClockMode::Manual { start };
        self
    }

    /// Sets the time-lapse factor.
    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// Sets the accepted client id and secret.
    pub fn with_credentials(mut self, client_id: &str, client_secret: &str) -> Self {
        self.client_id = client_id.to_string();
        self.client_secret = SecretString::from(client_secret);
        self
    }

    /// Sets the lifetime of issued tokens.
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Sets the initial faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the number of completed tasks at start.
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = Some(history);
        self
    }

    /// Sets the number of pending tasks at start.
    pub fn with_pending(mut self, pending: usize) -> Self {
        self.pending = Some(pending);
        self
    }

    /// Adds the aggregation anomalies (see [`SimConfig::anomalies`]).
    pub fn with_anomalies(mut self) -> Self {
        self.anomalies = true;
        self
    }

    /// Sets the number of sources.
    pub fn with_sources(mut self, sources: usize) -> Self {
        self.sources = Some(sources);
        self
    }

    /// A speed that can divide durations: positive and finite, else 1.
    pub(crate) fn effective_speed(&self) -> f64 {
        if self.speed.is_finite() && self.speed > 0.0 {
            self.speed
        } else {
            1.0
        }
    }
}
