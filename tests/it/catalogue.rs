//! One catalogue: `docs/metrics.md`, the deploy checks' `tests/deploy/catalogue.py` and
//! what the exporter renders all list exactly the families of `src/metrics/catalogue.rs`,
//! with the same types (and, for the docs, the same labels). And the docs name only what
//! exists: every repository path that README.md and docs/*.md name (in code spans, fenced
//! blocks and links) is there, so a file that moves cannot leave a page pointing nowhere.

use std::collections::BTreeSet;
use std::path::Path;
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

/// Folders of the repository whose paths the docs name: a word in a code span or a fenced
/// block that starts with one of these is a path, and so is every relative link target.
const REPO_FOLDERS: &[&str] = &[
    "src/", "tests/", "deploy/", "scripts/", "config/", "docs/", "benches/", ".ci/",
];

/// The pages whose paths must exist: the README and every page of `docs/`, as
/// (path from the repository root, text).
fn doc_pages(root: &Path) -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    names.sort();
    names.insert(0, "README.md".to_string());
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join(&name)).unwrap();
            (name, text)
        })
        .collect()
}

/// The repository paths a code span or fenced line names. A pattern (`tests/deploy/*.yml`,
/// `DIR/<tenant>.json`) names the folder before its first wildcard.
fn paths_in_code(code: &str) -> Vec<String> {
    code.split_whitespace()
        .map(|word| {
            word.trim_start_matches(['"', '\'', '(', '['])
                .trim_end_matches(['"', '\'', ')', ']', ',', ';', ':', '.'])
        })
        .filter(|word| REPO_FOLDERS.iter().any(|folder| word.starts_with(folder)))
        .map(|word| {
            let word = word.split('#').next().unwrap_or(word);
            match word.find(['*', '{', '<', '…', '$']) {
                Some(i) => word[..i].rsplit_once('/').map_or("", |(dir, _)| dir),
                None => word,
            }
            .to_string()
        })
        .collect()
}

/// The relative targets of the markdown links (and images) of `line`, resolved against
/// the folder of `page`; web addresses and anchors of the same page are left out.
fn paths_in_links(page: &str, line: &str) -> Vec<String> {
    line.split("](")
        .skip(1)
        .filter_map(|rest| rest.split([')', ' ']).next())
        .filter(|target| !target.contains("://") && !target.starts_with(['#', '<']))
        .filter(|target| !target.starts_with("mailto:"))
        .map(|target| target.split('#').next().unwrap_or(target))
        .filter(|target| !target.is_empty())
        .map(|target| {
            let mut parts: Vec<&str> = page.split('/').collect();
            parts.pop();
            for part in target.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    _ => parts.push(part),
                }
            }
            parts.join("/")
        })
        .collect()
}

/// Every repository path the pages name, as (page:line, path from the root).
fn named_paths(pages: &[(String, String)]) -> Vec<(String, String)> {
    let mut named = Vec::new();
    for (page, text) in pages {
        let mut fenced = false;
        // A code span may continue on the next line of its paragraph.
        let mut in_span = false;
        for (number, line) in text.lines().enumerate() {
            let at = format!("{page}:{}", number + 1);
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if line.trim().is_empty() {
                in_span = false;
            }
            let code: Vec<&str> = if fenced {
                vec![line]
            } else {
                let pieces: Vec<&str> = line.split('`').collect();
                let first = usize::from(!in_span);
                in_span ^= pieces.len().is_multiple_of(2);
                pieces.into_iter().skip(first).step_by(2).collect()
            };
            let paths = code.into_iter().flat_map(paths_in_code);
            let paths = paths.chain(paths_in_links(page, line));
            named.extend(paths.map(|path| (at.clone(), path)));
        }
    }
    named
}

/// The named paths that do not exist under `root`, as `page:line: path`.
fn missing_paths(root: &Path, pages: &[(String, String)]) -> Vec<String> {
    named_paths(pages)
        .into_iter()
        .filter(|(_, path)| !root.join(path).exists())
        .map(|(at, path)| format!("{at}: {path}"))
        .collect()
}

#[test]
fn every_repository_path_the_readme_and_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pages = doc_pages(root);
    let named: BTreeSet<String> = named_paths(&pages).into_iter().map(|(_, p)| p).collect();
    // The reading itself works: a code span and a link of the README, a link between two
    // pages of docs/ and a command line in a fenced block.
    for expected in [
        "src/metrics/catalogue.rs",
        "docs/design.md",
        "docs/sailpoint-api.md",
        "config/sailpoint-task-exporter.yaml",
    ] {
        assert!(named.contains(expected), "{expected} not found in the docs");
    }
    let missing = missing_paths(root, &pages);
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_page_naming_a_missing_path_is_reported_with_its_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = "Exists: `src/lib.rs`, [design](design.md), `tests/deploy/*.py`.\n\
                Missing: `src/config.rs`, `cargo run -- check --config.file config/nope.yaml`,\n\
                [a link](../scripts/nope.sh#usage), a span `over two\n\
                lines naming deploy/nope.yml`, not/a/path, and in a block:\n\
                ```sh\n\
                bash scripts/missing.sh\n\
                ```\n\
                Not paths: `target/debug`, [web](https://example.com/src/x.rs), `docs`.\n";
    let pages = [("docs/example.md".to_string(), page.to_string())];
    assert_eq!(
        missing_paths(root, &pages),
        [
            "docs/example.md:2: src/config.rs",
            "docs/example.md:2: config/nope.yaml",
            "docs/example.md:3: scripts/nope.sh",
            "docs/example.md:4: deploy/nope.yml",
            "docs/example.md:6: scripts/missing.sh",
        ]
    );
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
