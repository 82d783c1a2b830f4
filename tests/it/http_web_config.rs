//! TLS, mutual TLS and basic authentication from an exporter-toolkit style web config
//! file, end to end: rcgen certificates in a temporary directory, the real server on
//! 127.0.0.1:0, reqwest (rustls) as the client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::KeyPair;
use sailpoint_task_exporter::http::{ServerConfig, WebConfig, WebConfigError, serve};
use sailpoint_task_exporter::metrics::{Exposition, Format, MetricsSource};
use test_support::web::{Pki, get_as};
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

/// Writes the CA, server certificate and key of `pki` next to a web config file with
/// `body`; returns the file.
fn write(pki: &Pki, dir: &Path, body: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.join("server.pem"), &pki.server_pem).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(&path, body).unwrap();
    path
}

/// A fresh PKI in a temporary folder, and the web config `body` loaded from there.
fn web_config(body: &str) -> (Pki, tempfile::TempDir, WebConfig) {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let web = WebConfig::load(&write(&pki, dir.path(), body)).unwrap();
    (pki, dir, web)
}

/// `GET url` with `login` answers 200 with the exposition.
async fn assert_serves_exposition(
    client: &reqwest::Client,
    url: &str,
    login: Option<(&str, &str)>,
) {
    let response = get_as(client, url, login).await.unwrap();
    assert_eq!(response.status(), 200, "{url} as {login:?}");
    assert_eq!(
        response.text().await.unwrap(),
        EXPOSITION,
        "{url} as {login:?}"
    );
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
    let (pki, _dir, web) = web_config(TLS_ONLY);
    let server = start(web, None).await;

    let client = trusting_client(&pki).build().unwrap();
    assert_serves_exposition(&client, &server.url("https", "/metrics"), None).await;

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
    let (_pki, _dir, web) = web_config(TLS_ONLY);
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
    let body = format!(
        "{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
    );
    let (pki, _dir, web) = web_config(&body);
    let server = start(web, None).await;

    let anonymous = trusting_client(&pki).build().unwrap();
    let refused = anonymous.get(server.url("https", "/metrics")).send().await;
    assert!(refused.is_err(), "served without a client certificate");

    let identity = reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap();
    let client = trusting_client(&pki).identity(identity).build().unwrap();
    assert_serves_exposition(&client, &server.url("https", "/metrics"), None).await;
    server.shutdown().await;
}

#[tokio::test]
async fn basic_auth_users_gate_everything_but_healthy() {
    // Cost 4 keeps the unoptimised test build fast; real configs use 10 or more.
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let (_pki, _dir, web) = web_config(&format!("basic_auth_users:\n  Prometheus: '{hash}'\n"));
    assert!(web.tls.is_none());
    let server = start(web, None).await;
    let client = reqwest::Client::new();
    let metrics = server.url("http", "/metrics");

    for (what, login) in [
        ("anonymous", None),
        ("a wrong password", Some(("Prometheus", "wrong"))),
        (
            "user names are case-sensitive",
            Some(("prometheus", "s3cret")),
        ),
    ] {
        let refused = get_as(&client, &metrics, login).await.unwrap();
        assert_eq!(refused.status(), 401, "{what}");
        assert_eq!(
            refused.headers()["www-authenticate"],
            "Basic realm=\"sailpoint-task-exporter\"",
            "{what}"
        );
    }
    for _ in 0..2 {
        assert_serves_exposition(&client, &metrics, Some(("Prometheus", "s3cret"))).await;
    }
    let healthy = get_as(&client, &server.url("http", "/-/healthy"), None).await;
    assert_eq!(healthy.unwrap().status(), 200);
    server.shutdown().await;
}

#[test]
fn empty_web_config_means_plain_open_http() {
    let web = WebConfig::from_yaml("", Path::new(".")).unwrap();
    assert!(web.tls.is_none() && web.access.is_none());
}

#[test]
fn unsupported_settings_are_refused_not_ignored() {
    for yaml in [
        "http_server_config:\n  http2: false\n",
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequestClientCert\n",
    ] {
        let result = WebConfig::from_yaml(yaml, Path::new("."));
        assert!(
            matches!(result, Err(WebConfigError::Syntax(_))),
            "{yaml}: {result:?}"
        );
    }
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
    write(&pki, dir.path(), "");
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.path().join("server.key"), other_key).unwrap();
    let mismatched = WebConfig::from_yaml(TLS_ONLY, dir.path()).unwrap_err();
    assert!(
        matches!(mismatched, WebConfigError::Tls(_)),
        "{mismatched:?}"
    );

    let needs_ca = format!("{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n");
    write(&pki, dir.path(), "");
    let error = WebConfig::from_yaml(&needs_ca, dir.path()).unwrap_err();
    assert!(matches!(error, WebConfigError::Tls(_)), "{error:?}");

    let inverted = format!("{TLS_ONLY}  min_version: TLS13\n  max_version: TLS12\n");
    let error = WebConfig::from_yaml(&inverted, dir.path()).unwrap_err();
    assert!(matches!(error, WebConfigError::Tls(_)), "{error:?}");
}
