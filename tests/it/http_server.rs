//! End-to-end tests of the HTTP server: the real server on 127.0.0.1:0, a fake metrics
//! source with a known exposition, and reqwest or raw TCP as the client.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sailpoint_task_exporter::http::{
    AccessPolicy, BUSY_RESPONSE, Denied, METRICS_CONTENT_TYPE, ServerConfig, serve,
};
use sailpoint_task_exporter::metrics::{Exposition, Format, MetricsSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

const EXPOSITION: &str = "# HELP sailpoint_up Whether the last poll succeeded.\n\
# TYPE sailpoint_up gauge\n\
sailpoint_up{tenant=\"acme\"} 1\n\
# HELP sailpoint_tasks_pending Pending tasks.\n\
# TYPE sailpoint_tasks_pending gauge\n\
sailpoint_tasks_pending{tenant=\"acme\",task_type=\"QUARTZ\"} 3\n";

/// `body` in `format` as the metric state keeps it: gzip-compressed, and as it is.
fn exposition(format: Format, body: &[u8]) -> Exposition {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, body).unwrap();
    Exposition {
        format,
        gzip: encoder.finish().unwrap().into(),
        text: Some(bytes::Bytes::copy_from_slice(body)),
    }
}

/// A metrics source with a fixed exposition, kept nowhere (every scrape renders), a
/// readiness switch, and a gate that can hold the rendering (to simulate a slow render
/// or keep a request in flight).
#[derive(Default)]
struct FakeSource {
    ready: AtomicBool,
    hold: AtomicBool,
    rendering: Notify,
}

impl FakeSource {
    fn ready() -> Arc<Self> {
        let source = FakeSource::default();
        source.ready.store(true, Ordering::SeqCst);
        Arc::new(source)
    }

    fn held() -> Arc<Self> {
        let source = FakeSource::default();
        source.hold.store(true, Ordering::SeqCst);
        Arc::new(source)
    }

    fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
    }
}

impl MetricsSource for FakeSource {
    fn prerendered(&self, _: Format) -> Option<Exposition> {
        None
    }

    fn exposition(&self, _: Format) -> Exposition {
        self.rendering.notify_one();
        // Bounded, so a failing test cannot hang the runtime's shutdown on this thread.
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.hold.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        exposition(Format::Text, EXPOSITION.as_bytes())
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn request_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
    }

    async fn shutdown(mut self) {
        self.request_shutdown();
        let result = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("server did not stop");
        result.unwrap().unwrap();
    }
}

fn config() -> ServerConfig {
    ServerConfig::new(
        "/metrics",
        "1.2.3",
        "abcdef0",
        vec!["acme".to_string(), "globex".to_string()],
    )
}

async fn start(config: ServerConfig, source: Arc<dyn MetricsSource>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let handle = tokio::spawn(serve(listener, config, source, shutdown));
    Running {
        addr,
        stop: Some(stop),
        handle,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `GET path`, with `Accept-Encoding: accept_encoding` when given.
async fn get(server: &Running, path: &str, accept_encoding: Option<&str>) -> reqwest::Response {
    let mut request = client().get(server.url(path));
    if let Some(accept) = accept_encoding {
        request = request.header("Accept-Encoding", accept);
    }
    request.send().await.unwrap()
}

/// A 200 answer of `/metrics` in the text format, with `content-encoding: encoding` (none
/// when `None`) and the `vary` header caches need.
fn assert_text_metrics(response: &reqwest::Response, encoding: Option<&str>) {
    assert_eq!(response.status(), 200);
    assert_eq!(header(response, "content-encoding"), encoding);
    assert_eq!(header(response, "vary"), Some("Accept, Accept-Encoding"));
    assert_eq!(header(response, "content-type"), Some(METRICS_CONTENT_TYPE));
}

/// `GET path` with `accept_encoding` answers the exposition uncompressed.
async fn assert_served_uncompressed(path: &str, accept_encoding: Option<&str>) {
    let server = start(config(), FakeSource::ready()).await;
    let response = get(&server, path, accept_encoding).await;
    assert_text_metrics(&response, None);
    let body = response.text().await.unwrap();
    assert_eq!(body, EXPOSITION, "{path} {accept_encoding:?}");
    server.shutdown().await;
}

/// `GET path` answers `status` with `body`.
async fn assert_get(server: &Running, path: &str, status: u16, body: &str) {
    let response = get(server, path, None).await;
    assert_eq!(response.status(), status, "{path}");
    assert_eq!(response.text().await.unwrap(), body, "{path}");
}

/// A server with `config()` changed by `tweak`, whose source holds every render until
/// released.
async fn start_held(tweak: impl FnOnce(&mut ServerConfig)) -> (Running, Arc<FakeSource>) {
    let mut config = config();
    tweak(&mut config);
    let source = FakeSource::held();
    (start(config, source.clone()).await, source)
}

/// Decompresses a gzip body.
fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Writes `request` on a fresh connection and reads until the server closes it. A reset
/// after the response counts as a close; the bytes read before it are kept.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("server neither answered nor closed");
        match read {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn metrics_serves_exact_text_and_headers() {
    let server = start(config(), FakeSource::ready()).await;
    let response = get(&server, "/metrics", None).await;
    assert_text_metrics(&response, None);
    assert_eq!(
        METRICS_CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let length = EXPOSITION.len().to_string();
    assert_eq!(header(&response, "content-length"), Some(length.as_str()));
    assert_eq!(response.text().await.unwrap(), EXPOSITION);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_client_accepts_gzip() {
    let server = start(config(), FakeSource::ready()).await;
    let response = get(&server, "/metrics", Some("gzip")).await;
    assert_text_metrics(&response, Some("gzip"));
    let compressed = response.bytes().await.unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "gzip magic number");
    assert_eq!(gunzip(&compressed), EXPOSITION);
    server.shutdown().await;
}

/// A source that keeps its exposition only gzip-compressed (as the exporter does for a
/// large one).
struct GzipOnlySource(bytes::Bytes);

impl MetricsSource for GzipOnlySource {
    fn prerendered(&self, _: Format) -> Option<Exposition> {
        Some(Exposition {
            format: Format::Text,
            gzip: self.0.clone(),
            text: None,
        })
    }

    fn exposition(&self, _: Format) -> Exposition {
        panic!("a kept gzip is served without rendering");
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_kept_gzip_is_decoded_while_sent_to_a_plain_client_and_copied_to_a_gzip_one() {
    // Several frames of decoded text.
    let text: String = (0..20_000)
        .map(|i| format!("sailpoint_up{{tenant=\"t{i}\"}} 1\n"))
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
    let compressed = bytes::Bytes::from(encoder.finish().unwrap());
    let server = start(config(), Arc::new(GzipOnlySource(compressed.clone()))).await;

    let plain = get(&server, "/metrics", None).await;
    assert_text_metrics(&plain, None);
    assert_eq!(header(&plain, "transfer-encoding"), Some("chunked"));
    assert_eq!(plain.text().await.unwrap(), text);

    let gzipped = get(&server, "/metrics", Some("gzip")).await;
    assert_text_metrics(&gzipped, Some("gzip"));
    assert_eq!(gzipped.bytes().await.unwrap(), compressed, "the kept bytes");

    // HEAD: the head of the plain answer, no body.
    assert_head_of_metrics_has_no_body(server.addr).await;
    server.shutdown().await;
}

/// A source that keeps every format, each body naming its format.
struct FormatSource;

impl MetricsSource for FormatSource {
    fn prerendered(&self, format: Format) -> Option<Exposition> {
        Some(exposition(format, format!("{format:?}").as_bytes()))
    }

    fn exposition(&self, _: Format) -> Exposition {
        panic!("every format is kept");
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn the_accept_header_chooses_the_format_as_prometheus_asks_for_it() {
    let server = start(config(), Arc::new(FormatSource)).await;
    for (accept, body, content_type) in [
        (None, "Text", "text/plain; version=0.0.4; charset=utf-8"),
        (
            Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            "OpenMetrics",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        (
            Some(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            "Protobuf",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
        ),
    ] {
        let mut request = client().get(server.url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            header(&response, "content-type"),
            Some(content_type),
            "{accept:?}"
        );
        assert_eq!(header(&response, "vary"), Some("Accept, Accept-Encoding"));
        assert_eq!(response.text().await.unwrap(), body, "{accept:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_not_gzipped_when_gzip_has_q_zero() {
    assert_served_uncompressed("/metrics", Some("gzip;q=0, identity")).await;
}

#[tokio::test]
async fn head_metrics_sends_headers_without_body() {
    let server = start(config(), FakeSource::ready()).await;
    let response = client().head(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        Some(METRICS_CONTENT_TYPE)
    );
    let length = EXPOSITION.len().to_string();
    assert_eq!(header(&response, "content-length"), Some(length.as_str()));

    assert_head_of_metrics_has_no_body(server.addr).await;
    server.shutdown().await;
}

/// `HEAD /metrics` on the wire: a 200 whose head ends the answer (nothing follows the
/// blank line).
async fn assert_head_of_metrics_has_no_body(addr: SocketAddr) {
    let raw = raw_exchange(
        addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(
        raw.ends_with("\r\n\r\n"),
        "HEAD response carried a body: {raw:?}"
    );
}

#[tokio::test]
async fn landing_page_links_the_configured_metrics_path() {
    let mut config = config();
    config.telemetry_path = "/custom-metrics".to_string();
    let server = start(config, FakeSource::ready()).await;
    let client = client();

    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("<a href=\"/custom-metrics\">"), "{page}");
    assert!(page.contains("Version 1.2.3, revision abcdef0"), "{page}");
    assert!(page.contains("<a href=\"/-/healthy\">"), "{page}");
    assert!(page.contains("<a href=\"/-/ready\">"), "{page}");
    assert!(page.contains("<li>acme</li>") && page.contains("<li>globex</li>"));

    let metrics = client
        .get(server.url("/custom-metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.text().await.unwrap(), EXPOSITION);
    let default_path = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(default_path.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn healthy_is_ok_even_before_ready() {
    let server = start(config(), Arc::new(FakeSource::default())).await;
    assert_get(&server, "/-/healthy", 200, "OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn ready_is_503_until_the_source_is_ready_then_200() {
    let source = Arc::new(FakeSource::default());
    let server = start(config(), source.clone()).await;
    let waiting = "not ready: waiting for the first poll of every tenant\n";
    assert_get(&server, "/-/ready", 503, waiting).await;
    source.ready.store(true, Ordering::SeqCst);
    assert_get(&server, "/-/ready", 200, "OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = start(config(), FakeSource::ready()).await;
    for path in ["/nope", "/metrics/", "/-/", "/metricsx", "/-/healthy/x"] {
        assert_get(&server, path, 404, "not found\n").await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let server = start(config(), FakeSource::ready()).await;
    let client = client();
    let cases = [
        (reqwest::Method::POST, "/metrics"),
        (reqwest::Method::PUT, "/"),
        (reqwest::Method::DELETE, "/-/healthy"),
        (reqwest::Method::OPTIONS, "/-/ready"),
    ];
    for (method, path) in cases {
        let response = client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(header(&response, "allow"), Some("GET, HEAD"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn query_strings_do_not_change_the_route() {
    assert_served_uncompressed("/metrics?name[]=sailpoint_up", None).await;
}

#[tokio::test]
async fn huge_request_header_gets_431() {
    let server = start(config(), FakeSource::ready()).await;
    let big = "a".repeat(64 * 1024);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let raw = raw_exchange(server.addr, request.as_bytes()).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{raw}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn header_just_under_the_limit_is_served() {
    let server = start(config(), FakeSource::ready()).await;
    let response = client()
        .get(server.url("/-/healthy"))
        .header("X-Big", "a".repeat(12 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_request_line_is_disconnected_after_header_timeout() {
    let mut config = config();
    let timeout = Duration::from_millis(300);
    config.limits.header_read_timeout = timeout;
    let server = start(config, FakeSource::ready()).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /metr").await.unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(started.elapsed() >= timeout, "closed before the timeout");
    server.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_header_timeout() {
    let mut config = config();
    config.limits.header_read_timeout = Duration::from_millis(300);
    let server = start(config, FakeSource::ready()).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.ends_with("\r\n\r\nOK"), "{received}");
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start(config(), FakeSource::ready()).await;
    let raw = raw_exchange(
        server.addr,
        b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /-/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let raw = String::from_utf8(raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{raw}");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_are_closed() {
    let mut config = config();
    config.limits.max_connections = 2;
    let server = start(config, FakeSource::ready()).await;

    // Two idle connections take both slots (accepted in order, before the third).
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut third).await, BUSY_RESPONSE);

    // Freeing a slot lets a new client in (the server notices the close asynchronously).
    drop(first);
    let client = client();
    let mut status = 0;
    for _ in 0..200 {
        let response = client.get(server.url("/-/healthy")).send().await;
        status = response.map(|r| r.status().as_u16()).unwrap_or(0);
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn request_timeout_answers_503() {
    let (server, source) =
        start_held(|c| c.limits.request_timeout = Duration::from_millis(200)).await;

    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "request timed out\n");
    source.release();
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_the_in_flight_request_finish() {
    let (mut server, source) = start_held(|_| {}).await;

    let scrape = tokio::spawn(client().get(server.url("/metrics")).send());
    source.rendering.notified().await;
    server.request_shutdown();

    // The listener closes: new connections are refused.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still accepting after shutdown");
    assert!(
        !server.handle.is_finished(),
        "returned with a request in flight"
    );

    source.release();
    let response = scrape.await.unwrap().unwrap();
    assert_text_metrics(&response, None);
    assert_eq!(response.text().await.unwrap(), EXPOSITION);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_gives_up_on_stuck_requests_after_the_grace_period() {
    let (mut server, source) =
        start_held(|c| c.limits.shutdown_grace = Duration::from_millis(200)).await;

    let scrape = tokio::spawn(client().get(server.url("/metrics")).send());
    source.rendering.notified().await;
    server.request_shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut server.handle).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(
        scrape.await.unwrap().is_err(),
        "stuck scrape should be cut off"
    );
    source.release();
}

#[tokio::test]
async fn many_parallel_scrapes_all_succeed() {
    let server = start(config(), FakeSource::ready()).await;
    let client = client();
    let scrapes = (0..64).map(|i| {
        let request = client.get(server.url("/metrics"));
        let request = if i % 2 == 0 {
            request.header("Accept-Encoding", "gzip")
        } else {
            request
        };
        async move {
            let response = request.send().await.unwrap();
            let gzipped = header(&response, "content-encoding") == Some("gzip");
            (response.status(), gzipped, response.bytes().await.unwrap())
        }
    });
    for (status, gzipped, body) in futures::future::join_all(scrapes).await {
        assert_eq!(status, 200);
        let text = if gzipped {
            gunzip(&body)
        } else {
            String::from_utf8(body.to_vec()).unwrap()
        };
        assert_eq!(text, EXPOSITION);
    }
    server.shutdown().await;
}

/// Lets requests through only with `Authorization: Bearer letmein`.
struct BearerOnly;

impl AccessPolicy for BearerOnly {
    fn check(&self, _path: &str, headers: &hyper::HeaderMap) -> Result<(), Denied> {
        match headers.get("authorization") {
            Some(value) if value == "Bearer letmein" => Ok(()),
            _ => Err(Denied {
                challenge: "Bearer realm=\"test\"".to_string(),
            }),
        }
    }
}

#[tokio::test]
async fn access_policy_gates_every_path_but_healthy() {
    let mut config = config();
    config.access = Some(Arc::new(BearerOnly));
    let server = start(config, FakeSource::ready()).await;
    let client = client();

    for path in ["/metrics", "/", "/-/ready", "/unknown"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer realm=\"test\"")
        );
    }
    let healthy = client.get(server.url("/-/healthy")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let allowed = client.get(server.url("/metrics"));
    let allowed = allowed.header("Authorization", "Bearer letmein");
    let allowed = allowed.send().await.unwrap();
    assert_text_metrics(&allowed, None);
    assert_eq!(allowed.text().await.unwrap(), EXPOSITION);
    server.shutdown().await;
}

#[tokio::test]
async fn unusable_config_is_rejected_before_serving() {
    let relative_path: fn(&mut ServerConfig) = |c| c.telemetry_path = "metrics".to_string();
    let no_connections: fn(&mut ServerConfig) = |c| c.limits.max_connections = 0;
    for (what, unusable) in [
        ("a relative telemetry path", relative_path),
        ("no connections", no_connections),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = config();
        unusable(&mut config);
        let error = serve(
            listener,
            config,
            FakeSource::ready(),
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{what}");
    }
}

/// A source whose exposition is far larger than the loopback socket buffers.
struct HugeSource;

const HUGE_BODY_BYTES: usize = 32 * 1024 * 1024;

impl MetricsSource for HugeSource {
    fn prerendered(&self, _: Format) -> Option<Exposition> {
        None
    }

    fn exposition(&self, format: Format) -> Exposition {
        static HUGE: std::sync::OnceLock<Exposition> = std::sync::OnceLock::new();
        HUGE.get_or_init(|| exposition(format, &vec![b'#'; HUGE_BODY_BYTES]))
            .clone()
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn client_that_stops_reading_is_cut_off_after_write_timeout() {
    let mut config = config();
    config.limits.max_connections = 1;
    config.limits.write_timeout = Duration::from_millis(300);
    let server = start(config, Arc::new(HugeSource)).await;

    // Requests 32 MiB and reads nothing: it holds the only slot until the write stalls.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let probe = b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_exchange(server.addr, probe).await, BUSY_RESPONSE);

    let mut answer = Vec::new();
    for _ in 0..500 {
        answer = raw_exchange(server.addr, probe).await;
        if answer != BUSY_RESPONSE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    // The stalled client got part of the response, then the close.
    let received = read_until_closed(&mut stalled).await;
    assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(received.len() < HUGE_BODY_BYTES, "{} bytes", received.len());
    server.shutdown().await;
}
