//! The reading half of a poll: fetches everything a poll needs from a [`TaskSource`]
//! into a `*Read` value, without touching the tracker's state. Any error aborts the read,
//! so the caller applies a whole poll or nothing.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::source::{IDS_PER_REQUEST, TaskSource};
use super::tracker::{CompletedRead, Lookup, PendingRead, Tracker, page_reaches_bound};
use crate::sailpoint::Page;
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
/// ids the batches did not return (still pending, or gone). A failure that concerns only
/// the looked-up tasks (see [`TaskSource::concerns_only_the_task`]) becomes
/// [`Lookup::Failed`] for them; any other failure fails the read.
///
/// Returns the read (with `started` left for the caller to set in tenant time) and the
/// `Date` of the pending list's first page.
pub async fn read_pending<S: TaskSource>(
    tracker: &Tracker,
    source: &S,
    started: DateTime<Utc>,
) -> Result<(PendingRead, Option<DateTime<Utc>>), ReadError<S::Error>> {
    let (listed, date) = source.pending_tasks_dated().await?;
    let departed = tracker.departed(&listed);
    let mut found: HashMap<String, TaskStatus> = HashMap::new();
    for chunk in departed.chunks(IDS_PER_REQUEST) {
        let asked: HashSet<&String> = chunk.iter().collect();
        match source.tasks_by_ids(chunk).await {
            Ok(tasks) => {
                for task in tasks {
                    if asked.contains(&task.id) {
                        found.insert(task.id.clone(), task);
                    }
                }
            }
            // One bad id can spoil a batch: look the chunk up one by one instead.
            Err(e) if S::concerns_only_the_task(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut lookups = Vec::with_capacity(departed.len());
    for id in departed {
        let lookup = match found.remove(&id) {
            Some(task) => Lookup::Found(Box::new(task)),
            None => match source.task_status(&id).await {
                Ok(Some(task)) => Lookup::Found(Box::new(task)),
                Ok(None) => Lookup::Gone,
                Err(e) if S::concerns_only_the_task(&e) => {
                    tracing::warn!(task_id = %id, error = %e, "lookup of a task that left the pending list failed; it stays pending");
                    Lookup::Failed
                }
                Err(e) => return Err(e.into()),
            },
        };
        lookups.push((id, lookup));
    }
    Ok((
        PendingRead {
            started,
            listed,
            lookups,
        },
        date,
    ))
}

/// Pages the completed list newest first from offset 0 and stops after the first page
/// that reaches below `lower_bound`, or at the end of the list. Keeps tasks created at or
/// after the bound, each id once (pages shift while new tasks arrive).
///
/// The end of the list is decided from the records the API sent ([`Page::is_last`]), so
/// an unreadable record that was skipped never ends the read early, and a short page is
/// the end only when the page after it is empty or brings nothing new: a server that caps
/// its pages below `limit` must not end the read at its first page (docs/decisions.md,
/// "Paging guards"). That costs one request only when the read has not reached the bound
/// by then — a list younger than the bound, or an unsorted one.
///
/// "Reaches below the bound" means something only on a list sorted newest first. Every
/// page is checked, within itself and against the page before it (a task read for the
/// first time may not be newer than that page's oldest); pages that cannot show the
/// order (one record, or one `created` value, even over several pages) never end the
/// read: only once the tasks read show two different `created` values. Once a
/// page is not sorted (a proxy or an API change that ignores `sorters`),
/// the read no longer stops at the bound but reads on to the end of the list, still
/// keeping only tasks created at or after the bound, and says so in
/// [`CompletedRead::unsorted`] (docs/decisions.md, "Unsorted completed pages").
///
/// Tasks with equal `created` may come in another order in the next request, so a tie
/// group cut by a page boundary could lose a member. Each next page therefore starts at
/// the first task of the page's trailing tie group (at least the page's last task),
/// re-reading the boundary; a page that is one tie group from end to end, or that brought
/// no new id, moves on by a whole page.
pub async fn read_completed<S: TaskSource>(
    source: &S,
    lower_bound: DateTime<Utc>,
    page_size: u32,
) -> Result<CompletedRead, ReadError<S::Error>> {
    let limit = page_size.max(1);
    let mut window = Window::new(lower_bound);
    let mut offset: u32 = 0;
    let mut stale_pages = 0;
    // How many records the previous page sent, when it was short.
    let mut short_before: Option<usize> = None;
    loop {
        let page = source.completed_page(offset, limit).await?;
        let received = page.received;
        let in_order = newest_first(&page.items) && window.continues(&page.items);
        if !window.unsorted && !in_order {
            window.unsorted = true;
            tracing::debug!(
                offset,
                "a completed page is not sorted newest first; reading the whole list"
            );
        }
        let short = page.is_last(limit);
        let empty = received == 0;
        // Pages whose order cannot be seen (one record, or one `created` value, even over
        // several pages) do not end the read: a later page shows whether the list is
        // newest first.
        let order_seen = window.shows_order_with(&page.items);
        let reached =
            !window.unsorted && order_seen && page_reaches_bound(&page.items, lower_bound);
        let step = boundary_step(&page.items, page_step(received, limit));
        let fresh = window.take(page);
        let sorted = !window.unsorted;
        if reached || empty || ends_after_short(short_before, received, fresh.any(), sorted) {
            break;
        }
        short_before = short.then_some(received);
        stale_pages = if fresh.any() { 0 } else { stale_pages + 1 };
        if stale_pages >= MAX_STALE_PAGES {
            return Err(ReadError::RepeatingPages { offset });
        }
        // A page without a new id (the list shifted by as much as the step) moves on by a
        // whole page, so that re-reading a boundary can never stall the read.
        let step = if fresh.new_ids == 0 {
            page_step(received, limit)
        } else {
            step
        };
        offset = offset.checked_add(step).ok_or(ReadError::OffsetOverflow)?;
    }
    Ok(window.into_read())
}

/// What a completed read has kept so far: the tasks at or above the bound, each id once,
/// and whether a page was out of order.
struct Window {
    lower_bound: DateTime<Utc>,
    seen: HashSet<String>,
    tasks: Vec<TaskStatus>,
    unsorted: bool,
    /// Ids of the previous page (to tell a repeated page of old tasks from new ones).
    previous: Vec<String>,
    /// The oldest `created` of the last page that held a readable task.
    previous_oldest: Option<DateTime<Utc>>,
    /// The `created` of the first task read.
    first_created: Option<DateTime<Utc>>,
    /// The tasks read so far have two different `created` values.
    order_shown: bool,
}

/// What one page brought that the read had not seen.
struct Fresh {
    /// Ids at or above the bound not read before.
    new_ids: usize,
    /// Records below the bound or unreadable, on a page that is not the previous one
    /// again: an unsorted read moves through them without remembering each id.
    other_records: bool,
}

impl Fresh {
    fn any(&self) -> bool {
        self.new_ids > 0 || self.other_records
    }
}

impl Window {
    fn new(lower_bound: DateTime<Utc>) -> Window {
        Window {
            lower_bound,
            seen: HashSet::new(),
            tasks: Vec::new(),
            unsorted: false,
            previous: Vec::new(),
            previous_oldest: None,
            first_created: None,
            order_shown: false,
        }
    }

    /// Whether the tasks read so far and `page` show the list's order: two different
    /// `created` values. A tie group over several pages, all of one value, cannot tell
    /// newest first from oldest first, so reaching below the bound on it ends nothing
    /// (an oldest-first list whose oldest tasks share one `created` looked sorted, and
    /// the read stopped on its second page).
    fn shows_order_with(&self, page: &[TaskStatus]) -> bool {
        let first = self
            .first_created
            .or_else(|| page.first().map(|t| t.created));
        self.order_shown || first.is_some_and(|f| page.iter().any(|t| t.created != f))
    }

    /// Whether `page` can follow the pages before it in a list sorted newest first: no
    /// task it brings for the first time is newer than the previous page's oldest.
    /// (Tasks a shifting list shows again may be; tasks finishing during the read enter
    /// the list at their own `created`, so they never break this on a sorted list.)
    fn continues(&self, page: &[TaskStatus]) -> bool {
        let Some(oldest) = self.previous_oldest else {
            return true;
        };
        page.iter().all(|t| {
            t.created <= oldest || self.seen.contains(&t.id) || self.previous.contains(&t.id)
        })
    }

    /// Keeps the page's tasks created at or after the bound that were not read before.
    /// Only those ids are remembered, so reading a whole unsorted list costs memory for
    /// the window, not for the list.
    fn take(&mut self, page: Page) -> Fresh {
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        let repeated = !ids.is_empty() && ids == self.previous;
        let oldest = page.items.iter().map(|t| t.created).min();
        self.order_shown = self.shows_order_with(&page.items);
        if self.first_created.is_none() {
            self.first_created = page.items.first().map(|t| t.created);
        }
        let mut outside = page.received.saturating_sub(page.items.len());
        let mut new_ids = 0;
        for task in page.items {
            if task.created < self.lower_bound {
                outside += 1;
            } else if self.seen.insert(task.id.clone()) {
                new_ids += 1;
                self.tasks.push(task);
            }
        }
        self.previous = ids;
        if let Some(oldest) = oldest {
            self.previous_oldest = Some(oldest);
        }
        Fresh {
            new_ids,
            other_records: outside > 0 && !repeated,
        }
    }

    fn into_read(self) -> CompletedRead {
        CompletedRead {
            lower_bound: self.lower_bound,
            tasks: self.tasks,
            unsorted: self.unsorted,
        }
    }
}

/// Whether the page is sorted newest first by `created` (equal values in any order).
fn newest_first(page: &[TaskStatus]) -> bool {
    page.windows(2).all(|pair| match pair {
        [newer, older] => newer.created >= older.created,
        _ => true,
    })
}

/// Whether a page that follows a short page of `before` records ends the read. A short
/// page is not the end by itself: a server or proxy that caps pages below `limit` sends
/// nothing but short pages. The page after it decides. On a `sorted` list (the read
/// ends at the bound anyway, and tasks finishing meanwhile enter at the head, behind
/// the read) only a page that brings nothing new ends it — the repeated page of a
/// server that ignores `offset`, re-read boundary tasks of a list that shifted — not a
/// shorter one: pages short by varying amounts (records dropped after paging, a cap by
/// size) must not end it. On an unsorted list a page also ends it when it is shorter
/// than the short one: the last page of a capped list, or tasks that finished while the
/// list was paged, which the next poll reads (the newest end of an oldest-first list is
/// where they enter, and chasing them page after page could go on for as long as tasks
/// keep finishing). A cap of one record is followed only while the list is `sorted`
/// newest first, and then through a page that re-reads the previous task (one task
/// finished during the read and shifted the list): such a read ends at the bound (or an
/// empty page), and [`MAX_STALE_PAGES`] repeats in a row fail it. An unsorted list with
/// a cap of one is not followed: one adding a task per request would look the same.
fn ends_after_short(before: Option<usize>, received: usize, fresh: bool, sorted: bool) -> bool {
    match before {
        None => false,
        Some(1) if sorted => false,
        Some(_) if sorted => !fresh,
        Some(cap) => cap < 2 || received < cap || !fresh,
    }
}

/// How far a whole page moves the offset: by the records the API sent, which is `limit`
/// unless the page was short (never 0, so a read always moves on).
fn page_step(received: usize, limit: u32) -> u32 {
    u32::try_from(received).unwrap_or(limit).clamp(1, limit)
}

/// How far the next page request moves: to the first task of the page's trailing group
/// of equal `created` values, or a whole page when the page is one group (or has one task).
fn boundary_step(page: &[TaskStatus], whole: u32) -> u32 {
    let Some(last) = page.last() else {
        return whole;
    };
    let start = page
        .iter()
        .position(|t| t.created == last.created)
        .unwrap_or(0);
    match u32::try_from(start) {
        Ok(0) | Err(_) => whole,
        Ok(start) => start,
    }
}
