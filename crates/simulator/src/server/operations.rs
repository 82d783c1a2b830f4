//! The answers of the task-status operations, read from the tenant brought up to the
//! clock and shaped by the production habits. Kept apart from `server.rs`, which decides
//! whether a request is answered at all (routing, authentication, injected faults), so
//! each side reads on its own.

use std::sync::MutexGuard;

use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, StatusCode};
use serde_json::Value;

use sailpoint_model::{JsonPatchOperation, TaskStatus};

use super::SimState;
use super::query::Query;
use super::read_body;
use super::reply::{Reply, empty_reply, json_reply, task_json, tasks_json, with_total};
use crate::clock::lock;
use crate::filter::FilterExpr;
use crate::habits;
use crate::tenant::{Listing, PatchError, Tenant};

/// A refusal to answer an API request, sent as an ErrorResponseDto.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    /// `None` = the spec's generic text for the status.
    pub(super) text: Option<String>,
}

impl Refusal {
    fn bad_request(text: &str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            text: Some(text.to_string()),
        }
    }

    fn not_found(id: &str) -> Refusal {
        Refusal {
            status: StatusCode::NOT_FOUND,
            text: Some(format!("TaskStatus with id '{id}' was not found")),
        }
    }
}

impl SimState {
    /// The tenant brought up to the clock.
    pub(crate) fn settled(&self) -> (MutexGuard<'_, Tenant>, DateTime<Utc>) {
        let now = self.clock.now();
        let mut tenant = lock(&self.tenant);
        tenant.settle(now);
        (tenant, now)
    }

    /// The tenant brought up to the clock for a page at `offset`; with the `page_shift`
    /// fault, the list shifts under a client that pages on (both lists do this alike).
    fn settled_for_page(&self, offset: usize) -> (MutexGuard<'_, Tenant>, DateTime<Utc>) {
        let shift = offset > 0 && lock(&self.faults).faults().page_shift;
        let (mut tenant, now) = self.settled();
        if shift {
            tenant.shift_pages(now);
        }
        (tenant, now)
    }

    pub(super) fn pending(&self, query: &Query, head: bool) -> Result<Reply, Refusal> {
        let (offset, limit, count) = query.paging().map_err(|e| Refusal::bad_request(&e))?;
        let habits = self.habits();
        let limit = habits.pending_page_cap.map_or(limit, |cap| limit.min(cap));
        let (tenant, now) = self.settled_for_page(offset);
        let page = if habits::reshapes_lists(&habits) {
            let pending = tenant.pending_page(0, usize::MAX, now).items;
            let finished = tenant.list(None, true, 0, usize::MAX, now).items;
            let request = lock(&self.counts).get_pending_tasks;
            let view = if habits::from_replica(&habits, self.seed, request) {
                habits::replica_view(pending, finished, &habits, now)
            } else {
                habits::pending_view(pending, finished, &habits, now)
            };
            Listing {
                total: view.len(),
                items: view
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|t| habits::served(t, &habits))
                    .collect(),
            }
        } else {
            tenant.pending_page(offset, limit, now)
        };
        drop(tenant);
        let total = count.then_some(page.total);
        let mut reply = if page.items.is_empty() {
            empty_reply(StatusCode::NO_CONTENT)
        } else if head {
            empty_reply(StatusCode::OK)
        } else {
            json_reply(StatusCode::OK, &self.served_json(page.items))
        };
        reply
            .headers_mut()
            .insert("X-Deprecated", HeaderValue::from_static("true"));
        Ok(with_total(reply, total))
    }

    pub(super) fn list(&self, query: &Query) -> Result<Reply, Refusal> {
        let (offset, limit, count) = query.paging().map_err(|e| Refusal::bad_request(&e))?;
        let descending = query.descending().map_err(|e| Refusal::bad_request(&e))?;
        let habits = self.habits();
        let descending = descending && !habits.ignore_sorters;
        let limit = habits.list_page_cap.map_or(limit, |cap| limit.min(cap));
        let filter = query
            .get("filters")
            .map(FilterExpr::parse)
            .transpose()
            .map_err(|e| Refusal::bad_request(&e.to_string()))?;
        let (tenant, now) = self.settled_for_page(offset);
        let page = if habits::reshapes_lists(&habits) {
            let mut all: Vec<TaskStatus> = tenant
                .list(filter.as_ref(), descending, 0, usize::MAX, now)
                .items
                .into_iter()
                .filter(|t| !habits::is_hidden(t, &habits))
                .filter(|t| !habits::not_yet_listed(t, &habits, now))
                .map(|t| habits::served(t, &habits))
                .collect();
            if habits.reorder_ties {
                let request = lock(&self.counts).get_task_status_list;
                habits::shuffle_ties(&mut all, self.seed, request);
            }
            Listing {
                total: all.len(),
                items: all.into_iter().skip(offset).take(limit).collect(),
            }
        } else {
            tenant.list(filter.as_ref(), descending, offset, limit, now)
        };
        drop(tenant);
        let reply = json_reply(StatusCode::OK, &self.served_json(page.items));
        Ok(with_total(reply, count.then_some(page.total)))
    }

    pub(super) fn task(&self, id: &str) -> Result<Reply, Refusal> {
        let (tenant, now) = self.settled();
        let task = tenant.get(id, now);
        drop(tenant);
        match task {
            Some(task) => {
                let habits = self.habits();
                let mut value = task_json(&habits::served(task, &habits));
                habits::spoil_fields(&mut value, &habits);
                habits::spoil_unreadable(&mut value, &habits);
                Ok(json_reply(StatusCode::OK, &value))
            }
            None => Err(Refusal::not_found(id)),
        }
    }

    /// Tasks as JSON in the served shape (clock offset, whole seconds, off-spec fields).
    /// Lists reshaped by the habits are already in the served shape; `served` is
    /// idempotent except for the clock offset, so it is applied only here otherwise.
    fn served_json(&self, items: Vec<TaskStatus>) -> Value {
        let habits = self.habits();
        let items: Vec<TaskStatus> = if habits::reshapes_lists(&habits) {
            items
        } else {
            items
                .into_iter()
                .map(|t| habits::served(t, &habits))
                .collect()
        };
        let mut value = tasks_json(&items);
        habits::spoil_fields(&mut value, &habits);
        habits::spoil_unreadable(&mut value, &habits);
        value
    }

    pub(super) async fn update(&self, id: &str, req: Request<Incoming>) -> Result<Reply, Refusal> {
        let media_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/json-patch+json") {
            return Err(Refusal {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                text: Some("Content-Type must be application/json-patch+json".into()),
            });
        }
        let body = read_body(req).await.map_err(|e| Refusal::bad_request(&e))?;
        let ops: Vec<JsonPatchOperation> = serde_json::from_slice(&body).map_err(|e| {
            Refusal::bad_request(&format!("the body is not a JSON Patch array: {e}"))
        })?;
        let (mut tenant, now) = self.settled();
        let result = tenant.patch(id, &ops, now);
        drop(tenant);
        match result {
            Ok(task) => Ok(json_reply(StatusCode::OK, &task_json(&task))),
            Err(PatchError::NotFound) => Err(Refusal::not_found(id)),
            Err(PatchError::Invalid(text)) => Err(Refusal::bad_request(&text)),
        }
    }
}
