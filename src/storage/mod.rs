//! State across restarts (`storage.path`): one file per tenant holding its exactly-once
//! state and its metric values ([`TenantState`]), written atomically after every poll
//! (applied or failed) and when a poller stops, and resumed at start. The exactly-once
//! state is the collector's tracker, but storage takes any serialisable value (`C`
//! below) and never names the collector's types: the arrow runs collector → storage. The poller
//! writes a poll's state *before* serving it, so no value a scrape has seen can be taken
//! back by a crash.
//!
//! A file is written to a temporary name, fsynced, renamed over the old one and the
//! directory fsynced, so a crash at any moment leaves either the previous complete state
//! or the new one. Both halves of a file come from the same moment, so a resumed
//! tenant's counters and tracker agree: the completed poll after the restart re-reads
//! from the tracker's lower bound and counts what completed during the downtime, once.
//!
//! A file that cannot be resumed — unreadable, corrupt, of an unknown format version,
//! foreign (another tenant name or base URL) or older than `lookback` — is renamed aside
//! (`<tenant>.json.<reason>-<time>`), logged and counted, and the tenant starts fresh.
//! A failed write is logged and counted; serving goes on.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::metrics::{TenantMetrics, TenantState};

/// Version of the state file format; a file with another version is set aside.
pub const FORMAT_VERSION: u32 = 1;

const SUFFIX: &str = ".json";
const TEMPORARY: &str = ".tmp";

/// The lock file of a state directory: held (`flock`, exclusive) for the life of the
/// process that owns the directory, and holding that process's id for the message of the
/// next one.
pub const LOCK_FILE: &str = ".sailpoint-task-exporter.lock";

/// Another process owns the state directory.
#[derive(Debug, thiserror::Error)]
#[error(
    "state directory {} is in use by another sailpoint-task-exporter{}: two processes on one directory would overwrite and resume each other's state; give each replica its own storage.path (see deploy/README.md, \"State directory lock held\")",
    dir.display(),
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
)]
pub struct Locked {
    /// The state directory.
    pub dir: PathBuf,
    /// The pid written by the holder, when readable.
    pub holder: Option<u32>,
}

/// What is written (borrowed, so saving copies nothing twice). The exactly-once state
/// is kept under the key `tracker`, as it always was.
#[derive(Serialize)]
struct Written<'a, C> {
    format: u32,
    tenant: &'a str,
    base_url: &'a str,
    saved_at: DateTime<Utc>,
    #[serde(rename = "tracker")]
    counting: &'a C,
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
struct Body<C> {
    #[serde(rename = "tracker")]
    counting: C,
    metrics: TenantState,
}

/// The outcome of looking for a tenant's state at start.
#[derive(Debug)]
pub enum Loaded<C> {
    /// No state file: the tenant starts fresh.
    Missing,
    /// A valid state: the tenant resumes from it.
    Resumed {
        /// The exactly-once state, as the collector saved it.
        counting: Box<C>,
        /// The metric values.
        state: Box<TenantState>,
        /// When it was written.
        saved_at: DateTime<Utc>,
    },
    /// The file could not be resumed and was set aside for this reason (a `reason` label
    /// of `sailpoint_exporter_state_set_aside_total`).
    SetAside(&'static str),
}

/// The state directory, owned by this process for as long as the store lives.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The held lock (`None` when the directory could not be created or locked; writes
    /// then fail or are unguarded, and say so in the log).
    _lock: Option<File>,
    /// The generation of the next snapshot, across tenants (see [`Snapshot`]).
    generations: AtomicU64,
    /// Per tenant, the generation of the state on disk; its mutex also makes the
    /// tenant's writes (and its load) one at a time.
    written: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
}

impl Store {
    /// The store in `dir`: creates the directory (0700), takes its lock, and removes the
    /// temporary files an exporter's crash left behind (only those: the directory may be
    /// shared with other files). A directory locked by another process is an error;
    /// other problems are logged, not returned: the exporter serves without persistence
    /// rather than refusing to start (each failed write is counted).
    pub fn open(dir: &Path) -> Result<Arc<Store>, Locked> {
        let lock = match create_private_dir(dir) {
            Err(error) => {
                tracing::error!(dir = %dir.display(), %error, "cannot create the state directory; state will not be kept");
                None
            }
            Ok(()) => {
                let lock = lock(dir)?;
                remove_own_temporaries(dir);
                lock
            }
        };
        Ok(Arc::new(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            generations: AtomicU64::new(1),
            written: Mutex::new(HashMap::new()),
        }))
    }

    /// The tenant's write slot: the generation on disk, behind the tenant's write lock.
    fn slot(&self, tenant: &str) -> Arc<Mutex<u64>> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(written.entry(tenant.to_string()).or_default())
    }

    /// The state file of a tenant (names are validated: letters, digits, `-`, `_`, `.`).
    pub fn path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{tenant}{SUFFIX}"))
    }

    /// Reads a tenant's state file. A state is resumed when it is of this format, of
    /// this tenant name and base URL, and written less than `lookback` before `now`;
    /// anything else is set aside (so is one whose exactly-once state does not read as a
    /// `C`).
    pub fn load<C: DeserializeOwned>(
        &self,
        tenant: &str,
        base_url: &str,
        lookback: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Loaded<C> {
        let path = self.path(tenant);
        let slot = self.slot(tenant);
        let _writing = lock_slot(&slot);
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
        match serde_json::from_slice::<Body<C>>(&bytes) {
            Ok(body) => Loaded::Resumed {
                counting: Box::new(body.counting),
                state: Box::new(body.metrics),
                saved_at: header.saved_at,
            },
            Err(_) => self.set_aside(&path, tenant, "corrupt"),
        }
    }

    /// Renames a state file that cannot be resumed out of the way (kept for inspection).
    fn set_aside<C>(&self, path: &Path, tenant: &str, reason: &'static str) -> Loaded<C> {
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

/// A tenant's exactly-once state and metric values as of one moment, numbered: of two
/// snapshots of a tenant, the later-numbered one is the newer state.
#[derive(Debug)]
pub struct Snapshot<C> {
    generation: u64,
    counting: C,
    state: TenantState,
}

/// Writes one tenant's state file after each poll.
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
    /// Numbers `counting` (the exactly-once state) and `state` as the tenant's newest
    /// state. Take it at the moment the state is current: the number orders the writes.
    pub fn snapshot<C: Clone>(&self, counting: &C, state: TenantState) -> Snapshot<C> {
        Snapshot {
            generation: self.store.generations.fetch_add(1, Ordering::AcqRel),
            counting: counting.clone(),
            state,
        }
    }

    /// Writes `snapshot` (off the async workers) unless a newer one of the tenant is on
    /// disk already — a write abandoned by a stopped poller keeps running and must not
    /// replace its successor's; records the outcome in the tenant's metrics.
    pub async fn save<C>(&self, snapshot: Snapshot<C>, metrics: &TenantMetrics)
    where
        C: Serialize + Send + 'static,
    {
        let writer = self.clone();
        let written = tokio::task::spawn_blocking(move || writer.write_in_order(&snapshot)).await;
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

    /// Writes `snapshot` under the tenant's write lock when it is newer than the state on
    /// disk; an older one is dropped (its successor already holds everything it had).
    fn write_in_order<C: Serialize>(&self, snapshot: &Snapshot<C>) -> io::Result<()> {
        let slot = self.store.slot(&self.tenant);
        let mut on_disk = lock_slot(&slot);
        if snapshot.generation <= *on_disk {
            return Ok(());
        }
        self.write(&snapshot.counting, &snapshot.state)?;
        *on_disk = snapshot.generation;
        Ok(())
    }

    fn write<C: Serialize>(&self, counting: &C, state: &TenantState) -> io::Result<()> {
        let body = serde_json::to_vec(&Written {
            format: FORMAT_VERSION,
            tenant: &self.tenant,
            base_url: &self.base_url,
            saved_at: Utc::now(),
            counting,
            metrics: state,
        })
        .map_err(io::Error::other)?;
        write_atomically(&self.store.path(&self.tenant), &body)
    }
}

fn lock_slot(slot: &Mutex<u64>) -> MutexGuard<'_, u64> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates the state directory readable by its owner only (it holds whole task
/// records); an existing directory keeps its mode.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens a file for writing, readable by its owner only.
fn private_file(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options.open(path)
}

/// Takes the directory's lock for the life of the returned file and writes this
/// process's id into it. Held by another process: [`Locked`]. A file system without
/// locks is logged and tolerated (the operator must then keep to one process).
fn lock(dir: &Path) -> Result<Option<File>, Locked> {
    let path = dir.join(LOCK_FILE);
    let mut file = match private_file(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    ) {
        Ok(f) => f,
        Err(error) => {
            tracing::error!(file = %path.display(), %error, "cannot open the state directory's lock file; state is kept unguarded: run only one exporter on this directory");
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(Locked {
                dir: dir.to_path_buf(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(fs::TryLockError::Error(error)) => {
            tracing::error!(file = %path.display(), %error, "cannot lock the state directory; state is kept unguarded: run only one exporter on this directory");
            return Ok(Some(file));
        }
    }
    let pid = std::process::id();
    let recorded = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{pid}"))
        .and_then(|()| file.flush());
    if let Err(error) = recorded {
        tracing::warn!(file = %path.display(), %error, "cannot record the pid in the lock file (the lock is held)");
    }
    Ok(Some(file))
}

/// Whether `name` is a temporary file of [`write_atomically`]: `.<tenant>.json.tmp`
/// (older versions) or `.<tenant>.json.<pid>-<sequence>.tmp`.
fn is_own_temporary(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(TEMPORARY))
    else {
        return false;
    };
    if inner.ends_with(SUFFIX) {
        return true;
    }
    let Some((stem, unique)) = inner.rsplit_once('.') else {
        return false;
    };
    let numbered = unique
        .split_once('-')
        .is_some_and(|(pid, seq)| is_number(pid) && is_number(seq));
    stem.ends_with(SUFFIX) && numbered
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Removes the temporary files a crash of an exporter left behind (called with the lock
/// held, so no other exporter is writing one).
fn remove_own_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_own_temporary(&entry.file_name().to_string_lossy()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Numbers the temporary files of this process, so no two writes share a name.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// Temporary file, fsync, rename, fsync of the directory: after a crash the file is
/// either the old one or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(
        ".{name}.{}-{unique}{TEMPORARY}",
        std::process::id()
    ));
    let result = (|| {
        let mut file = private_file(&temporary, OpenOptions::new().write(true).create_new(true))?;
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
