//! The simulator's answers: JSON bodies (tasks in the API's shape, `target: null`
//! written out), empty answers, `X-Total-Count`, 429 with `Retry-After`, OAuth errors.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use sailpoint_model::TaskStatus;

/// An HTTP answer of the simulator.
pub(crate) type Reply = Response<Full<Bytes>>;

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(super) fn rate_limited(retry_after: u64) -> Reply {
    let mut reply = json_reply(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({ "message": " Rate Limit Exceeded " }),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        reply.headers_mut().insert("Retry-After", v);
    }
    reply
}

pub(super) fn json_reply(status: StatusCode, value: &Value) -> Reply {
    bytes_reply(status, serde_json::to_vec(value).unwrap_or_default())
}

pub(super) fn bytes_reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

pub(super) fn empty_reply(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

pub(super) fn with_total(mut reply: Reply, total: Option<usize>) -> Reply {
    if let Some(v) = total.and_then(|t| HeaderValue::from_str(&t.to_string()).ok()) {
        reply.headers_mut().insert("X-Total-Count", v);
    }
    reply
}

/// A task as JSON, with `target: null` written out for tasks without a target (as
/// the real service does; the shared model omits the key).
pub(super) fn task_json(task: &TaskStatus) -> Value {
    let mut value = serde_json::to_value(task).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.entry("target").or_insert(Value::Null);
    }
    value
}

pub(super) fn tasks_json(tasks: &[TaskStatus]) -> Value {
    Value::Array(tasks.iter().map(task_json).collect())
}
