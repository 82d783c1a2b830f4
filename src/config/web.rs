//! Where and how `/metrics` is served.

use serde::Deserialize;

use super::{ConfigError, DEFAULT_LISTEN_ADDRESS};

/// Where and how `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// `IP:port` to listen on.
    pub listen_address: String,
    /// Path of the metrics endpoint (not `/`, not under `/-/`).
    pub telemetry_path: String,
    /// exporter-toolkit style web configuration (TLS, basic auth); empty = none.
    pub config_file: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen_address: DEFAULT_LISTEN_ADDRESS.to_string(),
            telemetry_path: "/metrics".to_string(),
            config_file: String::new(),
        }
    }
}

impl WebSettings {
    /// The listen address is an `IP:port`; the metrics path is absolute, not `/` and not
    /// under `/-/`.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.listen_address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "web.listen_address",
                format!("{:?} is not an IP:port address", self.listen_address),
            ));
        }
        let path = &self.telemetry_path;
        if !path.starts_with('/') || path.len() < 2 || path.starts_with("/-/") {
            return Err(ConfigError::invalid(
                "web.telemetry_path",
                "must start with '/', not be '/' and not be under '/-/'",
            ));
        }
        Ok(())
    }
}
