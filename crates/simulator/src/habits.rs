//! Production habits of a tenant ([`Habits`]): how the answers of a real tenant differ
//! from the ground truth without any request failing — timestamps on another clock and
//! with whole seconds, equal `created` values in a different order per request, views that
//! lag behind, off-spec fields, a task that can no longer be looked up.
//!
//! These functions shape what the server sends; the ground truth itself is never changed.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::config::Habits;
use sailpoint_model::TaskStatus;

/// Whether any habit changes which tasks a list shows or in which order (the slow path
/// that renders the whole list per request).
pub(crate) fn reshapes_lists(h: &Habits) -> bool {
    !h.pending_view_lag.is_zero()
        || from_replica_ever(h)
        || !h.completed_list_lag.is_zero()
        || h.reorder_ties
        || h.broken_lookup.is_some()
}

/// The tenant's clock offset.
pub(crate) fn offset(h: &Habits) -> Duration {
    Duration::seconds(h.clock_offset_secs)
}

/// A task as the tenant serves it: every timestamp on the tenant's clock, `created` with
/// whole seconds when ties are reordered.
pub(crate) fn served(mut task: TaskStatus, h: &Habits) -> TaskStatus {
    let shift = offset(h);
    let moved = move |t: DateTime<Utc>| t.checked_add_signed(shift).unwrap_or(t);
    task.created = task
        .created
        .checked_add_signed(shift)
        .unwrap_or(task.created);
    if h.reorder_ties {
        task.created = task.created.trunc_subsecs(0);
    }
    task.modified = task.modified.map(moved);
    task.launched = task.launched.map(moved);
    task.completed = task.completed.map(moved);
    task
}

/// Whether the task is the one hidden by `broken_lookup`.
pub(crate) fn is_hidden(task: &TaskStatus, h: &Habits) -> bool {
    h.broken_lookup
        .as_ref()
        .is_some_and(|(id, _)| *id == task.id)
}

/// Whether a finished task is still missing from the completed list at `now` (simulator
/// clock; `task` as in the ground truth).
pub(crate) fn not_yet_listed(task: &TaskStatus, h: &Habits, now: DateTime<Utc>) -> bool {
    let lag = Duration::from_std(h.completed_list_lag).unwrap_or(Duration::MAX);
    task.completed.is_some_and(|c| c > now - lag) && !h.completed_list_lag.is_zero()
}

/// The pending view at `now`: the pending tasks plus the finished ones that still linger
/// in it (`finished`, ground truth, newest first or in any order), oldest `created` first.
pub(crate) fn pending_view(
    mut pending: Vec<TaskStatus>,
    finished: Vec<TaskStatus>,
    h: &Habits,
    now: DateTime<Utc>,
) -> Vec<TaskStatus> {
    let lag = Duration::from_std(h.pending_view_lag).unwrap_or(Duration::MAX);
    if !h.pending_view_lag.is_zero() {
        for mut task in finished {
            if task.completed.is_some_and(|c| c > now - lag) {
                if !h.pending_view_shows_status {
                    task.completed = None;
                    task.completion_status = None;
                }
                pending.push(task);
            }
        }
    }
    pending.retain(|t| !is_hidden(t, h));
    pending.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    pending
}

/// Whether some pending-tasks answers come from the replica that lags.
fn from_replica_ever(h: &Habits) -> bool {
    !h.pending_replica_lag.is_zero() && h.pending_replica_share > 0.0
}

/// Whether pending-tasks request number `request` is answered by the replica that lags
/// (a draw from the seed: the same requests get the same answers).
pub(crate) fn from_replica(h: &Habits, seed: u64, request: u64) -> bool {
    if !from_replica_ever(h) {
        return false;
    }
    let mut rng = StdRng::seed_from_u64(
        seed ^ 0x5245_504c_4943_4100 ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    rng.r#gen::<f64>() < h.pending_replica_share
}

/// The pending view of a replica `pending_replica_lag` behind at `now`: every task
/// (`pending` and `finished`, ground truth) that was pending at `now − lag`, shown as
/// pending, oldest `created` first. Tasks finished since are listed again as pending;
/// tasks created since are missing.
pub(crate) fn replica_view(
    pending: Vec<TaskStatus>,
    finished: Vec<TaskStatus>,
    h: &Habits,
    now: DateTime<Utc>,
) -> Vec<TaskStatus> {
    let lag = Duration::from_std(h.pending_replica_lag).unwrap_or(Duration::MAX);
    let then = now
        .checked_sub_signed(lag)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut view: Vec<TaskStatus> = pending
        .into_iter()
        .chain(finished)
        .filter(|t| t.created <= then && t.completed.is_none_or(|c| c > then))
        .filter(|t| !is_hidden(t, h))
        .map(|mut t| {
            t.completed = None;
            t.completion_status = None;
            t.launched = t.launched.filter(|l| *l <= then);
            t
        })
        .collect();
    view.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    view
}

/// Shuffles every run of equal `created` values (the list is sorted by `created`), with a
/// different order for every `request`.
pub(crate) fn shuffle_ties(tasks: &mut [TaskStatus], seed: u64, request: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut start = 0;
    while start < tasks.len() {
        let created = tasks.get(start).map(|t| t.created);
        let len = tasks
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|t| Some(t.created) == created)
            .count()
            .max(1);
        if let Some(run) = tasks.get_mut(start..start + len) {
            run.shuffle(&mut rng);
        }
        start += len;
    }
}

/// Spoils non-essential fields of every fourth record (by id) when `off_spec_fields` is
/// on: what counting needs stays intact, everything else must fall back to defaults.
pub(crate) fn spoil_fields(value: &mut Value, h: &Habits) {
    if !h.off_spec_fields {
        return;
    }
    let chosen = |id: &str| id.chars().last().is_some_and(|c| matches!(c, '0'..='3'));
    spoil_chosen(value, chosen, |map| {
        map.insert("percentComplete".into(), json!(12.5));
        map.insert("launcher".into(), json!(7));
        map.insert("attributes".into(), json!(["not", "an", "object"]));
    });
}

/// Makes the records chosen by `unreadable_ids_ending` unreadable: a finished task's
/// `completed` becomes `"not-a-date"`, a pending task's `created` becomes `"bogus"` (an
/// essential field that does not fit its type, so a reader must skip the record).
pub(crate) fn spoil_unreadable(value: &mut Value, h: &Habits) {
    let Some(suffix) = h.unreadable_ids_ending.as_deref().filter(|s| !s.is_empty()) else {
        return;
    };
    spoil_chosen(
        value,
        |id| id.ends_with(suffix),
        |map| {
            let finished = ["completed", "completionStatus"]
                .iter()
                .any(|k| map.get(*k).is_some_and(|v| !v.is_null()));
            if finished {
                map.insert("completed".into(), json!("not-a-date"));
            } else {
                map.insert("created".into(), json!("bogus"));
            }
        },
    );
}

/// Applies `spoil` to each served record (one task or an array of them) whose `id`
/// `chosen` picks; both field-spoiling habits choose their victims by id this way.
fn spoil_chosen(
    value: &mut Value,
    chosen: impl Fn(&str) -> bool,
    spoil: impl Fn(&mut Map<String, Value>),
) {
    let one = |task: &mut Value| {
        let Value::Object(map) = task else { return };
        if map.get("id").and_then(Value::as_str).is_some_and(&chosen) {
            spoil(map);
        }
    };
    match value {
        Value::Array(items) => items.iter_mut().for_each(one),
        single => one(single),
    }
}

/// The `Date` header of an answer given at `now` (simulator clock): IMF-fixdate on the
/// tenant's clock.
pub(crate) fn date_header(now: DateTime<Utc>, h: &Habits) -> String {
    let t = now.checked_add_signed(offset(h)).unwrap_or(now);
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, created: &str) -> TaskStatus {
        serde_json::from_value(json!({"id": id, "created": created})).unwrap()
    }

    #[test]
    fn ties_are_shuffled_only_among_themselves() {
        let mut tasks: Vec<TaskStatus> = (0..8)
            .map(|i| task(&format!("t{i}"), "2026-01-01T00:00:05Z"))
            .chain([task("z", "2026-01-01T00:00:04Z")])
            .collect();
        let mut orders = std::collections::HashSet::new();
        for request in 0..5 {
            let mut copy = tasks.clone();
            shuffle_ties(&mut copy, 1, request);
            assert_eq!(copy.last().unwrap().id, "z");
            orders.insert(copy.iter().map(|t| t.id.clone()).collect::<Vec<_>>());
        }
        assert!(orders.len() > 1, "ties were never reordered");
        shuffle_ties(&mut tasks, 1, 0);
    }

    #[test]
    fn unreadable_records_lose_the_field_their_state_needs() {
        let h = Habits {
            unreadable_ids_ending: Some("9f".into()),
            ..Habits::default()
        };
        let mut value = json!([
            {"id": "a19f", "created": "2026-01-01T00:00:00Z", "completed": null, "completionStatus": null},
            {"id": "b29f", "created": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:01:00Z", "completionStatus": "SUCCESS"},
            {"id": "c39e", "created": "2026-01-01T00:00:00Z", "completed": null, "completionStatus": null},
        ]);
        spoil_unreadable(&mut value, &h);
        assert_eq!(value[0]["created"], json!("bogus"));
        assert_eq!(value[1]["completed"], json!("not-a-date"));
        assert_eq!(value[1]["created"], json!("2026-01-01T00:00:00Z"));
        assert_eq!(value[2]["created"], json!("2026-01-01T00:00:00Z"));
        let mut off = value.clone();
        spoil_unreadable(&mut off, &Habits::default());
        assert_eq!(off, value);
    }

    #[test]
    fn served_shifts_every_timestamp_and_cuts_subseconds() {
        let h = Habits {
            clock_offset_secs: -600,
            reorder_ties: true,
            ..Habits::default()
        };
        let t = served(task("a", "2026-01-01T00:10:05.750Z"), &h);
        assert_eq!(
            t.created,
            DateTime::parse_from_rfc3339("2026-01-01T00:00:05Z").unwrap()
        );
        assert_eq!(
            date_header(t.created, &Habits::default()),
            "Thu, 01 Jan 2026 00:00:05 GMT"
        );
    }
}
