//! The OpenMetrics and protobuf expositions: exemplars of the last counted task, native
//! buckets next to the classic ones, per-format incremental rendering, and exemplars
//! resumed from a state file.

use std::time::Duration;

use prost::Message;

use super::protobuf::{MetricFamily, MetricType};
use super::*;
use crate::config::MetricsSettings;
use crate::sailpoint::model::TaskStatus;

fn task(id: &str, name: &str, completed: &str) -> TaskStatus {
    serde_json::from_value(serde_json::json!({
        "id": id, "uniqueName": name, "created": "2024-01-01T00:00:00Z",
        "launched": "2024-01-01T00:00:30Z", "completed": completed,
        "completionStatus": "Success"
    }))
    .unwrap()
}

fn metrics() -> Metrics {
    Metrics::new(&MetricsSettings::default(), "v", "r").unwrap()
}

fn openmetrics(m: &Metrics) -> String {
    String::from_utf8(m.render_as(Format::OpenMetrics)).unwrap()
}

fn line<'t>(text: &'t str, prefix: &str) -> &'t str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
}

/// Every length-delimited family of a protobuf exposition.
fn families(bytes: &[u8]) -> Vec<MetricFamily> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(MetricFamily::decode_length_delimited(&mut rest).unwrap());
    }
    out
}

/// The first series of histogram family `name` in `m`'s protobuf exposition.
fn histogram(m: &Metrics, name: &str) -> super::protobuf::Histogram {
    families(&m.render_as(Format::Protobuf))
        .into_iter()
        .find(|f| f.name.as_deref() == Some(name))
        .and_then(|f| f.metric.into_iter().next())
        .and_then(|m| m.histogram)
        .unwrap()
}

const COMPLETED: &str = "sailpoint_tasks_completed_total{source=\"\",status=\"success\",task_name=\"Agg\",tenant=\"a\"}";
const BUCKET_60: &str = "sailpoint_task_duration_seconds_bucket{source=\"\",status=\"success\",task_name=\"Agg\",tenant=\"a\",le=\"60.0\"}";

#[test]
fn openmetrics_carries_the_last_counted_task_on_the_counter_and_its_bucket() {
    let m = metrics();
    let t = m.tenant("a");
    t.apply(|u| u.record_completion(&task("first", "Agg", "2024-01-01T00:01:00Z")));
    t.apply(|u| u.record_completion(&task("second", "Agg", "2024-01-01T00:01:00.250Z")));
    let text = openmetrics(&m);
    assert_eq!(
        line(&text, COMPLETED),
        format!("{COMPLETED} 2 # {{task_id=\"second\"}} 1 1704067260.250")
    );
    // 30 s from launch to completion: the 60 s bucket holds it (default buckets).
    assert_eq!(
        line(&text, BUCKET_60),
        format!("{BUCKET_60} 2 # {{task_id=\"second\"}} 30.25 1704067260.250")
    );
    assert!(text.contains("# TYPE sailpoint_tasks_completed counter\n"));
    assert!(text.contains("# TYPE sailpoint_task_duration_seconds histogram\n"));
    assert!(text.ends_with("# EOF\n"), "{}", &text[text.len() - 200..]);
    assert_eq!(text.matches("# EOF").count(), 1);
    // The text format has no exemplars and keeps its bounds.
    let plain = String::from_utf8(m.render()).unwrap();
    assert!(!plain.contains(" # {"));
    assert!(plain.contains("le=\"60\"} 2\n"));
}

#[test]
fn protobuf_joins_every_tenant_into_one_family_with_exemplars_and_native_buckets() {
    let m = metrics();
    m.tenant("a")
        .apply(|u| u.record_completion(&task("ta", "Agg", "2024-01-01T00:01:00Z")));
    m.tenant("b")
        .apply(|u| u.record_completion(&task("tb", "Agg", "2024-01-01T00:00:31Z")));
    let all = families(&m.render_as(Format::Protobuf));
    let named = |name: &str| {
        all.iter()
            .filter(|f| f.name.as_deref() == Some(name))
            .collect::<Vec<_>>()
    };
    let completed = named("sailpoint_tasks_completed_total");
    assert_eq!(completed.len(), 1, "one message for the family");
    let completed = completed[0];
    assert_eq!(completed.r#type, Some(MetricType::Counter as i32));
    let success: Vec<_> = completed
        .metric
        .iter()
        .filter(|m| {
            m.label
                .iter()
                .any(|l| l.value.as_deref() == Some("success"))
        })
        .collect();
    assert_eq!(success.len(), 2, "tenants a and b");
    let exemplar = success[0]
        .counter
        .as_ref()
        .unwrap()
        .exemplar
        .as_ref()
        .unwrap();
    assert_eq!(exemplar.label[0].value.as_deref(), Some("ta"));
    assert_eq!(
        exemplar.timestamp.as_ref().map(|t| t.seconds),
        Some(1_704_067_260)
    );

    let duration = named("sailpoint_task_duration_seconds");
    assert_eq!(duration.len(), 1);
    let b = duration[0]
        .metric
        .iter()
        .find(|m| m.label.iter().any(|l| l.value.as_deref() == Some("b")))
        .unwrap()
        .histogram
        .clone()
        .unwrap();
    assert_eq!((b.sample_count, b.sample_sum), (Some(1), Some(1.0)));
    assert_eq!(b.schema, Some(3));
    assert_eq!(b.zero_threshold, Some(0.001));
    assert_eq!(b.zero_count, Some(0));
    // 1 s is the upper bound of bucket 0.
    assert_eq!(b.positive_span.len(), 1);
    assert_eq!(
        (b.positive_span[0].offset, b.positive_span[0].length),
        (Some(0), Some(1))
    );
    assert_eq!(b.positive_delta, vec![1]);
    let first = &b.bucket[0];
    assert_eq!(
        first.cumulative_count,
        Some(1),
        "1 s fits the first classic bucket"
    );
    assert_eq!(
        first
            .exemplar
            .as_ref()
            .map(|e| (e.label[0].value.clone(), e.value)),
        Some((Some("tb".to_string()), Some(1.0)))
    );
    assert!(
        named("sailpoint_exporter_api_request_duration_seconds").is_empty()
            || named("sailpoint_exporter_api_request_duration_seconds")[0]
                .metric
                .iter()
                .all(|m| m.histogram.as_ref().is_some_and(|h| h.schema.is_none())),
        "the exporter's own histogram stays classic"
    );
    assert!(!named("process_start_time_seconds").is_empty() || cfg!(not(target_os = "linux")));
}

#[test]
fn protobuf_writes_the_inf_bucket_only_to_carry_its_exemplar() {
    let m = metrics();
    // Two days: past the last default bound (one day).
    m.tenant("a")
        .apply(|u| u.record_completion(&task("long", "Agg", "2024-01-03T00:00:30Z")));
    let buckets = |name: &str| histogram(&m, name).bucket;
    let duration = buckets("sailpoint_task_duration_seconds");
    let last = duration.last().unwrap();
    assert_eq!(last.upper_bound, Some(f64::INFINITY));
    assert_eq!(
        (
            last.cumulative_count,
            last.exemplar.as_ref().and_then(|e| e.value)
        ),
        (Some(1), Some(172_800.0))
    );
    // 30 s of queue wait has a finite bucket: no explicit +Inf.
    let wait = buckets("sailpoint_task_queue_wait_seconds");
    assert!(
        wait.iter()
            .all(|b| b.upper_bound.is_some_and(f64::is_finite))
    );
}

#[test]
fn each_format_catches_up_with_changes_another_format_rendered_first() {
    let m = metrics();
    let t = m.tenant("a");
    t.apply(|u| u.record_completion(&task("one", "Agg", "2024-01-01T00:01:00Z")));
    assert!(openmetrics(&m).contains(&format!("{COMPLETED} 1 #")));
    t.apply(|u| u.record_completion(&task("two", "Agg", "2024-01-01T00:02:00Z")));
    // The text format takes the change first; OpenMetrics must still see it.
    assert!(
        String::from_utf8(m.render())
            .unwrap()
            .contains("status=\"success\",task_name=\"Agg\",tenant=\"a\"} 2\n")
    );
    let text = openmetrics(&m);
    assert_eq!(
        line(&text, COMPLETED),
        format!("{COMPLETED} 2 # {{task_id=\"two\"}} 1 1704067320.000")
    );
}

#[test]
fn only_the_formats_a_scrape_asked_for_are_kept_rendered() {
    let m = metrics();
    m.tenant("a")
        .apply(|u| u.poll_failed(PollList::Pending, Duration::from_millis(1)));
    assert_eq!(m.cache.asked(), vec![Format::Text]);
    assert!(m.prerendered(Format::Protobuf).is_none());
    assert_eq!(m.cache.asked(), vec![Format::Text, Format::Protobuf]);
    let kept = m.exposition(Format::Protobuf);
    assert_eq!(kept.format, Format::Protobuf);
    assert!(m.prerendered(Format::Protobuf).is_some());
    assert!(
        m.prerendered(Format::OpenMetrics).is_none(),
        "never rendered"
    );
}

#[test]
fn exemplars_and_native_buckets_survive_the_state_file() {
    let m = metrics();
    m.tenant("a")
        .apply(|u| u.record_completion(&task("kept", "Agg", "2024-01-01T00:01:00Z")));
    let saved: TenantState =
        serde_json::from_slice(&serde_json::to_vec(&m.tenant("a").snapshot()).unwrap()).unwrap();
    let fresh = metrics();
    fresh.restore("a", saved);
    let text = openmetrics(&fresh);
    assert!(line(&text, COMPLETED).ends_with("1 # {task_id=\"kept\"} 1 1704067260.000"));
    let h = histogram(&fresh, "sailpoint_task_duration_seconds");
    assert_eq!(h.positive_delta.iter().sum::<i64>(), 1);
}

#[test]
fn a_state_file_without_native_buckets_gets_them_from_the_classic_ones() {
    let m = metrics();
    m.tenant("a")
        .apply(|u| u.record_completion(&task("old", "Agg", "2024-01-01T00:01:00Z")));
    let mut json = serde_json::to_value(m.tenant("a").snapshot()).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"native\""));
    strip(&mut json, "native");
    strip(&mut json, "exemplars");
    let fresh = metrics();
    fresh.restore("a", serde_json::from_value(json).unwrap());
    let h = histogram(&fresh, "sailpoint_task_duration_seconds");
    assert_eq!(h.sample_count, Some(1));
    // 30 s went to the classic 30 s bucket; its native stand-in is the bucket of 30 s.
    assert_eq!(h.positive_delta, vec![1]);
    assert_eq!(
        h.positive_span[0].offset,
        native::index(30.0),
        "the bucket holding the classic bound"
    );
    assert!(
        !openmetrics(&fresh).contains("task_id"),
        "no exemplar was kept"
    );
}

fn strip(value: &mut serde_json::Value, key: &str) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip(v, key));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, key)),
        _ => {}
    }
}
