//! [`WebConfigError`]: why a web config (TLS, basic auth) cannot be used. In a file of its
//! own so that the web config and the parts it loads (TLS files, basic-auth users) all
//! depend on it without depending on each other.

use std::path::PathBuf;

/// Why a web config could not be used. Never contains key material or password hashes.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read web config {path}: {source}")]
    Read {
        /// The web config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The YAML does not have the expected shape.
    #[error("invalid web config: {0}")]
    Syntax(String),
    /// A certificate file is missing or not PEM.
    #[error("cannot load TLS certificate {path}: {message}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The key file is missing or not a PEM private key.
    #[error("cannot load TLS private key {path}: {message}")]
    PrivateKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the combination (key does not match certificate, bad versions…).
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    /// A `basic_auth_users` entry is not a bcrypt hash (plain passwords are refused).
    #[error("basic_auth_users: the password of user {user:?} is not a bcrypt hash")]
    BadHash {
        /// The user whose entry is wrong.
        user: String,
    },
    /// Basic authentication was requested with no users.
    #[error("basic_auth_users is empty")]
    NoUsers,
}
