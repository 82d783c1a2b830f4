//! The command line: global flags, subcommands and the dispatch to each part.
//!
//! `main.rs` only parses and calls [`run`]; every subcommand lives in the module that owns
//! its concern (the daemon in `collector`/`http`, `simulate` in the `sailpoint_simulator`
//! crate, `tasks` in [`tasks`]). Exit codes: 0 success, 1 runtime/API failure, 2 usage or
//! configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Overrides, Settings};

/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for an API, network or runtime failure.
pub const EXIT_FAILURE: u8 = 1;

/// Prometheus exporter for SailPoint Identity Security Cloud task status.
///
/// Flags belong to the subcommand that uses them and follow it
/// (`sailpoint-task-exporter tasks pending --config.file F`); without a subcommand the
/// flags are `serve`'s, so `sailpoint-task-exporter --config.file F` runs the daemon.
#[derive(Debug, Parser)]
#[command(
    name = "sailpoint-task-exporter",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Logging, accepted by every subcommand.
    #[command(flatten)]
    pub log: LogOpts,
    /// `serve`'s flags, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeOpts,
    /// What to run; none means `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Logging flags, the only ones every subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct LogOpts {
    /// Log level: error, warn, info, debug, trace (or a tracing filter directive).
    #[arg(long = "log.level", global = true, default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long = "log.format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The configuration file, for `serve` and `check` (`tasks` has its own copy, global to its
/// subcommands).
#[derive(Debug, Clone, Args)]
pub struct ConfigOpts {
    /// Configuration file (YAML or TOML by extension).
    #[arg(
        long = "config.file",
        default_value = "sailpoint-task-exporter.yaml",
        env = "SAILPOINT_EXPORTER_CONFIG"
    )]
    pub config_file: PathBuf,
}

/// How `/metrics` is served: flags of `serve` and `demo`.
#[derive(Debug, Clone, Default, Args)]
pub struct WebOpts {
    /// Address to listen on for /metrics (overrides web.listen_address).
    #[arg(long = "web.listen-address")]
    pub listen_address: Option<String>,
    /// Path under which metrics are served (overrides web.telemetry_path).
    #[arg(long = "web.telemetry-path")]
    pub telemetry_path: Option<String>,
    /// exporter-toolkit style web configuration file (TLS, basic auth).
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<String>,
    /// Directory where each tenant's state (exactly-once tracker and metric values) is
    /// kept across restarts (overrides storage.path).
    #[arg(long = "storage.path")]
    pub storage_path: Option<PathBuf>,
}

/// The daemon's flags: `serve`, and `check`, which validates what `serve` would run.
#[derive(Debug, Clone, Args)]
pub struct ServeOpts {
    /// The configuration file.
    #[command(flatten)]
    pub config: ConfigOpts,
    /// How `/metrics` is served and where state is kept.
    #[command(flatten)]
    pub web: WebOpts,
    /// Enable `POST /-/reload` (reloads the configuration file, like SIGHUP). Protected by
    /// the web config's basic auth when that is configured.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Spread the tenants over this many replicas (overrides sharding.count); each
    /// replica polls only the tenants of its own shard.
    #[arg(long = "shard.count")]
    pub shard_count: Option<u32>,
    /// This replica's shard, 0 to count-1 (overrides sharding.index).
    #[arg(long = "shard.index", conflicts_with = "shard_index_from_hostname")]
    pub shard_index: Option<u32>,
    /// Take the shard index from the host name's ordinal (`HOSTNAME`, e.g. the
    /// StatefulSet pod `sailpoint-task-exporter-3` is shard 3).
    #[arg(long = "shard.index-from-hostname")]
    pub shard_index_from_hostname: bool,
}

impl WebOpts {
    /// The flag overrides of the configuration file that these flags make.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen_address: self.listen_address.clone(),
            telemetry_path: self.telemetry_path.clone(),
            web_config_file: self.web_config_file.clone(),
            storage_path: self.storage_path.clone(),
            ..Overrides::default()
        }
    }
}

impl ServeOpts {
    /// The flag overrides of the configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            shard_count: self.shard_count,
            shard_index: self.shard_index,
            shard_index_from_hostname: self.shard_index_from_hostname,
            ..self.web.overrides()
        }
    }

    /// Loads and validates the configuration file with the flag overrides.
    pub fn load_settings(&self) -> Result<Settings, crate::config::ConfigError> {
        Settings::load(&self.config.config_file, &self.overrides())
    }
}

/// `demo`'s flags: the simulated tenant's, and how the exporter serves.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The simulated tenant.
    #[command(flatten)]
    pub simulator: sailpoint_simulator::SimulateArgs,
    /// How `/metrics` is served and where state is kept.
    #[command(flatten)]
    pub web: WebOpts,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal or journald.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Subcommands; none means `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter daemon (the default).
    Serve(ServeOpts),
    /// Start a simulated tenant and the exporter against it, and print the URLs.
    Demo(DemoArgs),
    /// Run only the simulated SailPoint tenant.
    Simulate(sailpoint_simulator::SimulateArgs),
    /// Validate the configuration and check each tenant can be reached.
    Check(ServeOpts),
    /// Inspect and clear tasks with the five task-status operations.
    Tasks(tasks::TasksArgs),
}

pub mod check;
pub mod tasks;

/// Sets up logging on stderr.
pub fn init_logging(global: &LogOpts) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log);
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Tasks(args) => tasks::run(args).await,
        Command::Check(opts) => match opts.load_settings() {
            Ok(settings) => check::run(&settings).await,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Serve(opts) => serve(&opts).await,
        Command::Demo(args) => demo(args).await,
        Command::Simulate(args) => {
            match sailpoint_simulator::run(args, crate::daemon::termination_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("simulate: {e:#}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

/// `serve`: the daemon with the configuration file; SIGHUP reloads it.
async fn serve(global: &ServeOpts) -> ExitCode {
    let settings = match global.load_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let web = match crate::daemon::load_web_config(&settings) {
        Ok(web) => web,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing::info!(
        version = crate::daemon::VERSION,
        revision = crate::daemon::REVISION,
        config = %global.config.config_file.display(),
        tenants = settings.tenants.len(),
        "starting sailpoint-task-exporter"
    );
    let reload = crate::daemon::ReloadSource {
        path: global.config.config_file.clone(),
        overrides: global.overrides(),
        lifecycle_endpoint: global.enable_lifecycle,
    };
    finish(
        crate::daemon::run(
            settings,
            web,
            Some(reload),
            crate::daemon::termination_signal(),
        )
        .await,
    )
}

/// The configuration `demo` runs the daemon with (its tenant's base URL and credentials
/// are replaced by the simulated tenant's).
const DEMO_CONFIG: &str = include_str!("../../config/simulator.yaml");

/// `demo`: the simulated tenant and the daemon against it, in one process.
async fn demo(
    DemoArgs {
        simulator: mut args,
        web,
    }: DemoArgs,
) -> ExitCode {
    // A newcomer should see completions within seconds: an hour of tenant life per minute,
    // and a status page with something to act on: a stuck aggregation, a failing source.
    args.speed.get_or_insert(60.0);
    args.scenario
        .get_or_insert(sailpoint_simulator::Scenario::Incident);
    let sim = match sailpoint_simulator::Simulator::start(args.config(), args.listen).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!(
                "demo: cannot start the simulated tenant on {}: {e}",
                args.listen
            );
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let base_url = match url::Url::parse(&sim.base_url()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("demo: the simulated tenant's address is not a URL: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut overrides = web.overrides();
    overrides.listen_address = Some(
        web.listen_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1:11011".to_string()),
    );
    let mut settings = match Settings::from_text(DEMO_CONFIG, config::FileFormat::Yaml, &overrides)
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for tenant in &mut settings.tenants {
        tenant.base_url = base_url.clone();
        tenant.credentials = crate::config::Credentials::ClientCredentials {
            client_id: args.client_id.clone(),
            client_secret: args.client_secret.clone(),
        };
    }
    let web_config = match crate::daemon::load_web_config(&settings) {
        Ok(web) => web,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let web = settings.web.clone();
    // Bind before announcing: a busy port fails here, before any URL is printed, and an
    // address with port 0 is shown with the port it got.
    let listener = match crate::daemon::bind(&settings).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("demo: {e:#}");
            sim.shutdown().await;
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let shown = match listener.local_addr() {
        Ok(addr) if addr.ip().is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        Ok(addr) => addr.to_string(),
        Err(_) => web.listen_address.replace("0.0.0.0", "127.0.0.1"),
    };
    let scheme = if web_config.as_ref().is_some_and(|w| w.tls.is_some()) {
        "https"
    } else {
        "http"
    };
    println!(
        "sailpoint-task-exporter demo ({} scenario, seed {}, speed {}x)",
        args.scenario.unwrap_or_default().name(),
        args.seed,
        args.speed.unwrap_or(1.0)
    );
    println!(
        "  simulated tenant:  {}  (client id {})",
        sim.base_url(),
        args.client_id
    );
    println!(
        "  metrics:           {scheme}://{shown}{}",
        web.telemetry_path
    );
    println!("  status page:       {scheme}://{shown}/  (JSON: {scheme}://{shown}/api/v1/status)");
    println!(
        "  operator commands: sailpoint-task-exporter tasks pending --base-url {} --client-id {}",
        sim.base_url(),
        args.client_id
    );
    let secret = if secrecy::ExposeSecret::expose_secret(&args.client_secret)
        == sailpoint_simulator::DEMO_CLIENT_SECRET
    {
        sailpoint_simulator::DEMO_CLIENT_SECRET
    } else {
        "<the secret you gave the simulator>"
    };
    println!("                     (with SAILPOINT_CLIENT_SECRET={secret})");
    println!("Press Ctrl-C to stop.");
    let result = crate::daemon::run_on(
        listener,
        settings,
        web_config,
        None,
        crate::daemon::termination_signal(),
    )
    .await;
    sim.shutdown().await;
    finish(result)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A state directory owned by another process is a deployment error, like a
        // configuration that cannot run: exit 2, as for one.
        Err(e) if e.downcast_ref::<crate::storage::Locked>().is_some() => {
            tracing::error!(error = %format!("{e:#}"), "exporter not started");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "exporter failed");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
