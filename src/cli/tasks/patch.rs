//! The JSON Patch that marks a stuck task as finished.
//!
//! SailPoint's intended way to clear a pending task is to replace `/completionStatus` and
//! `/completed` (docs/sailpoint-api.md, "Marking a task finished"). The status goes in its upper-case wire form, the time as
//! RFC 3339 UTC with milliseconds and `Z` — the form the API itself returns — rather than
//! the space-separated form of the v2024 spec example.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::sailpoint::model::{CompletionStatus, JsonPatchOperation, format_timestamp};

/// The two `replace` operations that complete a task with `status` at `at`.
pub fn completion_patch(status: &CompletionStatus, at: DateTime<Utc>) -> Vec<JsonPatchOperation> {
    vec![
        replace(
            "/completionStatus",
            Value::String(status.as_str().to_string()),
        ),
        replace("/completed", Value::String(format_timestamp(&at))),
    ]
}

fn replace(path: &str, value: Value) -> JsonPatchOperation {
    JsonPatchOperation {
        op: "replace".into(),
        path: path.into(),
        value: Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_is_two_replace_operations_in_wire_form() {
        let at = "2024-05-17T19:33:16.470Z".parse().unwrap();
        let patch = completion_patch(&CompletionStatus::TempError, at);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::json!([
                {"op": "replace", "path": "/completionStatus", "value": "TEMPERROR"},
                {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}
            ])
        );
    }

    #[test]
    fn whole_seconds_still_carry_milliseconds() {
        let at = "2024-05-17T19:33:16Z".parse().unwrap();
        let patch = completion_patch(&CompletionStatus::Error, at);
        assert_eq!(
            patch[1].value,
            Some(Value::String("2024-05-17T19:33:16.000Z".into()))
        );
    }
}
