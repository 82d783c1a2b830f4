//! Sharding: which share of the tenants this replica polls.

use super::ConfigError;
use super::raw::RawSharding;

/// Largest shard count: far beyond any sensible number of replicas.
pub const MAX_SHARDS: u32 = 1024;

/// Sharding: `count` replicas read the same configuration and each polls only the
/// tenants whose shard (see [`crate::shard`]) is its `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingSettings {
    /// Number of replicas the tenants are spread over; 1 = no sharding.
    pub count: u32,
    /// This replica's shard, `0..count`, resolved from `index` or the host name.
    index: u32,
}

/// No sharding: one replica polls every tenant.
impl Default for ShardingSettings {
    fn default() -> Self {
        ShardingSettings { count: 1, index: 0 }
    }
}

impl ShardingSettings {
    /// This replica's shard.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether this replica polls the tenant called `name`.
    pub fn owns(&self, name: &str) -> bool {
        crate::shard::shard_of(name, self.count) == self.index
    }

    /// Checks the count and resolves the index (from the host name when asked).
    pub(crate) fn parse(raw: &RawSharding) -> Result<ShardingSettings, ConfigError> {
        if !(1..=MAX_SHARDS).contains(&raw.count) {
            return Err(ConfigError::invalid(
                "sharding.count",
                format!("must be between 1 and {MAX_SHARDS}"),
            ));
        }
        let index = match (raw.index, raw.index_from_hostname) {
            (Some(_), true) => {
                return Err(ConfigError::invalid(
                    "sharding.index",
                    "set index or index_from_hostname, not both",
                ));
            }
            (Some(i), false) => i,
            (None, true) => hostname_ordinal()?,
            (None, false) if raw.count == 1 => 0,
            (None, false) => {
                return Err(ConfigError::invalid(
                    "sharding.index",
                    "is required when sharding.count is above 1 (or set index_from_hostname)",
                ));
            }
        };
        if index >= raw.count {
            return Err(ConfigError::invalid(
                "sharding.index",
                format!(
                    "{index} is not a shard of {} (0 to {})",
                    raw.count,
                    raw.count - 1
                ),
            ));
        }
        Ok(ShardingSettings {
            count: raw.count,
            index,
        })
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
