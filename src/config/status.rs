//! The status page's thresholds and how many failed tasks it keeps.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, MAX_DURATION};

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

impl StatusSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
