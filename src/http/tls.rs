//! TLS for the metrics endpoint: builds a rustls server configuration from PEM files, the
//! way the exporter-toolkit `tls_server_config` block describes it.
//!
//! Only HTTP/1.1 is offered (ALPN `http/1.1`); the crypto provider is `ring`, the one
//! the SailPoint client already links.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::web_config_error::WebConfigError;

/// Whether and how clients must present certificates (exporter-toolkit names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    NoClientCert,
    /// A certificate is optional, but one that is sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate chaining to `client_ca_file` is mandatory (mutual TLS).
    RequireAndVerifyClientCert,
}

/// TLS protocol versions rustls can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

/// Where the server certificate and key are, and what is asked of clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// PEM CA bundle that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest version accepted; default TLS 1.2.
    pub min_version: TlsVersion,
    /// Highest version accepted; default TLS 1.3.
    pub max_version: TlsVersion,
}

impl TlsFiles {
    /// Server certificate and key only, TLS 1.2 and 1.3, no client certificates.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_auth: ClientAuth::NoClientCert,
            client_ca_file: None,
            min_version: TlsVersion::TLS12,
            max_version: TlsVersion::TLS13,
        }
    }

    /// Reads the files and builds the configuration handed to
    /// [`ServerConfig::tls`](super::ServerConfig::tls).
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, WebConfigError> {
        let certs = load_certs(&self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|error| {
            WebConfigError::PrivateKey {
                path: self.key_file.clone(),
                message: error.to_string(),
            }
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&self.versions()?)
            .map_err(tls_error)?;
        let builder = match self.client_verifier(provider)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(tls_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
        if self.min_version > self.max_version {
            return Err(WebConfigError::Tls(
                "min_version is newer than max_version".to_string(),
            ));
        }
        let wanted = |version| self.min_version <= version && version <= self.max_version;
        let mut versions = Vec::new();
        if wanted(TlsVersion::TLS12) {
            versions.push(&rustls::version::TLS12);
        }
        if wanted(TlsVersion::TLS13) {
            versions.push(&rustls::version::TLS13);
        }
        Ok(versions)
    }

    fn client_verifier(
        &self,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, WebConfigError> {
        let optional = match self.client_auth {
            ClientAuth::NoClientCert => return Ok(None),
            ClientAuth::VerifyClientCertIfGiven => true,
            ClientAuth::RequireAndVerifyClientCert => false,
        };
        let Some(ca_file) = &self.client_ca_file else {
            return Err(WebConfigError::Tls(
                "client_auth_type needs client_ca_file".to_string(),
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in load_certs(ca_file)? {
            roots.add(cert).map_err(tls_error)?;
        }
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map(Some).map_err(tls_error)
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certificate_error = |message: String| WebConfigError::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| certificate_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if certs.is_empty() {
        return Err(certificate_error("no certificate found".to_string()));
    }
    Ok(certs)
}

fn tls_error(error: impl std::fmt::Display) -> WebConfigError {
    WebConfigError::Tls(error.to_string())
}
