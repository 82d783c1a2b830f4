use chrono::Duration;
use serde_json::json;

use super::*;
use crate::sailpoint::model::{CompletionStatus, TaskStatus};
use crate::status::page;
use crate::status::record::{MAX_ERROR_CHARS, MAX_GROUPS, MAX_MESSAGES, MAX_OLDEST};
use crate::status::snapshot::{Message, TenantState};
use crate::status::text::{MAX_MESSAGE_CHARS, MAX_NAME_CHARS};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

const NOW: &str = "2026-03-02T12:00:00Z";

fn now() -> DateTime<Utc> {
    at(NOW)
}

fn minutes_ago(m: i64) -> DateTime<Utc> {
    now() - Duration::minutes(m)
}

/// A task as the API sends it: `source` = None for tasks without a target.
fn task(id: &str, name: &str, source: Option<&str>, created: DateTime<Utc>) -> TaskStatus {
    let target = source.map(|s| json!({"id": "app", "type": "APPLICATION", "name": s}));
    serde_json::from_value(json!({
        "id": id, "type": "QUARTZ", "uniqueName": name, "created": created.to_rfc3339(),
        "launched": created.to_rfc3339(), "target": target, "percentComplete": 40
    }))
    .expect("test task")
}

fn finished(mut t: TaskStatus, completed: DateTime<Utc>, status: &str) -> TaskStatus {
    t.completed = Some(completed);
    t.completion_status = Some(CompletionStatus::from(status));
    t
}

fn with_messages(mut t: TaskStatus, messages: &[(&str, &str)]) -> TaskStatus {
    t.messages = messages
        .iter()
        .map(|(level, text)| {
            serde_json::from_value(json!({
                "type": level, "key": "k", "localizedText": {"locale": "en-US", "message": text}
            }))
            .expect("test message")
        })
        .collect();
    t
}

fn tenant(name: &str) -> TenantSettings {
    TenantSettings::with_defaults(
        name,
        "https://acme.api.identitynow.com".parse().expect("URL"),
        crate::config::Credentials::ClientCredentials {
            client_id: "2c91".into(),
            client_secret: "s".to_string().into(),
        },
    )
}

fn settings() -> StatusSettings {
    StatusSettings {
        failed_tasks: 3,
        ..StatusSettings::default()
    }
}

#[test]
fn poll_outcomes_give_the_state_and_the_last_error() {
    let t = TenantStatus::detached("acme", settings());
    assert_eq!(t.snapshot(now()).state, TenantState::Starting);
    t.poll_succeeded("pending", minutes_ago(3));
    assert_eq!(t.snapshot(now()).state, TenantState::Starting);
    t.poll_succeeded("completed", minutes_ago(2));
    let s = t.snapshot(now());
    assert_eq!(s.state, TenantState::Up);
    assert_eq!(s.last_success.pending, Some(minutes_ago(3)));
    assert_eq!(s.last_success.completed, Some(minutes_ago(2)));
    assert!(s.last_error.is_none());

    t.poll_failed(
        "completed",
        minutes_ago(1),
        &"listTaskStatus: HTTP 500: boom",
    );
    let s = t.snapshot(now());
    assert_eq!(s.state, TenantState::Down);
    let e = s.last_error.expect("an error");
    assert_eq!((e.at, e.list), (minutes_ago(1), "completed"));
    assert_eq!(e.message, "listTaskStatus: HTTP 500: boom");
    assert_eq!(s.last_success.completed, Some(minutes_ago(2)));

    t.poll_succeeded("completed", now());
    assert_eq!(t.snapshot(now()).state, TenantState::Up);
    let long = "x".repeat(5000);
    t.poll_failed("pending", now(), &long);
    let e = t.snapshot(now()).last_error.expect("an error");
    assert_eq!(e.message.chars().count(), MAX_ERROR_CHARS);
}

#[test]
fn pending_groups_and_stuck_tasks_with_their_clear_command() {
    let t = TenantStatus::detached("acme", settings());
    let tasks = [
        task(
            "a1",
            "Cloud Account Aggregation",
            Some("AD [source]"),
            minutes_ago(181),
        ),
        task(
            "a2",
            "Cloud Account Aggregation",
            Some("AD [source]"),
            minutes_ago(10),
        ),
        task("r1", "Identity Refresh", None, minutes_ago(179)),
        task(
            "$(x)",
            "Cloud Group Aggregation",
            Some("HR"),
            minutes_ago(400),
        ),
    ];
    t.set_pending(tasks.iter(), now());
    let p = t.snapshot(now()).pending;
    assert_eq!(p.total, 4);
    assert_eq!(p.polled_at, Some(now()));
    let groups: Vec<(&str, &str, usize)> = p
        .groups
        .iter()
        .map(|g| (g.task_name.as_str(), g.source.as_str(), g.count))
        .collect();
    assert_eq!(
        groups,
        [
            ("Cloud Account Aggregation", "AD [source]", 2),
            ("Cloud Group Aggregation", "HR", 1),
            ("Identity Refresh", "", 1),
        ]
    );
    assert_eq!(p.groups[0].oldest_created, minutes_ago(181));
    let stuck: Vec<(&str, i64, &str)> = p
        .stuck
        .iter()
        .map(|s| (s.id.as_str(), s.age_seconds, s.clear_command.as_str()))
        .collect();
    assert_eq!(
        stuck,
        [
            (
                "$(x)",
                400 * 60,
                "sailpoint-task-exporter tasks complete '$(x)' --status error --tenant acme"
            ),
            (
                "a1",
                181 * 60,
                "sailpoint-task-exporter tasks complete a1 --status error --tenant acme"
            ),
        ]
    );
    assert_eq!(p.stuck_total, 2);
    // Two minutes later the identity refresh is past the threshold too.
    let later = t.snapshot(now() + Duration::minutes(2)).pending;
    assert_eq!(later.stuck.len(), 3);
    // The next poll replaces the set.
    t.set_pending(tasks[1..2].iter(), now());
    let p = t.snapshot(now()).pending;
    assert_eq!((p.total, p.stuck.len(), p.groups.len()), (1, 0, 1));
}

#[test]
fn pending_memory_is_capped_whatever_the_tenant_sends() {
    let t = TenantStatus::detached("acme", settings());
    let huge = "N".repeat(10_000);
    let tasks: Vec<TaskStatus> = (0..1000)
        .map(|i| {
            task(
                &format!("{i:032x}"),
                &format!("{i} {huge}"),
                Some("S"),
                minutes_ago(1000 - i),
            )
        })
        .collect();
    t.set_pending(tasks.iter(), now());
    let p = t.snapshot(now()).pending;
    assert_eq!(p.total, 1000);
    assert_eq!(p.groups.len(), MAX_GROUPS);
    assert_eq!(p.tasks_in_omitted_groups, 1000 - MAX_GROUPS);
    assert!(
        p.groups
            .iter()
            .all(|g| g.task_name.chars().count() == MAX_NAME_CHARS)
    );
    // 1000 − 180 tasks are at least 3 h old; the oldest MAX_OLDEST are listed.
    assert_eq!(p.stuck.len(), MAX_OLDEST);
    assert_eq!(p.stuck_total, 821);
    assert_eq!(p.stuck[0].id, format!("{:032x}", 0));
}

#[test]
fn sources_keep_last_success_last_failure_and_failures_of_24h() {
    let t = TenantStatus::detached("acme", settings());
    let agg = |id: &str, source: &str, completed_min_ago: i64, status: &str| {
        finished(
            task(
                id,
                "Cloud Account Aggregation",
                Some(source),
                minutes_ago(completed_min_ago + 5),
            ),
            minutes_ago(completed_min_ago),
            status,
        )
    };
    for task in [
        agg("s1", "AD", 30 * 60, "SUCCESS"),
        agg("f1", "AD", 25 * 60, "ERROR"),
        agg("f2", "AD", 60, "TERMINATED"),
        agg("t1", "AD", 50, "TEMPERROR"),
        agg("f3", "AD", 20, "ERROR"),
        agg("s2", "Okta", 10, "SUCCESS"),
        agg("s0", "Okta", 100, "SUCCESS"),
    ] {
        t.record_completion(&task);
    }
    // A task that is no aggregation does not count for its source.
    t.record_completion(&finished(
        task(
            "x",
            "Entitlement Source Reset",
            Some("Okta"),
            minutes_ago(9),
        ),
        minutes_ago(8),
        "ERROR",
    ));
    let sources = t.snapshot(now()).sources;
    assert_eq!(sources.len(), 2);
    let ad = &sources[0];
    assert_eq!(ad.source, "AD");
    let success = ad.last_success.as_ref().expect("AD succeeded once");
    assert_eq!(
        (success.id.as_str(), success.age_seconds),
        ("s1", 30 * 3600)
    );
    assert!(ad.success_overdue, "30 h > 26 h");
    let failure = ad.last_failure.as_ref().expect("AD failed");
    assert_eq!(
        (failure.id.as_str(), failure.status.as_str()),
        ("f3", "ERROR")
    );
    assert_eq!(
        ad.failures_24h, 2,
        "f2 and f3; f1 is 25 h old, TEMPERROR is no failure"
    );
    let okta = &sources[1];
    assert_eq!(
        okta.last_success.as_ref().map(|o| o.id.as_str()),
        Some("s2")
    );
    assert!(!okta.success_overdue);
    assert!(okta.last_failure.is_none());
    assert_eq!(okta.failures_24h, 0);
}

#[test]
fn recent_failures_keep_the_newest_n_with_their_messages() {
    let t = TenantStatus::detached("acme", settings());
    let long = "é".repeat(2000);
    let many: Vec<(&str, &str)> = (0..8).map(|_| ("ERROR", "again")).collect();
    let tasks = [
        with_messages(
            finished(
                task("w", "Cloud Group Aggregation", Some("AD"), minutes_ago(50)),
                minutes_ago(40),
                "WARNING",
            ),
            &[
                ("INFO", "fine"),
                ("WARN", "3 groups skipped"),
                ("ERROR", &long),
            ],
        ),
        with_messages(
            finished(
                task(
                    "e",
                    "Cloud Account Aggregation",
                    Some("AD"),
                    minutes_ago(35),
                ),
                minutes_ago(30),
                "ERROR",
            ),
            &many,
        ),
        finished(
            task("ok", "Identity Refresh", None, minutes_ago(25)),
            minutes_ago(20),
            "SUCCESS",
        ),
        finished(
            task("t", "Identity Refresh", None, minutes_ago(15)),
            minutes_ago(10),
            "TERMINATED",
        ),
        finished(
            task("old", "Identity Refresh", None, minutes_ago(95)),
            minutes_ago(90),
            "ERROR",
        ),
    ];
    for task in &tasks {
        t.record_completion(task);
    }
    t.record_completion(&tasks[1]);
    let failed = t.snapshot(now()).recent_failures;
    let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["t", "e", "w"], "newest first, at most 3, each once");
    let w = &failed[2];
    assert_eq!(w.status, "WARNING");
    assert_eq!(w.duration_seconds, Some(600.0));
    assert_eq!(
        w.messages[0],
        Message {
            level: "WARN",
            text: "3 groups skipped".into()
        }
    );
    assert_eq!(w.messages[1].level, "ERROR");
    assert_eq!(w.messages[1].text.chars().count(), MAX_MESSAGE_CHARS);
    assert!(w.messages[1].text.ends_with('…'));
    let e = &failed[1];
    assert_eq!((e.messages.len(), e.messages_omitted), (MAX_MESSAGES, 3));
}

#[test]
fn the_board_follows_the_configured_tenants() {
    let board = StatusBoard::new(settings(), PageInfo::default());
    let acme = board.tenant(&tenant("acme"));
    board.tenant(&tenant("beta"));
    acme.poll_succeeded("pending", now());
    assert_eq!(board.tenant_names(), ["acme", "beta"]);
    assert_eq!(
        board
            .tenant(&tenant("acme"))
            .snapshot(now())
            .last_success
            .pending,
        Some(now()),
        "the same record"
    );
    board.remove("beta");
    let names: Vec<String> = board
        .snapshot(now())
        .tenants
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme"]);
    let fresh = board.restart(&tenant("acme"));
    assert_eq!(fresh.snapshot(now()).last_success.pending, None);
}

#[test]
fn the_page_escapes_hostile_values_and_shows_the_command() {
    let board = StatusBoard::new(
        settings(),
        PageInfo {
            telemetry_path: "/metrics".into(),
            version: "1.0".into(),
            revision: "abc".into(),
        },
    );
    let t = board.tenant(&tenant("acme"));
    let evil = "<img src=x onerror=alert(1)>";
    t.set_pending(
        [task(
            "a1",
            "Cloud Account Aggregation",
            Some(evil),
            minutes_ago(200),
        )]
        .iter(),
        now(),
    );
    t.record_completion(&with_messages(
        finished(
            task(
                "e1",
                "Cloud Account Aggregation",
                Some(evil),
                minutes_ago(9),
            ),
            minutes_ago(8),
            "ERROR",
        ),
        &[("ERROR", "<script>alert(2)</script>")],
    ));
    t.poll_failed("pending", now(), &"<b>bad</b>");
    let html = page::render(&board.snapshot(now()), board.page_info());
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>bad"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(html.contains(
        "<code class=\"cmd\">sailpoint-task-exporter tasks complete a1 --status error --tenant acme</code>"
    ));
    assert!(html.contains("<span class=\"badge down\">DOWN</span>"));
    assert!(html.contains("3h 20m"));
}

#[test]
fn dates_at_the_edge_of_time_do_not_panic() {
    let t = TenantStatus::detached("acme", settings());
    for edge in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let agg = finished(
            task("e", "Cloud Account Aggregation", Some("AD"), edge),
            edge,
            "ERROR",
        );
        t.record_completion(&agg);
        t.set_pending([task("p", "Identity Refresh", None, edge)].iter(), now());
    }
    let board = StatusBoard::new(settings(), PageInfo::default());
    let s = t.snapshot(now());
    assert_eq!(s.sources[0].failures_24h, 0);
    let html = page::render(
        &Snapshot {
            tenants: vec![s],
            ..board.snapshot(now())
        },
        board.page_info(),
    );
    assert!(html.contains("Tenant acme"));
}

fn with_results(mut t: TaskStatus, values: &[(&str, serde_json::Value)]) -> TaskStatus {
    t.returns = values
        .iter()
        .map(|(a, _)| {
            serde_json::from_value(
                json!({"displayLabel": format!("TASK_OUT_{a}"), "attributeName": a}),
            )
            .expect("test return")
        })
        .collect();
    t.attributes = values
        .iter()
        .map(|(a, v)| ((*a).to_string(), v.clone()))
        .collect();
    t
}

#[test]
fn sources_show_the_results_of_their_latest_aggregation() {
    let board = StatusBoard::new(settings(), PageInfo::default());
    let t = board.tenant(&tenant("acme"));
    let agg = |id: &str, done: i64, values: &[(&str, serde_json::Value)]| {
        with_results(
            finished(
                task(
                    id,
                    "Cloud Account Aggregation",
                    Some("AD"),
                    minutes_ago(done + 5),
                ),
                minutes_ago(done),
                "SUCCESS",
            ),
            values,
        )
    };
    t.record_completion(&agg(
        "new",
        10,
        &[
            ("total", json!(5000)),
            ("deleted", json!("2000")),
            ("optimizedAggregation", json!("enabled")),
        ],
    ));
    // An older aggregation read later (priming order) does not replace the newest.
    t.record_completion(&agg(
        "old",
        70,
        &[("total", json!(5000)), ("deleted", json!(3))],
    ));
    let snap = t.snapshot(now());
    let latest = snap.sources[0].latest_results.as_ref().expect("results");
    assert_eq!(latest.id, "new");
    let got: Vec<(&str, f64)> = latest
        .results
        .iter()
        .map(|r| (r.attribute.as_str(), r.value))
        .collect();
    assert_eq!(got, [("total", 5000.0), ("deleted", 2000.0)]);
    let html = page::render(&board.snapshot(now()), board.page_info());
    assert!(
        html.contains("total 5000, <span class=\"bad\">deleted 2000</span>"),
        "{html}"
    );
}

/// The clear command names the tenant the way the CLI can find it from any directory:
/// by the daemon's configuration file (absolute), or without one (`demo`) by URL.
#[test]
fn clear_commands_name_the_tenant_so_that_they_work_when_pasted() {
    let cases = [
        (
            CliTarget::ByUrl,
            "--base-url https://acme.api.identitynow.com --client-id 2c91",
        ),
        (
            CliTarget::ByName {
                config_file: Some("/etc/sailpoint task exporter/config.yaml".into()),
            },
            "--config.file '/etc/sailpoint task exporter/config.yaml' --tenant acme",
        ),
        (CliTarget::ByName { config_file: None }, "--tenant acme"),
    ];
    for (target, expected) in cases {
        let board = StatusBoard::new(settings(), PageInfo::default()).with_cli_target(target);
        let t = board.tenant(&tenant("acme"));
        t.set_pending(
            [task("a1", "Identity Refresh", None, minutes_ago(200))].iter(),
            now(),
        );
        assert_eq!(
            t.snapshot(now()).pending.stuck[0].clear_command,
            format!("sailpoint-task-exporter tasks complete a1 --status error {expected}")
        );
    }
}
