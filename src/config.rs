//! Settings: one YAML or TOML file (chosen by extension), environment overrides and
//! command-line flags, validated once at start.
//!
//! Everything that can be wrong with a configuration is found here, before any task is
//! started, and reported as one [`ConfigError`] that names the key and the problem (the
//! binary exits with code 2). Secrets are resolved here too — from the file, a
//! `client_secret_file` or an environment variable — and held as [`SecretString`], whose
//! `Debug` output is redacted, so a logged `Settings` never shows one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Default listen address. The 9100–9999 range is fully allocated on the Prometheus
/// default-port list, so the exporter uses 11011.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:11011";

/// Longest duration any tenant setting may have. Far beyond any sensible value (the API
/// keeps 90 days of history), and small enough that adding it to a clock reading can
/// never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Prefix of environment overrides: `SAILPOINT_EXPORTER__WEB__LISTEN_ADDRESS=...`.
pub const ENV_PREFIX: &str = "SAILPOINT_EXPORTER";

/// A configuration problem, always naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or its extension names no known format.
    #[error("cannot read configuration file {path}: {reason}")]
    File {
        /// The file as given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The file is not valid YAML/TOML or does not have the expected shape.
    #[error("configuration: {0}")]
    Parse(String),
    /// A value breaks a rule.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// The key, e.g. `tenants[0].page_size`.
        key: String,
        /// What is wrong with it (never a secret's value).
        problem: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How `/metrics` is served.
    #[serde(default)]
    pub web: WebSettings,
    /// Label rules, cardinality limits and buckets.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The tenants to poll (at least one).
    #[serde(default)]
    pub tenants: Vec<TenantSettings>,
    /// Which share of the tenants this replica polls (default: all of them).
    #[serde(default)]
    pub sharding: ShardingSettings,
    /// Where each tenant's state is kept across restarts (off by default).
    #[serde(default)]
    pub storage: StorageSettings,
    /// The on-call status page at `/` and `/api/v1/status`.
    #[serde(default)]
    pub status: StatusSettings,
}

/// State across restarts: with a `path`, each tenant's exactly-once tracker and metric
/// values are written there after every applied poll and resumed at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Directory of the state files (one `<tenant>.json` each); None keeps nothing.
    pub path: Option<PathBuf>,
}

/// What the status page shows: its thresholds follow the shipped alert rules by default,
/// so the page and the alerts agree on what "stuck" and "overdue" mean.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSettings {
    /// A pending task older than this is listed as stuck, with the command that clears
    /// it. Default 3h, the threshold of `SailPointAggregationPendingTooLong`.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
    /// A source whose last successful aggregation is older than this is highlighted.
    /// Default 26h, the threshold of `SailPointSourceNoSuccessfulAggregation`.
    #[serde(with = "humantime_serde")]
    pub no_success_after: Duration,
    /// The newest failed or warning tasks kept per tenant, with their messages
    /// (1..=1000; default 50).
    pub failed_tasks: usize,
}

/// Most failed or warning tasks a tenant's status page may keep.
pub const MAX_STATUS_FAILED_TASKS: usize = 1000;

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            stuck_after: Duration::from_secs(3 * 3600),
            no_success_after: Duration::from_secs(26 * 3600),
            failed_tasks: 50,
        }
    }
}

/// Largest shard count: far beyond any sensible number of replicas.
pub const MAX_SHARDS: u32 = 1024;

/// Sharding: `count` replicas read the same configuration and each polls only the
/// tenants whose shard (see [`crate::shard`]) is its `index`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardingSettings {
    /// Number of replicas the tenants are spread over; 1 = no sharding.
    pub count: u32,
    /// This replica's shard, `0..count`; required when `count > 1` unless
    /// `index_from_hostname` is set.
    pub index: Option<u32>,
    /// Take the index from the host name's ordinal suffix (`HOSTNAME`, e.g. a StatefulSet
    /// pod `sailpoint-task-exporter-3` is shard 3).
    pub index_from_hostname: bool,
    /// The index in force, resolved by validation.
    #[serde(skip)]
    resolved: u32,
}

impl Default for ShardingSettings {
    fn default() -> Self {
        ShardingSettings {
            count: 1,
            index: None,
            index_from_hostname: false,
            resolved: 0,
        }
    }
}

impl ShardingSettings {
    /// This replica's shard (valid after validation).
    pub fn index(&self) -> u32 {
        self.resolved
    }

    /// Whether this replica polls the tenant called `name`.
    pub fn owns(&self, name: &str) -> bool {
        crate::shard::shard_of(name, self.count) == self.resolved
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        if !(1..=MAX_SHARDS).contains(&self.count) {
            return Err(ConfigError::invalid(
                "sharding.count",
                format!("must be between 1 and {MAX_SHARDS}"),
            ));
        }
        let index = match (self.index, self.index_from_hostname) {
            (Some(_), true) => {
                return Err(ConfigError::invalid(
                    "sharding.index",
                    "set index or index_from_hostname, not both",
                ));
            }
            (Some(i), false) => i,
            (None, true) => hostname_ordinal()?,
            (None, false) if self.count == 1 => 0,
            (None, false) => {
                return Err(ConfigError::invalid(
                    "sharding.index",
                    "is required when sharding.count is above 1 (or set index_from_hostname)",
                ));
            }
        };
        if index >= self.count {
            return Err(ConfigError::invalid(
                "sharding.index",
                format!(
                    "{index} is not a shard of {} (0 to {})",
                    self.count,
                    self.count - 1
                ),
            ));
        }
        self.resolved = index;
        Ok(())
    }
}

/// The ordinal of this host's name: `HOSTNAME` (set by Kubernetes to the pod name), else
/// the kernel's host name.
fn hostname_ordinal() -> Result<u32, ConfigError> {
    let name = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    crate::shard::ordinal(&name).ok_or_else(|| {
        ConfigError::invalid(
            "sharding.index_from_hostname",
            format!(
                "host name {:?} does not end in -N (a StatefulSet pod ordinal)",
                name.trim()
            ),
        )
    })
}

impl StatusSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, d) in [
            ("status.stuck_after", self.stuck_after),
            ("status.no_success_after", self.no_success_after),
        ] {
            if d.is_zero() || d > MAX_DURATION {
                return Err(ConfigError::invalid(
                    key,
                    "must be positive and at most 366 days",
                ));
            }
        }
        if !(1..=MAX_STATUS_FAILED_TASKS).contains(&self.failed_tasks) {
            return Err(ConfigError::invalid(
                "status.failed_tasks",
                format!("must be between 1 and {MAX_STATUS_FAILED_TASKS}"),
            ));
        }
        Ok(())
    }
}

/// Where and how `/metrics` is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// `IP:port` to listen on.
    pub listen_address: String,
    /// Path of the metrics endpoint (not `/`, not under `/-/`).
    pub telemetry_path: String,
    /// exporter-toolkit style web configuration (TLS, basic auth); empty = none.
    pub config_file: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen_address: DEFAULT_LISTEN_ADDRESS.to_string(),
            telemetry_path: "/metrics".to_string(),
            config_file: String::new(),
        }
    }
}

/// Label normalisation, cardinality limits and histogram buckets, shared by all tenants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// At most this many (task_name, source) groups per tenant; the rest fold into
    /// `task_name="other"`.
    pub max_groups: usize,
    /// Per-task pending series are kept for the N oldest pending tasks only.
    pub max_pending_task_series: usize,
    /// Buckets of `sailpoint_task_duration_seconds`.
    pub duration_buckets: Vec<f64>,
    /// Buckets of `sailpoint_task_queue_wait_seconds`.
    pub queue_wait_buckets: Vec<f64>,
    /// Regex rewrites applied to task names after the id/uuid suffix is stripped.
    pub task_name_rewrites: Vec<Rewrite>,
    /// At most this many distinct result attributes per (task_name, source) group in
    /// `sailpoint_task_returns_total` / `sailpoint_task_return_value`; the rest fold into
    /// `attribute="other"` (0 folds them all).
    pub max_return_attributes: usize,
}

/// Default duration buckets: one second to one day.
pub const DEFAULT_DURATION_BUCKETS: [f64; 15] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    43200.0, 86400.0,
];

/// Default queue-wait buckets: a tenth of a second to six hours.
pub const DEFAULT_QUEUE_WAIT_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21600.0,
];

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            max_groups: 500,
            max_pending_task_series: 50,
            duration_buckets: DEFAULT_DURATION_BUCKETS.to_vec(),
            queue_wait_buckets: DEFAULT_QUEUE_WAIT_BUCKETS.to_vec(),
            task_name_rewrites: Vec::new(),
            max_return_attributes: 32,
        }
    }
}

/// One task-name rewrite: every match of `pattern` is replaced by `replacement`
/// (`$1`-style group references allowed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// What to match in the task name.
    #[serde(with = "serde_regex")]
    pub pattern: Regex,
    /// What every match becomes.
    pub replacement: String,
}

mod serde_regex {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))
    }
}

/// How the pending set is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PendingSource {
    /// `GET /task-status/pending-tasks` (deprecated by SailPoint, but the v2024 way).
    #[default]
    PendingTasks,
    /// `GET /task-status?filters=completionStatus isnull` (the newer versions' way).
    CompletionStatusIsnull,
}

/// The client's request budget: at most `requests` per `per`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Length of the sliding window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests: 90,
            per: Duration::from_secs(10),
        }
    }
}

/// One SailPoint tenant to poll.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The `tenant` label value.
    pub name: String,
    /// API gateway, e.g. `https://acme.api.identitynow.com`.
    pub base_url: Url,
    /// Path segment of the API version: `v2024`, `v2025`, `beta`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Token endpoint; default `{base_url}/oauth/token`.
    #[serde(default, deserialize_with = "empty_url_as_none")]
    pub token_url: Option<Url>,
    /// OAuth client id (the secret comes from one of the three `client_secret*` keys).
    #[serde(default)]
    pub client_id: String,
    /// The client secret inline (prefer a file or an environment variable).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret (trimmed), e.g. a mounted Kubernetes secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A static access token instead of client credentials (not refreshed).
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// A file holding a static access token.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// Time between pending polls: bounds how late a stuck task is noticed.
    #[serde(default = "default_pending_interval", with = "humantime_serde")]
    pub pending_interval: Duration,
    /// Time between completed polls: bounds how late a completion is counted.
    #[serde(default = "default_completed_interval", with = "humantime_serde")]
    pub completed_interval: Duration,
    /// How far back the completed list is read at start to prime state (not counted).
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub lookback: Duration,
    /// How far below the watermark each completed poll reads again; default
    /// `2 × pending_interval + 60s`.
    #[serde(default, with = "humantime_serde")]
    pub overlap: Option<Duration>,
    /// Deadline of one HTTP request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Deadline for one whole poll (all its pages and retries).
    #[serde(default = "default_poll_timeout", with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// The client's request budget, shared by every request of the tenant.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// `limit` of each page (1-250).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Retries per request for 429, 5xx, timeouts and connection errors.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// How the pending set is read (the pending-tasks endpoints are deprecated).
    #[serde(default)]
    pub pending_source: PendingSource,
    /// Largest accepted response body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Resolved credentials; filled by [`Settings::validate`].
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

/// How a tenant authenticates, after secrets were resolved.
#[derive(Clone)]
pub enum Credentials {
    /// OAuth2 client credentials, refreshed ahead of expiry.
    ClientCredentials {
        /// OAuth client id.
        client_id: String,
        /// OAuth client secret (redacted in `Debug`).
        client_secret: SecretString,
    },
    /// A fixed bearer token (e.g. a short-lived token for a one-off check).
    StaticToken(SecretString),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .finish(),
            Credentials::StaticToken(_) => f.write_str("StaticToken([redacted])"),
        }
    }
}

/// Every field, secrets redacted. The daemon's reload fingerprint hashes this output, so
/// a field left out here would be a setting that SIGHUP silently ignores.
impl std::fmt::Debug for TenantSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url.as_str())
            .field("api_version", &self.api_version)
            .field("token_url", &self.token_url.as_ref().map(Url::as_str))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("access_token_file", &self.access_token_file)
            .field("pending_interval", &self.pending_interval)
            .field("completed_interval", &self.completed_interval)
            .field("lookback", &self.lookback)
            .field("overlap", &self.overlap)
            .field("request_timeout", &self.request_timeout)
            .field("poll_timeout", &self.poll_timeout)
            .field("rate_limit", &self.rate_limit)
            .field("page_size", &self.page_size)
            .field("max_retries", &self.max_retries)
            .field("pending_source", &self.pending_source)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("credentials", &self.credentials)
            .finish()
    }
}

fn default_api_version() -> String {
    "v2024".into()
}
fn default_pending_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_completed_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_poll_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_page_size() -> u32 {
    250
}
fn default_max_retries() -> u32 {
    5
}
fn default_max_body_bytes() -> usize {
    64 * 1024 * 1024
}

fn empty_url_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Url::parse(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid URL {s:?}: {e}"))),
    }
}

impl TenantSettings {
    /// `{base_url}/{api_version}` without a trailing slash.
    pub fn api_root(&self) -> String {
        format!(
            "{}/{}",
            self.base_url.as_str().trim_end_matches('/'),
            self.api_version
        )
    }

    /// The OAuth token endpoint.
    pub fn token_endpoint(&self) -> String {
        match &self.token_url {
            Some(u) => u.to_string(),
            None => format!(
                "{}/oauth/token",
                self.base_url.as_str().trim_end_matches('/')
            ),
        }
    }

    /// The overlap the completed poll reads below its watermark.
    pub fn effective_overlap(&self) -> Duration {
        self.overlap.unwrap_or_else(|| {
            self.pending_interval
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(60))
        })
    }

    /// A tenant for the given base URL with every other setting at its default; used by
    /// the CLI's `--base-url` mode, `demo` and tests.
    pub fn with_defaults(name: &str, base_url: Url, credentials: Credentials) -> Self {
        TenantSettings {
            name: name.to_string(),
            base_url,
            api_version: default_api_version(),
            token_url: None,
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            client_secret_env: None,
            access_token: None,
            access_token_file: None,
            pending_interval: default_pending_interval(),
            completed_interval: default_completed_interval(),
            lookback: default_lookback(),
            overlap: None,
            request_timeout: default_request_timeout(),
            poll_timeout: default_poll_timeout(),
            rate_limit: RateLimit::default(),
            page_size: default_page_size(),
            max_retries: default_max_retries(),
            pending_source: PendingSource::default(),
            max_body_bytes: default_max_body_bytes(),
            credentials: Some(credentials),
        }
    }

    /// The resolved credentials (always present after validation).
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    fn validate(&mut self, key: &str) -> Result<(), ConfigError> {
        let k = |field: &str| format!("{key}.{field}");
        if !valid_name(&self.name) {
            return Err(ConfigError::invalid(
                k("name"),
                "must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                k("base_url"),
                "must be an http(s) URL",
            ));
        }
        for (field, url) in [
            ("base_url", Some(&self.base_url)),
            ("token_url", self.token_url.as_ref()),
        ] {
            if url.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
                return Err(ConfigError::invalid(
                    k(field),
                    "must not carry a user name or password (they would show in logs); use client_id and client_secret",
                ));
            }
        }
        if self.api_version.is_empty()
            || !self.api_version.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ConfigError::invalid(
                k("api_version"),
                "must be a version segment such as v2024, v2025 or beta",
            ));
        }
        if !(1..=250).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                k("page_size"),
                "must be between 1 and 250",
            ));
        }
        for (field, d) in [
            ("pending_interval", self.pending_interval),
            ("completed_interval", self.completed_interval),
            ("request_timeout", self.request_timeout),
            ("poll_timeout", self.poll_timeout),
            ("rate_limit.per", self.rate_limit.per),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(k(field), "must be greater than zero"));
            }
        }
        for (field, d) in [
            ("pending_interval", Some(self.pending_interval)),
            ("completed_interval", Some(self.completed_interval)),
            ("lookback", Some(self.lookback)),
            ("overlap", self.overlap),
            ("request_timeout", Some(self.request_timeout)),
            ("poll_timeout", Some(self.poll_timeout)),
            ("rate_limit.per", Some(self.rate_limit.per)),
        ] {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError::invalid(k(field), "must be at most 366 days"));
            }
        }
        if self.rate_limit.requests == 0 {
            return Err(ConfigError::invalid(
                k("rate_limit.requests"),
                "must be at least 1",
            ));
        }
        if self.effective_overlap() < self.pending_interval.saturating_mul(2) {
            return Err(ConfigError::invalid(
                k("overlap"),
                "must be at least two pending intervals, or completions can be missed",
            ));
        }
        let steady_reach = self
            .effective_overlap()
            .saturating_add(self.pending_interval)
            .saturating_add(self.completed_interval);
        if self.lookback < steady_reach {
            return Err(ConfigError::invalid(
                k("lookback"),
                format!(
                    "must be at least overlap + pending_interval + completed_interval ({}): the completed poll reads that far back in steady state, and lookback caps how far back it may read",
                    humantime::format_duration(steady_reach)
                ),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                k("max_body_bytes"),
                "must be at least 1024",
            ));
        }
        self.credentials = Some(self.resolve_credentials(key)?);
        Ok(())
    }

    fn resolve_credentials(&self, key: &str) -> Result<Credentials, ConfigError> {
        let k = |field: &str| format!("{key}.{field}");
        let token = match (&self.access_token, &self.access_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    k("access_token"),
                    "set access_token or access_token_file, not both",
                ));
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(path)) => Some(read_secret_file(path, &k("access_token_file"))?),
            (None, None) => None,
        };
        let sources = [
            self.client_secret.is_some(),
            self.client_secret_file.is_some(),
            self.client_secret_env.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            return Err(ConfigError::invalid(
                k("client_secret"),
                "set only one of client_secret, client_secret_file and client_secret_env",
            ));
        }
        if let Some(token) = token {
            if sources > 0 {
                return Err(ConfigError::invalid(
                    k("access_token"),
                    "a static access token excludes client credentials",
                ));
            }
            return Ok(Credentials::StaticToken(token));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                k("client_id"),
                "is required (or set access_token)",
            ));
        }
        let secret = if let Some(s) = &self.client_secret {
            s.clone()
        } else if let Some(path) = &self.client_secret_file {
            read_secret_file(path, &k("client_secret_file"))?
        } else if let Some(var) = &self.client_secret_env {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => SecretString::from(v.trim().to_string()),
                _ => {
                    return Err(ConfigError::invalid(
                        k("client_secret_env"),
                        format!("environment variable {var} is not set or empty"),
                    ));
                }
            }
        } else {
            return Err(ConfigError::invalid(
                k("client_secret"),
                "is required: set client_secret, client_secret_file or client_secret_env",
            ));
        };
        if secret.expose_secret().is_empty() {
            return Err(ConfigError::invalid(k("client_secret"), "is empty"));
        }
        Ok(Credentials::ClientCredentials {
            client_id: self.client_id.clone(),
            client_secret: secret,
        })
    }
}

fn read_secret_file(path: &Path, key: &str) -> Result<SecretString, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(SecretString::from(s.trim().to_string())),
        Ok(_) => Err(ConfigError::invalid(
            key,
            format!("file {} is empty", path.display()),
        )),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Flags that override the file (`--web.listen-address` and friends).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--web.listen-address`.
    pub listen_address: Option<String>,
    /// `--web.telemetry-path`.
    pub telemetry_path: Option<String>,
    /// `--web.config.file`.
    pub web_config_file: Option<String>,
    /// `--shard.count`.
    pub shard_count: Option<u32>,
    /// `--shard.index`.
    pub shard_index: Option<u32>,
    /// `--shard.index-from-hostname`.
    pub shard_index_from_hostname: bool,
    /// `--storage.path`.
    pub storage_path: Option<PathBuf>,
}

impl Settings {
    /// Loads a file (YAML or TOML by extension), applies `SAILPOINT_EXPORTER__*`
    /// environment overrides and the flags, and validates the result.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => config::FileFormat::Yaml,
            Some("toml") => config::FileFormat::Toml,
            _ => {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    reason: "the extension must be .yaml, .yml or .toml".into(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_text(&text, format, overrides)
    }

    /// Parses and validates configuration text; `load` without the file system.
    pub fn from_text(
        text: &str,
        format: config::FileFormat,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, format))
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut settings: Settings = raw
            .try_deserialize()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(a) = &overrides.listen_address {
            settings.web.listen_address = a.clone();
        }
        if let Some(p) = &overrides.telemetry_path {
            settings.web.telemetry_path = p.clone();
        }
        if let Some(f) = &overrides.web_config_file {
            settings.web.config_file = f.clone();
        }
        if let Some(count) = overrides.shard_count {
            settings.sharding.count = count;
        }
        if let Some(index) = overrides.shard_index {
            settings.sharding.index = Some(index);
            settings.sharding.index_from_hostname = false;
        }
        if overrides.shard_index_from_hostname {
            settings.sharding.index = None;
            settings.sharding.index_from_hostname = true;
        }
        if let Some(p) = &overrides.storage_path {
            settings.storage.path = Some(p.clone());
        }
        if settings
            .storage
            .path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            settings.storage.path = None;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every rule and resolves secrets. Idempotent.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self
            .web
            .listen_address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(ConfigError::invalid(
                "web.listen_address",
                format!("{:?} is not an IP:port address", self.web.listen_address),
            ));
        }
        let path = &self.web.telemetry_path;
        if !path.starts_with('/') || path.len() < 2 || path.starts_with("/-/") {
            return Err(ConfigError::invalid(
                "web.telemetry_path",
                "must start with '/', not be '/' and not be under '/-/'",
            ));
        }
        self.metrics.validate()?;
        self.sharding.validate()?;
        self.status.validate()?;
        if self.tenants.is_empty() {
            return Err(ConfigError::invalid(
                "tenants",
                "at least one tenant is required",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, tenant) in self.tenants.iter_mut().enumerate() {
            let key = format!("tenants[{i}]");
            tenant.validate(&key)?;
            if !seen.insert(tenant.name.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("tenant name {:?} is used twice", tenant.name),
                ));
            }
        }
        Ok(())
    }

    /// These settings with only the tenants this replica's shard polls (all of them
    /// without sharding). May leave no tenant: a replica whose shard is empty serves only
    /// its own health metrics.
    pub fn own_shard(mut self) -> Settings {
        let sharding = self.sharding.clone();
        self.tenants.retain(|t| sharding.owns(&t.name));
        self
    }
}

impl MetricsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_groups == 0 {
            return Err(ConfigError::invalid(
                "metrics.max_groups",
                "must be at least 1",
            ));
        }
        for (key, buckets) in [
            ("metrics.duration_buckets", &self.duration_buckets),
            ("metrics.queue_wait_buckets", &self.queue_wait_buckets),
        ] {
            if buckets.is_empty() {
                return Err(ConfigError::invalid(key, "needs at least one bucket"));
            }
            if buckets.iter().any(|b| !b.is_finite()) {
                return Err(ConfigError::invalid(key, "buckets must be finite numbers"));
            }
            if buckets.windows(2).any(|w| w.first() >= w.get(1)) {
                return Err(ConfigError::invalid(
                    key,
                    "buckets must be strictly increasing",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::FileFormat::{Toml, Yaml};

    const MINIMAL: &str = "tenants:\n  - name: acme\n    base_url: https://acme.api.identitynow.com\n    client_id: id\n    client_secret: s3cret\n";

    #[test]
    fn minimal_yaml_gets_defaults() {
        let s = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
        let t = &s.tenants[0];
        assert_eq!(s.web.listen_address, DEFAULT_LISTEN_ADDRESS);
        assert_eq!(t.api_root(), "https://acme.api.identitynow.com/v2024");
        assert_eq!(
            t.token_endpoint(),
            "https://acme.api.identitynow.com/oauth/token"
        );
        assert_eq!(t.pending_interval, Duration::from_secs(30));
        assert_eq!(t.effective_overlap(), Duration::from_secs(120));
        assert_eq!(t.rate_limit.requests, 90);
        assert_eq!(s.status, StatusSettings::default());
        assert_eq!(s.status.stuck_after, Duration::from_secs(10800));
    }

    #[test]
    fn status_settings_are_read_and_checked() {
        let text = format!("{MINIMAL}status:\n  stuck_after: 90m\n  failed_tasks: 7\n");
        let s = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap();
        assert_eq!(s.status.stuck_after, Duration::from_secs(5400));
        assert_eq!(s.status.failed_tasks, 7);
        assert_eq!(s.status.no_success_after, Duration::from_secs(26 * 3600));
        for (bad, key) in [
            ("failed_tasks: 0", "status.failed_tasks"),
            ("failed_tasks: 1001", "status.failed_tasks"),
            ("stuck_after: 0s", "status.stuck_after"),
        ] {
            let text = format!("{MINIMAL}status:\n  {bad}\n");
            let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn toml_works_too() {
        let text = "[[tenants]]\nname = \"acme\"\nbase_url = \"http://127.0.0.1:1\"\nclient_id = \"id\"\nclient_secret = \"x\"\npending_interval = \"5s\"\n";
        let s = Settings::from_text(text, Toml, &Overrides::default()).unwrap();
        assert_eq!(s.tenants[0].pending_interval, Duration::from_secs(5));
    }

    #[test]
    fn errors_name_the_key() {
        let bad = MINIMAL.replace(
            "client_secret: s3cret",
            "page_size: 500\n    client_secret: x",
        );
        let err = Settings::from_text(&bad, Yaml, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration key `tenants[0].page_size`: must be between 1 and 250"
        );
        let bad = MINIMAL.replace(
            "client_secret: s3cret",
            "pending_interval: soon\n    client_secret: x",
        );
        let err = Settings::from_text(&bad, Yaml, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("pending_interval"), "{err}");
        let bad = MINIMAL.replace("client_id: id", "clientid: id");
        let err = Settings::from_text(&bad, Yaml, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("clientid"), "{err}");
    }

    #[test]
    fn lookback_shorter_than_the_steady_read_is_refused_naming_the_keys() {
        let text = MINIMAL.replace(
            "client_secret: s3cret",
            "client_secret: s3cret\n    lookback: 3m\n    overlap: 2m",
        );
        let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration key `tenants[0].lookback`: must be at least overlap + pending_interval + completed_interval (3m 30s): the completed poll reads that far back in steady state, and lookback caps how far back it may read"
        );
        let ok = MINIMAL.replace(
            "client_secret: s3cret",
            "client_secret: s3cret\n    lookback: 210s\n    overlap: 2m",
        );
        assert!(Settings::from_text(&ok, Yaml, &Overrides::default()).is_ok());
    }

    #[test]
    fn absurd_durations_are_refused_not_a_panic() {
        for (key, value) in [
            ("pending_interval", "500000000000y"),
            ("completed_interval", "400y"),
            ("lookback", "1000000000y"),
            ("overlap", "1000000000y"),
            ("poll_timeout", "400y"),
            ("request_timeout", "400y"),
        ] {
            let text = MINIMAL.replace(
                "client_secret: s3cret",
                &format!("client_secret: s3cret\n    {key}: {value}"),
            );
            let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("configuration key `tenants[0].{key}`: must be at most 366 days"),
                "{key}"
            );
        }
        let text = MINIMAL.replace(
            "client_secret: s3cret",
            "client_secret: s3cret\n    rate_limit: { requests: 1, per: 400y }",
        );
        let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration key `tenants[0].rate_limit.per`: must be at most 366 days"
        );
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        for (key, from, to) in [
            (
                "base_url",
                "base_url: https://acme",
                "base_url: https://svc:pa55@acme",
            ),
            (
                "token_url",
                "client_id: id",
                "client_id: id\n    token_url: https://svc:pa55@acme/oauth/token",
            ),
        ] {
            let text = MINIMAL.replace(from, to);
            let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "configuration key `tenants[0].{key}`: must not carry a user name or password (they would show in logs); use client_id and client_secret"
                )
            );
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn secret_from_file_and_missing_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = MINIMAL.replace(
            "client_secret: s3cret",
            &format!("client_secret_file: {}", file.display()),
        );
        let s = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap();
        match s.tenants[0].credentials() {
            Some(Credentials::ClientCredentials { client_secret, .. }) => {
                assert_eq!(client_secret.expose_secret(), "from-file")
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = MINIMAL.replace(
            "client_secret: s3cret",
            "client_secret_env: SAILPOINT_TEST_SURELY_UNSET_VAR",
        );
        let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("client_secret_env"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            listen_address: Some("127.0.0.1:1234".into()),
            telemetry_path: Some("/m".into()),
            storage_path: Some("/var/lib/sailpoint-task-exporter".into()),
            ..Overrides::default()
        };
        let s = Settings::from_text(MINIMAL, Yaml, &o).unwrap();
        assert_eq!(s.web.listen_address, "127.0.0.1:1234");
        assert_eq!(s.web.telemetry_path, "/m");
        assert_eq!(
            s.storage.path.as_deref(),
            Some(std::path::Path::new("/var/lib/sailpoint-task-exporter"))
        );
        let without = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
        assert_eq!(without.storage.path, None, "off unless configured");
    }

    fn tenants(n: usize) -> String {
        let mut text = String::from("tenants:\n");
        for k in 1..=n {
            text.push_str(&format!(
                "  - {{ name: t{k}, base_url: http://127.0.0.1:1/t{k}, client_id: id, client_secret: s }}\n"
            ));
        }
        text
    }

    #[test]
    fn two_shards_split_two_hundred_tenants_exactly_once() {
        let text = tenants(200);
        let mut seen = std::collections::HashMap::new();
        for index in 0..2 {
            let o = Overrides {
                shard_count: Some(2),
                shard_index: Some(index),
                ..Overrides::default()
            };
            let s = Settings::from_text(&text, Yaml, &o).unwrap().own_shard();
            assert!(!s.tenants.is_empty() && s.tenants.len() < 200, "{index}");
            for t in s.tenants {
                assert_eq!(seen.insert(t.name.clone(), index), None, "{} twice", t.name);
            }
        }
        assert_eq!(seen.len(), 200);
        let whole = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap();
        assert_eq!(
            whole.own_shard().tenants.len(),
            200,
            "no sharding keeps all"
        );
    }

    #[test]
    fn sharding_keys_and_their_errors() {
        let with = |extra: &str| {
            Settings::from_text(
                &format!("{extra}{}", tenants(3)),
                Yaml,
                &Overrides::default(),
            )
        };
        let s = with("sharding: { count: 3, index: 2 }\n").unwrap();
        assert_eq!((s.sharding.count, s.sharding.index()), (3, 2));
        for (extra, problem) in [
            (
                "sharding: { count: 0 }\n",
                "configuration key `sharding.count`: must be between 1 and 1024",
            ),
            (
                "sharding: { count: 2 }\n",
                "configuration key `sharding.index`: is required when sharding.count is above 1 (or set index_from_hostname)",
            ),
            (
                "sharding: { count: 2, index: 2 }\n",
                "configuration key `sharding.index`: 2 is not a shard of 2 (0 to 1)",
            ),
            (
                "sharding: { count: 2, index: 1, index_from_hostname: true }\n",
                "configuration key `sharding.index`: set index or index_from_hostname, not both",
            ),
        ] {
            assert_eq!(with(extra).unwrap_err().to_string(), problem, "{extra}");
        }
        let o = Overrides {
            shard_count: Some(4),
            shard_index: Some(3),
            ..Overrides::default()
        };
        let s = Settings::from_text(
            &format!(
                "sharding: {{ count: 2, index_from_hostname: true }}\n{}",
                tenants(3)
            ),
            Yaml,
            &o,
        )
        .unwrap();
        assert_eq!((s.sharding.count, s.sharding.index()), (4, 3), "flags win");
    }
}
