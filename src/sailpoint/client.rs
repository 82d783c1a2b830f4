//! The client for the five v2024 task-status operations.
//!
//! One [`Client`] per tenant; clones share the token source, the request budget and the
//! HTTP connection pool. Paging is offset/limit with `limit ≤ 250`; a 204 is read as an
//! empty list, and paging stops when a page is short (never because of `X-Total-Count`:
//! a header the API may send unasked, or wrongly, must not cut a listing short), or with an
//! error when the API repeats a page (an API that ignores `offset` must not make the
//! client page forever). A page is short by the records the API sent, not by the
//! tasks kept: a skipped (unreadable) record never ends a listing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Credentials, PendingSource, TenantSettings};
use crate::sailpoint::auth::{FetchFuture, TokenFetcher, TokenSource};
use crate::sailpoint::error::ApiError;
use crate::sailpoint::filter::{Filter, encode_query_value};
use crate::sailpoint::model::{JsonPatchOperation, TaskStatus, TokenResponse};
use crate::sailpoint::ratelimit::{RateLimiter, RetryPolicy};
use crate::sailpoint::tolerant::{self, InvalidRecord, RecordFault};
use crate::sailpoint::transport::{ApiObserver, RawResponse, Transport};

/// How many distinct off-spec task ids a client remembers having logged; past it the
/// memory starts over (a task may then be logged once more).
const LOGGED_IDS_CAP: usize = 10_000;

/// The API's largest page.
pub const MAX_PAGE_SIZE: u32 = 250;

/// Upper bound on pages read by one listing, whatever the API says (250 × 4000 = one
/// million tasks, far beyond 90 days of any tenant).
const MAX_PAGES: u32 = 4000;

use super::operation;

/// Longest wait for a TCP connection (and TLS handshake); each request's whole deadline
/// is the tenant's `request_timeout`, which bounds connecting too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client tenants share: rustls with the built-in roots, a connection pool per
/// host, the exporter's user agent. Building one costs a parsed root store and a TLS
/// configuration, so a process builds it once and hands clones (cheap handles) around.
///
/// It follows no redirect: reqwest's default policy re-sends a 307/308 with its body (the
/// token request's client secret) to any origin, https to http included. A 3xx is an
/// [`ApiError::Redirect`] naming the status and the target host instead.
pub fn http_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!(
            "sailpoint-task-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| ApiError::Setup(e.to_string()))
}

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
#[derive(Debug, Clone, Default)]
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

/// A tenant's SailPoint client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<Transport>,
    tokens: TokenSource,
    api_root: String,
    page_size: u32,
    pending_source: PendingSource,
    tenant: String,
    /// Ids of off-spec records already logged (each is logged once, not every poll).
    logged: std::sync::Mutex<HashSet<String>>,
}

impl Client {
    /// Builds the client of one tenant with its own HTTP client. Fails only on settings
    /// that validation should have caught (missing credentials) or a TLS setup error.
    pub fn new(
        tenant: &TenantSettings,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Client, ApiError> {
        Client::with_http(tenant, observer, http_client()?)
    }

    /// Builds the client of one tenant on `http`, an HTTP client from [`http_client`]
    /// shared by every tenant of the process (one TLS configuration and connection
    /// pool). The tenant keeps its own request budget, retry policy, deadlines and
    /// tokens.
    pub fn with_http(
        tenant: &TenantSettings,
        observer: Arc<dyn ApiObserver>,
        http: reqwest::Client,
    ) -> Result<Client, ApiError> {
        let transport = Arc::new(Transport {
            http,
            limiter: RateLimiter::new(tenant.rate_limit.requests, tenant.rate_limit.per),
            policy: RetryPolicy {
                max_retries: tenant.max_retries,
                ..RetryPolicy::default()
            },
            observer: observer.clone(),
            max_body: tenant.max_body_bytes,
            timeout: tenant.request_timeout,
        });
        let tokens = match tenant.credentials() {
            Credentials::StaticToken(t) => TokenSource::fixed(t.clone()),
            Credentials::ClientCredentials {
                client_id,
                client_secret,
            } => {
                let fetcher = Arc::new(HttpTokenFetcher {
                    transport: transport.clone(),
                    url: tenant.token_endpoint(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                });
                TokenSource::refreshing(fetcher, Box::new(move || observer.token_refresh()))
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                tokens,
                api_root: tenant.api_root(),
                page_size: tenant.page_size.clamp(1, MAX_PAGE_SIZE),
                pending_source: tenant.pending_source,
                tenant: tenant.name.clone(),
                logged: std::sync::Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The page size used when paging.
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// Fetches a token now (for `check`); a no-op with a static token.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.inner.tokens.token().await.map(|_| ())
    }

    /// One page of `GET /task-status` and the server's `Date` header (for `check`'s clock
    /// skew report).
    pub async fn list_page_dated(
        &self,
        query: &ListQuery,
        limit: u32,
    ) -> Result<(Page, Option<DateTime<Utc>>), ApiError> {
        self.list_page_at(query, 0, limit).await
    }

    /// How many tasks are pending: `HEAD /task-status/pending-tasks?count=true`, or a
    /// one-item `completionStatus isnull` listing with `count=true`.
    pub async fn pending_count(&self) -> Result<u64, ApiError> {
        match self.inner.pending_source {
            PendingSource::PendingTasks => {
                let url = format!(
                    "{}/task-status/pending-tasks?count=true",
                    self.inner.api_root
                );
                self.send(
                    operation::GET_PENDING_TASK_HEADERS,
                    &move |http| http.head(&url),
                    decode_count,
                )
                .await
            }
            PendingSource::CompletionStatusIsnull => {
                let query = ListQuery {
                    count: true,
                    ..ListQuery::default()
                }
                .with_filter(&Filter::pending());
                let page = self.list_page(&query, 0, 1).await?;
                page.total.ok_or_else(|| ApiError::Decode {
                    operation: operation::GET_TASK_STATUS_LIST,
                    message: "X-Total-Count missing or invalid".into(),
                })
            }
        }
    }

    /// One page of `GET /task-status/pending-tasks`.
    pub async fn pending_page(
        &self,
        offset: u32,
        limit: u32,
        count: bool,
    ) -> Result<Page, ApiError> {
        self.pending_page_dated(offset, limit, count)
            .await
            .map(|(page, _)| page)
    }

    async fn pending_page_dated(
        &self,
        offset: u32,
        limit: u32,
        count: bool,
    ) -> Result<(Page, Option<DateTime<Utc>>), ApiError> {
        let url = format!(
            "{}/task-status/pending-tasks?offset={offset}&limit={}{}",
            self.inner.api_root,
            limit.clamp(1, MAX_PAGE_SIZE),
            if count { "&count=true" } else { "" }
        );
        let decoded = self
            .send(
                operation::GET_PENDING_TASKS,
                &move |http| http.get(&url),
                decode_page,
            )
            .await?;
        self.report_invalid(operation::GET_PENDING_TASKS, &decoded.invalid);
        Ok((decoded.page, decoded.date))
    }

    /// The whole pending set, all pages, from the configured pending source. Tasks that
    /// appear twice (the list shifted while paging) are kept once.
    pub async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, ApiError> {
        self.pending_tasks_dated().await.map(|(tasks, _)| tasks)
    }

    /// [`Client::pending_tasks`] and the `Date` header of its first page: the tenant's
    /// clock when the pending snapshot was taken (the exactly-once bookkeeping keeps
    /// tenant time, see `collector::tracker`).
    pub async fn pending_tasks_dated(
        &self,
    ) -> Result<(Vec<TaskStatus>, Option<DateTime<Utc>>), ApiError> {
        let size = self.inner.page_size;
        let mut pages = Pager::new(operation::GET_PENDING_TASKS);
        let mut tasks = Vec::new();
        let mut seen = HashSet::new();
        let mut first_date = None;
        loop {
            let (page, date) = match self.inner.pending_source {
                PendingSource::PendingTasks => {
                    self.pending_page_dated(pages.offset, size, false).await?
                }
                PendingSource::CompletionStatusIsnull => {
                    let query = ListQuery::default().with_filter(&Filter::pending());
                    self.list_page_at(&query, pages.offset, size).await?
                }
            };
            if pages.offset == 0 {
                first_date = date;
            }
            let more = pages.advance(&page, size)?;
            for task in page.items {
                if seen.insert(task.id.clone()) {
                    tasks.push(task);
                }
            }
            if !more {
                return Ok((tasks, first_date));
            }
        }
    }

    /// One page of `GET /task-status`.
    pub async fn list_page(
        &self,
        query: &ListQuery,
        offset: u32,
        limit: u32,
    ) -> Result<Page, ApiError> {
        self.list_page_at(query, offset, limit)
            .await
            .map(|(page, _)| page)
    }

    /// [`Client::list_page`] and the answer's `Date` header.
    async fn list_page_at(
        &self,
        query: &ListQuery,
        offset: u32,
        limit: u32,
    ) -> Result<(Page, Option<DateTime<Utc>>), ApiError> {
        let url = self.list_url(query, offset, limit);
        let decoded = self
            .send(
                operation::GET_TASK_STATUS_LIST,
                &move |http| http.get(&url),
                decode_page,
            )
            .await?;
        self.report_invalid(operation::GET_TASK_STATUS_LIST, &decoded.invalid);
        Ok((decoded.page, decoded.date))
    }

    fn list_url(&self, query: &ListQuery, offset: u32, limit: u32) -> String {
        let mut url = format!(
            "{}/task-status?offset={offset}&limit={}",
            self.inner.api_root,
            limit.clamp(1, MAX_PAGE_SIZE)
        );
        if query.count {
            url.push_str("&count=true");
        }
        if let Some(f) = &query.filters {
            url.push_str("&filters=");
            url.push_str(&encode_query_value(f));
        }
        if let Some(s) = &query.sorters {
            url.push_str("&sorters=");
            url.push_str(&encode_query_value(s));
        }
        url
    }

    /// Every task of `GET /task-status` matching `query`, page by page, as a stream.
    pub fn list_stream(
        &self,
        query: ListQuery,
    ) -> impl Stream<Item = Result<Page, ApiError>> + Send + 'static {
        let client = self.clone();
        let state = (
            client,
            query,
            Pager::new(operation::GET_TASK_STATUS_LIST),
            false,
        );
        futures::stream::try_unfold(state, |(client, query, mut pager, done)| async move {
            if done {
                return Ok(None);
            }
            let size = client.inner.page_size;
            let page = client.list_page(&query, pager.offset, size).await?;
            let more = pager.advance(&page, size)?;
            Ok(Some((page, (client, query, pager, !more))))
        })
    }

    /// `GET /task-status/{id}`; an unknown id is `ApiError::Status { status: 404, .. }`,
    /// a record whose essential fields do not fit is `ApiError::InvalidRecord`.
    pub async fn task_status(&self, id: &str) -> Result<TaskStatus, ApiError> {
        let url = self.task_url(id);
        let decoded = self
            .send(
                operation::GET_TASK_STATUS,
                &move |http| http.get(&url),
                |r| tolerant::decode_one(&r.body),
            )
            .await?;
        self.decoded_task(operation::GET_TASK_STATUS, decoded)
    }

    fn decoded_task(
        &self,
        op: &'static str,
        decoded: Result<(TaskStatus, Vec<InvalidRecord>), InvalidRecord>,
    ) -> Result<TaskStatus, ApiError> {
        match decoded {
            Ok((task, defaulted)) => {
                self.report_invalid(op, &defaulted);
                Ok(task)
            }
            Err(skipped) => {
                self.report_invalid(op, std::slice::from_ref(&skipped));
                Err(ApiError::InvalidRecord {
                    operation: op,
                    field: skipped.field,
                })
            }
        }
    }

    /// Counts off-spec records and logs each task id once (the field's name, never the
    /// body: a record may carry anything).
    fn report_invalid(&self, op: &'static str, invalid: &[InvalidRecord]) {
        for record in invalid {
            self.inner
                .transport
                .observer
                .invalid_record(op, record.fault);
            let key = format!("{}/{}", record.id.as_deref().unwrap_or(""), record.field);
            let first = {
                let mut logged = self.inner.logged.lock().unwrap_or_else(|p| p.into_inner());
                if logged.len() >= LOGGED_IDS_CAP {
                    logged.clear();
                }
                logged.insert(key)
            };
            if first {
                let action = match record.fault {
                    RecordFault::Defaulted => "the field was replaced by its default",
                    RecordFault::Skipped => "the record was skipped",
                };
                tracing::warn!(
                    tenant = %self.inner.tenant,
                    operation = op,
                    task_id = record.id.as_deref().unwrap_or("(none)"),
                    field = %record.field,
                    "off-spec task record: {action}"
                );
            }
        }
    }

    /// `PATCH /task-status/{id}` with a JSON Patch; returns the updated task.
    pub async fn update_task_status(
        &self,
        id: &str,
        patch: &[JsonPatchOperation],
    ) -> Result<TaskStatus, ApiError> {
        let url = self.task_url(id);
        let body = serde_json::to_vec(patch).map_err(|e| ApiError::Setup(e.to_string()))?;
        self.send(
            operation::UPDATE_TASK_STATUS,
            &move |http| {
                http.patch(&url)
                    .header(CONTENT_TYPE, "application/json-patch+json")
                    .body(body.clone())
            },
            |r| tolerant::decode_one(&r.body),
        )
        .await
        .and_then(|decoded| self.decoded_task(operation::UPDATE_TASK_STATUS, decoded))
    }

    fn task_url(&self, id: &str) -> String {
        let segment: String = url::form_urlencoded::byte_serialize(id.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        format!("{}/task-status/{segment}", self.inner.api_root)
    }

    async fn send<T>(
        &self,
        op: &'static str,
        build: &(dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync),
        decode: fn(&RawResponse) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        self.inner
            .transport
            .send(op, Some(&self.inner.tokens), build, decode)
            .await
    }
}

/// Offset bookkeeping and the guards against endless paging.
struct Pager {
    operation: &'static str,
    offset: u32,
    pages: u32,
    last_ids: Option<Vec<String>>,
}

impl Pager {
    fn new(operation: &'static str) -> Pager {
        Pager {
            operation,
            offset: 0,
            pages: 0,
            last_ids: None,
        }
    }

    /// Accounts for `page`; says whether another page should be read. The offset moves
    /// by the records the API sent (skipped ones included), and the listing ends by them.
    fn advance(&mut self, page: &Page, size: u32) -> Result<bool, ApiError> {
        let len = u32::try_from(page.received).unwrap_or(u32::MAX);
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        if !ids.is_empty() && self.last_ids.as_ref() == Some(&ids) {
            return Err(ApiError::Paging {
                operation: self.operation,
                message: format!("offset {} returned the previous page again", self.offset),
            });
        }
        self.last_ids = Some(ids);
        self.offset = self.offset.saturating_add(len);
        self.pages += 1;
        if page.is_last(size) {
            return Ok(false);
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
struct DecodedPage {
    page: Page,
    invalid: Vec<InvalidRecord>,
    date: Option<DateTime<Utc>>,
}

fn decode_page(r: &RawResponse) -> Result<DecodedPage, String> {
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

fn decode_count(r: &RawResponse) -> Result<u64, String> {
    if r.status == reqwest::StatusCode::NO_CONTENT {
        return Ok(r.total_count().unwrap_or(0));
    }
    r.total_count()
        .ok_or_else(|| "X-Total-Count missing or invalid".to_string())
}

/// Fetches tokens from the OAuth token endpoint with the client-credentials grant.
struct HttpTokenFetcher {
    transport: Arc<Transport>,
    url: String,
    client_id: String,
    client_secret: SecretString,
}

impl TokenFetcher for HttpTokenFetcher {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let build = |http: &reqwest::Client| {
                http.post(&self.url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", self.client_secret.expose_secret()),
                ])
            };
            let result: Result<TokenResponse, ApiError> = self
                .transport
                .send(operation::TOKEN, None, &build, |r| {
                    serde_json::from_slice(&r.body)
                        .map_err(|_| "token response is not the documented JSON".to_string())
                })
                .await;
            result.map_err(|e| match e {
                redirect @ ApiError::Redirect { .. } => redirect,
                ApiError::Status {
                    status, message, ..
                } => ApiError::Auth {
                    status: Some(status),
                    message: format!("token endpoint answered HTTP {status}: {message}"),
                },
                // The transport's errors already name the operation (`token: …`); the
                // `Auth` error adds it once more.
                other => {
                    let text = other.to_string();
                    let prefix = format!("{}: ", operation::TOKEN);
                    ApiError::Auth {
                        status: None,
                        message: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
                    }
                }
            })
        })
    }
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
