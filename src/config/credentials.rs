//! How a tenant authenticates: the secret resolved from whichever key holds it, kept as a
//! [`SecretString`] that no `Debug` output shows, and compared in constant time (so a
//! rotated secret restarts the tenant on reload without the secret ever being printed).

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::raw::RawTenant;

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

/// Equal when the same kind with the same id and secret; secrets are compared in constant
/// time and never leave this function.
impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Credentials::ClientCredentials {
                    client_id: a,
                    client_secret: s,
                },
                Credentials::ClientCredentials {
                    client_id: b,
                    client_secret: t,
                },
            ) => a == b && same_secret(s, t),
            (Credentials::StaticToken(s), Credentials::StaticToken(t)) => same_secret(s, t),
            _ => false,
        }
    }
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// Resolves the credentials of the tenant at `key` from its `access_token*` and
    /// `client_*` keys: exactly one source, not empty.
    pub(crate) fn resolve(raw: &RawTenant, key: &str) -> Result<Credentials, ConfigError> {
        let k = |field: &str| format!("{key}.{field}");
        let token = match (&raw.access_token, &raw.access_token_file) {
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
            raw.client_secret.is_some(),
            raw.client_secret_file.is_some(),
            raw.client_secret_env.is_some(),
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
        if raw.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                k("client_id"),
                "is required (or set access_token)",
            ));
        }
        let secret = if let Some(s) = &raw.client_secret {
            s.clone()
        } else if let Some(path) = &raw.client_secret_file {
            read_secret_file(path, &k("client_secret_file"))?
        } else if let Some(var) = &raw.client_secret_env {
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
            client_id: raw.client_id.clone(),
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
