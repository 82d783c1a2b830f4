//! One SailPoint tenant to poll, as checked: built from a [`RawTenant`] by
//! [`TenantSettings::parse`], so every value obeys its rule and the credentials are
//! resolved — nothing required is optional. Compared with `==` by the daemon on reload.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::raw::{self, RawTenant};
use super::{ConfigError, Credentials, MAX_DURATION};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// One SailPoint tenant to poll, every rule checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSettings {
    /// The `tenant` label value.
    pub name: String,
    /// API gateway, e.g. `https://acme.api.identitynow.com`.
    pub base_url: Url,
    /// Path segment of the API version: `v2024`, `v2025`, `beta`.
    pub api_version: String,
    /// Token endpoint; default `{base_url}/oauth/token`.
    pub token_url: Option<Url>,
    /// Time between pending polls: bounds how late a stuck task is noticed.
    pub pending_interval: Duration,
    /// Time between completed polls: bounds how late a completion is counted.
    pub completed_interval: Duration,
    /// How far back the completed list is read at start to prime state (not counted).
    pub lookback: Duration,
    /// How far below the watermark each completed poll reads again; default
    /// `2 × pending_interval + 60s`.
    pub overlap: Option<Duration>,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Deadline for one whole poll (all its pages and retries).
    pub poll_timeout: Duration,
    /// The client's request budget, shared by every request of the tenant.
    pub rate_limit: RateLimit,
    /// `limit` of each page (1-250).
    pub page_size: u32,
    /// Retries per request for 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// How the pending set is read (the pending-tasks endpoints are deprecated).
    pub pending_source: PendingSource,
    /// Largest accepted response body, in bytes.
    pub max_body_bytes: usize,
    /// How the tenant authenticates, its secret already resolved.
    pub credentials: Credentials,
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
        effective_overlap(self.overlap, self.pending_interval)
    }

    /// A tenant for the given base URL with every other setting at its default; used by
    /// the CLI's `--base-url` mode, `demo` and tests.
    pub fn with_defaults(name: &str, base_url: Url, credentials: Credentials) -> Self {
        TenantSettings {
            name: name.to_string(),
            base_url,
            api_version: raw::default_api_version(),
            token_url: None,
            pending_interval: raw::default_pending_interval(),
            completed_interval: raw::default_completed_interval(),
            lookback: raw::default_lookback(),
            overlap: None,
            request_timeout: raw::default_request_timeout(),
            poll_timeout: raw::default_poll_timeout(),
            rate_limit: RateLimit::default(),
            page_size: raw::default_page_size(),
            max_retries: raw::default_max_retries(),
            pending_source: PendingSource::default(),
            max_body_bytes: raw::default_max_body_bytes(),
            credentials,
        }
    }

    /// The resolved credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Checks every rule of the tenant at `key` (e.g. `tenants[0]`) and resolves its
    /// secret; the first broken rule is the error.
    pub(crate) fn parse(raw: RawTenant, key: &str) -> Result<TenantSettings, ConfigError> {
        check(&raw, key)?;
        let credentials = Credentials::resolve(&raw, key)?;
        Ok(TenantSettings {
            name: raw.name,
            base_url: raw.base_url,
            api_version: raw.api_version,
            token_url: raw.token_url,
            pending_interval: raw.pending_interval,
            completed_interval: raw.completed_interval,
            lookback: raw.lookback,
            overlap: raw.overlap,
            request_timeout: raw.request_timeout,
            poll_timeout: raw.poll_timeout,
            rate_limit: raw.rate_limit,
            page_size: raw.page_size,
            max_retries: raw.max_retries,
            pending_source: raw.pending_source,
            max_body_bytes: raw.max_body_bytes,
            credentials,
        })
    }
}

/// The overlap in force: the configured one, else `2 × pending_interval + 60s`.
fn effective_overlap(overlap: Option<Duration>, pending_interval: Duration) -> Duration {
    overlap.unwrap_or_else(|| {
        pending_interval
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(60))
    })
}

/// Every rule of a tenant but its credentials.
fn check(raw: &RawTenant, key: &str) -> Result<(), ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    if !valid_name(&raw.name) {
        return Err(ConfigError::invalid(
            k("name"),
            "must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    if !matches!(raw.base_url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            k("base_url"),
            "must be an http(s) URL",
        ));
    }
    for (field, url) in [
        ("base_url", Some(&raw.base_url)),
        ("token_url", raw.token_url.as_ref()),
    ] {
        if url.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
            return Err(ConfigError::invalid(
                k(field),
                "must not carry a user name or password (they would show in logs); use client_id and client_secret",
            ));
        }
    }
    if raw.api_version.is_empty() || !raw.api_version.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::invalid(
            k("api_version"),
            "must be a version segment such as v2024, v2025 or beta",
        ));
    }
    if !(1..=250).contains(&raw.page_size) {
        return Err(ConfigError::invalid(
            k("page_size"),
            "must be between 1 and 250",
        ));
    }
    for (field, d) in [
        ("pending_interval", raw.pending_interval),
        ("completed_interval", raw.completed_interval),
        ("request_timeout", raw.request_timeout),
        ("poll_timeout", raw.poll_timeout),
        ("rate_limit.per", raw.rate_limit.per),
    ] {
        if d.is_zero() {
            return Err(ConfigError::invalid(k(field), "must be greater than zero"));
        }
    }
    for (field, d) in [
        ("pending_interval", Some(raw.pending_interval)),
        ("completed_interval", Some(raw.completed_interval)),
        ("lookback", Some(raw.lookback)),
        ("overlap", raw.overlap),
        ("request_timeout", Some(raw.request_timeout)),
        ("poll_timeout", Some(raw.poll_timeout)),
        ("rate_limit.per", Some(raw.rate_limit.per)),
    ] {
        if d.is_some_and(|d| d > MAX_DURATION) {
            return Err(ConfigError::invalid(k(field), "must be at most 366 days"));
        }
    }
    if raw.rate_limit.requests == 0 {
        return Err(ConfigError::invalid(
            k("rate_limit.requests"),
            "must be at least 1",
        ));
    }
    if effective_overlap(raw.overlap, raw.pending_interval) < raw.pending_interval.saturating_mul(2)
    {
        return Err(ConfigError::invalid(
            k("overlap"),
            "must be at least two pending intervals, or completions can be missed",
        ));
    }
    let steady_reach = effective_overlap(raw.overlap, raw.pending_interval)
        .saturating_add(raw.pending_interval)
        .saturating_add(raw.completed_interval);
    if raw.lookback < steady_reach {
        return Err(ConfigError::invalid(
            k("lookback"),
            format!(
                "must be at least overlap + pending_interval + completed_interval ({}): the completed poll reads that far back in steady state, and lookback caps how far back it may read",
                humantime::format_duration(steady_reach)
            ),
        ));
    }
    if raw.max_body_bytes < 1024 {
        return Err(ConfigError::invalid(
            k("max_body_bytes"),
            "must be at least 1024",
        ));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
