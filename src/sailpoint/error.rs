//! Typed errors of the SailPoint client.
//!
//! Every error names the operation (SailPoint's operationId, or `token`) so a log line or a
//! CLI message says what was being done; HTTP errors also carry the status and SailPoint's
//! `trackingId`, which is what SailPoint support asks for. Secrets never appear here: the
//! token endpoint's error body is reduced to its `error`/`error_description` fields.

use crate::sailpoint::model::ErrorResponseDto;

/// Anything that can go wrong talking to a tenant.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered with a non-success status that retries did not cure.
    #[error("{operation}: HTTP {status}{}: {message}", tracking(.tracking_id))]
    Status {
        /// SailPoint's operationId.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// SailPoint's `trackingId`, for support cases.
        tracking_id: Option<String>,
        /// The error text of the body.
        message: String,
    },
    /// The connection failed or broke (after retries).
    #[error("{operation}: connection failed: {message}")]
    Transport {
        /// SailPoint's operationId.
        operation: &'static str,
        /// What the transport reported (URLs removed).
        message: String,
    },
    /// The request did not complete within the request timeout (after retries).
    #[error("{operation}: timed out")]
    Timeout {
        /// SailPoint's operationId.
        operation: &'static str,
    },
    /// A success response whose body is not the documented JSON (after retries).
    #[error("{operation}: malformed response body: {message}")]
    Decode {
        /// SailPoint's operationId.
        operation: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The answer was JSON, but the task record lacks an essential field or has one that
    /// does not fit (see [`crate::sailpoint::tolerant`]).
    #[error("{operation}: off-spec task record: field {field} is missing or invalid")]
    InvalidRecord {
        /// SailPoint's operationId.
        operation: &'static str,
        /// The offending field.
        field: String,
    },
    /// The response body exceeded the configured cap.
    #[error("{operation}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// SailPoint's operationId.
        operation: &'static str,
        /// The configured cap (`max_body_bytes`).
        limit: usize,
    },
    /// The token endpoint refused or failed.
    #[error("token: {message}")]
    Auth {
        /// The token endpoint's HTTP status, when it answered.
        status: Option<u16>,
        /// What went wrong (never the secret or the token).
        message: String,
    },
    /// Paging went wrong: the API ignored `offset` or kept returning pages past the total.
    #[error("{operation}: paging stopped: {message}")]
    Paging {
        /// SailPoint's operationId.
        operation: &'static str,
        /// Why paging stopped.
        message: String,
    },
    /// The server answered with a redirect, which is never followed: a redirect re-sends
    /// the request (the token request's body holds the client secret) to wherever the
    /// `Location` points, so the configured address must be the one that answers.
    #[error(
        "{operation}: HTTP {status} redirect to {target} not followed: credentials are sent only to the configured address (set base_url or token_url to the address that answers)"
    )]
    Redirect {
        /// SailPoint's operationId (or `token`).
        operation: &'static str,
        /// The HTTP status (301, 302, 303, 307, 308, …).
        status: u16,
        /// Where the redirect pointed: `host:port` only (never a path or query).
        target: String,
    },
    /// The client could not be built from the settings.
    #[error("client setup: {0}")]
    Setup(String),
}

fn tracking(id: &Option<String>) -> String {
    match id {
        Some(id) => format!(" (trackingId {id})"),
        None => String::new(),
    }
}

impl ApiError {
    /// The HTTP status, when the error is an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Auth { status, .. } => *status,
            ApiError::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer (an unknown or expired task id).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds a [`ApiError::Status`] from an error response body: SailPoint's
    /// `ErrorResponseDto`, the `{error}` (401) or `{message}` (429) shapes, or plain text.
    pub fn from_response(operation: &'static str, status: u16, body: &[u8]) -> ApiError {
        let (tracking_id, message) = describe_body(body);
        ApiError::Status {
            operation,
            status,
            tracking_id,
            message,
        }
    }
}

impl ApiError {
    /// Builds the error of a refused token request. Only the OAuth `error` and
    /// `error_description` fields are kept: a token endpoint that echoes the submitted form
    /// in a plain-text body must not put the client secret into a log line.
    pub fn from_token_response(status: u16, body: &[u8]) -> ApiError {
        let field = |map: &serde_json::Map<String, serde_json::Value>, key: &str| {
            map.get(key)
                .and_then(serde_json::Value::as_str)
                .map(|s| s.trim().chars().take(MAX_TEXT).collect::<String>())
        };
        let message = match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(map)) => {
                match (field(&map, "error"), field(&map, "error_description")) {
                    (Some(e), Some(d)) => format!("{e}: {d}"),
                    (Some(e), None) | (None, Some(e)) => e,
                    (None, None) => "no error description".to_string(),
                }
            }
            _ => "no error description".to_string(),
        };
        ApiError::Status {
            operation: "token",
            status,
            tracking_id: None,
            message,
        }
    }
}

/// Longest piece of an unstructured error body kept in a message.
const MAX_TEXT: usize = 300;

fn describe_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(dto) = serde_json::from_slice::<ErrorResponseDto>(body)
        && (dto.tracking_id.is_some() || !dto.messages.is_empty() || dto.detail_code.is_some())
    {
        let text = dto
            .text()
            .map(str::to_string)
            .or(dto.detail_code.clone())
            .unwrap_or_default();
        return (dto.tracking_id, text);
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["error", "message", "detailMessage"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return (None, s.trim().to_string());
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return (None, "no response body".into());
    }
    (None, text.chars().take(MAX_TEXT).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_dto_gives_tracking_id_and_text() {
        let body = include_str!("../../tests/fixtures/error-response-dto.404.json");
        let err = ApiError::from_response("getTaskStatus", 404, body.as_bytes());
        assert_eq!(
            err.to_string(),
            "getTaskStatus: HTTP 404 (trackingId b21b1f7ce4da4d639f2c62a57171b427): The server did not find a current representation for the target resource."
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn token_errors_keep_only_the_oauth_fields() {
        let err = ApiError::from_token_response(
            401,
            br#"{"error":"unauthorized","error_description":"Bad credentials"}"#,
        );
        assert_eq!(
            err.to_string(),
            "token: HTTP 401: unauthorized: Bad credentials"
        );
        let echo = b"client_id=abc&client_secret=hunter2&grant_type=client_credentials";
        let err = ApiError::from_token_response(400, echo);
        assert_eq!(err.to_string(), "token: HTTP 400: no error description");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn other_bodies_are_kept_as_text() {
        let err =
            ApiError::from_response("getTaskStatusList", 401, br#"{"error":"JWT is expired"}"#);
        assert_eq!(
            err.to_string(),
            "getTaskStatusList: HTTP 401: JWT is expired"
        );
        let err = ApiError::from_response(
            "getTaskStatusList",
            429,
            br#"{"message":" Rate Limit Exceeded "}"#,
        );
        assert_eq!(
            err.to_string(),
            "getTaskStatusList: HTTP 429: Rate Limit Exceeded"
        );
        let err = ApiError::from_response("getTaskStatusList", 502, b"<html>bad gateway</html>");
        assert_eq!(
            err.to_string(),
            "getTaskStatusList: HTTP 502: <html>bad gateway</html>"
        );
        let err = ApiError::from_response("getTaskStatusList", 500, b"");
        assert_eq!(
            err.to_string(),
            "getTaskStatusList: HTTP 500: no response body"
        );
    }
}
