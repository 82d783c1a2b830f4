//! The counted-once memory of a tenant's tracker: every task counted or primed, for as
//! long as some view can still list it. Kept apart from the tracker's bounds because it
//! is the tracker's bulk — a lookback window of completions — and so has its own compact
//! form, and its own state-file shape that must keep loading files of earlier versions.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sailpoint::model::TaskStatus;

/// Every task counted (or primed) whose `created` or end is within `lookback`: the
/// counted-once memory. Until a task's `created` and end are both older than `lookback`,
/// some view can still list it (the completed list down to the floor, a pending view that
/// lags and re-lists it as pending), so until then it must not count again
/// (docs/design.md §3.5).
///
/// Compact on purpose, since it holds a lookback window of completions (a day by
/// default): SailPoint ids (32 hex digits) are kept as 16 bytes, and each id maps to one
/// number, the millisecond after which the task may be forgotten; other ids (test data)
/// are kept as text. docs/scale.md states the measured bytes per completion.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(from = "StoredRemembered", into = "StoredRemembered")]
pub struct RecentlyRecorded {
    hex: HashMap<[u8; 16], i64>,
    other: HashMap<Box<str>, i64>,
}

/// A task id in its compact form: 16 bytes when it is 32 hex digits.
fn hex_id(id: &str) -> Option<[u8; 16]> {
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if id.len() != 32 || !id.as_bytes().iter().all(lower_hex) {
        return None;
    }
    u128::from_str_radix(id, 16).ok().map(u128::to_be_bytes)
}

/// The moment after which a recorded task can no longer be listed by any view within
/// `lookback`: the later of its `created` and its end (`completed`, else `modified`, as
/// it is counted; else `recorded`, the tenant time it was recorded at — a finished record
/// without either timestamp may have run for longer than `lookback`, and a view that lags
/// can still list it), in milliseconds of tenant time.
fn kept_until(task: &TaskStatus, recorded: DateTime<Utc>) -> i64 {
    let end = task.completed.or(task.modified).unwrap_or(recorded);
    task.created.max(end).timestamp_millis()
}

impl RecentlyRecorded {
    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.hex.len() + self.other.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.hex.is_empty() && self.other.is_empty()
    }

    /// Whether a task was already recorded.
    pub fn contains(&self, id: &str) -> bool {
        match hex_id(id) {
            Some(key) => self.hex.contains_key(&key),
            None => self.other.contains_key(id),
        }
    }

    /// Remembers a task (again), recorded at tenant time `recorded`: it is kept until its
    /// latest timestamp is older than the horizon, and a later sighting never shortens
    /// that.
    pub(super) fn insert(&mut self, task: &TaskStatus, recorded: DateTime<Utc>) {
        let until = kept_until(task, recorded);
        let slot = match hex_id(&task.id) {
            Some(key) => self.hex.entry(key).or_insert(until),
            None => self.other.entry(task.id.as_str().into()).or_insert(until),
        };
        *slot = (*slot).max(until);
    }

    /// Forgets the tasks whose `created` and end are older than `horizon` (`now −
    /// lookback`, at or below every floor to come), except ids the pending view still
    /// lists: no view can show the others again.
    pub(super) fn evict(&mut self, horizon: DateTime<Utc>, still_listed: &HashSet<String>) {
        let horizon = horizon.timestamp_millis();
        let listed_hex: HashSet<[u8; 16]> =
            still_listed.iter().filter_map(|id| hex_id(id)).collect();
        self.hex
            .retain(|key, until| *until >= horizon || listed_hex.contains(key));
        self.other
            .retain(|id, until| *until >= horizon || still_listed.contains(id.as_ref()));
    }
}

/// How the counted-once memory is written to a state file: id → kept-until
/// milliseconds. A file of the earlier shape (`entries`: id → (created, recorded)) loads
/// too, each id kept until its `created` passes the horizon.
#[derive(Serialize, Deserialize, Default)]
struct StoredRemembered {
    #[serde(default)]
    until: BTreeMap<String, i64>,
    #[serde(default, skip_serializing)]
    entries: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

impl From<StoredRemembered> for RecentlyRecorded {
    fn from(stored: StoredRemembered) -> RecentlyRecorded {
        let earlier = stored
            .entries
            .into_iter()
            .map(|(id, (created, _))| (id, created.timestamp_millis()));
        let mut out = RecentlyRecorded::default();
        for (id, until) in earlier.chain(stored.until) {
            match hex_id(&id) {
                Some(key) => out.hex.insert(key, until),
                None => out.other.insert(id.into(), until),
            };
        }
        out
    }
}

impl From<RecentlyRecorded> for StoredRemembered {
    fn from(r: RecentlyRecorded) -> StoredRemembered {
        let hex = r
            .hex
            .into_iter()
            .map(|(key, until)| (format!("{:032x}", u128::from_be_bytes(key)), until));
        let other = r.other.into_iter().map(|(id, until)| (id.into(), until));
        StoredRemembered {
            until: hex.chain(other).collect(),
            entries: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, created: &str, completed: &str) -> TaskStatus {
        serde_json::from_value(serde_json::json!({
            "id": id, "created": created, "completed": completed, "completionStatus": "SUCCESS"
        }))
        .unwrap()
    }

    /// Ids of both shapes survive a state file; SailPoint's are kept as 16 bytes, and an id
    /// that only looks like one (upper case, a sign) stays text, so no two ids collide.
    #[test]
    fn remembered_ids_round_trip_and_never_collide() {
        let mut r = RecentlyRecorded::default();
        let hex = "2c9180835d2e5168015d32f890ca1581";
        for id in [
            hex,
            "2C9180835D2E5168015D32F890CA1581",
            "+c9180835d2e5168015d32f890ca1581",
            "t1",
        ] {
            r.insert(
                &done(id, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"),
                DateTime::UNIX_EPOCH,
            );
        }
        assert_eq!((r.hex.len(), r.other.len()), (1, 3));
        let back: RecentlyRecorded =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back.len(), 4);
        assert!(back.contains(hex) && back.contains("t1") && !back.contains("t2"));
        assert_eq!(back.hex, r.hex);
        assert_eq!(back.other, r.other);
    }

    /// A finished record with neither `completed` nor `modified`, created long before
    /// lookback (it ran for days): kept for lookback after it was recorded, not dropped
    /// at once by its `created` — a lagging view that lists it pending again must not
    /// have it counted a second time.
    #[test]
    fn a_finished_record_without_an_end_is_kept_for_lookback_after_it_was_recorded() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let mut task = done("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        task.completed = None;
        task.modified = None;
        let mut r = RecentlyRecorded::default();
        r.insert(&task, at("2026-01-05T00:00:00Z"));
        r.evict(at("2026-01-04T12:00:00Z"), &HashSet::new());
        assert!(r.contains("a"), "before: forgotten by its created");
        r.evict(at("2026-01-05T00:00:01Z"), &HashSet::new());
        assert!(r.is_empty());
    }

    /// A task is kept until its end (not only its `created`) passes the horizon; a state
    /// file of the earlier shape loads, each id kept by its `created`.
    #[test]
    fn a_task_is_kept_until_its_end_passes_the_horizon_and_old_files_load() {
        let mut r = RecentlyRecorded::default();
        r.insert(
            &done("a", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
            DateTime::UNIX_EPOCH,
        );
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        r.evict(at("2026-01-02T00:00:00Z"), &HashSet::new());
        assert!(r.contains("a"));
        r.evict(at("2026-01-03T00:00:01Z"), &HashSet::new());
        assert!(r.is_empty());
        let old =
            serde_json::json!({"entries": {"b": ["2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"]}});
        let mut loaded: RecentlyRecorded = serde_json::from_value(old).unwrap();
        assert!(loaded.contains("b"));
        let listed = HashSet::from(["b".to_string()]);
        loaded.evict(at("2026-01-02T00:00:00Z"), &listed);
        assert!(loaded.contains("b"), "still listed");
        loaded.evict(at("2026-01-02T00:00:00Z"), &HashSet::new());
        assert!(loaded.is_empty());
    }
}
