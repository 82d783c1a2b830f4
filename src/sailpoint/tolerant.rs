//! Per-record tolerance when decoding task lists and tasks.
//!
//! One off-spec field of one task (a `percentComplete` of `12.5`, a `messages` that is a
//! string) must not fail a whole poll: that would blind the tenant for as long as the task
//! exists. Only what counting needs is essential — `id`, `created`, and a finished task's
//! `completionStatus` and `completed` as far as present. Every other top-level field that
//! does not fit its type falls back to its default ([`RecordFault::Defaulted`]); a record
//! whose essential field is missing or does not fit is skipped ([`RecordFault::Skipped`]).
//! A body that is not JSON, or not an array where a list is expected, still fails the
//! request as before: that is a server fault, and retrying it is what gets the data.
//!
//! The well-formed case costs one typed decode; the field-by-field repair runs only for a
//! body that failed it.

use serde_json::{Map, Value};

use super::model::TaskStatus;

/// Fields without which a task cannot be counted or ordered.
pub const ESSENTIAL_FIELDS: [&str; 4] = ["id", "created", "completionStatus", "completed"];

/// What was wrong with one record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord {
    /// The record's id, when it had a usable one.
    pub id: Option<String>,
    /// The offending field (`"record"` when the record is not a JSON object).
    pub field: String,
    /// Whether the record was skipped or repaired.
    pub fault: RecordFault,
}

/// How an off-spec record was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFault {
    /// A non-essential field did not fit its type and was replaced by its default.
    Defaulted,
    /// An essential field was missing or did not fit: the record was not used.
    Skipped,
}

impl RecordFault {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFault::Defaulted => "defaulted",
            RecordFault::Skipped => "skipped",
        }
    }
}

/// A decoded list: the usable tasks (repaired ones included) and what was wrong.
#[derive(Debug, Clone, Default)]
pub struct DecodedList {
    /// Tasks in the answer's order; skipped records are absent.
    pub tasks: Vec<TaskStatus>,
    /// How many records the answer held, skipped ones included: whether another page
    /// exists is decided from this, never from the tasks kept.
    pub received: usize,
    /// One entry per repaired field and per skipped record.
    pub invalid: Vec<InvalidRecord>,
}

/// Decodes a JSON array of tasks, record by record. Fails only when the body is not a
/// JSON array.
pub fn decode_list(body: &[u8]) -> Result<DecodedList, String> {
    // The fast path, when every record decodes and has an id: an empty id is skipped by
    // the per-record path, so it must not pass here either (several would merge into one).
    if let Ok(tasks) = serde_json::from_slice::<Vec<TaskStatus>>(body)
        && tasks.iter().all(|t| !t.id.is_empty())
    {
        return Ok(DecodedList {
            received: tasks.len(),
            tasks,
            invalid: Vec::new(),
        });
    }
    let values: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = DecodedList {
        received: values.len(),
        ..DecodedList::default()
    };
    for value in values {
        match decode_record(value) {
            Ok((task, defaulted)) => {
                out.invalid.extend(defaulted);
                out.tasks.push(task);
            }
            Err(skipped) => out.invalid.push(skipped),
        }
    }
    Ok(out)
}

/// Decodes one task (`GET /task-status/{id}`). The outer error is a body that is not
/// JSON; the inner one a record that had to be skipped.
pub fn decode_one(
    body: &[u8],
) -> Result<Result<(TaskStatus, Vec<InvalidRecord>), InvalidRecord>, String> {
    if let Ok(task) = serde_json::from_slice::<TaskStatus>(body)
        && !task.id.is_empty()
    {
        return Ok(Ok((task, Vec::new())));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(decode_record(value))
}

/// Decodes one record, repairing what is not essential.
pub fn decode_record(value: Value) -> Result<(TaskStatus, Vec<InvalidRecord>), InvalidRecord> {
    let Value::Object(mut map) = value else {
        return Err(skipped(None, "record"));
    };
    let id = match map.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(skipped(None, "id")),
    };
    if let Ok(task) = serde_json::from_value::<TaskStatus>(Value::Object(map.clone())) {
        return Ok((task, Vec::new()));
    }
    for field in ESSENTIAL_FIELDS.iter().skip(1) {
        if !field_fits(&id, field, map.get(*field)) {
            return Err(skipped(Some(id), field));
        }
    }
    let mut defaulted = Vec::new();
    let bad: Vec<String> = map
        .iter()
        .filter(|(k, v)| !ESSENTIAL_FIELDS.contains(&k.as_str()) && !field_fits(&id, k, Some(v)))
        .map(|(k, _)| k.clone())
        .collect();
    for field in bad {
        map.remove(&field);
        defaulted.push(InvalidRecord {
            id: Some(id.clone()),
            field,
            fault: RecordFault::Defaulted,
        });
    }
    match serde_json::from_value::<TaskStatus>(Value::Object(map)) {
        Ok(task) => Ok((task, defaulted)),
        Err(_) => Err(skipped(Some(id), "record")),
    }
}

fn skipped(id: Option<String>, field: &str) -> InvalidRecord {
    InvalidRecord {
        id,
        field: field.to_string(),
        fault: RecordFault::Skipped,
    }
}

/// Whether `field: value` decodes on its own, in a minimal task that is otherwise valid.
/// `created` must be present; every other field may be absent.
fn field_fits(id: &str, field: &str, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return field != "created";
    };
    let mut probe = Map::new();
    probe.insert("id".into(), Value::String(id.to_string()));
    probe.insert(
        "created".into(),
        Value::String("2000-01-01T00:00:00Z".into()),
    );
    probe.insert(field.to_string(), value.clone());
    serde_json::from_value::<TaskStatus>(Value::Object(probe)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(extra: Value) -> Value {
        let mut base = json!({"id": "a1", "created": "2024-04-22T09:30:25.012Z"});
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    }

    #[test]
    fn an_off_spec_field_falls_back_to_its_default() {
        let body = serde_json::to_vec(&json!([
            task(json!({"percentComplete": 12.5, "uniqueName": "Cloud Account Aggregation"})),
            {"id": "b2", "created": "2024-04-22T09:30:26Z", "percentComplete": 40},
        ]))
        .unwrap();
        let list = decode_list(&body).unwrap();
        assert_eq!((list.tasks.len(), list.received), (2, 2));
        assert_eq!(list.tasks[0].percent_complete, 0);
        assert_eq!(list.tasks[0].unique_name, "Cloud Account Aggregation");
        assert_eq!(list.tasks[1].percent_complete, 40);
        assert_eq!(
            list.invalid,
            vec![InvalidRecord {
                id: Some("a1".into()),
                field: "percentComplete".into(),
                fault: RecordFault::Defaulted
            }]
        );
    }

    #[test]
    fn a_record_without_an_essential_field_is_skipped() {
        let body = serde_json::to_vec(&json!([
            {"created": "2024-04-22T09:30:25Z"},
            {"id": "b", "created": "not a date"},
            {"id": "c", "created": "2024-04-22T09:30:25Z", "completionStatus": 3},
            {"id": "d", "created": "2024-04-22T09:30:25Z", "completed": "soon", "completionStatus": "SUCCESS"},
            "just a string",
            {"id": "e", "created": "2024-04-22T09:30:25Z", "messages": "oops", "completionStatus": "Error", "completed": "2024-04-22T09:31:25Z"},
        ]))
        .unwrap();
        let list = decode_list(&body).unwrap();
        let ids: Vec<&str> = list.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["e"]);
        assert_eq!(list.received, 6, "skipped records still count as received");
        let faults: Vec<(Option<&str>, &str, RecordFault)> = list
            .invalid
            .iter()
            .map(|r| (r.id.as_deref(), r.field.as_str(), r.fault))
            .collect();
        assert_eq!(
            faults,
            [
                (None, "id", RecordFault::Skipped),
                (Some("b"), "created", RecordFault::Skipped),
                (Some("c"), "completionStatus", RecordFault::Skipped),
                (Some("d"), "completed", RecordFault::Skipped),
                (None, "record", RecordFault::Skipped),
                (Some("e"), "messages", RecordFault::Defaulted),
            ]
        );
    }

    /// Records that decode but whose id is empty are skipped as on the per-record path,
    /// however well-formed the rest of the page is (before: the fast path kept them, and
    /// two such tasks became one id).
    #[test]
    fn an_empty_id_is_skipped_on_every_path() {
        let body = serde_json::to_vec(&json!([
            task(json!({"id": ""})),
            task(json!({"id": ""})),
            task(json!({}))
        ]))
        .unwrap();
        let list = decode_list(&body).unwrap();
        let ids: Vec<&str> = list.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a1"]);
        assert_eq!(list.received, 3);
        assert_eq!(list.invalid.len(), 2);
        assert!(
            list.invalid
                .iter()
                .all(|r| r.field == "id" && r.fault == RecordFault::Skipped)
        );
        let one = serde_json::to_vec(&task(json!({"id": ""}))).unwrap();
        assert!(decode_one(&one).unwrap().is_err());
    }

    #[test]
    fn a_body_that_is_not_an_array_still_fails() {
        assert!(decode_list(b"[{\"id\":").is_err());
        assert!(decode_list(b"{\"id\":\"a\"}").is_err());
        assert!(decode_one(b"nope").is_err());
    }

    #[test]
    fn one_task_is_repaired_or_skipped() {
        let body = serde_json::to_vec(&task(json!({"percentComplete": "half"}))).unwrap();
        let (t, defaulted) = decode_one(&body).unwrap().unwrap();
        assert_eq!((t.id.as_str(), defaulted.len()), ("a1", 1));
        let body = serde_json::to_vec(&json!({"id": "x"})).unwrap();
        assert_eq!(decode_one(&body).unwrap().unwrap_err().field, "created");
    }
}
