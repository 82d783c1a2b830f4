//! Label rules, families and zero series of the owned metric state, checked on the
//! rendered text.

use std::time::Duration;

use super::normalize::{strip_id_suffix, task_name};
use super::*;
use crate::config::{MetricsSettings, Rewrite};
use crate::sailpoint::model::TaskStatus;
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
    t.poll_failed(PollList::Pending, Duration::from_millis(5));
    t.request("getTaskStatusList", "200", Duration::from_millis(30));
    t.retry(RetryReason::RateLimited);
    t.token_refresh();
    t.set_tracked(3, 4);
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
    assert!(
        text.contains("sailpoint_exporter_build_info{revision=\"abc\",version=\"1.2.3\"} 1")
    );
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
    let s = exposition::parse(&String::from_utf8(m.render()).unwrap());
    assert_eq!(
        exposition::value(
            &s,
            "sailpoint_exporter_token_refreshes_total",
            &[("tenant", "a")]
        ),
        Some(2.0)
    );
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
    t.record_completion(&task("s", "Success"));
    for i in 0..MAX_UNKNOWN_STATUSES + 3 {
        t.record_completion(&task(&format!("x{i}"), &format!("Weird{i}")));
    }
    t.record_completion(&task("again", "WEIRD0"));
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
