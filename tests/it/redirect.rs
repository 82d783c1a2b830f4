//! No credential leaves its origin: a token endpoint that answers `307 Location:` another
//! host must not make `serve` or `check` re-send the token request (whose form body holds
//! the client secret) there. The second host is a loopback listener that counts every
//! connection it accepts; it must accept none, and the refusal must be visible in the
//! log, on the status page and in `check`'s output.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::check_command::{check, line};
use test_support::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "do-not-forward-this-secret";

/// A loopback listener that counts accepted connections and answers each request with
/// `answer` (given the listener's own address).
async fn listener(answer: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                // One read is enough for these small requests; the answer closes.
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, count)
}

/// The redirecting tenant and the host it points to.
async fn redirecting_tenant() -> (SocketAddr, Arc<AtomicUsize>, SocketAddr, Arc<AtomicUsize>) {
    let (elsewhere, received) = listener(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .into(),
    )
    .await;
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{elsewhere}/oauth/token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (tenant, asked) = listener(redirect).await;
    (tenant, asked, elsewhere, received)
}

fn config(dir: &Path, tenant: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("redirect.yaml");
    std::fs::write(
        &path,
        format!(
            "web:\n  listen_address: \"127.0.0.1:0\"\ntenants:\n  - name: acme\n    base_url: http://{tenant}\n    client_id: acme-client\n    client_secret: {SECRET}\n    pending_interval: 1s\n    completed_interval: 1s\n    request_timeout: 3s\n"
        ),
    )
    .unwrap();
    path
}

fn expected_error(elsewhere: SocketAddr) -> String {
    format!("token: HTTP 307 redirect to http://{elsewhere} not followed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_follows_no_redirect_of_the_token_endpoint() {
    let (tenant, asked, elsewhere, received) = redirecting_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        crate::BIN,
        &config(dir.path(), tenant),
        &dir.path().join("log"),
    )
    .await;
    let expected = expected_error(elsewhere);
    let deadline = Instant::now() + Duration::from_secs(30);
    // At least two token requests (the first poll and a later one), each refused.
    loop {
        let status = match daemon.get("/api/v1/status").await {
            Ok((200, body)) => body,
            other => panic!("status API: {other:?}"),
        };
        if asked.load(Ordering::SeqCst) >= 2 && status.contains(&expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no redirect error on the status API: {status}\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = daemon.log_text();
    assert!(log.contains(&expected), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "the other host was contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_follows_no_redirect_of_the_token_endpoint() {
    let (tenant, asked, elsewhere, received) = redirecting_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), tenant);
    let (code, stdout) = check(path).await;
    assert_eq!(code, Some(1), "{stdout}");
    let line = line(&stdout, "reachable");
    assert!(
        line.starts_with(&format!(
            "  reachable       FAILED: {}",
            expected_error(elsewhere)
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET), "{stdout}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one token request, not retried"
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "the other host was contacted"
    );
}
