//! `check`: what an operator runs right after installing.
//!
//! Validates the configuration (done by the caller), then for each tenant fetches a token
//! and one page of each list, and prints a verdict per tenant: reachable, authenticated,
//! allowed to read task status, the pending count, the API version that answered, and the
//! clock skew between the tenant's `Date` header and the local clock. Each step stops the
//! tenant's check at the first failure, with the reason. Exit code 1 when any tenant fails.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::config::{Settings, TenantSettings};
use crate::sailpoint::{ApiError, Client, ListQuery, NoopObserver};

/// Checks every tenant of `settings` and prints the report on stdout.
pub async fn run(settings: &Settings) -> ExitCode {
    let mut failed = 0;
    for tenant in &settings.tenants {
        let (ok, report) = check_tenant(tenant).await;
        print!("{report}");
        if !ok {
            failed += 1;
        }
    }
    let total = settings.tenants.len();
    if failed == 0 {
        println!("all {total} tenant(s) OK");
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {total} tenant(s) FAILED");
        ExitCode::from(super::EXIT_FAILURE)
    }
}

/// One tenant's report; `true` when every step passed.
pub async fn check_tenant(tenant: &TenantSettings) -> (bool, String) {
    let mut out = format!(
        "tenant {} ({}, {})\n",
        tenant.name,
        tenant.base_url.as_str().trim_end_matches('/'),
        tenant.api_version
    );
    // A check should answer quickly: one retry, short timeouts.
    let mut quick = tenant.clone();
    quick.max_retries = quick.max_retries.min(1);
    quick.request_timeout = quick.request_timeout.min(Duration::from_secs(10));
    let client = match Client::new(&quick, Arc::new(NoopObserver)) {
        Ok(c) => c,
        Err(e) => return fail(out, "client", &e),
    };
    if let Err(e) = client.authenticate().await {
        let step = if matches!(e, ApiError::Redirect { .. }) {
            "reachable"
        } else if e.status().is_some() {
            "authenticated"
        } else {
            "reachable"
        };
        return fail(out, step, &e);
    }
    line(&mut out, "reachable", "yes");
    line(
        &mut out,
        "authenticated",
        &format!("yes (token from {})", tenant.token_endpoint()),
    );
    let pending = match client.pending_count().await {
        Ok(n) => n,
        Err(e) => return fail(out, step_for(&e), &e),
    };
    let query = ListQuery {
        count: true,
        ..ListQuery::newest_first()
    };
    let (page, date) = match client.list_page_dated(&query, 1).await {
        Ok(r) => r,
        Err(e) => return fail(out, step_for(&e), &e),
    };
    line(
        &mut out,
        "read rights",
        "yes (pending and completed lists readable)",
    );
    line(
        &mut out,
        "api version",
        &format!("{} answered", tenant.api_version),
    );
    line(&mut out, "pending tasks", &pending.to_string());
    let newest = page
        .items
        .first()
        .map(|t| {
            format!(
                ", newest created {}",
                t.created.format("%Y-%m-%d %H:%M:%SZ")
            )
        })
        .unwrap_or_default();
    let total = page.total.map_or("unknown".to_string(), |t| t.to_string());
    line(&mut out, "completed tasks", &format!("{total}{newest}"));
    let skew = match date {
        Some(d) => {
            let secs = (d - Utc::now()).num_milliseconds() as f64 / 1000.0;
            let warn = if secs.abs() > 30.0 {
                " — WARNING: more than 30 s"
            } else {
                ""
            };
            format!("{secs:+.1} s (tenant Date header minus local clock){warn}")
        }
        None => "unknown (no Date header)".to_string(),
    };
    line(&mut out, "clock skew", &skew);
    line(&mut out, "verdict", "OK");
    (true, out)
}

fn step_for(e: &ApiError) -> &'static str {
    if matches!(e, ApiError::Redirect { .. }) {
        return "reachable";
    }
    match e.status() {
        Some(401) => "authenticated",
        Some(403) => "read rights",
        Some(404) => "api version",
        Some(_) => "api",
        None => "reachable",
    }
}

fn line(out: &mut String, step: &str, text: &str) {
    let _ = writeln!(out, "  {step:<16}{text}");
}

fn fail(mut out: String, step: &str, e: &ApiError) -> (bool, String) {
    let hint = match step {
        // The redirect error says what to do itself.
        _ if matches!(e, ApiError::Redirect { .. }) => "",
        "reachable" => " — check base_url, DNS, proxy and firewall",
        "authenticated" => " — check client_id and the secret",
        "read rights" => " — the token needs idn:task-management:read (or sp:scopes:all)",
        "api version" => " — check api_version (v2024, v2025, beta)",
        _ => "",
    };
    line(&mut out, step, &format!("FAILED: {e}{hint}"));
    line(&mut out, "verdict", "FAILED");
    (false, out)
}
