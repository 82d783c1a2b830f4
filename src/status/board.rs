//! The registry of tenants behind the status page, [`StatusBoard`]: the daemon adds and
//! removes tenants as reloads change them, each poller gets its tenant's
//! [`TenantStatus`] (the bounded record, see [`record`](super::record)), and the HTTP
//! server asks it for a [`Snapshot`] or one task. It never calls SailPoint.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::record::TenantStatus;
use super::snapshot::{ShownSettings, Snapshot, TaskDetail};
use super::text::shell_word;
use crate::config::{Credentials, StatusSettings, TenantSettings};

/// What the page shows besides the tenants: the links and the build.
#[derive(Debug, Clone, Default)]
pub struct PageInfo {
    /// Path of the metrics endpoint, linked from the page.
    pub telemetry_path: String,
    /// Crate version.
    pub version: String,
    /// Source revision.
    pub revision: String,
}

/// How the page's commands name a tenant to the `tasks` CLI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CliTarget {
    /// `--config.file FILE --tenant NAME`: the operator runs the CLI with the daemon's
    /// configuration file, named absolutely so that the command works when pasted in any
    /// directory (None: `--tenant NAME` alone, the CLI's default file).
    ByName {
        /// The daemon's configuration file.
        config_file: Option<std::path::PathBuf>,
    },
    /// `--base-url URL --client-id ID` (secret from the environment): there is no
    /// configuration file to name the tenant in (`demo`).
    #[default]
    ByUrl,
}

/// Every configured tenant's status; shared by the daemon (which adds and removes tenants
/// as reloads change them), the pollers (through their [`TenantStatus`]) and the HTTP
/// server (which asks for snapshots).
#[derive(Debug)]
pub struct StatusBoard {
    settings: StatusSettings,
    page: PageInfo,
    cli: CliTarget,
    tenants: Mutex<BTreeMap<String, TenantStatus>>,
}

impl StatusBoard {
    /// An empty board.
    pub fn new(settings: StatusSettings, page: PageInfo) -> StatusBoard {
        StatusBoard {
            settings,
            page,
            cli: CliTarget::ByName { config_file: None },
            tenants: Mutex::new(BTreeMap::new()),
        }
    }

    /// Names tenants in the page's commands as `cli` says (default: `--tenant NAME`).
    pub fn with_cli_target(mut self, cli: CliTarget) -> StatusBoard {
        self.cli = cli;
        self
    }

    /// The thresholds in force.
    pub fn settings(&self) -> &StatusSettings {
        &self.settings
    }

    /// The links and build shown on the page.
    pub fn page_info(&self) -> &PageInfo {
        &self.page
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, TenantStatus>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle of `tenant`, created empty on first use. A restarted collector that
    /// continues from its predecessor's state keeps the tenant's record this way.
    pub fn tenant(&self, tenant: &TenantSettings) -> TenantStatus {
        self.lock()
            .entry(tenant.name.clone())
            .or_insert_with(|| self.fresh(tenant))
            .clone()
    }

    /// A fresh, empty record for `tenant` (a collector starting from scratch would
    /// otherwise list its primed history twice).
    pub fn restart(&self, tenant: &TenantSettings) -> TenantStatus {
        let fresh = self.fresh(tenant);
        self.lock().insert(tenant.name.clone(), fresh.clone());
        fresh
    }

    fn fresh(&self, tenant: &TenantSettings) -> TenantStatus {
        let mut status = TenantStatus::detached(&tenant.name, self.settings.clone());
        match &self.cli {
            CliTarget::ByUrl => {
                let client_id = match tenant.credentials() {
                    Credentials::ClientCredentials { client_id, .. } => client_id.as_str(),
                    Credentials::StaticToken(_) => "",
                };
                status.cli_target = format!(
                    "--base-url {} --client-id {}",
                    shell_word(tenant.base_url.as_str().trim_end_matches('/')),
                    shell_word(client_id)
                );
            }
            CliTarget::ByName {
                config_file: Some(file),
            } => {
                status.cli_target = format!(
                    "--config.file {} {}",
                    shell_word(&file.to_string_lossy()),
                    status.cli_target
                );
            }
            CliTarget::ByName { config_file: None } => {}
        }
        status
    }

    /// Forgets tenant `name` (a reload removed it); its page section disappears.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The tenants on the board, by name.
    pub fn tenant_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Task `id` as the first tenant that knows it has it (ids are unique per tenant;
    /// the page names the tenant).
    pub fn task(&self, id: &str, now: DateTime<Utc>) -> Option<TaskDetail> {
        let tenants: Vec<TenantStatus> = self.lock().values().cloned().collect();
        tenants.iter().find_map(|t| t.task(id, now))
    }

    /// The status of every tenant as of `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        let tenants: Vec<TenantStatus> = self.lock().values().cloned().collect();
        Snapshot {
            generated_at: now,
            settings: shown(&self.settings),
            tenants: tenants.iter().map(|t| t.snapshot(now)).collect(),
        }
    }
}

fn shown(settings: &StatusSettings) -> ShownSettings {
    ShownSettings {
        stuck_after_seconds: settings.stuck_after.as_secs(),
        no_success_after_seconds: settings.no_success_after.as_secs(),
        failed_tasks_kept: settings.failed_tasks,
    }
}

#[cfg(test)]
mod tests;
