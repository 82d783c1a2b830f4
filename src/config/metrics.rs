//! Label normalisation, cardinality limits and histogram buckets, shared by all tenants.

use regex::Regex;
use serde::Deserialize;

use super::ConfigError;

/// Label normalisation, cardinality limits and histogram buckets, shared by all tenants.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Whether `sailpoint_task_duration_seconds` is broken down by `status` (the
    /// default) or has one histogram per (task_name, source) group: fewer series for
    /// exporters that watch many tenants.
    pub duration_by_status: bool,
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
            duration_by_status: true,
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

/// Equal when the patterns read the same and the replacements are equal.
impl PartialEq for Rewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.replacement == other.replacement
    }
}

mod serde_regex {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))
    }
}

impl MetricsSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
