//! What a task reports having done: its numeric results.
//!
//! A task's `returns` names its result attributes (`{name | displayLabel, attributeName}`)
//! and its `attributes` object holds their values — for an account aggregation `total`,
//! `created`, `updated`, `deleted`, `optimized`, `ignored`, … Each `returns` entry whose
//! value is a number, or a string holding one, is a result; anything else
//! (`optimizedAggregation: "enabled"`, an object, a missing value) is not.

use serde_json::Value;

use super::model::TaskStatus;

/// One numeric result of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// The attribute name, as the task gives it (`total`, `deleted`, …).
    pub attribute: String,
    /// Its value.
    pub value: f64,
}

/// The numeric results of `task`, in `returns` order, each attribute once.
pub fn task_results(task: &TaskStatus) -> Vec<TaskResult> {
    let mut out: Vec<TaskResult> = Vec::new();
    for entry in &task.returns {
        let attribute = entry.attribute_name.trim();
        if attribute.is_empty() || out.iter().any(|r| r.attribute == attribute) {
            continue;
        }
        if let Some(value) = task.attributes.get(attribute).and_then(number) {
            out.push(TaskResult {
                attribute: attribute.to_string(),
                value,
            });
        }
    }
    out
}

/// A finite number, or a string holding one.
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(returns: Value, attributes: Value) -> TaskStatus {
        serde_json::from_value(json!({
            "id": "a", "created": "2024-05-01T00:00:00Z",
            "returns": returns, "attributes": attributes
        }))
        .unwrap()
    }

    #[test]
    fn numeric_results_in_both_entry_shapes() {
        let t = task(
            json!([
                {"displayLabel": "TASK_OUT_ACCOUNT_AGGREGATION_TOTAL", "attributeName": "total"},
                {"name": "TASK_OUT_ACCOUNT_AGGREGATION_DELETED", "attributeName": "deleted"},
                {"displayLabel": "X", "attributeName": "optimizedAggregation"},
                {"displayLabel": "X", "attributeName": "created"},
                {"displayLabel": "X", "attributeName": "missing"},
                {"displayLabel": "X", "attributeName": "total"},
                {"displayLabel": "X", "attributeName": "nested"},
                {"displayLabel": "X", "attributeName": ""}
            ]),
            json!({"total": 1200, "deleted": "35", "optimizedAggregation": "enabled",
                   "created": 2.5, "nested": {"a": 1}, "appId": 7}),
        );
        assert_eq!(
            task_results(&t),
            vec![
                TaskResult {
                    attribute: "total".into(),
                    value: 1200.0
                },
                TaskResult {
                    attribute: "deleted".into(),
                    value: 35.0
                },
                TaskResult {
                    attribute: "created".into(),
                    value: 2.5
                },
            ]
        );
        assert_eq!(t.returns[0].name, "TASK_OUT_ACCOUNT_AGGREGATION_TOTAL");
    }

    #[test]
    fn the_spec_example_shape() {
        let t = task(
            json!([{"name": "label", "attributeName": "identityCount"}]),
            json!({"identityCount": 0}),
        );
        assert_eq!(
            task_results(&t),
            vec![TaskResult {
                attribute: "identityCount".into(),
                value: 0.0
            }]
        );
    }

    #[test]
    fn non_finite_and_odd_strings_are_not_results() {
        let t = task(
            json!([{"name": "a", "attributeName": "a"}, {"name": "b", "attributeName": "b"}]),
            json!({"a": "NaN", "b": "12 accounts"}),
        );
        assert!(task_results(&t).is_empty());
    }
}
