//! The web layer's test kit: a throwaway certificate authority with a server certificate
//! for 127.0.0.1 and a client certificate (for TLS and mutual TLS), and requests that
//! carry basic-auth credentials or none.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test CA plus a server certificate for 127.0.0.1 and a client certificate, as PEM.
pub struct Pki {
    /// The CA certificate (what clients trust, and what verifies client certificates).
    pub ca_pem: String,
    /// The server certificate, for `127.0.0.1`.
    pub server_pem: String,
    /// The server certificate's private key.
    pub server_key_pem: String,
    /// The client certificate followed by its key (a `reqwest::Identity`).
    pub client_identity_pem: String,
}

impl Pki {
    /// A fresh CA and the two certificates it signs.
    pub fn generate() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "exporter test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let server_pem = server_params.signed_by(&server_key, &issuer).unwrap().pem();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "prometheus");
        let client_pem = client_params.signed_by(&client_key, &issuer).unwrap().pem();

        Pki {
            ca_pem,
            server_pem,
            server_key_pem: server_key.serialize_pem(),
            client_identity_pem: format!("{}{}", client_pem, client_key.serialize_pem()),
        }
    }
}

/// `GET url` with basic-auth `login` (user, password) when given; the answer, or why
/// there was none.
pub async fn get_as(
    client: &reqwest::Client,
    url: &str,
    login: Option<(&str, &str)>,
) -> reqwest::Result<reqwest::Response> {
    let request = client.get(url);
    match login {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    }
    .send()
    .await
}
