//! How tasks look to a person: an aligned table for lists, a detail view for one task.
//!
//! Task names, sources, progress texts and messages come from the API, so they are
//! treated as hostile: control characters (which could move the cursor or fake lines)
//! become spaces, and long values are cut with `…` so one long source name cannot push
//! every other column off the screen. Ids are never cut: they are what the operator
//! copies into `tasks get` and `tasks complete`. Times are UTC.

use chrono::{DateTime, Utc};

use crate::sailpoint::model::TaskStatus;
use crate::status::text::truncate;

/// Column headers of the task table, in order.
pub const COLUMNS: [&str; 9] = [
    "ID",
    "TASK",
    "SOURCE",
    "STATUS",
    "CREATED",
    "LAUNCHED",
    "COMPLETED",
    "DURATION",
    "PROGRESS",
];

/// Widest TASK, SOURCE and PROGRESS cells, in characters, before `…`.
const MAX_TASK: usize = 40;
const MAX_SOURCE: usize = 32;
const MAX_PROGRESS: usize = 30;

/// Shown for an absent value.
const NONE: &str = "-";

/// The status cell: the completion status, or `PENDING` while there is none.
pub fn status_text(task: &TaskStatus) -> String {
    match &task.completion_status {
        Some(s) => clean(s.as_str()),
        None if task.completed.is_none() => "PENDING".into(),
        None => "COMPLETED".into(),
    }
}

/// How long the task ran (`completed − launched`, or from `created` when it never
/// launched) or, while pending, has been running until `now`.
pub fn duration_text(task: &TaskStatus, now: DateTime<Utc>) -> String {
    let start = task.launched.unwrap_or(task.created);
    let end = task.completed.unwrap_or(now);
    humanize((end - start).num_seconds())
}

/// A duration in its two largest units: `45s`, `5m 12s`, `2h 3m`, `3d 4h`; a zero second
/// unit is left out (`2h`). Negative spans (clock skew) show as `0s`.
pub fn humanize(seconds: i64) -> String {
    let s = seconds.max(0);
    let (days, hours, minutes, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let (major, minor) = if days > 0 {
        ((days, 'd'), (hours, 'h'))
    } else if hours > 0 {
        ((hours, 'h'), (minutes, 'm'))
    } else if minutes > 0 {
        ((minutes, 'm'), (secs, 's'))
    } else {
        return format!("{secs}s");
    };
    if minor.0 == 0 {
        format!("{}{}", major.0, major.1)
    } else {
        format!("{}{} {}{}", major.0, major.1, minor.0, minor.1)
    }
}

/// A UTC timestamp to the second, RFC 3339: `2024-04-22T09:30:25Z`.
pub fn time_text(t: Option<&DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => NONE.into(),
    }
}

/// `45% Started`: the percentage and the free-text progress, when there is one.
pub fn progress_text(task: &TaskStatus) -> String {
    match task.progress.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => format!("{}% {}", task.percent_complete, clean(p)),
        _ => format!("{}%", task.percent_complete),
    }
}

/// The source name for application tasks, else `-`.
pub fn source_text(task: &TaskStatus) -> String {
    match task.source_name() {
        Some(name) if !name.trim().is_empty() => clean(name),
        _ => NONE.into(),
    }
}

/// Replaces control characters (newlines, escapes) with spaces.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The cells of one task's row, in [`COLUMNS`] order.
pub fn row(task: &TaskStatus, now: DateTime<Utc>) -> [String; 9] {
    [
        clean(&task.id),
        truncate(&clean(&task.unique_name), MAX_TASK),
        truncate(&source_text(task), MAX_SOURCE),
        status_text(task),
        time_text(Some(&task.created)),
        time_text(task.launched.as_ref()),
        time_text(task.completed.as_ref()),
        duration_text(task, now),
        truncate(&progress_text(task), MAX_PROGRESS),
    ]
}

/// The task table: a header line and one aligned line per task, columns two spaces
/// apart, no trailing spaces.
pub fn table(tasks: &[TaskStatus], now: DateTime<Utc>) -> String {
    let header = COLUMNS.map(str::to_string);
    let rows: Vec<[String; 9]> = std::iter::once(header)
        .chain(tasks.iter().map(|t| row(t, now)))
        .collect();
    let mut widths = [0usize; 9];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (cell, w) in r.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One task in full: every field a person needs to decide whether it is stuck, then its
/// messages. Nothing is cut here.
pub fn detail(task: &TaskStatus, now: DateTime<Utc>) -> String {
    let target = task.target.as_ref().map(|t| {
        format!(
            "{} {} ({})",
            clean(t.target_type.as_deref().unwrap_or(NONE)),
            clean(&t.name),
            clean(&t.id)
        )
    });
    let fields = [
        ("ID", clean(&task.id)),
        ("TASK", clean(&task.unique_name)),
        ("DESCRIPTION", clean(&task.description)),
        ("TYPE", clean(task.task_type.as_str())),
        ("TARGET", target.unwrap_or_else(|| NONE.into())),
        ("SOURCE", source_text(task)),
        ("LAUNCHER", clean(&task.launcher)),
        ("STATUS", status_text(task)),
        ("CREATED", time_text(Some(&task.created))),
        ("LAUNCHED", time_text(task.launched.as_ref())),
        ("COMPLETED", time_text(task.completed.as_ref())),
        ("DURATION", duration_text(task, now)),
        ("PROGRESS", progress_text(task)),
    ];
    let mut out = String::new();
    for (label, value) in fields {
        out.push_str(&format!("{:<13}{}\n", format!("{label}:"), value));
    }
    out.push_str(&format!("MESSAGES:    {}\n", task.messages.len()));
    for m in &task.messages {
        out.push_str(&format!("  {:<6} {}\n", clean(&m.level), message_text(m)));
    }
    out
}

/// A message's localized text, or its key and parameters when it has none.
fn message_text(m: &crate::sailpoint::model::TaskStatusMessage) -> String {
    if let Some(text) = &m.localized_text
        && !text.message.trim().is_empty()
    {
        return clean(&text.message);
    }
    let params: Vec<String> = m
        .parameters
        .iter()
        .flatten()
        .map(|p| match p {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    if params.is_empty() {
        clean(&m.key)
    } else {
        clean(&format!("{} ({})", m.key, params.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(value: serde_json::Value) -> TaskStatus {
        serde_json::from_value(value).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2024-04-22T12:00:00Z".parse().unwrap()
    }

    fn pending_task() -> TaskStatus {
        task(json!({
            "id": "ef38f94347e94562b5bb8424a56397d8",
            "type": "QUARTZ",
            "uniqueName": "Cloud Account Aggregation",
            "description": "Aggregates from the specified application.",
            "launcher": "System",
            "created": "2024-04-22T09:30:25.012Z",
            "launched": "2024-04-22T09:30:26.000Z",
            "completed": null,
            "completionStatus": null,
            "messages": [],
            "progress": "Started",
            "percentComplete": 45,
            "target": {"id": "c6dc", "type": "APPLICATION", "name": "Active Directory [source]"}
        }))
    }

    fn finished_task() -> TaskStatus {
        task(json!({
            "id": "a1b2",
            "uniqueName": "Entitlement Source Reset - 0b2c6a6e-3f7e-4b1d-9d3c-1e2f3a4b5c6d with a very long tail",
            "created": "2024-04-22T08:00:00Z",
            "launched": null,
            "completed": "2024-04-22T08:00:45Z",
            "completionStatus": "Error",
            "percentComplete": 100,
            "target": {"id": "x", "type": "IDENTITY", "name": "Jane"},
            "messages": [
                {"type": "ERROR", "localizedText": {"locale": "en-US", "message": "Connector\ntimed out"}, "key": "k", "parameters": null},
                {"type": "WARN", "localizedText": null, "key": "task_warn", "parameters": ["a", 3]}
            ]
        }))
    }

    #[test]
    fn durations_are_humanised() {
        assert_eq!(humanize(0), "0s");
        assert_eq!(humanize(45), "45s");
        assert_eq!(humanize(60), "1m");
        assert_eq!(humanize(312), "5m 12s");
        assert_eq!(humanize(2 * 3600 + 3 * 60 + 59), "2h 3m");
        assert_eq!(humanize(7200), "2h");
        assert_eq!(humanize(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(humanize(-10), "0s");
    }

    #[test]
    fn a_pending_row_has_exact_cells() {
        assert_eq!(
            row(&pending_task(), now()),
            [
                "ef38f94347e94562b5bb8424a56397d8",
                "Cloud Account Aggregation",
                "Active Directory [source]",
                "PENDING",
                "2024-04-22T09:30:25Z",
                "2024-04-22T09:30:26Z",
                "-",
                "2h 29m",
                "45% Started",
            ]
        );
    }

    #[test]
    fn a_finished_row_cuts_long_names_and_uses_created_when_never_launched() {
        let r = row(&finished_task(), now());
        assert_eq!(r[1], "Entitlement Source Reset - 0b2c6a6e-3f7…");
        assert_eq!(r[1].chars().count(), 40);
        assert_eq!(r[2], "-");
        assert_eq!(r[3], "ERROR");
        assert_eq!(r[5], "-");
        assert_eq!(r[7], "45s");
        assert_eq!(r[8], "100%");
    }

    #[test]
    fn the_table_is_aligned_under_its_header() {
        let out = table(&[pending_task(), finished_task()], now());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "ID                                TASK                                      SOURCE                     STATUS   CREATED               LAUNCHED              COMPLETED             DURATION  PROGRESS"
        );
        assert_eq!(
            lines[1],
            "ef38f94347e94562b5bb8424a56397d8  Cloud Account Aggregation                 Active Directory [source]  PENDING  2024-04-22T09:30:25Z  2024-04-22T09:30:26Z  -                     2h 29m    45% Started"
        );
        let col = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[2].chars().nth(col), Some('E'));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn hostile_text_cannot_break_lines() {
        let mut t = pending_task();
        t.unique_name = "evil\n\u{1b}[2Jname".into();
        let out = table(&[t], now());
        assert_eq!(out.lines().count(), 2);
        assert!(!out.contains('\u{1b}'));
    }

    #[test]
    fn detail_shows_every_field_and_the_messages() {
        let out = detail(&finished_task(), now());
        assert!(out.contains("TASK:        Entitlement Source Reset - 0b2c6a6e-3f7e-4b1d-9d3c-1e2f3a4b5c6d with a very long tail\n"));
        assert!(out.contains("TARGET:      IDENTITY Jane (x)\n"));
        assert!(out.contains("STATUS:      ERROR\n"));
        assert!(out.contains("DURATION:    45s\n"));
        assert!(out.ends_with(
            "MESSAGES:    2\n  ERROR  Connector timed out\n  WARN   task_warn (a, 3)\n"
        ));
    }
}
