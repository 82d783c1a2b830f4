//! The `--web.config.file` of the Prometheus exporter-toolkit: TLS and basic
//! authentication for the metrics endpoint, in the same YAML operators already use for
//! node_exporter.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type` of
//! `NoClientCert`, `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`,
//! `client_ca_file`, `min_version`/`max_version` of `TLS12`/`TLS13`) and
//! `basic_auth_users` (bcrypt hashes). Anything else is refused with an error rather than
//! silently ignored, so an operator never believes a setting is in force when it is not.
//! Relative file names are resolved against the web config file's directory, as the
//! exporter-toolkit does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::access::AccessPolicy;
use super::basic_auth::BasicAuthUsers;
use super::tls::{ClientAuth, TlsFiles, TlsVersion};
pub use super::web_config_error::WebConfigError;

/// What a web config file turns into: plug both into [`ServerConfig`](super::ServerConfig).
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS settings for [`ServerConfig::tls`](super::ServerConfig::tls); `None` = plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic-auth policy for [`ServerConfig::access`](super::ServerConfig::access).
    pub access: Option<Arc<dyn AccessPolicy>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.access.is_some())
            .finish()
    }
}

/// The file as written. No `Debug`: it holds the bcrypt hashes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsSection>,
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: ClientAuth,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

impl WebConfig {
    /// Reads and applies a web config file; certificates and keys are loaded now, so
    /// mistakes surface at start-up.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        WebConfig::from_yaml(&text, base)
    }

    /// Parses web config YAML; relative file names are resolved against `base_dir`.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<WebConfig, WebConfigError> {
        let file: WebConfigFile = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Yaml))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|error| WebConfigError::Syntax(error.to_string()))?;
        let tls = match file.tls_server_config {
            Some(section) => Some(section.into_files(base_dir).load()?),
            None => None,
        };
        let access = if file.basic_auth_users.is_empty() {
            None
        } else {
            let users = BasicAuthUsers::new(file.basic_auth_users)?;
            Some(Arc::new(users) as Arc<dyn AccessPolicy>)
        };
        Ok(WebConfig { tls, access })
    }
}

impl TlsSection {
    fn into_files(self, base_dir: &Path) -> TlsFiles {
        let mut files = TlsFiles::new(base_dir.join(self.cert_file), base_dir.join(self.key_file));
        files.client_auth = self.client_auth_type;
        files.client_ca_file = self.client_ca_file.map(|ca| base_dir.join(ca));
        files.min_version = self.min_version.unwrap_or(files.min_version);
        files.max_version = self.max_version.unwrap_or(files.max_version);
        files
    }
}
