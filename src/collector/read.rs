//! The reading half of a poll: fetches everything a poll needs from a [`TaskSource`]
//! into a `*Read` value, without touching the tracker's state. Any error aborts the read,
//! so the caller applies a whole poll or nothing.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::source::{IDS_PER_REQUEST, TaskSource};
use super::tracker::{CompletedRead, Lookup, PendingRead, Tracker, page_reaches_bound};
use crate::sailpoint::model::TaskStatus;

/// Consecutive full pages without a new id after which the list is taken to repeat.
const MAX_STALE_PAGES: u32 = 3;

/// Why a poll's read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    /// The API (or the transport) failed.
    #[error(transparent)]
    Source(#[from] E),
    /// Several full pages in a row brought no task that was not seen before: the API
    /// ignores `offset`, and reading on would never end. (One such page can happen
    /// legitimately, when a page's worth of new tasks arrives during the read.)
    #[error("the completed list repeats itself at offset {offset}; giving up this poll")]
    RepeatingPages {
        /// Offset of the repeated page.
        offset: u32,
    },
    /// The offset would overflow (absurdly long list).
    #[error("the completed list is longer than any offset can address")]
    OffsetOverflow,
    /// The poll did not finish before its deadline (`poll_timeout`).
    #[error("the poll did not finish within {0:?}")]
    Deadline(std::time::Duration),
}

/// Reads the pending list and looks up every task that left it: first in batches via
/// the list endpoint (one request per [`IDS_PER_REQUEST`] ids), then one by one for the
/// ids the batches did not return (still pending, or gone).
pub async fn read_pending<S: TaskSource>(
    tracker: &Tracker,
    source: &S,
    started: DateTime<Utc>,
) -> Result<PendingRead, ReadError<S::Error>> {
    let listed = source.pending_tasks().await?;
    let departed = tracker.departed(&listed);
    let mut found: HashMap<String, TaskStatus> = HashMap::new();
    for chunk in departed.chunks(IDS_PER_REQUEST) {
        let asked: HashSet<&String> = chunk.iter().collect();
        for task in source.tasks_by_ids(chunk).await? {
            if asked.contains(&task.id) {
                found.insert(task.id.clone(), task);
            }
        }
    }
    let mut lookups = Vec::with_capacity(departed.len());
    for id in departed {
        let lookup = match found.remove(&id) {
            Some(task) => Lookup::Found(Box::new(task)),
            None => match source.task_status(&id).await? {
                Some(task) => Lookup::Found(Box::new(task)),
                None => Lookup::Gone,
            },
        };
        lookups.push((id, lookup));
    }
    Ok(PendingRead {
        started,
        listed,
        lookups,
    })
}

/// Pages the completed list newest first from offset 0 and stops after the first page
/// that reaches below `lower_bound`, or at the end of the list. Keeps tasks created at or
/// after the bound, each id once (pages shift while new tasks arrive).
pub async fn read_completed<S: TaskSource>(
    source: &S,
    lower_bound: DateTime<Utc>,
    page_size: u32,
) -> Result<CompletedRead, ReadError<S::Error>> {
    let limit = page_size.max(1);
    let mut seen: HashSet<String> = HashSet::new();
    let mut tasks = Vec::new();
    let mut offset: u32 = 0;
    let mut stale_pages = 0;
    loop {
        let page = source.completed_page(offset, limit).await?;
        let full = page.len() >= limit as usize;
        let reached = page_reaches_bound(&page, lower_bound);
        let mut new_ids = 0usize;
        for task in page {
            if seen.insert(task.id.clone()) {
                new_ids += 1;
                if task.created >= lower_bound {
                    tasks.push(task);
                }
            }
        }
        if reached || !full {
            break;
        }
        stale_pages = if new_ids == 0 { stale_pages + 1 } else { 0 };
        if stale_pages >= MAX_STALE_PAGES {
            return Err(ReadError::RepeatingPages { offset });
        }
        offset = offset.checked_add(limit).ok_or(ReadError::OffsetOverflow)?;
    }
    Ok(CompletedRead { lower_bound, tasks })
}
