//! Label rules, families and zero series of the owned metric state, checked on the
//! rendered text.

use std::time::Duration;

use super::normalize::{strip_id_suffix, task_name};
use super::*;
use crate::config::{MetricsSettings, Rewrite};
use crate::sailpoint::model::TaskStatus;
use crate::sailpoint::{ApiObserver, RetryReason};
use test_support::exposition;

fn rewrite(pattern: &str, replacement: &str) -> Rewrite {
    Rewrite {
        pattern: regex::Regex::new(pattern).unwrap(),
        replacement: replacement.to_string(),
    }
}

#[test]
fn id_and_uuid_suffixes_are_stripped() {
    for (raw, want) in [
        (
            "Entitlement Source Reset - 2c9180835d2e5168015d32f890ca1581",
            "Entitlement Source Reset",
        ),
        (
            "Entitlement Source Reset - 0f8a2b6e-58a4-4c7e-9b1d-3f2e1a0b9c8d",
            "Entitlement Source Reset",
        ),
        (
            "Source Reset_2C9180835D2E5168015D32F890CA1581",
            "Source Reset",
        ),
        ("Export [2c9180835d2e5168015d32f890ca1581]", "Export"),
        ("Export (0f8a2b6e-58a4-4c7e-9b1d-3f2e1a0b9c8d)", "Export"),
        ("Cloud Account Aggregation", "Cloud Account Aggregation"),
        ("Active Directory [source]", "Active Directory [source]"),
        // Not a whole trailing id token: kept.
        (
            "Taskabc2c9180835d2e5168015d32f890ca1581",
            "Taskabc2c9180835d2e5168015d32f890ca1581",
        ),
        ("Job 12345", "Job 12345"),
    ] {
        assert_eq!(strip_id_suffix(raw), want, "{raw}");
    }
}

#[test]
fn rewrites_apply_in_order_and_empty_names_become_unknown() {
    let rules = [rewrite("^Cloud ", ""), rewrite("Account", "Acct")];
    assert_eq!(
        task_name("Cloud Account Aggregation", &rules),
        "Acct Aggregation"
    );
    assert_eq!(task_name("", &[]), "unknown");
    assert_eq!(
        task_name("2c9180835d2e5168015d32f890ca1581", &[]),
        "unknown"
    );
    assert_eq!(task_name("X", &[rewrite("X", "")]), "unknown");
    assert_eq!(
        task_name(&"n".repeat(500), &[]).chars().count(),
        normalize::MAX_LABEL_CHARS
    );
}

#[test]
fn every_design_family_is_rendered_with_a_polling_help_text() {
    let m = Metrics::new(&MetricsSettings::default(), "1.2.3", "abc").unwrap();
    let t = m.tenant("acme");
    t.apply(|u| u.poll_failed(PollList::Pending, Duration::from_millis(5)));
    t.request("getTaskStatusList", "200", Duration::from_millis(30));
    t.retry(RetryReason::RateLimited);
    t.token_refresh();
    t.apply(|u| u.set_tracked(3, 4));
    let text = String::from_utf8(m.render()).unwrap();
    for (family, kind) in [
        ("sailpoint_up", "gauge"),
        ("sailpoint_exporter_poll_errors_total", "counter"),
        ("sailpoint_exporter_last_poll_duration_seconds", "gauge"),
        ("sailpoint_exporter_api_requests_total", "counter"),
        (
            "sailpoint_exporter_api_request_duration_seconds",
            "histogram",
        ),
        ("sailpoint_exporter_api_retries_total", "counter"),
        ("sailpoint_exporter_token_refreshes_total", "counter"),
        ("sailpoint_exporter_tracked_tasks", "gauge"),
        ("sailpoint_exporter_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}\n{text}"
        );
    }
    assert!(text.contains("sailpoint_exporter_build_info{revision=\"abc\",version=\"1.2.3\"} 1"));
    assert!(text.contains(
        "sailpoint_exporter_api_retries_total{reason=\"rate_limited\",tenant=\"acme\"} 1"
    ));
    assert!(text.contains("# HELP sailpoint_up 1 if the last pending and the last completed poll of the tenant both succeeded, else 0. Updated by background polling"));
    #[cfg(target_os = "linux")]
    assert!(text.contains("process_resident_memory_bytes"));
    let s = exposition::parse(&text);
    assert_eq!(
        exposition::value(
            &s,
            "sailpoint_exporter_tracked_tasks",
            &[("state", "recent")]
        ),
        Some(4.0)
    );
    assert_eq!(
        exposition::value(&s, "sailpoint_up", &[("tenant", "acme")]),
        Some(0.0)
    );
}

#[test]
fn the_tenant_handle_is_shared_per_name() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    m.tenant("a").token_refresh();
    m.tenant("a").token_refresh();
    let tenant_a = [("tenant", "a")];
    let refreshes = reader(&m)("sailpoint_exporter_token_refreshes_total", &tenant_a);
    assert_eq!(refreshes, Some(2.0));
}

#[test]
fn undocumented_statuses_are_kept_up_to_a_cap_then_folded() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("a");
    let task = |id: &str, status: &str| -> TaskStatus {
        serde_json::from_value(serde_json::json!({
            "id": id, "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
            "completed": "2024-01-01T00:01:00Z", "completionStatus": status
        }))
        .unwrap()
    };
    t.apply(|u| u.record_completion(&task("s", "Success")));
    for i in 0..MAX_UNKNOWN_STATUSES + 3 {
        t.apply(|u| u.record_completion(&task(&format!("x{i}"), &format!("Weird{i}"))));
    }
    t.apply(|u| u.record_completion(&task("again", "WEIRD0")));
    let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
    let count = |status: &str| {
        exposition::value(&s, "sailpoint_tasks_completed_total", &[("status", status)])
    };
    assert_eq!(count("success"), Some(1.0));
    assert_eq!(count("weird0"), Some(2.0), "case-insensitive, kept");
    assert_eq!(
        count(&format!("weird{}", MAX_UNKNOWN_STATUSES - 1)),
        Some(1.0)
    );
    assert_eq!(count(&format!("weird{MAX_UNKNOWN_STATUSES}")), None);
    assert_eq!(
        count("other"),
        Some(3.0),
        "past the cap: folded, still counted"
    );
}

#[test]
fn exposition_parser_reads_escaped_labels() {
    let s = exposition::parse("m{a=\"x\\\"y\",b=\"\\\\\"} 2.5\nn 1\n# HELP m x\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].labels.get("a").map(String::as_str), Some("x\"y"));
    assert_eq!(s[0].labels.get("b").map(String::as_str), Some("\\"));
    assert_eq!(s[0].value, 2.5);
}

fn task(json: serde_json::Value) -> TaskStatus {
    serde_json::from_value(json).unwrap()
}

/// A successful "Agg" that ran a minute.
fn agg_success() -> TaskStatus {
    task(serde_json::json!({
        "id": "c", "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
        "completed": "2024-01-01T00:01:00Z", "completionStatus": "Success"
    }))
}

/// How the text exposition of `m`, rendered now, reads a sample: `value(name, labels)`.
fn reader(m: &Metrics) -> impl Fn(&str, &[(&str, &str)]) -> Option<f64> {
    let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
    move |name, labels| exposition::value(&s, name, labels)
}

/// Every series of the tenant whose name starts with `prefix`, as `name{labels}` lines.
fn series(m: &Metrics, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8(m.render())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_group_known_from_priming_has_every_series_at_zero() {
    let settings = MetricsSettings {
        duration_buckets: vec![60.0],
        queue_wait_buckets: vec![1.0],
        ..MetricsSettings::default()
    };
    let m = Metrics::new(&settings, "v", "r").unwrap();
    let t = m.tenant("a");
    t.apply(|u| {
        u.record_primed(&task(serde_json::json!({
            "id": "p", "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
            "completed": "2024-01-01T00:02:00Z", "completionStatus": "Success"
        })));
        u.set_pending(std::iter::empty());
    });
    let zero_histogram = |name: &str, labels: &str, bound: &str| {
        [
            format!("{name}_bucket{{{labels},le=\"{bound}\"}} 0"),
            format!("{name}_bucket{{{labels},le=\"+Inf\"}} 0"),
            format!("{name}_count{{{labels}}} 0"),
            format!("{name}_sum{{{labels}}} 0"),
        ]
    };
    let ok = "source=\"\",status=\"success\",task_name=\"Agg\",tenant=\"a\"";
    let g = "source=\"\",task_name=\"Agg\",tenant=\"a\"";
    let mut want = Vec::from(zero_histogram("sailpoint_task_duration_seconds", ok, "60"));
    want.extend(zero_histogram("sailpoint_task_queue_wait_seconds", g, "1"));
    for level in ["error", "warn"] {
        want.push(format!(
            "sailpoint_task_messages_total{{level=\"{level}\",{g}}} 0"
        ));
    }
    want.push(format!(
        "sailpoint_task_last_completed_timestamp_seconds{{{ok}}} 1704067320"
    ));
    want.push(format!("sailpoint_task_last_duration_seconds{{{ok}}} 120"));
    want.sort();
    assert_eq!(series(&m, "sailpoint_task_"), want);
    let mut counted: Vec<String> = ["error", "success", "temperror", "terminated", "warning"]
        .iter()
        .map(|s| {
            format!(
                "sailpoint_tasks_completed_total{{source=\"\",status=\"{s}\",task_name=\"Agg\",tenant=\"a\"}} 0"
            )
        })
        .collect();
    counted.push(format!("sailpoint_tasks_pending{{{g}}} 0"));
    counted.sort();
    assert_eq!(series(&m, "sailpoint_tasks_"), counted);
}

#[test]
fn a_completion_moves_counter_histogram_and_messages_together() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("a");
    t.apply(|u| {
        u.record_completion(&task(serde_json::json!({
            "id": "c", "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
            "launched": "2024-01-01T00:00:10Z", "completed": "2024-01-01T00:01:10Z",
            "completionStatus": "Error",
            "messages": [{"type": "ERROR", "key": "k"}, {"type": "INFO", "key": "i"}]
        })))
    });
    let err = [("task_name", "Agg"), ("status", "error")];
    let value = reader(&m);
    assert_eq!(value("sailpoint_tasks_completed_total", &err), Some(1.0));
    assert_eq!(
        value("sailpoint_task_duration_seconds_count", &err),
        Some(1.0)
    );
    assert_eq!(
        value("sailpoint_task_duration_seconds_sum", &err),
        Some(60.0)
    );
    assert_eq!(
        value(
            "sailpoint_task_queue_wait_seconds_sum",
            &[("task_name", "Agg")]
        ),
        Some(10.0)
    );
    let level = |l: &str| value("sailpoint_task_messages_total", &[("level", l)]);
    assert_eq!((level("error"), level("warn")), (Some(1.0), Some(0.0)));
}

#[test]
fn the_prerendered_exposition_follows_every_applied_change() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("a");
    let first = m.exposition(Format::Text);
    assert!(
        m.prerendered(Format::Text).is_some(),
        "kept after rendering"
    );
    t.apply(|u| u.poll_failed(PollList::Pending, Duration::from_millis(1)));
    assert!(
        m.prerendered(Format::Text).is_none(),
        "an applied change invalidates it"
    );
    let second = m.exposition(Format::Text);
    assert_ne!(first.gzip, second.gzip);
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&second.gzip[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(
        second.text.as_deref(),
        Some(&text[..]),
        "a small exposition's text is kept decoded, equal to its gzip"
    );
    let s = exposition::parse(std::str::from_utf8(&text).unwrap());
    let errors = exposition::value(
        &s,
        "sailpoint_exporter_poll_errors_total",
        &[("list", "pending")],
    );
    assert_eq!(errors, Some(1.0));
}

#[test]
fn a_large_exposition_is_kept_only_compressed() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let mut groups = 0;
    while m.render().len() as u64 <= source::KEEP_TEXT_UP_TO {
        for tenant in ["a", "b", "c", "d"] {
            m.tenant(tenant).apply(|u| {
                u.record_completion(&task(serde_json::json!({
                    "id": format!("{tenant}{groups}"), "uniqueName": format!("Job {groups}"),
                    "created": "2024-01-01T00:00:00Z", "completed": "2024-01-01T00:01:00Z",
                    "completionStatus": "Success"
                })))
            });
        }
        groups += 1;
    }
    let kept = m.exposition(Format::Text);
    assert!(kept.text.is_none());
    let text = kept.decoded().unwrap();
    assert!(text.len() as u64 > source::KEEP_TEXT_UP_TO);
    assert_eq!(
        std::str::from_utf8(&text)
            .unwrap()
            .matches("sailpoint_tasks_completed_total{")
            .count(),
        4 * 5 * groups,
        "every tenant's five statuses of every group"
    );
}

/// The tenant families of an exposition (process metrics vary between renderings).
fn tenant_lines(text: &[u8]) -> Vec<String> {
    String::from_utf8(text.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.contains("process_"))
        .map(str::to_string)
        .collect()
}

/// Renders every family of every tenant again, as if nothing had been rendered before.
fn full_rendering(m: &Metrics) -> Vec<String> {
    for handle in m.handles() {
        *handle.text.lock().unwrap() = render::TenantText::default();
    }
    tenant_lines(&render::build(m, Format::Text).decoded().unwrap())
}

#[test]
fn rendering_only_changed_families_equals_rendering_everything() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let (a, b) = (m.tenant("a"), m.tenant("b"));
    let finished = |id: usize, name: &str, status: &str| {
        task(serde_json::json!({
            "id": format!("t{id}"), "uniqueName": name, "created": "2024-01-01T00:00:00Z",
            "launched": "2024-01-01T00:00:05Z", "completed": format!("2024-01-01T00:{:02}:00Z", id % 60),
            "completionStatus": status, "type": "QUARTZ",
            "returns": [{"name": "TOTAL", "attributeName": "total"}],
            "attributes": {"total": id},
            "messages": [{"type": "ERROR", "key": "k", "localizedText": {"locale": "en", "message": "m"}}]
        }))
    };
    let pending = |id: usize, name: &str| {
        task(serde_json::json!({
            "id": format!("p{id}"), "uniqueName": name, "created": "2024-01-01T00:00:00Z"
        }))
    };
    let mut checked = 0;
    for step in 0..40usize {
        let handle = if step % 3 == 0 { &b } else { &a };
        match step % 5 {
            0 => handle.apply(|u| u.record_completion(&finished(step, "Agg", "Success"))),
            1 => handle.apply(|u| {
                u.record_completion(&finished(step, &format!("Job {}", step % 4), "Error"))
            }),
            2 => handle.apply(|u| {
                u.set_pending([pending(step, "Agg"), pending(step + 1, "Other")].iter())
            }),
            3 => handle
                .apply(|u| u.poll_failed(PollList::Completed, Duration::from_millis(step as u64))),
            _ => handle.apply(|u| u.set_pending(std::iter::empty())),
        }
        if step % 4 == 0 {
            continue; // several changes between renderings
        }
        let incremental = tenant_lines(&m.exposition(Format::Text).decoded().unwrap());
        assert_eq!(incremental, full_rendering(&m), "after step {step}");
        checked += 1;
    }
    assert_eq!(checked, 30);
}

#[test]
fn a_restored_state_continues_its_counters_with_up_at_zero() {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("a");
    t.apply(|u| u.record_completion(&agg_success()));
    t.apply(|u| u.poll_succeeded(PollList::Pending, chrono::Utc::now(), Duration::ZERO));
    t.apply(|u| u.poll_succeeded(PollList::Completed, chrono::Utc::now(), Duration::ZERO));
    let saved: TenantState =
        serde_json::from_slice(&serde_json::to_vec(&t.snapshot()).unwrap()).unwrap();
    let fresh = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    fresh.restore("a", saved);
    let value = reader(&fresh);
    let ok = [("task_name", "Agg"), ("status", "success")];
    assert_eq!(value("sailpoint_tasks_completed_total", &ok), Some(1.0));
    assert_eq!(
        value("sailpoint_task_duration_seconds_count", &ok),
        Some(1.0)
    );
    assert_eq!(value("sailpoint_up", &[]), Some(0.0));
}

/// The state of a tenant that counted one successful "Agg" with the default settings,
/// resumed by an exporter with `settings`.
fn resumed_with(settings: MetricsSettings) -> Metrics {
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    let t = m.tenant("a");
    t.apply(|u| u.record_completion(&agg_success()));
    let fresh = Metrics::new(&settings, "v", "r").unwrap();
    fresh.restore("a", t.snapshot());
    fresh
}

#[test]
fn a_restored_histogram_with_other_buckets_is_dropped_and_its_counter_kept() {
    let fresh = resumed_with(MetricsSettings {
        duration_buckets: vec![1.0, 2.0],
        ..MetricsSettings::default()
    });
    let s = exposition::parse(&String::from_utf8(fresh.render()).unwrap());
    let ok = [("task_name", "Agg"), ("status", "success")];
    assert_eq!(
        exposition::value(&s, "sailpoint_tasks_completed_total", &ok),
        Some(1.0),
        "the counter continues"
    );
    assert_eq!(
        exposition::value(&s, "sailpoint_task_duration_seconds_count", &ok),
        Some(0.0),
        "the known group's histogram starts again at 0 with the new buckets"
    );
    assert_eq!(
        exposition::count(&s, "sailpoint_task_duration_seconds_bucket", &ok),
        3
    );
}

#[test]
fn without_status_the_duration_histogram_is_one_per_group_and_counts_every_completion() {
    let settings = MetricsSettings {
        duration_buckets: vec![60.0],
        duration_by_status: false,
        ..MetricsSettings::default()
    };
    let m = Metrics::new(&settings, "v", "r").unwrap();
    let t = m.tenant("a");
    let finished = |id: &str, status: &str, seconds: u32| {
        task(serde_json::json!({
            "id": id, "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
            "launched": "2024-01-01T00:00:00Z",
            "completed": format!("2024-01-01T00:{:02}:{:02}Z", seconds / 60, seconds % 60),
            "completionStatus": status
        }))
    };
    t.apply(|u| u.record_primed(&finished("p", "Success", 10)));
    let at_zero = series(&m, "sailpoint_task_duration_seconds");
    assert_eq!(
        at_zero,
        [
            "sailpoint_task_duration_seconds_bucket{source=\"\",task_name=\"Agg\",tenant=\"a\",le=\"+Inf\"} 0",
            "sailpoint_task_duration_seconds_bucket{source=\"\",task_name=\"Agg\",tenant=\"a\",le=\"60\"} 0",
            "sailpoint_task_duration_seconds_count{source=\"\",task_name=\"Agg\",tenant=\"a\"} 0",
            "sailpoint_task_duration_seconds_sum{source=\"\",task_name=\"Agg\",tenant=\"a\"} 0",
        ]
    );
    t.apply(|u| u.record_completion(&finished("1", "Success", 30)));
    t.apply(|u| u.record_completion(&finished("2", "Error", 90)));
    t.apply(|u| u.record_completion(&finished("3", "Warning", 45)));
    assert_eq!(
        series(&m, "sailpoint_task_duration_seconds"),
        [
            "sailpoint_task_duration_seconds_bucket{source=\"\",task_name=\"Agg\",tenant=\"a\",le=\"+Inf\"} 3",
            "sailpoint_task_duration_seconds_bucket{source=\"\",task_name=\"Agg\",tenant=\"a\",le=\"60\"} 2",
            "sailpoint_task_duration_seconds_count{source=\"\",task_name=\"Agg\",tenant=\"a\"} 3",
            "sailpoint_task_duration_seconds_sum{source=\"\",task_name=\"Agg\",tenant=\"a\"} 165",
        ]
    );
    let text = String::from_utf8(m.render()).unwrap();
    assert_eq!(
        text.matches("# TYPE sailpoint_task_duration_seconds histogram")
            .count(),
        1
    );
    // The counters keep their status.
    let s = exposition::parse(&text);
    let count = |status: &str| {
        exposition::value(&s, "sailpoint_tasks_completed_total", &[("status", status)])
    };
    assert_eq!(
        (count("success"), count("error"), count("warning")),
        (Some(1.0), Some(1.0), Some(1.0))
    );
}

#[test]
fn a_restored_duration_histogram_with_the_other_label_choice_is_dropped() {
    let fresh = resumed_with(MetricsSettings {
        duration_by_status: false,
        ..MetricsSettings::default()
    });
    let value = reader(&fresh);
    let duration_count =
        |labels: &[(&str, &str)]| value("sailpoint_task_duration_seconds_count", labels);
    assert_eq!(duration_count(&[("status", "success")]), None);
    assert_eq!(
        duration_count(&[("task_name", "Agg")]),
        Some(0.0),
        "the group's histogram starts again at 0, without status"
    );
    assert_eq!(
        value("sailpoint_tasks_completed_total", &[("status", "success")]),
        Some(1.0),
        "the counter continues"
    );
}
