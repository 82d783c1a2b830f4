//! The one configuration error type: every problem names the offending key.

use std::path::PathBuf;

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
    pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}
