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

/// What earlier listings of one list showed about its pages: the most records one page
/// sent, and the cap a server was seen to put on its pages below `limit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageSizes {
    /// The most records one page has sent.
    pub largest: usize,
    /// A page size the server was seen to cap at: a short page of this size was followed
    /// by more.
    pub cap: Option<usize>,
}

/// Offset bookkeeping and the guards against endless paging.
///
/// A short page is the end of a listing unless it may be a server's cap: a server or proxy
/// that caps pages below `limit` sends nothing but short pages, and a listing that
/// stopped at the first lost the rest for good (a long-running task never tracked as
/// pending is never counted). A short page of at least two records is taken for a
/// possible cap when it is longer than any page sent before ([`PageSizes::largest`]) or as
/// long as a cap already seen; a page shorter than one the server has already sent cannot
/// be its cap. Such a page is confirmed by the next one, which goes on only if it is as
/// long and brings an id the short page did not; an empty, shorter or repeated page ends
/// the listing there (docs/decisions.md, "Paging guards"). On a steady tenant the check
/// costs one request when the list reaches a new largest size, and on a capped one none
/// beyond the pages themselves.
pub(super) struct Pager {
    operation: &'static str,
    /// Where the next page starts.
    pub(super) offset: u32,
    pages: u32,
    last_ids: Option<Vec<String>>,
    /// Page sizes seen, in this listing and the caller's earlier ones.
    pub(super) sizes: PageSizes,
    /// The records of the previous page when it was short and read on to confirm it.
    confirming: Option<usize>,
}

impl Pager {
    pub(super) fn new(operation: &'static str) -> Pager {
        Pager::after(operation, PageSizes::default())
    }

    /// A pager for a list whose earlier listings showed `sizes`.
    pub(super) fn after(operation: &'static str, sizes: PageSizes) -> Pager {
        Pager {
            operation,
            offset: 0,
            pages: 0,
            last_ids: None,
            sizes,
            confirming: None,
        }
    }

    /// Accounts for `page`; says whether another page should be read. The offset moves
    /// by the records the API sent (skipped ones included), and the listing ends by them.
    pub(super) fn advance(&mut self, page: &Page, size: u32) -> Result<bool, ApiError> {
        let len = u32::try_from(page.received).unwrap_or(u32::MAX);
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        let repeated = !ids.is_empty() && self.last_ids.as_ref() == Some(&ids);
        if let Some(short) = self.confirming.take() {
            let previous = self.last_ids.as_deref().unwrap_or_default();
            let new_id = ids.iter().any(|id| !previous.contains(id));
            if repeated || page.received < short || !new_id {
                self.offset = self.offset.saturating_add(len);
                return Ok(false);
            }
            self.sizes.cap = Some(short);
        }
        if repeated {
            return Err(ApiError::Paging {
                operation: self.operation,
                message: format!("offset {} returned the previous page again", self.offset),
            });
        }
        self.last_ids = Some(ids);
        self.offset = self.offset.saturating_add(len);
        self.pages += 1;
        let may_be_cap = page.received >= 2
            && (page.received > self.sizes.largest || self.sizes.cap == Some(page.received));
        self.sizes.largest = self.sizes.largest.max(page.received);
        if page.is_last(size) {
            if !may_be_cap {
                return Ok(false);
            }
            self.confirming = Some(page.received);
        }
        if self.pages >= MAX_PAGES {
            return Err(ApiError::Paging {
                operation: self.operation,
                message: format!("more than {MAX_PAGES} pages"),
            });
        }
        Ok(true)
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

    /// A server capping pages at 3 while 10 are asked for: each short page as long as the
    /// largest so far is confirmed by the next, and the listing ends at the first shorter
    /// one (before: it ended at the first page, 3 of 10 tasks listed).
    #[test]
    fn pager_reads_on_past_pages_a_server_capped() {
        let mut p = Pager::new("op");
        assert!(p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        assert!(p.advance(&page(&["d", "e", "f"], None), 10).unwrap());
        assert!(p.advance(&page(&["g", "h", "i"], None), 10).unwrap());
        assert!(!p.advance(&page(&["j"], None), 10).unwrap());
        assert_eq!(p.offset, 10);
        assert_eq!(
            p.sizes,
            PageSizes {
                largest: 3,
                cap: Some(3)
            }
        );
        // The next listing knows the cap: a first page of 3 is confirmed again, a page
        // of 2 is the end at once.
        let mut p = Pager::after("op", p.sizes);
        assert!(p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        assert!(!p.advance(&page(&["d"], None), 10).unwrap());
        assert!(
            !Pager::after("op", p.sizes)
                .advance(&page(&["a", "b"], None), 10)
                .unwrap()
        );
        // A list of exactly two capped pages ends at the empty page after them.
        let mut p = Pager::new("op");
        assert!(p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        assert!(p.advance(&page(&["d", "e", "f"], None), 10).unwrap());
        assert!(!p.advance(&page(&[], None), 10).unwrap());
    }

    /// What a short page costs: nothing when an earlier page was as long or longer (no
    /// new largest size, and no cap seen) or when it holds one task; one request otherwise, which ends the
    /// listing without an error when it repeats the page (offset ignored) or shows only
    /// tasks of the page again (the list shifted).
    #[test]
    fn pager_confirms_a_short_page_only_when_it_may_be_a_cap() {
        let seen = |largest| PageSizes { largest, cap: None };
        assert!(
            !Pager::after("op", seen(5))
                .advance(&page(&["a", "b", "c"], None), 10)
                .unwrap()
        );
        assert!(
            !Pager::after("op", seen(3))
                .advance(&page(&["a", "b", "c"], None), 10)
                .unwrap()
        );
        assert!(!Pager::new("op").advance(&page(&["a"], None), 10).unwrap());
        let mut p = Pager::after("op", seen(2));
        assert!(p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        assert!(!p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        let mut p = Pager::new("op");
        assert!(p.advance(&page(&["a", "b", "c"], None), 10).unwrap());
        assert!(!p.advance(&page(&["b", "c", "a"], None), 10).unwrap());
        assert_eq!(p.offset, 6);
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
