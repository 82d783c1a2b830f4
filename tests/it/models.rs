//! The typed models against every example payload in `tests/fixtures` (copied from the
//! official spec, the Postman collection and real-tenant captures; see
//! docs/sailpoint-api.md, "Where the test fixtures come from", for their provenance).

use std::path::Path;

use chrono::{DateTime, Utc};
use sailpoint_task_exporter::sailpoint::ApiError;
use sailpoint_task_exporter::sailpoint::model::{
    CompletionStatus, ErrorResponseDto, JsonPatchOperation, TaskStatus, TaskType, TokenResponse,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn assert_spec_example(t: &TaskStatus) {
    assert_eq!(t.id, "id12345");
    assert_eq!(t.task_type, TaskType::Quartz);
    assert_eq!(t.unique_name, "Big Task");
    assert_eq!(t.parent_name.as_deref(), Some("Parent Task"));
    assert_eq!(t.launcher, "sweep");
    assert_eq!(t.source_name(), Some("Active Directory [source]"));
    assert_eq!(t.created, ts("2020-07-11T21:23:15.000Z"));
    assert_eq!(t.completed, Some(ts("2020-07-11T21:23:15.000Z")));
    assert_eq!(t.completion_status, Some(CompletionStatus::Success));
    assert_eq!(t.percent_complete, 100);
    assert_eq!(t.progress.as_deref(), Some("Started"));
    assert_eq!(t.attributes.get("identityCount"), Some(&Value::from(0)));
    assert_eq!(t.returns[0].attribute_name, "identityCount");
    let m = &t.messages[0];
    assert_eq!(m.level, "INFO");
    assert_eq!(m.key, "akey");
    assert_eq!(
        m.localized_text.as_ref().map(|l| l.message.as_str()),
        Some("Error has occurred!")
    );
    let def = t.task_definition_summary.as_ref().unwrap();
    assert_eq!(def.unique_name, "Cloud Account Aggregation");
    assert_eq!(def.id, "2c91808475b4334b0175e1dff64b63c5");
    assert!(!t.is_pending());
}

#[test]
fn task_status_schema_example() {
    let t: TaskStatus = serde_json::from_str(&fixture("task-status.schema-examples.json")).unwrap();
    assert_spec_example(&t);
}

#[test]
fn task_status_list_schema_example() {
    let list: Vec<TaskStatus> =
        serde_json::from_str(&fixture("task-status-list.schema-examples.json")).unwrap();
    assert_eq!(list.len(), 1);
    assert_spec_example(&list[0]);
}

#[test]
fn postman_collection_example() {
    let t: TaskStatus =
        serde_json::from_str(&fixture("task-status.postman-collection-example.json")).unwrap();
    assert_spec_example(&t);
    assert_eq!(t.messages.len(), 2);
}

#[test]
fn serialising_gives_the_api_json_back() {
    let text = fixture("task-status.schema-examples.json");
    let t: TaskStatus = serde_json::from_str(&text).unwrap();
    let original: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&t).unwrap(), original);
}

#[test]
fn real_start_aggregation_task_with_epoch_millis_and_other_names() {
    let v: Value = serde_json::from_str(&fixture(
        "load-accounts-response.colab-file-upload-utility.json",
    ))
    .unwrap();
    let t: TaskStatus = serde_json::from_value(v["task"].clone()).unwrap();
    assert_eq!(t.id, "af1b82086c194f89acce82e156ff6e61");
    assert_eq!(
        t.created,
        DateTime::from_timestamp_millis(1_714_574_212_775).unwrap()
    );
    assert_eq!(
        t.launched,
        DateTime::from_timestamp_millis(1_714_574_212_788)
    );
    assert!(t.is_pending());
    assert_eq!(
        t.unique_name, "",
        "this payload has `name`, not `uniqueName`"
    );
    assert_eq!(t.returns.len(), 28);
    assert_eq!(
        t.attributes.get("appId"),
        Some(&Value::from("2c918087701c40cf01701dfdf2c61e2a"))
    );
}

#[test]
fn error_response_dtos() {
    for (file, status, tracking, text) in [
        (
            "error-response-dto.400.schema-examples.json",
            400,
            "e7eab60924f64aa284175b9fa3309599",
            "The request was syntactically correct but its content is semantically invalid.",
        ),
        (
            "error-response-dto.403.json",
            403,
            "b21b1f7ce4da4d639f2c62a57171b427",
            "The server understood the request but refuses to authorize it.",
        ),
        (
            "error-response-dto.404.json",
            404,
            "b21b1f7ce4da4d639f2c62a57171b427",
            "The server did not find a current representation for the target resource.",
        ),
        (
            "error-400.colab-file-upload-utility.json",
            400,
            "44a4f5a299d540df84537fc51fd9271f",
            "Column: \"[displayName, created, description, modified, entitlements, permissions]\" is unknown and/or column: \"[givenName, familyName, e-mail, location, manager]\" is missing",
        ),
    ] {
        let body = fixture(file);
        let dto: ErrorResponseDto = serde_json::from_str(&body).unwrap();
        assert_eq!(dto.tracking_id.as_deref(), Some(tracking), "{file}");
        assert_eq!(dto.text(), Some(text), "{file}");
        let err = ApiError::from_response("getTaskStatusList", status, body.as_bytes());
        assert_eq!(
            err.to_string(),
            format!("getTaskStatusList: HTTP {status} (trackingId {tracking}): {text}"),
            "{file}"
        );
    }
    let dto: ErrorResponseDto =
        serde_json::from_str(&fixture("error-response-dto.500.json")).unwrap();
    assert_eq!(
        dto.tracking_id.as_deref(),
        Some("b21b1f7ce4da4d639f2c62a57171b427")
    );
    assert_eq!(dto.text(), Some("An internal fault occurred."));
}

#[test]
fn unauthorized_and_rate_limited_bodies() {
    for (status, file, message) in [
        (
            401,
            "401-unauthorized.schema-example.json",
            "getTaskStatus: HTTP 401: JWT validation failed: JWT is expired",
        ),
        (
            429,
            "429-too-many-requests.schema-example.json",
            "getTaskStatus: HTTP 429: Rate Limit Exceeded",
        ),
    ] {
        let err = ApiError::from_response("getTaskStatus", status, fixture(file).as_bytes());
        assert_eq!(err.to_string(), message, "{file}");
    }
}

#[test]
fn oauth_token_response() {
    let t: TokenResponse = serde_json::from_str(&fixture("oauth-token-response.json")).unwrap();
    assert_eq!(t.expires_in, Some(749));
    assert_eq!(t.token_type.as_deref(), Some("bearer"));
    assert!(
        !format!("{t:?}").contains("eyJ"),
        "Debug must not show the token"
    );
}

#[test]
fn update_task_status_requests_both_versions() {
    for file in [
        "update-task-status.request.v2024.json",
        "update-task-status.request.beta.json",
    ] {
        let ops: Vec<JsonPatchOperation> = serde_json::from_str(&fixture(file)).unwrap();
        assert_eq!(ops.len(), 2, "{file}");
        assert_eq!(ops[0].op, "replace");
        assert_eq!(ops[0].path, "/completionStatus");
        assert_eq!(ops[0].value, Some(Value::from("Error")));
        assert_eq!(ops[1].path, "/completed");
        let completed = ops[1].value.as_ref().and_then(Value::as_str).unwrap();
        assert_eq!(
            sailpoint_task_exporter::sailpoint::model::parse_timestamp(completed),
            Some(ts("2024-05-17T19:33:16.470Z")),
            "{file}"
        );
    }
}

#[test]
fn hostile_payloads_are_errors_not_panics() {
    for body in [
        "",
        "[",
        "{\"id\": 5, \"created\": \"2020-01-01T00:00:00Z\"}",
        "[{\"id\":\"a\",\"created\":\"not a date\"}]",
        "[{\"id\":\"a\",\"created\":99999999999999999999}]",
        "{\"id\":\"a\",\"created\":\"2020-01-01T00:00:00Z\",\"messages\":5}",
        "null",
    ] {
        assert!(
            serde_json::from_str::<Vec<TaskStatus>>(body).is_err(),
            "{body}"
        );
    }
    // Nulls wherever the spec allows them (and a few where it doesn't) are accepted.
    let t: TaskStatus = serde_json::from_str(
        r#"{"id":"a","type":null,"uniqueName":null,"description":null,"parentName":null,
        "attributes":{},"created":"2020-01-01T00:00:00Z","modified":null,"launched":null,
        "launcher":null,"completed":"2020-01-01T00:01:00Z","completionStatus":"weird",
        "messages":null,"returns":null,"progress":null,"percentComplete":null,"target":null,
        "taskDefinitionSummary":null}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.completion_status,
        Some(CompletionStatus::Other("weird".into()))
    );
    assert_eq!(
        t.completion_status.as_ref().map(|s| s.label()),
        Some("weird".into())
    );
}
