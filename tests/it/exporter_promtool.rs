//! The real rendered `/metrics` output of an exporter that polled a realistic simulated
//! tenant must pass `promtool check metrics` with no finding at all (docs/metrics.md).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use sailpoint_simulator::Scenario;
use test_support::exporter::*;

const PROMTOOL: &str = "promtool";

fn promtool_check(text: &[u8]) -> (bool, String) {
    let child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run `{PROMTOOL}` ({e}): install it with the README test command \
             (`bash scripts/test.sh`, which runs scripts/install-test-deps.sh)"
        ),
    };
    child.stdin.take().unwrap().write_all(text).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test]
async fn rendered_metrics_pass_promtool_check_metrics() {
    let sim = start_sim(Scenario::StuckAggregation, 11).await;
    let mut exp = exporter(&sim, |_| {});
    exp.poller.prime().await.unwrap();
    for _ in 0..6 {
        sim.advance(Duration::from_secs(600));
        exp.cycle().await;
    }
    let text = exp.metrics.render();
    let rendered = String::from_utf8(text.clone()).unwrap();
    for family in [
        "sailpoint_tasks_completed_total",
        "sailpoint_task_duration_seconds_bucket",
        "sailpoint_tasks_pending",
        "sailpoint_pending_task_progress_ratio",
        "sailpoint_exporter_api_request_duration_seconds_bucket",
        "process_cpu_seconds_total",
    ] {
        assert!(
            rendered.contains(family),
            "{family} missing: the check would prove little"
        );
    }
    let (ok, report) = promtool_check(&text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[test]
fn promtool_reports_a_broken_exposition() {
    // Guards the test above against a promtool that accepts anything.
    let (ok, report) = promtool_check(b"# TYPE bad_total counter\nbad_total{a=\"1\"} x\n");
    assert!(!ok, "promtool accepted garbage: {report}");
    assert!(report.contains("parsing error"), "{report}");
}
