//! Settings: one YAML or TOML file (chosen by extension), environment overrides and
//! command-line flags, validated once at start.
//!
//! Everything that can be wrong with a configuration is found here, before any task is
//! started, and reported as one [`ConfigError`] that names the key and the problem (the
//! binary exits with code 2). Secrets are resolved here too — from the file, a
//! `client_secret_file` or an environment variable — and held as [`secrecy::SecretString`], whose
//! `Debug` output is redacted, so a logged `Settings` never shows one.
//!
//! The file is read into the serde structs of `raw`, then built into the checked types
//! here ([`Settings`], [`TenantSettings`], [`Credentials`]), in which nothing required is
//! optional; settings compare with `==`.

mod credentials;
mod error;
mod metrics;
mod raw;
mod sharding;
mod status;
mod tenant;
mod web;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use credentials::Credentials;
pub use error::ConfigError;
pub use metrics::{DEFAULT_DURATION_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS, MetricsSettings, Rewrite};
pub use sharding::{MAX_SHARDS, ShardingSettings};
pub use status::{MAX_STATUS_FAILED_TASKS, StatusSettings};
pub use tenant::{PendingSource, RateLimit, TenantSettings};
pub use web::WebSettings;

use raw::RawSettings;

/// Default listen address. The 9100–9999 range is fully allocated on the Prometheus
/// default-port list, so the exporter uses 11011.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:11011";

/// Longest duration any tenant setting may have. Far beyond any sensible value (the API
/// keeps 90 days of history), and small enough that adding it to a clock reading can
/// never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Prefix of environment overrides: `SAILPOINT_EXPORTER__WEB__LISTEN_ADDRESS=...`.
pub const ENV_PREFIX: &str = "SAILPOINT_EXPORTER";

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How `/metrics` is served.
    pub web: WebSettings,
    /// Label rules, cardinality limits and buckets.
    pub metrics: MetricsSettings,
    /// The tenants to poll (at least one).
    pub tenants: Vec<TenantSettings>,
    /// Which share of the tenants this replica polls (default: all of them).
    pub sharding: ShardingSettings,
    /// Where each tenant's state is kept across restarts (off by default).
    pub storage: StorageSettings,
    /// The on-call status page at `/` and `/api/v1/status`.
    pub status: StatusSettings,
}

/// State across restarts: with a `path`, each tenant's exactly-once tracker and metric
/// values are written there after every applied poll and resumed at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Directory of the state files (one `<tenant>.json` each); None keeps nothing.
    pub path: Option<PathBuf>,
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
            .map_err(|e| ConfigError::parse(&e.to_string()))?;
        let mut settings: RawSettings = raw
            .try_deserialize()
            .map_err(|e| ConfigError::parse(&e.to_string()))?;
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
        Settings::build(settings)
    }

    /// Checks every rule, resolves secrets and builds the checked settings; the first
    /// broken rule is the error.
    fn build(raw: RawSettings) -> Result<Settings, ConfigError> {
        let RawSettings {
            web,
            metrics,
            tenants: raw_tenants,
            sharding,
            storage,
            status,
        } = raw;
        web.validate()?;
        metrics.validate()?;
        let sharding = ShardingSettings::parse(&sharding)?;
        status.validate()?;
        if raw_tenants.is_empty() {
            return Err(ConfigError::invalid(
                "tenants",
                "at least one tenant is required",
            ));
        }
        let mut tenants = Vec::with_capacity(raw_tenants.len());
        let mut seen = std::collections::HashSet::new();
        for (i, raw_tenant) in raw_tenants.into_iter().enumerate() {
            let key = format!("tenants[{i}]");
            let tenant = TenantSettings::parse(raw_tenant, &key)?;
            if !seen.insert(tenant.name.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("tenant name {:?} is used twice", tenant.name),
                ));
            }
            tenants.push(tenant);
        }
        Ok(Settings {
            web,
            metrics,
            tenants,
            sharding,
            storage,
            status,
        })
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
