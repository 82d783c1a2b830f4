//! TLS, mutual TLS and basic authentication from an exporter-toolkit style web config
//! file, end to end: rcgen certificates in a temporary directory, the real server on
//! 127.0.0.1:0, reqwest (rustls) as the client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sailpoint_task_exporter::http::{ServerConfig, WebConfig, WebConfigError, serve};
use sailpoint_task_exporter::metrics::{Exposition, Format, MetricsSource};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const EXPOSITION: &str = "# TYPE sailpoint_up gauge\nsailpoint_up{tenant=\"acme\"} 1\n";

struct ReadySource;

impl MetricsSource for ReadySource {
    fn prerendered(&self, _: Format) -> Option<Exposition> {
        None
    }

    fn exposition(&self, _: Format) -> Exposition {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, EXPOSITION.as_bytes()).unwrap();
        Exposition {
            format: Format::Text,
            gzip: gzip.finish().unwrap().into(),
            text: Some(EXPOSITION.into()),
        }
    }

    fn is_ready(&self) -> bool {
        true
    }
}

/// A test CA plus a server certificate for 127.0.0.1 and a client certificate, as PEM.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
    client_identity_pem: String,
}

impl Pki {
    fn generate() -> Pki {
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

    /// Writes the CA, server certificate and key next to a web config file with `body`.
    fn write(&self, dir: &Path, body: &str) -> std::path::PathBuf {
        std::fs::write(dir.join("ca.pem"), &self.ca_pem).unwrap();
        std::fs::write(dir.join("server.pem"), &self.server_pem).unwrap();
        std::fs::write(dir.join("server.key"), &self.server_key_pem).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, body).unwrap();
        path
    }
}

const TLS_ONLY: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{}", self.addr, path)
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
        stopped.expect("server did not stop").unwrap().unwrap();
    }
}

async fn start(web: WebConfig, header_read_timeout: Option<Duration>) -> Running {
    let mut config = ServerConfig::new("/metrics", "1.2.3", "abcdef0", vec!["acme".into()]);
    config.tls = web.tls;
    config.access = web.access;
    if let Some(timeout) = header_read_timeout {
        config.limits.header_read_timeout = timeout;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let source: Arc<dyn MetricsSource> = Arc::new(ReadySource);
    let handle = tokio::spawn(serve(listener, config, source, shutdown));
    Running { addr, stop, handle }
}

fn trusting_client(pki: &Pki) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn tls_serves_metrics_to_a_client_trusting_the_ca() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let web = WebConfig::load(&pki.write(dir.path(), TLS_ONLY)).unwrap();
    let server = start(web, None).await;

    let client = trusting_client(&pki).build().unwrap();
    let response = client
        .get(server.url("https", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), EXPOSITION);

    // Plain HTTP on the TLS port gets no HTTP response.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        plain
            .get(server.url("http", "/metrics"))
            .send()
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_tls_handshake_is_disconnected_after_header_timeout() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let web = WebConfig::load(&pki.write(dir.path(), TLS_ONLY)).unwrap();
    let timeout = Duration::from_millis(300);
    let server = start(web, Some(timeout)).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("stalled handshake was never cut off");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= timeout, "closed before the timeout");
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
    );
    let web = WebConfig::load(&pki.write(dir.path(), &body)).unwrap();
    let server = start(web, None).await;

    let anonymous = trusting_client(&pki).build().unwrap();
    let refused = anonymous.get(server.url("https", "/metrics")).send().await;
    assert!(refused.is_err(), "served without a client certificate");

    let identity = reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap();
    let client = trusting_client(&pki).identity(identity).build().unwrap();
    let response = client
        .get(server.url("https", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), EXPOSITION);
    server.shutdown().await;
}

#[tokio::test]
async fn basic_auth_users_gate_everything_but_healthy() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    // Cost 4 keeps the unoptimised test build fast; real configs use 10 or more.
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let body = format!("basic_auth_users:\n  Prometheus: '{hash}'\n");
    let web = WebConfig::load(&pki.write(dir.path(), &body)).unwrap();
    assert!(web.tls.is_none());
    let server = start(web, None).await;
    let client = reqwest::Client::new();

    let anonymous = client
        .get(server.url("http", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"sailpoint-task-exporter\""
    );
    let wrong = client
        .get(server.url("http", "/metrics"))
        .basic_auth("Prometheus", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let lowercase_user = client
        .get(server.url("http", "/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lowercase_user.status(),
        401,
        "user names are case-sensitive"
    );
    for _ in 0..2 {
        let allowed = client
            .get(server.url("http", "/metrics"))
            .basic_auth("Prometheus", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 200);
        assert_eq!(allowed.text().await.unwrap(), EXPOSITION);
    }
    let healthy = client
        .get(server.url("http", "/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    server.shutdown().await;
}

#[test]
fn empty_web_config_means_plain_open_http() {
    let web = WebConfig::from_yaml("", Path::new(".")).unwrap();
    assert!(web.tls.is_none() && web.access.is_none());
}

#[test]
fn unsupported_settings_are_refused_not_ignored() {
    let result = WebConfig::from_yaml("http_server_config:\n  http2: false\n", Path::new("."));
    assert!(
        matches!(result, Err(WebConfigError::Syntax(_))),
        "{result:?}"
    );
    let result = WebConfig::from_yaml(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
        Path::new("."),
    );
    assert!(
        matches!(result, Err(WebConfigError::Syntax(_))),
        "{result:?}"
    );
    let result = WebConfig::from_yaml(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequestClientCert\n",
        Path::new("."),
    );
    assert!(
        matches!(result, Err(WebConfigError::Syntax(_))),
        "{result:?}"
    );
}

#[test]
fn plain_text_password_is_refused_without_echoing_it() {
    let result = WebConfig::from_yaml("basic_auth_users:\n  alice: hunter2\n", Path::new("."));
    let error = result.unwrap_err();
    assert!(matches!(&error, WebConfigError::BadHash { user } if user == "alice"));
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn missing_or_mismatched_tls_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = WebConfig::from_yaml(TLS_ONLY, dir.path()).unwrap_err();
    assert!(
        matches!(&missing, WebConfigError::Certificate { path, .. } if path == &dir.path().join("server.pem")),
        "{missing:?}"
    );

    let pki = Pki::generate();
    pki.write(dir.path(), "");
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.path().join("server.key"), other_key).unwrap();
    let mismatched = WebConfig::from_yaml(TLS_ONLY, dir.path()).unwrap_err();
    assert!(
        matches!(mismatched, WebConfigError::Tls(_)),
        "{mismatched:?}"
    );

    let needs_ca = format!("{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n");
    pki.write(dir.path(), "");
    let error = WebConfig::from_yaml(&needs_ca, dir.path()).unwrap_err();
    assert!(matches!(error, WebConfigError::Tls(_)), "{error:?}");

    let inverted = format!("{TLS_ONLY}  min_version: TLS13\n  max_version: TLS12\n");
    let error = WebConfig::from_yaml(&inverted, dir.path()).unwrap_err();
    assert!(matches!(error, WebConfigError::Tls(_)), "{error:?}");
}
