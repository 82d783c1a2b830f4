//! One HTTP exchange with the tenant, with the request budget, retries and telemetry.
//!
//! [`Transport::send`] is the only place that talks HTTP: it waits for the rate limiter,
//! attaches the bearer token, retries 429 (after `Retry-After`), 5xx, timeouts, broken
//! connections and unreadable bodies with backoff, refreshes the token once on 401, caps
//! the body size, and reports every exchange to the [`ApiObserver`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use tokio::time::Instant;

use crate::sailpoint::auth::TokenSource;
use crate::sailpoint::error::ApiError;
use crate::sailpoint::ratelimit::{RateLimiter, RetryPolicy, parse_retry_after};

/// Why a request was retried (the `reason` label of `sailpoint_exporter_api_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryReason {
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx, or a 2xx body that could not be read.
    ServerError,
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
}

impl RetryReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::RateLimited => "rate_limited",
            RetryReason::ServerError => "server_error",
            RetryReason::Timeout => "timeout",
            RetryReason::Connect => "connect",
        }
    }
}

/// Receives the client's telemetry; the metrics module implements it per tenant.
pub trait ApiObserver: Send + Sync {
    /// One HTTP exchange ended: `code` is the status (`"200"`) or `"error"`.
    fn request(&self, operation: &str, code: &str, elapsed: Duration);
    /// A request is about to be retried.
    fn retry(&self, reason: RetryReason);
    /// A new access token was fetched.
    fn token_refresh(&self);
    /// An answer held an off-spec task record (see [`crate::sailpoint::tolerant`]).
    fn invalid_record(&self, _operation: &str, _fault: crate::sailpoint::tolerant::RecordFault) {}
}

/// An observer that ignores everything (the CLI's).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl ApiObserver for NoopObserver {
    fn request(&self, _: &str, _: &str, _: Duration) {}
    fn retry(&self, _: RetryReason) {}
    fn token_refresh(&self) {}
}

/// A response whose body has been read completely.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers (`X-Total-Count`, `Retry-After`, `Date`).
    pub headers: HeaderMap,
    /// The whole body, within `max_body_bytes`.
    pub body: Bytes,
}

impl RawResponse {
    /// `X-Total-Count` as a number, when present and valid.
    pub fn total_count(&self) -> Option<u64> {
        self.headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// What one attempt came to.
pub enum Attempt<T> {
    /// The decoded value.
    Done(T),
    /// A transient failure: try again after `after` (or the backoff).
    Retry {
        /// Why (the retry counter's label).
        reason: RetryReason,
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
        /// Returned if the retries run out.
        error: ApiError,
    },
    /// The token was rejected; fetch another and try again (once per call).
    Reauthenticate {
        /// Generation of the rejected token (only it is invalidated).
        generation: u64,
        /// Returned if a fresh token is refused too.
        error: ApiError,
    },
    /// A final failure, not retried.
    Fail(ApiError),
}

/// Runs `attempt` until it is done, failed, or out of retries, honouring the limiter.
pub async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    limiter: &RateLimiter,
    observer: &dyn ApiObserver,
    tokens: Option<&TokenSource>,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut retries = 0;
    let mut reauthenticated = false;
    loop {
        limiter.acquire().await;
        match attempt().await {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(e) => return Err(e),
            Attempt::Reauthenticate { generation, error } => match tokens {
                Some(t) if !reauthenticated && t.can_refresh() => {
                    t.invalidate(generation).await;
                    reauthenticated = true;
                }
                _ => return Err(error),
            },
            Attempt::Retry {
                reason,
                after,
                error,
            } => {
                if retries >= policy.max_retries {
                    return Err(error);
                }
                observer.retry(reason);
                match after {
                    Some(delay) => limiter.pause_for(delay).await,
                    None => tokio::time::sleep(policy.backoff(retries)).await,
                }
                retries += 1;
            }
        }
    }
}

/// The HTTP side of a tenant's client.
pub struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) limiter: RateLimiter,
    pub(crate) policy: RetryPolicy,
    pub(crate) observer: Arc<dyn ApiObserver>,
    pub(crate) max_body: usize,
    /// Deadline of one request (the HTTP client may be shared by tenants with different
    /// deadlines, so it is set per request).
    pub(crate) timeout: Duration,
}

/// Turns a successful response into the operation's value, or says why it can't.
pub type Decode<T> = fn(&RawResponse) -> Result<T, String>;

impl Transport {
    /// Sends the request built by `build` (called again for every attempt), with a bearer
    /// token from `tokens` when given, and decodes a 2xx answer with `decode`.
    pub async fn send<T>(
        &self,
        operation: &'static str,
        tokens: Option<&TokenSource>,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync),
        decode: Decode<T>,
    ) -> Result<T, ApiError> {
        retrying(
            &self.policy,
            &self.limiter,
            self.observer.as_ref(),
            tokens,
            || self.attempt(operation, tokens, build, decode),
        )
        .await
    }

    async fn attempt<T>(
        &self,
        operation: &'static str,
        tokens: Option<&TokenSource>,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync),
        decode: Decode<T>,
    ) -> Attempt<T> {
        let mut request = build(&self.http)
            .timeout(self.timeout)
            .header("X-SailPoint-Experimental", "true");
        let mut generation = 0;
        if let Some(tokens) = tokens {
            match tokens.token().await {
                Ok(token) => {
                    generation = token.generation();
                    request = request.bearer_auth(token.expose());
                }
                Err(e) => return Attempt::Fail(e),
            }
        }
        let started = Instant::now();
        let result = self.exchange(request).await;
        let code = match &result {
            Ok(r) => r.status.as_str().to_string(),
            Err(_) => "error".to_string(),
        };
        self.observer.request(operation, &code, started.elapsed());
        let response = match result {
            Ok(r) => r,
            Err(Failure::Timeout) => {
                return Attempt::Retry {
                    reason: RetryReason::Timeout,
                    after: None,
                    error: ApiError::Timeout { operation },
                };
            }
            Err(Failure::Connect(message)) => {
                return Attempt::Retry {
                    reason: RetryReason::Connect,
                    after: None,
                    error: ApiError::Transport { operation, message },
                };
            }
            Err(Failure::TooLarge) => {
                return Attempt::Fail(ApiError::BodyTooLarge {
                    operation,
                    limit: self.max_body,
                });
            }
        };
        classify(operation, response, generation, tokens.is_some(), decode)
    }

    async fn exchange(&self, request: RequestBuilder) -> Result<RawResponse, Failure> {
        let mut response = request.send().await.map_err(Failure::from)?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            return Err(Failure::TooLarge);
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(Failure::from)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(Failure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }
}

enum Failure {
    Timeout,
    Connect(String),
    TooLarge,
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Failure::Timeout;
        }
        // reqwest errors name the URL, never headers, so no token can leak here.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Failure::Connect(message)
    }
}

fn classify<T>(
    operation: &'static str,
    response: RawResponse,
    generation: u64,
    authenticated: bool,
    decode: Decode<T>,
) -> Attempt<T> {
    let status = response.status;
    if status.is_success() {
        return match decode(&response) {
            Ok(v) => Attempt::Done(v),
            Err(message) => Attempt::Retry {
                reason: RetryReason::ServerError,
                after: None,
                error: ApiError::Decode { operation, message },
            },
        };
    }
    if status.is_redirection() {
        return Attempt::Fail(ApiError::Redirect {
            operation,
            status: status.as_u16(),
            target: redirect_target(&response.headers),
        });
    }
    let error = if operation == crate::sailpoint::operation::TOKEN {
        ApiError::from_token_response(status.as_u16(), &response.body)
    } else {
        ApiError::from_response(operation, status.as_u16(), &response.body)
    };
    if status == StatusCode::UNAUTHORIZED && authenticated {
        return Attempt::Reauthenticate { generation, error };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = response
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return Attempt::Retry {
            reason: RetryReason::RateLimited,
            after: Some(after.unwrap_or(Duration::from_secs(10))),
            error,
        };
    }
    if status.is_server_error() {
        return Attempt::Retry {
            reason: RetryReason::ServerError,
            after: None,
            error,
        };
    }
    Attempt::Fail(error)
}

/// Where a redirect points, for its error: the `Location`'s host and port only (its path
/// or query could carry anything), or what kind of location it was.
fn redirect_target(headers: &HeaderMap) -> String {
    let Some(location) = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return "no valid Location".to_string();
    };
    match url::Url::parse(location.trim()) {
        Ok(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
            (Some(host), None) => format!("{}://{host}", url.scheme()),
            (None, _) => "a location without a host".to_string(),
        },
        Err(url::ParseError::RelativeUrlWithoutBase) => "a path on the same host".to_string(),
        Err(_) => "an invalid Location".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        retries: Mutex<Vec<RetryReason>>,
    }

    impl ApiObserver for Recorder {
        fn request(&self, _: &str, _: &str, _: Duration) {}
        fn retry(&self, reason: RetryReason) {
            if let Ok(mut r) = self.retries.lock() {
                r.push(reason);
            }
        }
        fn token_refresh(&self) {}
    }

    fn retry(reason: RetryReason, after: Option<Duration>) -> Attempt<u32> {
        Attempt::Retry {
            reason,
            after,
            error: ApiError::Timeout { operation: "test" },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_exactly() {
        let limiter = RateLimiter::new(90, Duration::from_secs(10));
        let rec = Recorder::default();
        let start = Instant::now();
        let mut n = 0;
        let v = retrying(&RetryPolicy::default(), &limiter, &rec, None, || {
            n += 1;
            let out = if n == 1 {
                retry(RetryReason::RateLimited, Some(Duration::from_secs(7)))
            } else {
                Attempt::Done(n)
            };
            async move { out }
        })
        .await
        .unwrap();
        assert_eq!(v, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert_eq!(*rec.retries.lock().unwrap(), vec![RetryReason::RateLimited]);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_back_off_then_give_up() {
        let limiter = RateLimiter::new(90, Duration::from_secs(10));
        let rec = Recorder::default();
        let policy = RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        };
        let start = Instant::now();
        let mut attempts = 0;
        let err = retrying(&policy, &limiter, &rec, None, || {
            attempts += 1;
            async { retry(RetryReason::ServerError, None) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ApiError::Timeout { .. }));
        assert_eq!(attempts, 4);
        // Backoffs of 0.5 s, 1 s and 2 s, each jittered into [d/2, d].
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1750) && waited <= Duration::from_millis(3500),
            "{waited:?}"
        );
        assert_eq!(rec.retries.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_is_not_retried() {
        let limiter = RateLimiter::new(90, Duration::from_secs(10));
        let mut attempts = 0;
        let err = retrying(
            &RetryPolicy::default(),
            &limiter,
            &NoopObserver,
            None,
            || {
                attempts += 1;
                async { Attempt::<u32>::Fail(ApiError::from_response("getTaskStatus", 400, b"{}")) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), Some(400));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn classification() {
        let resp = |code: u16, headers: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                map.insert(*k, reqwest::header::HeaderValue::from_static(v));
            }
            RawResponse {
                status: StatusCode::from_u16(code).unwrap(),
                headers: map,
                body: Bytes::from_static(b"{\"message\":\"x\"}"),
            }
        };
        let decode_ok: Decode<u8> = |_| Ok(1);
        let decode_bad: Decode<u8> = |_| Err("eof".into());
        assert!(matches!(
            classify("op", resp(200, &[]), 0, true, decode_ok),
            Attempt::Done(1)
        ));
        assert!(matches!(
            classify("op", resp(200, &[]), 0, true, decode_bad),
            Attempt::Retry {
                reason: RetryReason::ServerError,
                error: ApiError::Decode { .. },
                ..
            }
        ));
        assert!(matches!(
            classify("op", resp(429, &[("retry-after", "3")]), 0, true, decode_ok),
            Attempt::Retry { reason: RetryReason::RateLimited, after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify("op", resp(503, &[]), 0, true, decode_ok),
            Attempt::Retry {
                reason: RetryReason::ServerError,
                after: None,
                ..
            }
        ));
        assert!(matches!(
            classify("op", resp(401, &[]), 4, true, decode_ok),
            Attempt::Reauthenticate { generation: 4, .. }
        ));
        assert!(matches!(
            classify("op", resp(401, &[]), 0, false, decode_ok),
            Attempt::Fail(_)
        ));
        assert!(matches!(
            classify("op", resp(404, &[]), 0, true, decode_ok),
            Attempt::Fail(_)
        ));
    }

    #[test]
    fn a_redirect_fails_naming_the_status_and_the_target_host_only() {
        let redirect = |code: u16, location: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                reqwest::header::LOCATION,
                reqwest::header::HeaderValue::from_static(location),
            );
            let response = RawResponse {
                status: StatusCode::from_u16(code).unwrap(),
                headers,
                body: Bytes::new(),
            };
            match classify("token", response, 0, false, |_| Ok(1u8)) {
                Attempt::Fail(e) => e.to_string(),
                _ => panic!("a {code} must fail at once"),
            }
        };
        assert_eq!(
            redirect(307, "http://evil.example:8080/steal?secret=x"),
            "token: HTTP 307 redirect to http://evil.example:8080 not followed: credentials are sent only to the configured address (set base_url or token_url to the address that answers)"
        );
        assert!(
            redirect(308, "https://other.example/x")
                .contains("HTTP 308 redirect to https://other.example:443 ")
        );
        assert!(redirect(302, "/oauth/token2").contains("redirect to a path on the same host "));
        assert!(redirect(301, "http://[bad").contains("redirect to an invalid Location "));
    }
}
