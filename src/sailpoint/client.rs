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

use super::operation;
pub use super::paging::{ListQuery, MAX_PAGE_SIZE, Page, response_date};
use super::paging::{Pager, decode_count, decode_page};

/// How many distinct off-spec task ids a client remembers having logged; past it the
/// memory starts over (a task may then be logged once more).
const LOGGED_IDS_CAP: usize = 10_000;

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

    /// One page of `GET /task-status/pending-tasks` and the answer's `Date` header.
    async fn pending_page(
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
        self.get_page(operation::GET_PENDING_TASKS, url).await
    }

    /// The whole pending set, all pages, from the configured pending source. Tasks that
    /// appear twice (the list shifted while paging) are kept once.
    pub async fn pending_tasks(&self) -> Result<Vec<TaskStatus>, ApiError> {
        self.pending_tasks_dated().await.map(|(tasks, _)| tasks)
    }

    /// [`Client::pending_tasks`] and the `Date` header of its first page: the tenant's
    /// clock when the pending snapshot was taken (the exactly-once bookkeeping keeps
    /// tenant time, see `collector::tracker`). A short page is confirmed by the next
    /// (see `Pager::advance_confirming`), from either source: a server or proxy may cap
    /// pages below `limit`, and a truncated snapshot would lose the completion of every
    /// long-running task left out of it. That costs one request per non-empty listing.
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
                PendingSource::PendingTasks => self.pending_page(pages.offset, size, false).await?,
                PendingSource::CompletionStatusIsnull => {
                    let query = ListQuery::default().with_filter(&Filter::pending());
                    self.list_page_at(&query, pages.offset, size).await?
                }
            };
            if pages.offset == 0 {
                first_date = date;
            }
            let fresh = page.received > page.items.len()
                || page.items.iter().any(|t| !seen.contains(&t.id));
            let more = pages.advance_confirming(&page, size, fresh)?;
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
        self.get_page(operation::GET_TASK_STATUS_LIST, url).await
    }

    /// `GET url` of either list: the page (its off-spec records counted and logged) and
    /// the answer's `Date` header.
    async fn get_page(
        &self,
        op: &'static str,
        url: String,
    ) -> Result<(Page, Option<DateTime<Utc>>), ApiError> {
        let decoded = self
            .send(op, &move |http| http.get(&url), decode_page)
            .await?;
        self.report_invalid(op, &decoded.invalid);
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
