//! The HTTP face of the simulated tenant: routing, authentication, fault application,
//! `/oauth/token` and SailPoint's error bodies: whether and how a request is answered.
//! What the five task-status operations answer is in `operations.rs`; the bodies and
//! headers they are built from in `reply.rs`; query parameters in `query.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use sailpoint_model::{ErrorMessageDto, ErrorResponseDto};

use super::RequestCounts;
use super::auth::TokenBook;
use super::clock::{SimClock, lock};
use super::config::Habits;
use super::faults::{BodyFault, FaultState, Verdict};
use super::filter::FilterExpr;
use super::generator::{self, stream};
use super::habits;
use super::tenant::Tenant;

/// API versions the task-status paths exist under.
const VERSIONS: [&str; 3] = ["v2024", "v2025", "beta"];
/// Largest request body the tenant reads (token form or JSON Patch).
const MAX_BODY: usize = 64 * 1024;

/// Everything the request handlers share.
pub(crate) struct SimState {
    pub clock: SimClock,
    pub tenant: Mutex<Tenant>,
    pub tokens: Mutex<TokenBook>,
    pub faults: Mutex<FaultState>,
    pub counts: Mutex<RequestCounts>,
    pub token_ttl: Mutex<Duration>,
    pub client_id: String,
    pub client_secret: SecretString,
    pub seed: u64,
    pub tenant_id: String,
    pub errors: AtomicU64,
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
pub(crate) struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ConnectionReset {}

mod operations;
mod query;
mod reply;

use operations::Refusal;
use query::Query;
use reply::{Reply, bytes_reply, json_reply, oauth_error, rate_limited};

/// The five operations, by operationId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    GetPendingTasks,
    GetPendingTaskHeaders,
    GetTaskStatusList,
    GetTaskStatus,
    UpdateTaskStatus,
}

enum Route {
    Token,
    List,
    Pending,
    Task(String),
    Unknown,
}

fn route(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["oauth", "token"] => Route::Token,
        [v, "task-status"] if VERSIONS.contains(v) => Route::List,
        [v, "task-status", "pending-tasks"] if VERSIONS.contains(v) => Route::Pending,
        [v, "task-status", id] if VERSIONS.contains(v) && !id.is_empty() => {
            Route::Task((*id).to_string())
        }
        _ => Route::Unknown,
    }
}

fn operation(route: &Route, method: &Method) -> Result<Operation, &'static str> {
    match (route, method) {
        (Route::List, &Method::GET) => Ok(Operation::GetTaskStatusList),
        (Route::Pending, &Method::GET) => Ok(Operation::GetPendingTasks),
        (Route::Pending, &Method::HEAD) => Ok(Operation::GetPendingTaskHeaders),
        (Route::Task(_), &Method::GET) => Ok(Operation::GetTaskStatus),
        (Route::Task(_), &Method::PATCH) => Ok(Operation::UpdateTaskStatus),
        (Route::List, _) => Err("GET"),
        (Route::Pending, _) => Err("GET, HEAD"),
        _ => Err("GET, PATCH"),
    }
}

/// Answers one request for the tenant of `state`; `path` is the request path below the
/// tenant's prefix (the whole path when the tenant is served at the root).
pub(crate) async fn serve(
    state: Arc<SimState>,
    path: &str,
    req: Request<Incoming>,
) -> Result<Reply, ConnectionReset> {
    let mut reply = answer(&state, path, req).await?;
    let date = habits::date_header(state.clock.now(), &state.habits());
    if let Ok(v) = HeaderValue::from_str(&date) {
        reply.headers_mut().insert(hyper::header::DATE, v);
    }
    Ok(reply)
}

async fn answer(
    state: &Arc<SimState>,
    path: &str,
    req: Request<Incoming>,
) -> Result<Reply, ConnectionReset> {
    let state = Arc::clone(state);
    let target = route(path);
    tracing::debug!(method = %req.method(), path = req.uri().path(), "simulator request");
    match target {
        Route::Token => Ok(token(&state, req).await),
        Route::Unknown => {
            lock(&state.counts).other += 1;
            Ok(state.error(StatusCode::NOT_FOUND, None))
        }
        route => match operation(&route, req.method()) {
            Ok(op) => api(&state, op, route, req).await,
            Err(allow) => {
                lock(&state.counts).other += 1;
                let mut reply = state.error(StatusCode::METHOD_NOT_ALLOWED, None);
                reply
                    .headers_mut()
                    .insert("Allow", HeaderValue::from_static(allow));
                Ok(reply)
            }
        },
    }
}

/// The answer to a path under no tenant's prefix (`simulate --tenants`).
pub(crate) fn no_such_tenant() -> Reply {
    json_reply(
        StatusCode::NOT_FOUND,
        &json!({ "error": "no such tenant: paths start with /t1 ... /tN" }),
    )
}

async fn api(
    state: &SimState,
    op: Operation,
    route: Route,
    req: Request<Incoming>,
) -> Result<Reply, ConnectionReset> {
    state.count(op);
    let client = match state.authenticate(&req) {
        Ok(client) => client,
        Err(text) => {
            lock(&state.counts).unauthorized += 1;
            return Ok(json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": text }),
            ));
        }
    };
    let verdict = lock(&state.faults).decide(&client, tokio::time::Instant::now());
    let (latency, body_fault) = match verdict {
        Verdict::Reset => return Err(ConnectionReset),
        Verdict::RateLimited {
            retry_after,
            latency,
        } => {
            tokio::time::sleep(latency).await;
            lock(&state.counts).rate_limited += 1;
            return Ok(rate_limited(retry_after));
        }
        Verdict::ServerError { latency } => {
            tokio::time::sleep(latency).await;
            lock(&state.counts).server_errors += 1;
            return Ok(state.error(StatusCode::INTERNAL_SERVER_ERROR, None));
        }
        Verdict::Serve { latency, body } => (latency, body),
    };
    tokio::time::sleep(latency).await;
    let query = Query::parse(req.uri().query());
    if let Some(refusal) = state.habit_refusal(op, &route, &query) {
        lock(&state.counts).server_errors += u64::from(refusal.status.is_server_error());
        return Ok(state.error(refusal.status, refusal.text.as_deref()));
    }
    let reply = match (op, route) {
        (Operation::GetPendingTasks, _) => state.pending(&query, false),
        (Operation::GetPendingTaskHeaders, _) => state.pending(&query, true),
        (Operation::GetTaskStatusList, _) => state.list(&query),
        (Operation::GetTaskStatus, Route::Task(id)) => state.task(&id),
        (Operation::UpdateTaskStatus, Route::Task(id)) => state.update(&id, req).await,
        _ => Err(Refusal {
            status: StatusCode::NOT_FOUND,
            text: None,
        }),
    };
    let reply = reply.unwrap_or_else(|r| state.error(r.status, r.text.as_deref()));
    Ok(spoil(reply, body_fault).await)
}

/// Applies a body fault to a 200 answer with a body.
async fn spoil(reply: Reply, fault: BodyFault) -> Reply {
    if fault == BodyFault::None || reply.status() != StatusCode::OK {
        return reply;
    }
    let (parts, body) = reply.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, Full::new(bytes));
    }
    let mut parts = parts;
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(fault.apply(bytes.to_vec()))))
}

async fn token(state: &SimState, req: Request<Incoming>) -> Reply {
    lock(&state.counts).token += 1;
    if req.method() != Method::POST {
        let mut reply = state.error(StatusCode::METHOD_NOT_ALLOWED, None);
        reply
            .headers_mut()
            .insert("Allow", HeaderValue::from_static("POST"));
        return reply;
    }
    let mut fields: HashMap<String, String> = Query::parse(req.uri().query()).0;
    match read_body(req).await {
        Ok(body) => fields.extend(url::form_urlencoded::parse(&body).into_owned()),
        Err(text) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &text),
    }
    match fields.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant type",
            );
        }
        Some(other) => {
            let text = format!("Unsupported grant type: {other}");
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &text);
        }
    }
    let id_ok = fields.get("client_id") == Some(&state.client_id);
    let secret_ok = fields
        .get("client_secret")
        .is_some_and(|s| s.as_str() == state.client_secret.expose_secret());
    if !(id_ok && secret_ok) {
        return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "Bad credentials");
    }
    let ttl = *lock(&state.token_ttl);
    let grant = lock(&state.tokens).issue(&state.client_id, ttl, state.clock.now());
    json_reply(
        StatusCode::OK,
        &json!({
            "access_token": grant.token,
            "token_type": "bearer",
            "expires_in": grant.expires_in,
            "scope": "sp:scopes:all",
            "tenant_id": state.tenant_id,
            "internal": false,
            "pod": "sim01-useast1",
            "org": "simulated",
            "strong_auth": false,
            "claims_supported": false,
            "jti": grant.jti,
        }),
    )
}

/// The request body, at most [`MAX_BODY`] bytes (a token form or a JSON Patch).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, String> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("cannot read the request body: {e}"))
}

impl SimState {
    fn count(&self, op: Operation) {
        let mut c = lock(&self.counts);
        match op {
            Operation::GetPendingTasks => c.get_pending_tasks += 1,
            Operation::GetPendingTaskHeaders => c.get_pending_task_headers += 1,
            Operation::GetTaskStatusList => c.get_task_status_list += 1,
            Operation::GetTaskStatus => c.get_task_status += 1,
            Operation::UpdateTaskStatus => c.update_task_status += 1,
        }
    }

    /// The client id behind the request's bearer token, or the 401 text.
    fn authenticate(&self, req: &Request<Incoming>) -> Result<String, &'static str> {
        use super::auth::TokenRejection;
        let header = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(TokenRejection::Missing.text())?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(TokenRejection::Missing.text())?;
        lock(&self.tokens)
            .check(token, self.clock.now())
            .map(str::to_string)
            .map_err(|r| r.text())
    }

    /// The current habits.
    pub(crate) fn habits(&self) -> Habits {
        lock(&self.faults).faults().habits.clone()
    }

    /// An answer the habits force: the pending list during an outage, the `GET` of the
    /// task whose lookup is broken.
    fn habit_refusal(&self, op: Operation, route: &Route, query: &Query) -> Option<Refusal> {
        let habits = self.habits();
        let pending_list = op == Operation::GetPendingTasks
            || op == Operation::GetPendingTaskHeaders
            || (op == Operation::GetTaskStatusList
                && query
                    .get("filters")
                    .and_then(|f| FilterExpr::parse(f).ok())
                    .is_some_and(|f| f.wants_pending()));
        if habits.pending_outage && pending_list {
            return Some(Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                text: None,
            });
        }
        match (route, &habits.broken_lookup) {
            (Route::Task(id), Some((broken, status)))
                if op == Operation::GetTaskStatus && id == broken =>
            {
                Some(Refusal {
                    status: StatusCode::from_u16(*status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    text: None,
                })
            }
            _ => None,
        }
    }

    /// An ErrorResponseDto answer. Without `text`, the spec's generic text is used.
    fn error(&self, status: StatusCode, text: Option<&str>) -> Reply {
        let (detail, generic) = match status.as_u16() {
            400 => (
                "400.1 Bad Request Content",
                "The request was syntactically correct but its content is semantically invalid.",
            ),
            404 => (
                "404 Not found",
                "The server did not find a current representation for the target resource.",
            ),
            405 => (
                "405 Method Not Allowed",
                "The method is not allowed for the target resource.",
            ),
            415 => (
                "415 Unsupported Media Type",
                "The request content type is not supported.",
            ),
            _ => ("500.0 Internal Fault", "An internal fault occurred."),
        };
        let text = text.unwrap_or(generic);
        let mut messages = Vec::new();
        if status == StatusCode::BAD_REQUEST {
            messages.push(ErrorMessageDto {
                locale: Some("und".into()),
                locale_origin: Some("REQUEST".into()),
                text: text.to_string(),
            });
        }
        messages.push(ErrorMessageDto {
            locale: Some("en-US".into()),
            locale_origin: Some("DEFAULT".into()),
            text: text.to_string(),
        });
        let dto = ErrorResponseDto {
            detail_code: Some(detail.to_string()),
            tracking_id: Some(self.tracking_id()),
            messages,
            causes: Vec::new(),
        };
        bytes_reply(status, serde_json::to_vec(&dto).unwrap_or_default())
    }

    fn tracking_id(&self) -> String {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        let id: u128 = generator::rng(self.seed, stream::TENANT, n, 0).r#gen();
        format!("{id:032x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_versions_and_ids() {
        assert!(matches!(route("/v2024/task-status"), Route::List));
        assert!(matches!(
            route("/beta/task-status/pending-tasks"),
            Route::Pending
        ));
        assert!(matches!(route("/v2025/task-status/abc"), Route::Task(id) if id == "abc"));
        assert!(matches!(route("/v3/task-status"), Route::Unknown));
        assert!(matches!(route("/v2024/task-status/a/b"), Route::Unknown));
        assert!(matches!(route("/oauth/token"), Route::Token));
        assert!(matches!(route("/"), Route::Unknown));
    }

    #[test]
    fn paging_parameters_are_validated() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(q("").paging(), Ok((0, 250, false)));
        assert_eq!(
            q("offset=5&limit=10&count=true").paging(),
            Ok((5, 10, true))
        );
        for bad in [
            "limit=251",
            "limit=-1",
            "offset=-1",
            "offset=x",
            "count=yes",
        ] {
            assert!(q(bad).paging().is_err(), "{bad}");
        }
        assert_eq!(q("sorters=-created").descending(), Ok(true));
        assert_eq!(q("sorters=created").descending(), Ok(false));
        assert!(q("sorters=name").descending().is_err());
    }
}
