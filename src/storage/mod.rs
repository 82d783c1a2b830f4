//! State across restarts (`storage.path`): one file per tenant holding its exactly-once
//! [`Tracker`] and its metric values ([`TenantState`]), written atomically after every
//! applied poll and resumed at start.
//!
//! A file is written to a temporary name, fsynced, renamed over the old one and the
//! directory fsynced, so a crash at any moment leaves either the previous complete state
//! or the new one. Both halves of a file come from the same applied poll, so a resumed
//! tenant's counters and tracker agree: the completed poll after the restart re-reads
//! from the tracker's lower bound and counts what completed during the downtime, once.
//!
//! A file that cannot be resumed — unreadable, corrupt, of an unknown format version,
//! foreign (another tenant name or base URL) or older than `lookback` — is renamed aside
//! (`<tenant>.json.<reason>-<time>`), logged and counted, and the tenant starts fresh.
//! A failed write is logged and counted; serving goes on.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::collector::tracker::Tracker;
use crate::metrics::{TenantMetrics, TenantState};

/// Version of the state file format; a file with another version is set aside.
pub const FORMAT_VERSION: u32 = 1;

const SUFFIX: &str = ".json";
const TEMPORARY: &str = ".tmp";

/// What is written (borrowed, so saving copies nothing twice).
#[derive(Serialize)]
struct Written<'a> {
    format: u32,
    tenant: &'a str,
    base_url: &'a str,
    saved_at: DateTime<Utc>,
    tracker: &'a Tracker,
    metrics: &'a TenantState,
}

/// The identifying part of a state file, read before the rest.
#[derive(Deserialize)]
struct Header {
    format: u32,
    tenant: String,
    base_url: String,
    saved_at: DateTime<Utc>,
}

/// The body of a state file of [`FORMAT_VERSION`].
#[derive(Deserialize)]
struct Body {
    tracker: Tracker,
    metrics: TenantState,
}

/// The outcome of looking for a tenant's state at start.
#[derive(Debug)]
pub enum Loaded {
    /// No state file: the tenant starts fresh.
    Missing,
    /// A valid state: the tenant resumes from it.
    Resumed {
        /// The exactly-once state (its timings come from the current settings).
        tracker: Box<Tracker>,
        /// The metric values.
        state: Box<TenantState>,
        /// When it was written.
        saved_at: DateTime<Utc>,
    },
    /// The file could not be resumed and was set aside for this reason (a `reason` label
    /// of `sailpoint_exporter_state_set_aside_total`).
    SetAside(&'static str),
}

/// The state directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`; creates the directory and removes temporary files a crash
    /// left behind. Problems are logged, not returned: the exporter serves without
    /// persistence rather than refusing to start (each failed write is counted).
    pub fn open(dir: &Path) -> Arc<Store> {
        if let Err(error) = fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), %error, "cannot create the state directory; state will not be kept");
        } else if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().ends_with(TEMPORARY) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Arc::new(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The state file of a tenant (names are validated: letters, digits, `-`, `_`, `.`).
    pub fn path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{tenant}{SUFFIX}"))
    }

    /// Reads a tenant's state file. A state is resumed when it is of this format, of
    /// this tenant name and base URL, and written less than `lookback` before `now`;
    /// anything else is set aside.
    pub fn load(
        &self,
        tenant: &str,
        base_url: &str,
        lookback: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Loaded {
        let path = self.path(tenant);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
            Err(error) => {
                tracing::warn!(tenant, file = %path.display(), %error, "cannot read the state file");
                return self.set_aside(&path, tenant, "unreadable");
            }
        };
        let Ok(header) = serde_json::from_slice::<Header>(&bytes) else {
            return self.set_aside(&path, tenant, "corrupt");
        };
        if header.format != FORMAT_VERSION {
            return self.set_aside(&path, tenant, "version");
        }
        if header.tenant != tenant || header.base_url != base_url {
            return self.set_aside(&path, tenant, "foreign");
        }
        let age = now.signed_duration_since(header.saved_at);
        let too_old = chrono::Duration::from_std(lookback)
            .map(|limit| age >= limit)
            .unwrap_or(false);
        if too_old {
            return self.set_aside(&path, tenant, "too_old");
        }
        match serde_json::from_slice::<Body>(&bytes) {
            Ok(body) => Loaded::Resumed {
                tracker: Box::new(body.tracker),
                state: Box::new(body.metrics),
                saved_at: header.saved_at,
            },
            Err(_) => self.set_aside(&path, tenant, "corrupt"),
        }
    }

    /// Renames a state file that cannot be resumed out of the way (kept for inspection).
    fn set_aside(&self, path: &Path, tenant: &str, reason: &'static str) -> Loaded {
        let aside = path.with_file_name(format!(
            "{tenant}{SUFFIX}.{reason}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        match fs::rename(path, &aside) {
            Ok(()) => tracing::warn!(
                tenant,
                reason,
                file = %aside.display(),
                "state file not resumed: set aside, the tenant starts fresh"
            ),
            Err(error) => tracing::warn!(
                tenant,
                reason,
                %error,
                "state file not resumed and could not be set aside; the tenant starts fresh and overwrites it"
            ),
        }
        Loaded::SetAside(reason)
    }

    /// The writer of one tenant's file.
    pub fn tenant(self: &Arc<Self>, tenant: &str, base_url: &str) -> TenantStore {
        TenantStore {
            store: Arc::clone(self),
            tenant: tenant.to_string(),
            base_url: base_url.to_string(),
            failing: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Writes one tenant's state file after each applied poll.
#[derive(Debug, Clone)]
pub struct TenantStore {
    store: Arc<Store>,
    tenant: String,
    base_url: String,
    /// The last write failed (so the next failure is not logged again, and a success
    /// is).
    failing: Arc<AtomicBool>,
}

impl TenantStore {
    /// Writes `tracker` and a snapshot of `metrics` (off the async workers); records the
    /// outcome in the tenant's metrics.
    pub async fn save(&self, tracker: &Tracker, metrics: &TenantMetrics) {
        let (tracker, state) = (tracker.clone(), metrics.snapshot());
        let writer = self.clone();
        let written = tokio::task::spawn_blocking(move || writer.write(&tracker, &state)).await;
        let result = written.unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(tenant = self.tenant, "state file written again");
                }
                metrics.apply(|u| u.state_written(Utc::now()));
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        tenant = self.tenant,
                        file = %self.store.path(&self.tenant).display(),
                        %error,
                        "cannot write the state file; serving goes on, a restart would start from the last state written"
                    );
                }
                metrics.apply(|u| u.state_write_failed());
            }
        }
    }

    fn write(&self, tracker: &Tracker, state: &TenantState) -> io::Result<()> {
        let body = serde_json::to_vec(&Written {
            format: FORMAT_VERSION,
            tenant: &self.tenant,
            base_url: &self.base_url,
            saved_at: Utc::now(),
            tracker,
            metrics: state,
        })
        .map_err(io::Error::other)?;
        write_atomically(&self.store.path(&self.tenant), &body)
    }
}

/// Temporary file, fsync, rename, fsync of the directory: after a crash the file is
/// either the old one or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}{TEMPORARY}"));
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests;
