//! The queries the HTTP layer answers from the tenant: pending pages, listings with
//! filters and sorting, one task by id.

use chrono::{DateTime, Utc};

use super::Tenant;
use crate::filter::FilterExpr;
use crate::task::{FilterView, SimSource};
use sailpoint_model::TaskStatus;

/// One page of a listing plus the total the query matches.
pub(crate) struct Listing {
    pub items: Vec<TaskStatus>,
    pub total: usize,
}

impl Tenant {
    /// The sources, in generation order.
    pub(crate) fn sources(&self) -> Vec<SimSource> {
        self.sources.iter().map(|s| s.source.clone()).collect()
    }

    /// Every task, oldest first.
    pub(crate) fn all(&self, now: DateTime<Utc>) -> Vec<TaskStatus> {
        self.order
            .iter()
            .filter_map(|&s| self.render(s, now))
            .collect()
    }

    /// The pending tasks, oldest first.
    pub(crate) fn pending_page(&self, offset: usize, limit: usize, now: DateTime<Utc>) -> Listing {
        Listing {
            items: self
                .pending
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|&s| self.render(s, now))
                .collect(),
            total: self.pending.len(),
        }
    }

    /// `GET /task-status`: completed tasks (pending ones when the filter says
    /// `completionStatus isnull`), by `created` in the asked direction.
    pub(crate) fn list(
        &self,
        filter: Option<&FilterExpr>,
        descending: bool,
        offset: usize,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Listing {
        let want_pending = filter.is_some_and(FilterExpr::wants_pending);
        let matches = |slot: &&u32| {
            self.slots.get(**slot as usize).is_some_and(|task| {
                task.done.is_none() == want_pending
                    && Self::visible(task, now)
                    && filter.is_none_or(|f| {
                        f.matches(&FilterView {
                            task,
                            source: self.source(task),
                        })
                    })
            })
        };
        let index = if want_pending {
            &self.pending
        } else {
            &self.order
        };
        let mut chosen = Vec::new();
        let mut total = 0usize;
        let mut visit = |slot: &u32| {
            if total >= offset && chosen.len() < limit {
                chosen.push(*slot);
            }
            total += 1;
        };
        if descending {
            index.iter().rev().filter(matches).for_each(&mut visit);
        } else {
            index.iter().filter(matches).for_each(&mut visit);
        }
        Listing {
            items: chosen
                .into_iter()
                .filter_map(|s| self.render(s, now))
                .collect(),
            total,
        }
    }

    /// One task by id.
    pub(crate) fn get(&self, id: &str, now: DateTime<Utc>) -> Option<TaskStatus> {
        self.slot_of(id).and_then(|s| self.render(s, now))
    }
}
