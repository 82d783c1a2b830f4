//! The `simulate` subcommand: flags that build a [`SimConfig`], and [`run`], which
//! serves the simulated tenant until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;

use super::Simulator;
use super::config::{
    ClockMode, DEFAULT_TOKEN_TTL, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Faults, Habits, RateLimit,
    Scenario, SimConfig,
};

/// Flags of `sailpoint-task-exporter simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (loopback by default; the fake has no real security).
    #[arg(long, default_value = "127.0.0.1:11012")]
    pub listen: SocketAddr,
    /// Client id accepted by /oauth/token.
    #[arg(long, default_value = DEMO_CLIENT_ID)]
    pub client_id: String,
    /// Client secret accepted by /oauth/token. Prefer the environment variable; the
    /// default is the documented demo secret.
    #[arg(
        long,
        env = "SAILPOINT_SIM_CLIENT_SECRET",
        hide_env_values = true,
        hide_default_value = true,
        default_value = DEMO_CLIENT_SECRET,
        value_parser = secret
    )]
    pub client_secret: SecretString,
    /// Seed of every random choice: same seed, same tenant.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time-lapse factor: schedules and task durations are divided by it.
    /// (default 1 for `simulate`; `demo` defaults to 60, an hour per minute).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Tenant to simulate (default: steady for `simulate`; incident for `demo`, so its
    /// status page shows a stuck aggregation and a failing source at once).
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// Completed tasks in the history at start (default: the scenario's).
    #[arg(long)]
    pub history: Option<usize>,
    /// Pending tasks at start (default: the scenario's).
    #[arg(long)]
    pub pending: Option<usize>,
    /// Number of sources (default: the scenario's).
    #[arg(long)]
    pub sources: Option<usize>,
    /// Lifetime of issued tokens.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "749s")]
    pub token_ttl: Duration,
    /// Every Nth API request starts a burst of 429s.
    #[arg(long)]
    pub fault_429_every: Option<u64>,
    /// Probability (0-1) that an API request starts a burst of 429s.
    #[arg(long, default_value_t = 0.0)]
    pub fault_429_rate: f64,
    /// Length of a 429 burst, in requests.
    #[arg(long, default_value_t = 1)]
    pub fault_429_burst: u32,
    /// Retry-After sent with injected 429s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub fault_retry_after: Duration,
    /// Probability (0-1) of a 500 answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx_rate: f64,
    /// Latency added to every API answer, e.g. 200ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub fault_latency: Duration,
    /// Shift offsets between page requests (tasks complete and appear while paging).
    #[arg(long)]
    pub fault_page_shift: bool,
    /// Probability (0-1) of a syntactically broken JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub fault_malformed_rate: f64,
    /// Probability (0-1) of a JSON body cut in half.
    #[arg(long, default_value_t = 0.0)]
    pub fault_truncated_rate: f64,
    /// Probability (0-1) that the connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_reset_rate: f64,
    /// Enforce SailPoint's own limit of 100 requests per 10 s per client.
    #[arg(long)]
    pub rate_limit: bool,
    /// Some records carry off-spec non-essential fields (e.g. percentComplete 12.5).
    #[arg(long)]
    pub habit_off_spec_fields: bool,
    /// Finished tasks linger in pending-tasks this long (e.g. 40s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub habit_pending_view_lag: Duration,
    /// Lingering tasks are shown with their completion status set.
    #[arg(long)]
    pub habit_pending_view_shows_status: bool,
    /// A share of pending-tasks answers come from a replica this far behind (e.g. 150s):
    /// finished tasks listed as pending again, the newest missing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub habit_pending_replica_lag: Duration,
    /// The share (0-1) of pending-tasks answers the lagging replica gives (e.g. 0.3).
    #[arg(long, default_value_t = 0.0)]
    pub habit_pending_replica_share: f64,
    /// Finished tasks reach GET /task-status only this long after they end.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub habit_completed_list_lag: Duration,
    /// Whole-second `created`, equal values reordered in every list request.
    #[arg(long)]
    pub habit_reorder_ties: bool,
    /// Tenant clock offset in seconds (negative: behind).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub habit_clock_offset: i64,
    /// Records whose id ends with this hex suffix are unreadable (finished: `completed`
    /// "not-a-date"; pending: `created` "bogus"), e.g. `ff` for one task in 256.
    #[arg(long)]
    pub habit_unreadable_ids_ending: Option<String>,
    /// GET /task-status ignores `sorters` and answers oldest first.
    #[arg(long)]
    pub habit_ignore_sorters: bool,
    /// GET /task-status sends at most N records per page, whatever `limit` asks.
    #[arg(long)]
    pub habit_list_page_cap: Option<usize>,
    /// The pending-tasks endpoint sends at most N records per page, whatever `limit` asks.
    #[arg(long)]
    pub habit_pending_page_cap: Option<usize>,
    /// Serve N independent tenants under path prefixes: `http://ADDR/t1` ...
    /// `http://ADDR/tN` are their base URLs (token endpoint `{base}/oauth/token`, same
    /// credentials); tenant k is seeded with `seed + k - 1`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=super::MAX_TENANTS as i64))]
    pub tenants: Option<u32>,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

impl SimulateArgs {
    fn habits(&self) -> Habits {
        Habits {
            off_spec_fields: self.habit_off_spec_fields,
            pending_view_lag: self.habit_pending_view_lag,
            pending_view_shows_status: self.habit_pending_view_shows_status,
            pending_replica_lag: self.habit_pending_replica_lag,
            pending_replica_share: self.habit_pending_replica_share,
            completed_list_lag: self.habit_completed_list_lag,
            reorder_ties: self.habit_reorder_ties,
            clock_offset_secs: self.habit_clock_offset,
            unreadable_ids_ending: self
                .habit_unreadable_ids_ending
                .clone()
                .filter(|s| !s.is_empty()),
            ignore_sorters: self.habit_ignore_sorters,
            list_page_cap: self.habit_list_page_cap.filter(|&cap| cap > 0),
            pending_page_cap: self.habit_pending_page_cap.filter(|&cap| cap > 0),
            ..Habits::default()
        }
    }

    /// The tenant these flags describe (real clock).
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            scenario: self.scenario.unwrap_or_default(),
            clock: ClockMode::Real,
            speed: self.speed.unwrap_or(1.0),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_ttl: self.token_ttl,
            faults: self.faults(),
            history: self.history,
            pending: self.pending,
            sources: self.sources,
            anomalies: false,
        }
    }

    fn faults(&self) -> Faults {
        Faults {
            rate_limit_every: self.fault_429_every,
            rate_limit_probability: self.fault_429_rate,
            rate_limit_burst: self.fault_429_burst,
            retry_after: self.fault_retry_after,
            server_error_rate: self.fault_5xx_rate,
            latency: self.fault_latency,
            page_shift: self.fault_page_shift,
            malformed_rate: self.fault_malformed_rate,
            truncated_rate: self.fault_truncated_rate,
            reset_rate: self.fault_reset_rate,
            rate_limit: self.rate_limit.then(RateLimit::default),
            habits: self.habits(),
        }
    }
}

impl Default for SimulateArgs {
    fn default() -> Self {
        SimulateArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 11012)),
            client_id: DEMO_CLIENT_ID.to_string(),
            client_secret: SecretString::from(DEMO_CLIENT_SECRET),
            seed: 1,
            speed: None,
            scenario: None,
            history: None,
            pending: None,
            sources: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            fault_429_every: None,
            fault_429_rate: 0.0,
            fault_429_burst: 1,
            fault_retry_after: Duration::from_secs(1),
            fault_5xx_rate: 0.0,
            fault_latency: Duration::ZERO,
            fault_page_shift: false,
            fault_malformed_rate: 0.0,
            fault_truncated_rate: 0.0,
            fault_reset_rate: 0.0,
            rate_limit: false,
            habit_off_spec_fields: false,
            habit_pending_view_lag: Duration::ZERO,
            habit_pending_view_shows_status: false,
            habit_pending_replica_lag: Duration::ZERO,
            habit_pending_replica_share: 0.0,
            habit_completed_list_lag: Duration::ZERO,
            habit_reorder_ties: false,
            habit_clock_offset: 0,
            habit_unreadable_ids_ending: None,
            habit_ignore_sorters: false,
            habit_list_page_cap: None,
            habit_pending_page_cap: None,
            tenants: None,
        }
    }
}

/// Serves the simulated tenant described by `args` (or `--tenants` of them) until
/// `shutdown` resolves.
pub async fn run(args: SimulateArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if let Some(count) = args.tenants {
        return run_many(args, count as usize, shutdown).await;
    }
    let config = args.config();
    let sim = Simulator::start(config, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        url = %sim.base_url(),
        client_id = %args.client_id,
        scenario = args.scenario.unwrap_or_default().name(),
        seed = args.seed,
        speed = args.speed.unwrap_or(1.0),
        "simulated SailPoint tenant listening (token URL: {}/oauth/token, API: {}/v2024)",
        sim.base_url(),
        sim.base_url()
    );
    shutdown.await;
    tracing::info!("simulated tenant shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn run_many(
    args: SimulateArgs,
    count: usize,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let fleet = Simulator::start_many(args.config(), count, args.listen)
        .await
        .with_context(|| format!("cannot serve {count} tenants on {}", args.listen))?;
    tracing::info!(
        tenants = count,
        first = %fleet.base_url(1),
        last = %fleet.base_url(count),
        client_id = %args.client_id,
        scenario = args.scenario.unwrap_or_default().name(),
        seed = args.seed,
        speed = args.speed.unwrap_or(1.0),
        "simulated SailPoint tenants listening (base URLs {}/t1 ... {}/t{count}, token URL {{base}}/oauth/token)",
        format_args!("http://{}", fleet.addr()),
        format_args!("http://{}", fleet.addr()),
    );
    shutdown.await;
    tracing::info!("simulated tenants shutting down");
    fleet.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags_build_the_config() {
        let cli = Cli::try_parse_from([
            "simulate",
            "--scenario",
            "large-history",
            "--history",
            "5000",
            "--fault-429-every",
            "5",
            "--fault-latency",
            "200ms",
            "--token-ttl",
            "30s",
            "--fault-page-shift",
            "--rate-limit",
        ])
        .unwrap();
        let cfg = cli.args.config();
        assert_eq!(cfg.scenario, Scenario::LargeHistory);
        assert_eq!(cfg.history, Some(5000));
        assert_eq!(cfg.pending, None);
        assert_eq!(cfg.token_ttl, Duration::from_secs(30));
        assert_eq!(cfg.faults.rate_limit_every, Some(5));
        assert_eq!(cfg.faults.latency, Duration::from_millis(200));
        assert!(cfg.faults.page_shift);
        assert_eq!(cfg.faults.rate_limit, Some(RateLimit::default()));
        assert_eq!(cfg.client_secret.expose_secret(), DEMO_CLIENT_SECRET);
        assert_eq!(cli.args.listen, SocketAddr::from(([127, 0, 0, 1], 11012)));
        assert!(!format!("{:?}", cli.args).contains(DEMO_CLIENT_SECRET));
    }
}
