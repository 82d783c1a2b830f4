//! The configuration as read from YAML/TOML and the environment, before any rule is
//! checked: every key the file may hold, with its default. [`super::Settings`] and
//! [`super::TenantSettings`] are built from these and hold only checked values.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::{
    MetricsSettings, PendingSource, RateLimit, StatusSettings, StorageSettings, WebSettings,
};

/// The whole file, as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    /// How `/metrics` is served.
    #[serde(default)]
    pub web: WebSettings,
    /// Label rules, cardinality limits and buckets.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The tenants to poll (at least one).
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
    /// Which share of the tenants this replica polls (default: all of them).
    #[serde(default)]
    pub sharding: RawSharding,
    /// Where each tenant's state is kept across restarts (off by default).
    #[serde(default)]
    pub storage: StorageSettings,
    /// The on-call status page at `/` and `/api/v1/status`.
    #[serde(default)]
    pub status: StatusSettings,
}

/// The `sharding` keys, as read; [`super::ShardingSettings::parse`] resolves the index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSharding {
    /// Number of replicas the tenants are spread over; 1 = no sharding.
    pub count: u32,
    /// This replica's shard, `0..count`; required when `count > 1` unless
    /// `index_from_hostname` is set.
    pub index: Option<u32>,
    /// Take the index from the host name's ordinal suffix (`HOSTNAME`, e.g. a StatefulSet
    /// pod `sailpoint-task-exporter-3` is shard 3).
    pub index_from_hostname: bool,
}

impl Default for RawSharding {
    fn default() -> Self {
        RawSharding {
            count: 1,
            index: None,
            index_from_hostname: false,
        }
    }
}

/// One tenant, as read: the secret may come from any of several keys, resolved (and
/// checked) into [`super::Credentials`] by [`super::TenantSettings::parse`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    pub(crate) name: String,
    /// API gateway, e.g. `https://acme.api.identitynow.com`.
    pub(crate) base_url: Url,
    /// Path segment of the API version: `v2024`, `v2025`, `beta`.
    #[serde(default = "default_api_version")]
    pub(crate) api_version: String,
    /// Token endpoint; default `{base_url}/oauth/token`.
    #[serde(default, deserialize_with = "empty_url_as_none")]
    pub(crate) token_url: Option<Url>,
    /// OAuth client id (the secret comes from one of the three `client_secret*` keys).
    #[serde(default)]
    pub(crate) client_id: String,
    /// The client secret inline (prefer a file or an environment variable).
    #[serde(default)]
    pub(crate) client_secret: Option<SecretString>,
    /// A file holding the client secret (trimmed), e.g. a mounted Kubernetes secret.
    #[serde(default)]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub(crate) client_secret_env: Option<String>,
    /// A static access token instead of client credentials (not refreshed).
    #[serde(default)]
    pub(crate) access_token: Option<SecretString>,
    /// A file holding a static access token.
    #[serde(default)]
    pub(crate) access_token_file: Option<PathBuf>,
    /// Time between pending polls: bounds how late a stuck task is noticed.
    #[serde(default = "default_pending_interval", with = "humantime_serde")]
    pub(crate) pending_interval: Duration,
    /// Time between completed polls: bounds how late a completion is counted.
    #[serde(default = "default_completed_interval", with = "humantime_serde")]
    pub(crate) completed_interval: Duration,
    /// How far back the completed list is read at start to prime state (not counted).
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub(crate) lookback: Duration,
    /// How far below the watermark each completed poll reads again; default
    /// `2 × pending_interval + 60s`.
    #[serde(default, with = "humantime_serde")]
    pub(crate) overlap: Option<Duration>,
    /// Deadline of one HTTP request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub(crate) request_timeout: Duration,
    /// Deadline for one whole poll (all its pages and retries).
    #[serde(default = "default_poll_timeout", with = "humantime_serde")]
    pub(crate) poll_timeout: Duration,
    /// The client's request budget, shared by every request of the tenant.
    #[serde(default)]
    pub(crate) rate_limit: RateLimit,
    /// `limit` of each page (1-250).
    #[serde(default = "default_page_size")]
    pub(crate) page_size: u32,
    /// Retries per request for 429, 5xx, timeouts and connection errors.
    #[serde(default = "default_max_retries")]
    pub(crate) max_retries: u32,
    /// How the pending set is read (the pending-tasks endpoints are deprecated).
    #[serde(default)]
    pub(crate) pending_source: PendingSource,
    /// Largest accepted response body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub(crate) max_body_bytes: usize,
}

pub(crate) fn default_api_version() -> String {
    "v2024".into()
}
pub(crate) fn default_pending_interval() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn default_completed_interval() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn default_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
pub(crate) fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn default_poll_timeout() -> Duration {
    Duration::from_secs(300)
}
pub(crate) fn default_page_size() -> u32 {
    250
}
pub(crate) fn default_max_retries() -> u32 {
    5
}
pub(crate) fn default_max_body_bytes() -> usize {
    64 * 1024 * 1024
}

pub(crate) fn empty_url_as_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Url>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Url::parse(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid URL {s:?}: {e}"))),
    }
}
