//! The status page as server-rendered HTML: readable without JavaScript (the page only
//! refreshes itself every 30 s with a `<meta>` tag), styled by [`STYLESHEET`] served from
//! the same origin so the Content-Security-Policy can forbid everything else.
//!
//! Every value is passed through [`escape`]: task and source names, ids and message texts
//! come from the API and are hostile until proven otherwise.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::board::PageInfo;
use super::snapshot::{
    AggregationResults, FailedTask, Outcome, PendingSnapshot, Snapshot, SourceSnapshot, TaskDetail,
    TenantSnapshot, TenantState,
};
use super::text::{age, escape, threshold};

/// Path of the stylesheet the page links.
pub const STYLESHEET_PATH: &str = "/status.css";

/// Path of the JSON form of the page.
pub const JSON_PATH: &str = "/api/v1/status";

/// Seconds between the page's automatic reloads.
pub const REFRESH_SECONDS: u32 = 30;

/// The page's stylesheet.
pub const STYLESHEET: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1f2328;background:#fff;font-size:14px}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.25rem;margin:1.6rem 0 .4rem;padding-top:.8rem;border-top:2px solid #d0d7de}
h3{font-size:1rem;margin:1.1rem 0 .3rem}
nav a{margin-right:1rem}.muted{color:#59636e}
table{border-collapse:collapse;width:100%;margin:.2rem 0 .6rem}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid #d8dee4}
th{background:#f6f8fa;font-weight:600}
code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:.85rem;word-break:break-all}
code.cmd{display:block;user-select:all;background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:.2rem .4rem}
.badge{display:inline-block;border-radius:1rem;padding:.1rem .7rem;font-size:.85rem;font-weight:700;color:#fff;vertical-align:middle;margin-left:.5rem}
.up{background:#1a7f37}.down{background:#cf222e}.starting{background:#9a6700}
.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
tr.overdue td{background:#fff1f0}
ul.msgs{margin:0;padding-left:1rem}ul.msgs li{margin:.1rem 0;white-space:pre-wrap;overflow-wrap:anywhere}
.lvl{font-weight:700;font-size:.75rem;margin-right:.3rem}.lvl-ERROR{color:#cf222e}.lvl-WARN{color:#9a6700}
";

/// Renders the whole page.
pub fn render(snapshot: &Snapshot, info: &PageInfo) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let metrics = escape(&info.telemetry_path);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>SailPoint Task Exporter — status</title>\n\
         <link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\n</head>\n<body>\n\
         <h1>SailPoint Task Exporter — status</h1>\n\
         <p class=\"muted\">As of {now}; refreshes every {REFRESH_SECONDS} s. \
         Version {version}, revision {revision}.</p>\n\
         <nav><a href=\"{metrics}\">Metrics</a><a href=\"{JSON_PATH}\">Status as JSON</a>\
         <a href=\"/-/ready\">Readiness</a><a href=\"/-/healthy\">Health</a></nav>\n",
        now = time(&snapshot.generated_at),
        version = escape(&info.version),
        revision = escape(&info.revision),
    );
    if snapshot.tenants.is_empty() {
        out.push_str("<p>No tenants configured.</p>\n");
    }
    for tenant in &snapshot.tenants {
        render_tenant(&mut out, tenant, snapshot);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The page of one task (`/task/{id}`): its tenant, name, source, status, times,
/// duration and messages when it finished; its age and the command that clears it when
/// it is pending.
pub fn render_task(task: &TaskDetail, id: &str, now: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(4 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Task {id} — SailPoint Task Exporter</title>\n\
         <link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\n</head>\n<body>\n\
         <h1>Task <code>{id}</code></h1>\n<p class=\"muted\">Tenant {tenant}, as of {now}. \
         <a href=\"/\">Status page</a></p>\n<table class=\"task\"><tbody>\n",
        id = escape(id),
        tenant = escape(&task.tenant),
        now = time(now),
    );
    let row = |out: &mut String, name: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    if let Some(f) = &task.finished {
        row(&mut out, "Task", escape(&f.task_name));
        row(&mut out, "Source", or_dash(&f.source));
        row(&mut out, "Status", escape(&f.status));
        row(&mut out, "Created", time(&f.created));
        row(&mut out, "Completed", time_and_age(&f.completed, now));
        let duration = f.duration_seconds.map_or_else(
            || "—".to_string(),
            |d| format!("{d} s ({})", age(d.round() as i64)),
        );
        row(&mut out, "Duration", duration);
        row(&mut out, "Messages", messages(f));
    } else if let Some(p) = &task.pending {
        let stuck = p.age_seconds >= i64::try_from(task.stuck_after_seconds).unwrap_or(i64::MAX);
        row(&mut out, "Task", escape(&p.task_name));
        row(&mut out, "Source", or_dash(&p.source));
        let state = if stuck {
            "<span class=\"bad\">PENDING, stuck</span>"
        } else {
            "PENDING"
        };
        row(&mut out, "Status", state.to_string());
        row(&mut out, "Created", time_and_age(&p.created, now));
        row(&mut out, "Progress", format!("{} %", p.percent_complete));
        row(
            &mut out,
            "Command to clear it if it is stuck",
            format!("<code class=\"cmd\">{}</code>", escape(&p.clear_command)),
        );
    }
    out.push_str("</tbody></table>\n</body>\n</html>\n");
    out
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn time_and_age(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    format!("{} ({} ago)", time(t), age((*now - *t).num_seconds()))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "—".to_string()
    } else {
        escape(s)
    }
}

fn render_tenant(out: &mut String, t: &TenantSnapshot, snapshot: &Snapshot) {
    let now = &snapshot.generated_at;
    let state = t.state.as_str();
    let _ = writeln!(
        out,
        "<section class=\"tenant\">\n<h2>Tenant {} <span class=\"badge {state}\">{}</span></h2>",
        escape(&t.name),
        state.to_uppercase()
    );
    let last = |at: &Option<DateTime<Utc>>| match at {
        Some(at) => time_and_age(at, now),
        None => "never".to_string(),
    };
    let error = match &t.last_error {
        Some(e) => format!(
            "<span class=\"{}\">{} poll at {}:</span> <code>{}</code>",
            if t.state == TenantState::Down {
                "bad"
            } else {
                "muted"
            },
            e.list,
            time_and_age(&e.at, now),
            escape(&e.message)
        ),
        None => "none".to_string(),
    };
    let _ = writeln!(
        out,
        "<table class=\"polls\"><tbody>\n\
         <tr><th>Last successful pending poll</th><td>{}</td></tr>\n\
         <tr><th>Last successful completed poll</th><td>{}</td></tr>\n\
         <tr><th>Last poll error</th><td>{error}</td></tr>\n</tbody></table>",
        last(&t.last_success.pending),
        last(&t.last_success.completed),
    );
    render_stuck(out, t, snapshot);
    render_pending(out, &t.pending, now);
    render_sources(out, t, snapshot);
    render_failures(out, &t.recent_failures, snapshot);
    out.push_str("</section>\n");
}

fn render_stuck(out: &mut String, t: &TenantSnapshot, snapshot: &Snapshot) {
    let threshold = threshold(snapshot.settings.stuck_after_seconds);
    let p = &t.pending;
    let _ = writeln!(
        out,
        "<h3>Stuck: pending longer than {threshold} ({})</h3>",
        p.stuck_total
    );
    if p.stuck.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">No task pending longer than {threshold}.</p>"
        );
        return;
    }
    out.push_str(
        "<p class=\"muted\">To clear a stuck task, run its command: it prints the patch for \
         review; append <code>--yes</code> to send it (needs a personal access token).</p>\n\
         <table class=\"stuck\"><thead><tr><th>Task id</th><th>Task</th><th>Source</th>\
         <th>Age</th><th>Command to clear it</th></tr></thead><tbody>\n",
    );
    for s in &p.stuck {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"bad\">{}</td>\
             <td><code class=\"cmd\">{}</code></td></tr>",
            escape(&s.id),
            escape(&s.task_name),
            or_dash(&s.source),
            age(s.age_seconds),
            escape(&s.clear_command)
        );
    }
    out.push_str("</tbody></table>\n");
    if p.stuck_total > p.stuck.len() {
        let _ = writeln!(
            out,
            "<p class=\"warn\">{} more stuck tasks are not listed (the page keeps the oldest {}).</p>",
            p.stuck_total - p.stuck.len(),
            p.stuck.len()
        );
    }
}

fn render_pending(out: &mut String, p: &PendingSnapshot, now: &DateTime<Utc>) {
    let _ = writeln!(out, "<h3>Pending now ({})</h3>", p.total);
    match &p.polled_at {
        None => {
            out.push_str("<p class=\"muted\">Not polled yet.</p>\n");
            return;
        }
        Some(_) if p.groups.is_empty() => {
            out.push_str("<p class=\"muted\">Nothing is pending.</p>\n");
            return;
        }
        Some(_) => {}
    }
    out.push_str(
        "<table class=\"pending\"><thead><tr><th>Task</th><th>Source</th><th>Pending</th>\
         <th>Oldest created</th></tr></thead><tbody>\n",
    );
    for g in &p.groups {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.task_name),
            or_dash(&g.source),
            g.count,
            time_and_age(&g.oldest_created, now)
        );
    }
    close_table(
        out,
        p.tasks_in_omitted_groups as u64,
        "pending tasks of further task/source groups",
    );
}

/// Ends a table, then says how many of `what` it leaves out, if any.
fn close_table(out: &mut String, omitted: u64, what: &str) {
    out.push_str("</tbody></table>\n");
    if omitted > 0 {
        let _ = writeln!(
            out,
            "<p class=\"warn\">{omitted} {what} are not listed.</p>"
        );
    }
}

fn outcome_cell(o: &Option<Outcome>, now: &DateTime<Utc>, class: &str) -> String {
    match o {
        Some(o) => format!(
            "<span class=\"{class}\">{}</span><br><span class=\"muted\">{} {} <code>{}</code></span>",
            time_and_age(&o.completed, now),
            escape(&o.status),
            escape(&o.task_name),
            escape(&o.id)
        ),
        None => "never seen".to_string(),
    }
}

fn render_sources(out: &mut String, t: &TenantSnapshot, snapshot: &Snapshot) {
    let now = &snapshot.generated_at;
    let threshold = threshold(snapshot.settings.no_success_after_seconds);
    let _ = writeln!(
        out,
        "<h3>Aggregations per source ({})</h3>",
        t.sources.len()
    );
    if t.sources.is_empty() {
        out.push_str("<p class=\"muted\">No aggregation seen yet.</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<table class=\"sources\"><thead><tr><th>Source</th>\
         <th>Last successful aggregation (flagged past {threshold})</th><th>Last failure</th>\
         <th>Failures in 24 h</th><th>Latest results</th></tr></thead><tbody>"
    );
    for s in &t.sources {
        render_source(out, s, now);
    }
    close_table(out, t.sources_omitted, "aggregations of further sources");
}

fn render_source(out: &mut String, s: &SourceSnapshot, now: &DateTime<Utc>) {
    let row_class = if s.success_overdue {
        " class=\"overdue\""
    } else {
        ""
    };
    let success_class = if s.success_overdue { "bad" } else { "" };
    let failures = if s.failures_24h > 0 {
        format!("<span class=\"bad\">{}</span>", s.failures_24h)
    } else {
        "0".to_string()
    };
    let _ = writeln!(
        out,
        "<tr{row_class}><td>{}</td><td>{}</td><td>{}</td><td>{failures}</td><td>{}</td></tr>",
        escape(&s.source),
        outcome_cell(&s.last_success, now, success_class),
        outcome_cell(&s.last_failure, now, "bad"),
        results_cell(s.latest_results.as_ref()),
    );
}

/// The headline results of a source's latest aggregation: total, created, updated,
/// deleted first (a deleted count over a fifth of the total is flagged, like the alert).
fn results_cell(latest: Option<&AggregationResults>) -> String {
    let Some(latest) = latest else {
        return "<span class=\"muted\">—</span>".to_string();
    };
    let value = |name: &str| {
        latest
            .results
            .iter()
            .find(|r| r.attribute == name)
            .map(|r| r.value)
    };
    let mut parts = Vec::new();
    for name in ["total", "created", "updated", "deleted"] {
        if let Some(v) = value(name) {
            let alarming = match name {
                "deleted" => v >= 100.0 && value("total").is_none_or(|t| v > 0.2 * t),
                "total" => v == 0.0,
                _ => false,
            };
            let text = format!("{} {}", escape(name), format_number(v));
            parts.push(if alarming {
                format!("<span class=\"bad\">{text}</span>")
            } else {
                text
            });
        }
    }
    if parts.is_empty() {
        parts = latest
            .results
            .iter()
            .take(4)
            .map(|r| format!("{} {}", escape(&r.attribute), format_number(r.value)))
            .collect();
    }
    parts.join(", ")
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_failures(out: &mut String, failed: &[FailedTask], snapshot: &Snapshot) {
    let _ = writeln!(
        out,
        "<h3>Recent failed and warning tasks ({} shown, newest first, at most {} kept)</h3>",
        failed.len(),
        snapshot.settings.failed_tasks_kept
    );
    if failed.is_empty() {
        out.push_str("<p class=\"muted\">None seen.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"failures\"><thead><tr><th>Completed</th><th>Task</th><th>Source</th>\
         <th>Status</th><th>Duration</th><th>Messages</th></tr></thead><tbody>\n",
    );
    for f in failed {
        let status_class = match f.status.as_str() {
            "WARNING" | "TEMPERROR" => "warn",
            _ => "bad",
        };
        let duration = f
            .duration_seconds
            .map_or_else(|| "—".to_string(), |d| age(d.round() as i64));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}<br><code class=\"muted\">{}</code></td><td>{}</td>\
             <td class=\"{status_class}\">{}</td><td>{duration}</td><td>{}</td></tr>",
            time_and_age(&f.completed, &snapshot.generated_at),
            escape(&f.task_name),
            escape(&f.id),
            or_dash(&f.source),
            escape(&f.status),
            messages(f)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn messages(f: &FailedTask) -> String {
    if f.messages.is_empty() {
        return "<span class=\"muted\">no warning or error message</span>".to_string();
    }
    let mut out = String::from("<ul class=\"msgs\">");
    for m in &f.messages {
        let _ = write!(
            out,
            "<li><span class=\"lvl lvl-{0}\">{0}</span>{1}</li>",
            m.level,
            escape(&m.text)
        );
    }
    if f.messages_omitted > 0 {
        let _ = write!(
            out,
            "<li class=\"muted\">… and {} more</li>",
            f.messages_omitted
        );
    }
    out.push_str("</ul>");
    out
}
