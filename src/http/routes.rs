//! Maps one request to one response: the metrics path, the status page (or the landing
//! page), the status JSON and the two health endpoints, with access checks, method checks
//! and the per-request deadline.
//!
//! Independent of the connection and IO type, so TLS changes nothing here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    HeaderMap, HeaderValue, REFERRER_POLICY, VARY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};

use super::access::AccessPolicy;
use super::encoding;
use super::landing;
use super::settings::ServerConfig;
use crate::metrics::{Exposition, Format, MetricsSource};
use crate::status::StatusSource;

/// A response body: bytes at hand, or a kept gzip exposition decoded while it is sent.
pub type Body = Either<Full<Bytes>, encoding::Gunzip>;

/// Prometheus text exposition format, version 0.0.4 (served unless the scrape asks for
/// another [`Format`]).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const CSS: &str = "text/css; charset=utf-8";
const STATUS_JSON_PATH: &str = "/api/v1/status";
const STYLESHEET_PATH: &str = "/status.css";
/// Sent with the status page and its JSON and stylesheet: nothing but the same-origin
/// stylesheet may load, no script runs, nothing can frame the page or post from it.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; \
     img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";
/// `/task/{id}`: what one task was (see [`StatusSource::task`]).
const TASK_PATH: &str = "/task/";
const HEALTHY_PATH: &str = "/-/healthy";
const READY_PATH: &str = "/-/ready";
const RELOAD_PATH: &str = "/-/reload";

/// The endpoints this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Metrics,
    Landing,
    StatusPage,
    StatusJson,
    Stylesheet,
    Task,
    Healthy,
    Ready,
    Reload,
}

/// The request handler shared by every connection.
pub struct Routes {
    telemetry_path: String,
    landing_page: Bytes,
    request_timeout: Duration,
    source: Arc<dyn MetricsSource>,
    access: Option<Arc<dyn AccessPolicy>>,
    reload: Option<tokio::sync::mpsc::Sender<super::ReloadRequest>>,
    status: Option<Arc<dyn StatusSource>>,
}

impl Routes {
    /// Prepares the handler; the landing page is rendered here, once.
    pub fn new(config: &ServerConfig, source: Arc<dyn MetricsSource>) -> Self {
        Routes {
            telemetry_path: config.telemetry_path.clone(),
            landing_page: Bytes::from(landing::render(config)),
            request_timeout: config.limits.request_timeout,
            source,
            access: config.access.clone(),
            reload: config.reload.clone(),
            status: config.status.clone(),
        }
    }

    /// Answers a request within the request timeout (`503` past it). Never fails and
    /// never panics: every outcome is an HTTP response.
    pub async fn respond<B>(&self, request: Request<B>) -> Response<Body> {
        let answer = self.route(request.method(), request.uri().path(), request.headers());
        match tokio::time::timeout(self.request_timeout, answer).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(path = request.uri().path(), "request timed out");
                text(StatusCode::SERVICE_UNAVAILABLE, "request timed out\n")
            }
        }
    }

    async fn route(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        let endpoint = self.endpoint(path);
        if endpoint != Some(Endpoint::Healthy)
            && let Some(refusal) = self.refusal(path, headers).await
        {
            return refusal;
        }
        let Some(endpoint) = endpoint else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        if endpoint == Endpoint::Reload {
            if method != Method::POST && method != Method::PUT {
                return method_not_allowed("POST, PUT");
            }
            return self.reload().await;
        }
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        match endpoint {
            Endpoint::Metrics => self.metrics(headers).await,
            Endpoint::Landing => with_type(StatusCode::OK, HTML, self.landing_page.clone()),
            Endpoint::StatusPage => self.status(HTML, |s| Some(s.page())).await,
            Endpoint::StatusJson => self.status(JSON, |s| Some(s.json())).await,
            Endpoint::Stylesheet => {
                self.status(CSS, |s| Some(s.stylesheet().as_bytes().to_vec()))
                    .await
            }
            Endpoint::Task => {
                let id = task_id(path);
                self.status(HTML, move |s| id.and_then(|id| s.task(&id)))
                    .await
            }
            Endpoint::Healthy => text(StatusCode::OK, "OK"),
            Endpoint::Ready => self.readiness(),
            Endpoint::Reload => self.reload().await,
        }
    }

    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        if path == self.telemetry_path {
            return Some(Endpoint::Metrics);
        }
        match path {
            "/" if self.status.is_some() => Some(Endpoint::StatusPage),
            "/" => Some(Endpoint::Landing),
            STATUS_JSON_PATH if self.status.is_some() => Some(Endpoint::StatusJson),
            STYLESHEET_PATH if self.status.is_some() => Some(Endpoint::Stylesheet),
            _ if self.status.is_some() && path.starts_with(TASK_PATH) => Some(Endpoint::Task),
            HEALTHY_PATH => Some(Endpoint::Healthy),
            READY_PATH => Some(Endpoint::Ready),
            RELOAD_PATH => Some(Endpoint::Reload),
            _ => None,
        }
    }

    /// Asks the access policy (on a blocking thread: bcrypt is slow); `None` = go ahead.
    async fn refusal(&self, path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
        let policy = Arc::clone(self.access.as_ref()?);
        let (path, headers) = (path.to_string(), headers.clone());
        let verdict = tokio::task::spawn_blocking(move || policy.check(&path, &headers)).await;
        let denied = match verdict {
            Ok(Ok(())) => return None,
            Ok(Err(denied)) => denied,
            Err(_) => {
                tracing::error!("access check panicked");
                return Some(text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "access check failed\n",
                ));
            }
        };
        let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        if let Ok(challenge) = HeaderValue::from_str(&denied.challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        Some(response)
    }

    fn readiness(&self) -> Response<Body> {
        if self.source.is_ready() {
            text(StatusCode::OK, "OK")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: waiting for the first poll of every tenant\n",
            )
        }
    }

    /// Asks the daemon to reload its configuration and reports the outcome.
    async fn reload(&self) -> Response<Body> {
        let Some(requests) = &self.reload else {
            return text(
                StatusCode::FORBIDDEN,
                "lifecycle API is not enabled (start with --web.enable-lifecycle)\n",
            );
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        if requests.send(reply).await.is_err() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
        }
        match outcome.await {
            Ok(Ok(())) => text(StatusCode::OK, "OK\n"),
            Ok(Err(problem)) => with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                Bytes::from(format!("reload refused: {problem}\n")),
            ),
            Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        }
    }

    /// Renders a status resource off the async workers (it takes the board's locks), with
    /// the hardening headers: strict CSP, no sniffing, no framing, no caching, no referrer.
    /// `404` when `render` finds nothing.
    async fn status(
        &self,
        content_type: &'static str,
        render: impl FnOnce(&dyn StatusSource) -> Option<Vec<u8>> + Send + 'static,
    ) -> Response<Body> {
        let Some(source) = self.status.clone() else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let Ok(body) = tokio::task::spawn_blocking(move || render(source.as_ref())).await else {
            tracing::error!("rendering the status page panicked");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the status failed\n",
            );
        };
        let Some(body) = body else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let mut response = with_type(StatusCode::OK, content_type, Bytes::from(body));
        let headers = response.headers_mut();
        for (name, value) in [
            (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-store"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }

    /// Serves the exposition in the format the `Accept` header negotiates: the
    /// pre-rendered one when the source has a current one, otherwise one rendered off the
    /// async workers, so a large exposition or a source holding a lock cannot stall other
    /// connections, and the deadline still bites. See [`choose`] for the body.
    async fn metrics(&self, headers: &HeaderMap) -> Response<Body> {
        let gzip = encoding::wants_gzip(headers);
        let format = Format::negotiate(
            headers
                .get_all(ACCEPT)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        );
        let exposition = match self.source.prerendered(format) {
            Some(kept) => kept,
            None => {
                let source = Arc::clone(&self.source);
                match tokio::task::spawn_blocking(move || source.exposition(format)).await {
                    Ok(rendered) => rendered,
                    Err(_) => {
                        tracing::error!("rendering metrics panicked");
                        return text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "rendering metrics failed\n",
                        );
                    }
                }
            }
        };
        let served = exposition.format;
        let (body, gzipped) = choose(exposition, gzip);
        let mut response = Response::new(body);
        let response_headers = response.headers_mut();
        response_headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(served.content_type()),
        );
        response_headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if gzipped {
            response_headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// The body to send and whether it is gzip: the kept gzip for a gzip client; for any
/// other the kept body, or, when only the gzip is kept (a large exposition), the gzip
/// decoded while it is sent.
fn choose(exposition: Exposition, gzip: bool) -> (Body, bool) {
    match (gzip, exposition.text) {
        (true, _) => (Either::Left(Full::new(exposition.gzip)), true),
        (false, Some(text)) => (Either::Left(Full::new(text)), false),
        (false, None) => (Either::Right(encoding::Gunzip::new(exposition.gzip)), false),
    }
}

/// The task id of a `/task/{id}` path, percent-decoded; None when it is empty or does
/// not decode to UTF-8.
fn task_id(path: &str) -> Option<String> {
    let raw = path.strip_prefix(TASK_PATH)?.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                bytes.push(decoded);
                i += 3;
            }
            _ => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).ok().filter(|id| !id.is_empty())
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    with_type(status, TEXT, Bytes::from_static(body.as_bytes()))
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
