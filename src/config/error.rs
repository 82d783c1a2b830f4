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
    /// A parse error from the `config` crate, made readable: key paths written the one way
    /// this crate writes them (`tenants[0].base_url`, where the crate says
    /// `tenants[0]base_url`), and a hint on how to fix the two mistakes people make most
    /// (a URL without its scheme, a duration without its unit).
    pub(crate) fn parse(message: &str) -> Self {
        let mut text = String::with_capacity(message.len() + 64);
        let mut chars = message.chars().peekable();
        while let Some(c) = chars.next() {
            text.push(c);
            if c == ']'
                && chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
            {
                text.push('.');
            }
        }
        if message.contains("relative URL without a base") {
            text.push_str("; a URL needs its scheme, e.g. `https://acme.api.identitynow.com`");
        } else if message.contains("expected a duration") {
            text.push_str("; write a number with its unit, e.g. `30s`, `5m` or `1h 30m`");
        }
        ConfigError::Parse(text)
    }

    pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}
