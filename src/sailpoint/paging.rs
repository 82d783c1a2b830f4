//! Paging of the task lists: what a page is, the query of `GET /task-status`, and the
//! guards that end a listing — kept apart from the client's operations because these
//! rules (a page is short by the records the API *sent*, a repeated page is an error, a
//! listing has at most `MAX_PAGES` pages) are what makes a read complete and finite,
//! and they are tested on their own.

use chrono::{DateTime, Utc};

use crate::sailpoint::error::ApiError;
use crate::sailpoint::filter::Filter;
use crate::sailpoint::model::TaskStatus;
use crate::sailpoint::tolerant::{self, InvalidRecord};
use crate::sailpoint::transport::RawResponse;

/// The API's largest page.
pub const MAX_PAGE_SIZE: u32 = 250;

/// Upper bound on pages read by one listing, whatever the API says (250 × 4000 = one
/// million tasks, far beyond 90 days of any tenant).
const MAX_PAGES: u32 = 4000;

/// One page of tasks, how many records the API sent, and the total when `count=true`
/// was asked.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The tasks of the page, in the API's order; unreadable records are left out.
    pub items: Vec<TaskStatus>,
    /// `X-Total-Count`, when asked for and sent.
    pub total: Option<u64>,
    /// How many records the answer held, unreadable ones included. Whether another page
    /// exists, and where it starts, is decided from this: a page that is full as sent is
    /// full, however many of its records had to be skipped.
    pub received: usize,
}

impl Page {
    /// Whether a page is the last one: the API sent fewer records than `limit`.
    /// `X-Total-Count` is not consulted: the reads never ask for it, and a count that is
    /// sent anyway, stale or wrong, must not end a read while full pages keep coming
    /// (docs/decisions.md, "Paging guards"). A list whose length is a multiple of `limit`
    /// costs one empty page more.
    pub fn is_last(&self, limit: u32) -> bool {
        self.received < limit as usize
    }
}

/// Parameters of `GET /task-status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// A filter expression; see [`Filter`].
    pub filters: Option<String>,
    /// `created` or `-created`.
    pub sorters: Option<String>,
    /// Ask for `X-Total-Count`.
    pub count: bool,
}

impl ListQuery {
    /// Newest first, as the completed poll reads it.
    pub fn newest_first() -> ListQuery {
        ListQuery {
            sorters: Some("-created".into()),
            ..ListQuery::default()
        }
    }

    /// Sets the filter.
    pub fn with_filter(mut self, filter: &Filter) -> ListQuery {
        self.filters = Some(filter.to_string());
        self
    }
}

/// Offset bookkeeping and the guards against endless paging.
pub(super) struct Pager {
    operation: &'static str,
    /// Where the next page starts.
    pub(super) offset: u32,
    pages: u32,
    last_ids: Option<Vec<String>>,
    /// The previous page was short and not empty: this one decides whether it was the
    /// end (see [`Pager::advance_confirming`]).
    after_short: bool,
}

impl Pager {
    pub(super) fn new(operation: &'static str) -> Pager {
        Pager {
            operation,
            offset: 0,
            pages: 0,
            last_ids: None,
            after_short: false,
        }
    }

    /// [`Pager::advance`] for a listing whose short page may not be the end: a server or
    /// proxy that caps pages below `limit` sends nothing but short pages, and a listing
    /// that stopped at the first lost the rest (docs/decisions.md, "Paging guards"). A
    /// short page is the end only when the page after it is empty or brings nothing
    /// `fresh` (no id not listed before, and no unreadable record) — which also ends a
    /// repeated page quietly. A shorter page is not the end: pages may be short by
    /// varying amounts (records dropped after paging, a cap by size). Costs one request
    /// per listing, the empty page after the last.
    pub(super) fn advance_confirming(
        &mut self,
        page: &Page,
        size: u32,
        fresh: bool,
    ) -> Result<bool, ApiError> {
        if std::mem::take(&mut self.after_short) && (!fresh || self.repeats(page)) {
            return Ok(false);
        }
        if self.advance(page, size)? {
            return Ok(true);
        }
        if page.received == 0 {
            return Ok(false);
        }
        self.within_bounds()?;
        self.after_short = true;
        Ok(true)
    }

    /// Whether `page` holds the same ids as the page before it (a server ignoring
    /// `offset`); a page without readable ids repeats nothing.
    fn repeats(&self, page: &Page) -> bool {
        !page.items.is_empty()
            && self.last_ids.as_ref().is_some_and(|last| {
                last.len() == page.items.len()
                    && last.iter().zip(&page.items).all(|(id, t)| *id == t.id)
            })
    }

    /// Accounts for `page`; says whether another page should be read. The offset moves
    /// by the records the API sent (skipped ones included), and the listing ends by them.
    pub(super) fn advance(&mut self, page: &Page, size: u32) -> Result<bool, ApiError> {
        let len = u32::try_from(page.received).unwrap_or(u32::MAX);
        if self.repeats(page) {
            return Err(ApiError::Paging {
                operation: self.operation,
                message: format!("offset {} returned the previous page again", self.offset),
            });
        }
        self.last_ids = Some(page.items.iter().map(|t| t.id.clone()).collect());
        self.offset = self.offset.saturating_add(len);
        self.pages += 1;
        if page.is_last(size) {
            return Ok(false);
        }
        self.within_bounds()?;
        Ok(true)
    }

    /// Fails a listing that has read [`MAX_PAGES`] pages and would read another.
    fn within_bounds(&self) -> Result<(), ApiError> {
        if self.pages >= MAX_PAGES {
            return Err(ApiError::Paging {
                operation: self.operation,
                message: format!("more than {MAX_PAGES} pages"),
            });
        }
        Ok(())
    }
}

/// The `Date` header of an answer (RFC 2822 / IMF-fixdate), when present and valid.
pub fn response_date(r: &RawResponse) -> Option<DateTime<Utc>> {
    r.headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// A page as decoded: the usable tasks, what was off-spec, and the answer's `Date`.
pub(super) struct DecodedPage {
    pub(super) page: Page,
    pub(super) invalid: Vec<InvalidRecord>,
    pub(super) date: Option<DateTime<Utc>>,
}

/// Decodes a page of either list; a 204 or a blank body is an empty page.
pub(super) fn decode_page(r: &RawResponse) -> Result<DecodedPage, String> {
    let total = r.total_count();
    let date = response_date(r);
    if r.status == reqwest::StatusCode::NO_CONTENT || r.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecodedPage {
            page: Page {
                items: Vec::new(),
                total,
                received: 0,
            },
            invalid: Vec::new(),
            date,
        });
    }
    let list = tolerant::decode_list(&r.body)?;
    Ok(DecodedPage {
        page: Page {
            items: list.tasks,
            total,
            received: list.received,
        },
        invalid: list.invalid,
        date,
    })
}

/// Decodes `X-Total-Count` (a 204 without one counts nothing).
pub(super) fn decode_count(r: &RawResponse) -> Result<u64, String> {
    if r.status == reqwest::StatusCode::NO_CONTENT {
        return Ok(r.total_count().unwrap_or(0));
    }
    r.total_count()
        .ok_or_else(|| "X-Total-Count missing or invalid".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[&str], total: Option<u64>) -> Page {
        let items: Vec<TaskStatus> = ids
            .iter()
            .map(|id| {
                serde_json::from_value(serde_json::json!({
                    "id": id, "created": "2024-01-01T00:00:00Z"
                }))
                .unwrap()
            })
            .collect();
        Page {
            received: items.len(),
            items,
            total,
        }
    }

    #[test]
    fn pager_ends_by_the_records_sent_not_the_tasks_kept() {
        // A full page of 3 records of which one was unreadable: the listing goes on, at
        // the offset after all three.
        let mut p = Pager::new("op");
        let mut first = page(&["a", "b"], None);
        first.received = 3;
        assert!(p.advance(&first, 3).unwrap());
        assert_eq!(p.offset, 3);
        let mut second = page(&["c"], None);
        second.received = 2;
        assert!(!p.advance(&second, 3).unwrap());
        assert_eq!(p.offset, 5);
        // A page whose every record was unreadable is neither a repeat nor an end.
        let mut p = Pager::new("op");
        let mut blank = page(&[], None);
        blank.received = 2;
        assert!(p.advance(&blank, 2).unwrap());
        assert!(p.advance(&blank, 2).unwrap());
    }

    #[test]
    fn pager_stops_on_a_short_page_only() {
        let mut p = Pager::new("op");
        assert!(p.advance(&page(&["a", "b"], None), 2).unwrap());
        assert!(!p.advance(&page(&["c"], None), 2).unwrap());
        let mut p = Pager::new("op");
        assert!(!p.advance(&page(&[], None), 2).unwrap());
        // An X-Total-Count the read did not ask for, smaller than the list (stale, or a
        // proxy's), does not end it while full pages come: before, it stopped at the
        // first page.
        let mut p = Pager::new("op");
        assert!(p.advance(&page(&["a", "b"], Some(1)), 2).unwrap());
        assert!(p.advance(&page(&["c", "d"], Some(1)), 2).unwrap());
        assert!(!p.advance(&page(&["e"], Some(1)), 2).unwrap());
        assert_eq!(p.offset, 5);
    }

    /// A server capping pages at 2 while 3 are asked for: each short page is confirmed
    /// by the next, and the listing ends at an empty or repeated page, not at a shorter
    /// one, nor at a short page after a full one. Before, the pending listing kept the
    /// first 2 tasks.
    #[test]
    fn a_confirming_pager_reads_a_capped_listing_to_its_end() {
        let mut p = Pager::new("op");
        assert!(
            p.advance_confirming(&page(&["a", "b"], None), 3, true)
                .unwrap()
        );
        assert!(p.advance_confirming(&page(&["c"], None), 3, true).unwrap());
        assert!(
            p.advance_confirming(&page(&["d", "e"], None), 3, true)
                .unwrap()
        );
        assert_eq!(p.offset, 5, "each next page starts after the records sent");
        assert!(!p.advance_confirming(&page(&[], None), 3, false).unwrap());
        let mut p = Pager::new("op");
        assert!(
            p.advance_confirming(&page(&["a", "b"], None), 3, true)
                .unwrap()
        );
        assert!(
            !p.advance_confirming(&page(&["a", "b"], None), 3, false)
                .unwrap()
        );
        let mut p = Pager::new("op");
        assert!(
            p.advance_confirming(&page(&["a", "b", "c"], None), 3, true)
                .unwrap()
        );
        assert!(p.advance_confirming(&page(&["d"], None), 3, true).unwrap());
        assert!(!p.advance_confirming(&page(&[], None), 3, false).unwrap());
        let mut p = Pager::new("op");
        assert!(!p.advance_confirming(&page(&[], None), 3, false).unwrap());
        // A short page holding an unreadable record, repeated by a server that ignores
        // `offset`: the unreadable record looks fresh, the repeat still ends the listing
        // (it used to fail it as "the previous page again").
        let mut p = Pager::new("op");
        let mut short = page(&["a"], None);
        short.received = 2;
        assert!(p.advance_confirming(&short, 3, true).unwrap());
        assert!(!p.advance_confirming(&short, 3, true).unwrap());
    }

    #[test]
    fn pager_refuses_a_repeated_page() {
        let mut p = Pager::new("getTaskStatusList");
        assert!(p.advance(&page(&["a", "b"], None), 2).unwrap());
        let err = p.advance(&page(&["a", "b"], None), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "getTaskStatusList: paging stopped: offset 2 returned the previous page again"
        );
    }
}
