//! One catalogue: `docs/metrics.md`, the deploy checks' `tests/deploy/catalogue.py` and
//! what the exporter renders all list exactly the families of `src/metrics/catalogue.rs`,
//! with the same types (and, for the docs, the same labels).

use std::collections::BTreeSet;
use std::time::Duration;

use sailpoint_task_exporter::config::MetricsSettings;
use sailpoint_task_exporter::metrics::catalogue::{CATALOGUE, Family, Kind};
use sailpoint_task_exporter::metrics::{Metrics, PollList};
use sailpoint_task_exporter::sailpoint::{ApiObserver, RetryReason};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn kind(f: &Family) -> &'static str {
    f.kind.as_str()
}

/// (name, type, labels) of every family of the catalogue.
fn catalogue() -> BTreeSet<(String, String, String)> {
    CATALOGUE
        .iter()
        .map(|f| {
            let labels = if f.labels.is_empty() {
                "(none)".to_string()
            } else {
                f.labels.join(", ")
            };
            (f.name.to_string(), kind(f).to_string(), labels)
        })
        .collect()
}

#[test]
fn docs_metrics_md_lists_exactly_the_catalogue() {
    let docs: BTreeSet<(String, String, String)> = read("docs/metrics.md")
        .lines()
        .filter(|l| l.starts_with("| `sailpoint_"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 3, "{l}");
            (
                cells[0].trim_matches('`').to_string(),
                cells[1].to_string(),
                cells[2].to_string(),
            )
        })
        .collect();
    assert_eq!(docs, catalogue());
}

/// The quoted names of the Python set `NAME = { ... }`.
fn python_set(text: &str, name: &str) -> BTreeSet<String> {
    let start = text
        .find(&format!("{name} = {{"))
        .unwrap_or_else(|| panic!("{name} not in catalogue.py"));
    let body = &text[start..];
    let body = &body[..body.find('}').unwrap()];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Families the deploy kit's rules and dashboard would read before the exporter exports
/// them (none today). The test fails when this list and the actual difference disagree.
const ANNOUNCED_NOT_EXPORTED: &[&str] = &[];

#[test]
fn the_deploy_checks_catalogue_lists_exactly_the_catalogue() {
    let text = read("tests/deploy/catalogue.py");
    let announced: BTreeSet<String> = ANNOUNCED_NOT_EXPORTED
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    let mut extra = BTreeSet::new();
    for (set, kind) in [
        ("GAUGES", Kind::Gauge),
        ("COUNTERS", Kind::Counter),
        ("HISTOGRAMS", Kind::Histogram),
    ] {
        let want: BTreeSet<String> = CATALOGUE
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.name.to_string())
            .collect();
        let listed = python_set(&text, set);
        assert!(
            want.is_subset(&listed),
            "{set}: missing from catalogue.py: {:?}",
            want.difference(&listed).collect::<Vec<_>>()
        );
        extra.extend(listed.difference(&want).cloned());
    }
    assert_eq!(
        extra, announced,
        "catalogue.py families the exporter does not export"
    );
}

#[test]
fn the_exporter_renders_each_family_with_its_catalogue_type() {
    let settings = MetricsSettings {
        max_groups: 1,
        max_return_attributes: 1,
        ..MetricsSettings::default()
    };
    let m = Metrics::new(&settings, "v", "r").unwrap();
    m.config_reloaded(true);
    let t = m.tenant("acme");
    let task = serde_json::from_value(serde_json::json!({
        "id": "1", "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z",
        "launched": "2024-01-01T00:00:01Z", "completed": "2024-01-01T00:01:00Z",
        "completionStatus": "Success",
        "returns": [{"name": "T", "attributeName": "total"}, {"name": "D", "attributeName": "deleted"}],
        "attributes": {"total": 10, "deleted": 2}
    }))
    .unwrap();
    let pending = serde_json::from_value(serde_json::json!({
        "id": "2", "uniqueName": "Agg", "created": "2024-01-01T00:00:00Z"
    }))
    .unwrap();
    let beyond_max_groups = serde_json::from_value(serde_json::json!({
        "id": "3", "uniqueName": "Refresh", "created": "2024-01-01T00:00:00Z",
        "completed": "2024-01-01T00:01:00Z", "completionStatus": "Error"
    }))
    .unwrap();
    t.apply(|u| {
        u.record_completion(&task);
        u.record_completion(&beyond_max_groups);
        u.set_pending([&pending]);
        u.poll_succeeded(PollList::Pending, chrono::Utc::now(), Duration::ZERO);
        u.set_tracked(1, 1);
        u.set_clock_skew(-1.5);
        u.state_set_aside("corrupt");
        u.state_write_failed();
        u.state_written(chrono::Utc::now());
    });
    t.request("getTaskStatusList", "200", Duration::from_millis(3));
    t.retry(RetryReason::Timeout);
    let text = String::from_utf8(m.render()).unwrap();
    let rendered: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter(|l| l.starts_with("sailpoint_"))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = CATALOGUE
        .iter()
        .map(|f| (f.name.to_string(), kind(f).to_string()))
        .collect();
    assert_eq!(rendered, want);
}

/// Every `code` value the shipped rules or dashboard select on
/// `sailpoint_exporter_api_requests_total` (`code="429"`, `code=~"5..|429"` alternatives)
/// exists at 0 on a fresh tenant: a panel or rule on it shows 0 instead of no data, and
/// `increase()` sees the first one.
#[test]
fn every_code_a_panel_or_rule_selects_exists_at_zero_from_the_start() {
    let shipped = [
        read("deploy/prometheus/sailpoint-task-exporter.rules.yml"),
        read("deploy/grafana/sailpoint-task-exporter.json").replace("\\\"", "\""),
    ];
    let pattern =
        regex::Regex::new(r#"sailpoint_exporter_api_requests_total\{[^}]*\bcode=~?"([^"]+)""#)
            .unwrap();
    let mut selected = BTreeSet::new();
    for text in &shipped {
        for found in pattern.captures_iter(text) {
            for code in found[1].split('|') {
                selected.insert(code.to_string());
            }
        }
    }
    assert!(
        selected.contains("429"),
        "the 429 panel is found: {selected:?}"
    );
    let m = Metrics::new(&MetricsSettings::default(), "v", "r").unwrap();
    m.tenant("acme");
    let text = String::from_utf8(m.render()).unwrap();
    for code in &selected {
        let at_zero = text.lines().any(|l| {
            l.starts_with("sailpoint_exporter_api_requests_total{")
                && l.contains(&format!("code=\"{code}\""))
                && l.ends_with(" 0")
        });
        assert!(
            at_zero,
            "code=\"{code}\" is selected but not rendered at 0:\n{text}"
        );
    }
}
