//! The accept loop: admits connections up to the cap, serves each on its own task, backs off
//! on accept errors, and drains in-flight requests on shutdown.
//!
//! [`serve_connection`] is generic over the IO type: a TLS stream can be handed to it
//! after its handshake without changing routing or limits.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::routes::Routes;
use super::settings::ServerLimits;

/// Sent to a connection over the cap, before closing it, so the client sees why.
pub const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 21\r\n\
Connection: close\r\n\
\r\n\
too many connections\n";

/// Shortest and longest pause after an accept error such as `EMFILE`.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(5);
const LAST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// An accepted socket whose writes fail after `write_timeout` without progress.
type GuardedStream = std::pin::Pin<Box<TimeoutStream<TcpStream>>>;

/// What every connection task shares.
struct ConnectionContext {
    protocol: http1::Builder,
    routes: Arc<Routes>,
    /// Cancelled when the server starts draining.
    draining: CancellationToken,
    tls: Option<TlsAcceptor>,
    /// A TLS handshake is part of getting the request head: same deadline.
    handshake_timeout: Duration,
    write_timeout: Duration,
}

/// The running server: listener, connection cap and the tasks serving connections.
pub struct Acceptor {
    listener: TcpListener,
    context: Arc<ConnectionContext>,
    slots: Arc<Semaphore>,
    connections: JoinSet<()>,
    shutdown_grace: Duration,
}

impl Acceptor {
    /// Prepares to serve `routes` on `listener` within `limits`.
    pub fn new(
        listener: TcpListener,
        routes: Arc<Routes>,
        limits: &ServerLimits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let context = ConnectionContext {
            protocol: protocol(limits),
            routes,
            draining: CancellationToken::new(),
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: limits.header_read_timeout,
            write_timeout: limits.write_timeout,
        };
        Acceptor {
            listener,
            context: Arc::new(context),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            connections: JoinSet::new(),
            shutdown_grace: limits.shutdown_grace,
        }
    }

    /// Accepts until `shutdown` resolves, then drains.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut pause = FIRST_ACCEPT_PAUSE;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        pause = FIRST_ACCEPT_PAUSE;
                        self.admit(stream, peer);
                    }
                    Err(error) if is_peer_error(&error) => {
                        tracing::debug!(%error, "connection failed before it was accepted");
                    }
                    Err(error) => {
                        tracing::warn!(%error, pause = ?pause, "accept failed; pausing");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(LAST_ACCEPT_PAUSE);
                    }
                },
                Some(finished) = self.connections.join_next(), if !self.connections.is_empty() => {
                    log_task_end(finished);
                }
            }
        }
        self.drain().await;
    }

    /// Serves the connection if a slot is free, otherwise answers `503` and closes it.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::debug!(%peer, "connection cap reached; refusing connection");
            refuse(stream, self.context.tls.is_none());
            return;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let context = Arc::clone(&self.context);
        // A client that stops reading must not hold its slot forever once the socket
        // buffers fill: a write without progress for `write_timeout` fails.
        let mut io = TimeoutStream::new(stream);
        io.set_write_timeout(Some(context.write_timeout));
        let io = Box::pin(io);
        match context.tls.clone() {
            Some(acceptor) => self
                .connections
                .spawn(serve_tls(acceptor, io, context, slot)),
            None => self.connections.spawn(serve_connection(io, context, slot)),
        };
    }

    /// Stops accepting, asks every connection to finish its current request, and waits
    /// at most the grace period before dropping the rest.
    async fn drain(mut self) {
        drop(self.listener);
        self.context.draining.cancel();
        let all_done = async {
            while let Some(finished) = self.connections.join_next().await {
                log_task_end(finished);
            }
        };
        if tokio::time::timeout(self.shutdown_grace, all_done)
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.connections.len(),
                "shutdown grace period over; closing remaining connections"
            );
            self.connections.shutdown().await;
        }
    }
}

/// The HTTP/1 settings derived from the limits.
fn protocol(limits: &ServerLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.effective_header_bytes())
        .keep_alive(limits.keep_alive);
    builder
}

/// Completes the TLS handshake within the deadline (abandoned on drain), then serves.
async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: GuardedStream,
    context: Arc<ConnectionContext>,
    slot: OwnedSemaphorePermit,
) {
    let handshake = tokio::time::timeout(context.handshake_timeout, acceptor.accept(stream));
    let outcome = tokio::select! {
        outcome = handshake => outcome,
        () = context.draining.cancelled() => return,
    };
    match outcome {
        Ok(Ok(tls_stream)) => serve_connection(tls_stream, context, slot).await,
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Serves HTTP/1 on any byte stream until the client leaves, an error occurs, or a drain
/// finishes the request in flight. Holds its connection slot until it returns.
async fn serve_connection<I>(io: I, context: Arc<ConnectionContext>, _slot: OwnedSemaphorePermit)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let routes = Arc::clone(&context.routes);
    let service = service_fn(move |request| {
        let routes = Arc::clone(&routes);
        async move { Ok::<_, Infallible>(routes.respond(request).await) }
    });
    let connection = context.protocol.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = context.draining.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and malformed requests are the client's business.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Best-effort `503` (plain HTTP only: a TLS client could not read it) without blocking
/// the accept loop, then close.
fn refuse(stream: TcpStream, plain_http: bool) {
    if plain_http {
        // A fresh socket's send buffer is empty, so this small write does not block.
        let _ = stream.try_write(BUSY_RESPONSE);
    }
    if let Ok(stream) = stream.into_std() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

/// Errors that concern one would-be connection, not the listener: retry at once.
fn is_peer_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

fn log_task_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "connection task panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_response_declares_its_exact_body_length() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
