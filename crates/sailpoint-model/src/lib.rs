//! Typed models of the v2024 task-status payloads.
//!
//! The API is treated as hostile input: every field the spec allows to be null is an
//! `Option`, enums keep values they do not know (`Other`), `completionStatus` is read in
//! any case, and dates are accepted with or without milliseconds, with a `T` or a space
//! between date and time, or as epoch milliseconds. Only `id` and `created` are
//! mandatory, because without them a task cannot be tracked or ordered.
//!
//! Serialisation writes the API's own field names and shapes (upper-case enums, RFC 3339
//! UTC dates with milliseconds), so the simulator can serve these types and the CLI can
//! print them as the API would.
//!
//! They are a crate of their own because both sides speak them: the exporter's client
//! reads them (as `sailpoint_task_exporter::sailpoint::model`) and the simulated tenant
//! (`sailpoint-simulator`) serves them, and the simulator must not depend on the exporter.

#![warn(missing_docs)]

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One task as returned by `GET /task-status`, `GET /task-status/{id}` and
/// `GET /task-status/pending-tasks` (SailPoint's `TaskStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// 32-hex task id.
    pub id: String,
    /// Scheduler kind (`QUARTZ`, `QPOC`, `QUEUED_TASK`), not the task kind.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub task_type: TaskType,
    /// Task name, e.g. "Cloud Account Aggregation"; may carry an id suffix.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unique_name: String,
    /// Free text of the task.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    /// Name of the parent task, if any.
    #[serde(default)]
    pub parent_name: Option<String>,
    /// Task-specific key/value pairs (kept verbatim).
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: Map<String, Value>,
    /// When the task was created; the only ordering key the API sorts by.
    #[serde(with = "timestamp")]
    pub created: DateTime<Utc>,
    /// Last update of the task status.
    #[serde(default, with = "optional_timestamp")]
    pub modified: Option<DateTime<Utc>>,
    /// When the task started running; null while queued.
    #[serde(default, with = "optional_timestamp")]
    pub launched: Option<DateTime<Utc>>,
    /// Who or what started the task.
    #[serde(default, deserialize_with = "null_as_default")]
    pub launcher: String,
    /// When the task finished; null while pending.
    #[serde(default, with = "optional_timestamp")]
    pub completed: Option<DateTime<Utc>>,
    /// How the task ended; null while pending.
    #[serde(default)]
    pub completion_status: Option<CompletionStatus>,
    /// Messages of the task (WARN and ERROR ones are counted).
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<TaskStatusMessage>,
    /// Names of the task's result attributes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub returns: Vec<TaskReturnDetails>,
    /// Free-text progress, e.g. "Processed 120 of 400 accounts".
    #[serde(default)]
    pub progress: Option<String>,
    /// Progress in percent (not trusted to be within 0-100).
    #[serde(default, deserialize_with = "null_as_default")]
    pub percent_complete: i64,
    /// What the task works on (the source, for aggregations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The definition the task was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_summary: Option<TaskDefinitionSummary>,
}

impl TaskStatus {
    /// A task is pending while it has neither a completion status nor a completion time.
    pub fn is_pending(&self) -> bool {
        self.completion_status.is_none() && self.completed.is_none()
    }

    /// The source name when the task targets an application (`target.type == APPLICATION`).
    pub fn source_name(&self) -> Option<&str> {
        self.target
            .as_ref()
            .filter(|t| t.is_application())
            .map(|t| t.name.as_str())
    }
}

/// The scheduler kind of a task. Unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TaskType {
    /// `QUARTZ`: a scheduled task.
    #[default]
    Quartz,
    /// `QPOC`.
    Qpoc,
    /// `QUEUED_TASK`.
    QueuedTask,
    /// A value the spec does not list, kept as received.
    Other(String),
}

impl TaskType {
    /// The wire form (upper-case, unknown values as received).
    pub fn as_str(&self) -> &str {
        match self {
            TaskType::Quartz => "QUARTZ",
            TaskType::Qpoc => "QPOC",
            TaskType::QueuedTask => "QUEUED_TASK",
            TaskType::Other(s) => s,
        }
    }
}

impl From<&str> for TaskType {
    fn from(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "QUARTZ" => TaskType::Quartz,
            "QPOC" => TaskType::Qpoc,
            "QUEUED_TASK" => TaskType::QueuedTask,
            _ => TaskType::Other(s.to_string()),
        }
    }
}

/// How a task ended. Read in any case (`Success`, `SUCCESS`, `success`); values that are
/// not in the spec are kept in [`CompletionStatus::Other`] rather than rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompletionStatus {
    /// `SUCCESS`.
    Success,
    /// `WARNING`: finished, with warnings.
    Warning,
    /// `ERROR`.
    Error,
    /// `TERMINATED`: stopped by someone.
    Terminated,
    /// `TEMPERROR` (or `TEMP_ERROR`): failed, expected to succeed on a retry.
    TempError,
    /// A value the spec does not list, kept as received.
    Other(String),
}

impl CompletionStatus {
    /// The canonical upper-case wire form (unknown values as received).
    pub fn as_str(&self) -> &str {
        match self {
            CompletionStatus::Success => "SUCCESS",
            CompletionStatus::Warning => "WARNING",
            CompletionStatus::Error => "ERROR",
            CompletionStatus::Terminated => "TERMINATED",
            CompletionStatus::TempError => "TEMPERROR",
            CompletionStatus::Other(s) => s,
        }
    }

    /// The metric label value: lower-cased, unknown values included.
    pub fn label(&self) -> String {
        self.as_str().to_ascii_lowercase()
    }

    /// The five statuses the spec documents, in label form.
    pub const KNOWN_LABELS: [&'static str; 5] =
        ["success", "warning", "error", "terminated", "temperror"];
}

impl From<&str> for CompletionStatus {
    fn from(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "SUCCESS" => CompletionStatus::Success,
            "WARNING" => CompletionStatus::Warning,
            "ERROR" => CompletionStatus::Error,
            "TERMINATED" => CompletionStatus::Terminated,
            "TEMPERROR" | "TEMP_ERROR" => CompletionStatus::TempError,
            _ => CompletionStatus::Other(s.to_string()),
        }
    }
}

impl fmt::Display for CompletionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_enum_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(<$ty>::from(s.as_str()))
            }
        }
    };
}
string_enum_serde!(TaskType);
string_enum_serde!(CompletionStatus);

/// What a task works on. For source tasks `type` is `APPLICATION` and `name` the source name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Target {
    /// Id of the target object.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// `APPLICATION`, `IDENTITY` or null; unknown values are kept.
    #[serde(rename = "type", default)]
    pub target_type: Option<String>,
    /// Name of the target (the source name for `APPLICATION`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

impl Target {
    /// Whether the target is a source (`type == APPLICATION`, any case).
    pub fn is_application(&self) -> bool {
        self.target_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("APPLICATION"))
    }
}

/// A message attached to a task (`INFO`, `WARN`, `ERROR`; unknown levels kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusMessage {
    /// `INFO`, `WARN`, `ERROR` (the wire field is `type`).
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub level: String,
    /// The text in the tenant's locale.
    #[serde(default)]
    pub localized_text: Option<LocalizedMessage>,
    /// Message key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    /// Values of the message's placeholders.
    #[serde(default)]
    pub parameters: Option<Vec<Value>>,
}

/// A message text in one locale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LocalizedMessage {
    /// Locale, e.g. `en-US`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub locale: String,
    /// The text.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
}

/// The name of a result attribute of a task (not its value, which is in the task's
/// `attributes` under `attribute_name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskReturnDetails {
    /// Display name of the result: `name` in the spec, `displayLabel` in the older shape a
    /// real aggregation answers with (e.g. `TASK_OUT_ACCOUNT_AGGREGATION_TOTAL`).
    #[serde(default, alias = "displayLabel", deserialize_with = "null_as_default")]
    pub name: String,
    /// Name of the attribute holding the result.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attribute_name: String,
}

/// The definition a task was started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionSummary {
    /// Id of the task definition.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// Name of the task definition.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unique_name: String,
    /// Free text of the definition.
    #[serde(default)]
    pub description: Option<String>,
    /// Parent definition, if any.
    #[serde(default)]
    pub parent_name: Option<String>,
    /// Class that runs the task.
    #[serde(default)]
    pub executor: Option<String>,
    /// Arguments of the definition (kept verbatim).
    #[serde(default, deserialize_with = "null_as_default")]
    pub arguments: Map<String, Value>,
}

/// One RFC 6902 operation, as sent by `PATCH /task-status/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonPatchOperation {
    /// `replace`, `add`, ...
    pub op: String,
    /// JSON Pointer of the field, e.g. `/completionStatus`.
    pub path: String,
    /// The new value (absent for `remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// SailPoint's error body for 400/403/404/500.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponseDto {
    /// SailPoint's short error code, e.g. `404 Not found`.
    #[serde(default)]
    pub detail_code: Option<String>,
    /// Id SailPoint support can look up.
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// The error text in one or more locales.
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<ErrorMessageDto>,
    /// Underlying errors, when given.
    #[serde(default, deserialize_with = "null_as_default")]
    pub causes: Vec<ErrorMessageDto>,
}

impl ErrorResponseDto {
    /// The most useful human text: the first `en-US` message, else the first message.
    pub fn text(&self) -> Option<&str> {
        self.messages
            .iter()
            .find(|m| m.locale.as_deref() == Some("en-US"))
            .or_else(|| self.messages.first())
            .map(|m| m.text.as_str())
    }
}

/// One message of an [`ErrorResponseDto`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageDto {
    /// Locale of the text, e.g. `en-US`.
    #[serde(default)]
    pub locale: Option<String>,
    /// Whether the locale is the requested one or a fallback.
    #[serde(default)]
    pub locale_origin: Option<String>,
    /// The message.
    #[serde(default, deserialize_with = "null_as_default")]
    pub text: String,
}

/// The body of a successful `POST /oauth/token`.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (secret: redacted in `Debug`).
    pub access_token: String,
    /// Normally `bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in seconds; absent means "unknown" and the caller picks a default.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Reads `null` as the type's default (the spec marks several required keys nullable in
/// practice).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Parses a SailPoint timestamp: RFC 3339 with or without fraction, a space instead of
/// `T`, a missing offset (taken as UTC), or an integer of epoch milliseconds.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = s.parse::<DateTime<chrono::FixedOffset>>() {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    s.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

/// Formats a timestamp the way SailPoint does: `2020-07-11T21:23:15.000Z`.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTimestamp {
    Text(String),
    Millis(i64),
}

fn decode(raw: RawTimestamp) -> Result<DateTime<Utc>, String> {
    match raw {
        RawTimestamp::Text(s) => {
            parse_timestamp(&s).ok_or_else(|| format!("invalid date-time {s:?}"))
        }
        RawTimestamp::Millis(ms) => DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| format!("epoch milliseconds out of range: {ms}")),
    }
}

mod timestamp {
    use super::*;
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        decode(RawTimestamp::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod optional_timestamp {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_timestamp(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<RawTimestamp>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => decode(raw).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_status_any_case_and_unknown_kept() {
        for (raw, want) in [
            ("SUCCESS", CompletionStatus::Success),
            ("Success", CompletionStatus::Success),
            ("tempError", CompletionStatus::TempError),
            ("TEMP_ERROR", CompletionStatus::TempError),
            ("Paused", CompletionStatus::Other("Paused".into())),
        ] {
            let got: CompletionStatus = serde_json::from_value(Value::from(raw)).unwrap();
            assert_eq!(got, want, "{raw}");
        }
        assert_eq!(CompletionStatus::Other("Paused".into()).label(), "paused");
    }

    #[test]
    fn timestamps_in_every_observed_form() {
        let want = DateTime::parse_from_rfc3339("2024-05-17T19:33:16.470Z").unwrap();
        for raw in [
            "2024-05-17T19:33:16.470Z",
            "2024-05-17 19:33:16.470000+00:00",
            "2024-05-17T19:33:16.47",
            "1715974396470",
        ] {
            assert_eq!(
                parse_timestamp(raw),
                Some(want.with_timezone(&Utc)),
                "{raw}"
            );
        }
        assert_eq!(
            parse_timestamp("2020-07-11T21:23:15Z").map(|t| format_timestamp(&t)),
            Some("2020-07-11T21:23:15.000Z".to_string())
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn pending_task_with_nulls_parses() {
        let json = r#"{"id":"a1","type":"QUARTZ","uniqueName":"Cloud Account Aggregation",
            "description":null,"parentName":null,"attributes":{},"created":"2024-04-22T09:30:25.012Z",
            "modified":null,"launched":null,"launcher":"System","completed":null,
            "completionStatus":null,"messages":[],"returns":[],"progress":null,
            "percentComplete":0,"target":null}"#;
        let t: TaskStatus = serde_json::from_str(json).unwrap();
        assert!(t.is_pending());
        assert_eq!(t.source_name(), None);
        assert_eq!(t.launched, None);
    }

    #[test]
    fn missing_created_is_an_error_not_a_panic() {
        let err = serde_json::from_str::<TaskStatus>(r#"{"id":"a"}"#).unwrap_err();
        assert!(err.to_string().contains("created"), "{err}");
    }
}
