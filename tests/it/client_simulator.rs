//! The SailPoint client against the simulated tenant over real loopback HTTP: paging
//! thousands of tasks, 429 storms, 5xx, token expiry in the middle of paging, truncated and
//! malformed JSON. Each case ends in either exactly the right data or a clear typed error.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use sailpoint_simulator::{Faults, Habits, NewTask, Scenario, SimConfig, SimHandle, Simulator};
use sailpoint_task_exporter::config::{Credentials, TenantSettings};
use sailpoint_task_exporter::sailpoint::filter::Filter;
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, JsonPatchOperation, TaskStatus};
use sailpoint_task_exporter::sailpoint::{ApiError, ApiObserver, Client, ListQuery, RetryReason};
use secrecy::SecretString;

const ID: &str = "client-test";
const SECRET: &str = "client-test-secret";

#[derive(Default)]
struct Recorder {
    retries: Mutex<Vec<RetryReason>>,
    refreshes: AtomicU64,
    requests: AtomicU64,
}

impl ApiObserver for Recorder {
    fn request(&self, _: &str, _: &str, _: Duration) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
    fn retry(&self, reason: RetryReason) {
        self.retries.lock().unwrap().push(reason);
    }
    fn token_refresh(&self) {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
    }
}

async fn sim(cfg: SimConfig) -> SimHandle {
    Simulator::start(
        cfg.with_credentials(ID, SECRET),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn tenant(sim: &SimHandle, secret: &str) -> TenantSettings {
    let mut t = TenantSettings::with_defaults(
        "test",
        sim.base_url().parse().unwrap(),
        Credentials::ClientCredentials {
            client_id: ID.into(),
            client_secret: SecretString::from(secret.to_string()),
        },
    );
    t.rate_limit.requests = 10_000;
    t.request_timeout = Duration::from_secs(5);
    t
}

fn client(sim: &SimHandle) -> (Client, Arc<Recorder>) {
    client_with(tenant(sim, SECRET))
}

fn client_with(t: TenantSettings) -> (Client, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (Client::new(&t, rec.clone()).unwrap(), rec)
}

fn ids(tasks: &[TaskStatus]) -> Vec<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

/// The ids of `tasks`, in order, without `id`.
fn ids_but(tasks: &[TaskStatus], id: &str) -> Vec<String> {
    ids(tasks).into_iter().filter(|t| t != id).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Completed tasks of the ground truth, newest first (ties by id, as the simulator sorts).
fn completed_truth(sim: &SimHandle) -> Vec<TaskStatus> {
    let mut v: Vec<TaskStatus> = sim
        .tasks()
        .into_iter()
        .filter(|t| !t.is_pending())
        .collect();
    v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    v
}

async fn all_completed(client: &Client, query: ListQuery) -> Result<Vec<TaskStatus>, ApiError> {
    let pages: Vec<_> = client.list_stream(query).try_collect().await?;
    Ok(pages.into_iter().flat_map(|p| p.items).collect())
}

/// Requests that list the 3,000 completed tasks of `large()`: 12 full pages and the
/// empty one that ends the listing.
const LIST_PAGES: u64 = 13;
/// Requests that read the 600 pending tasks of `large()`: two full pages, a short one,
/// and the empty one that confirms the short one was the end.
const PENDING_PAGES: u64 = 4;

/// Lists every completed task and asserts the listing is the ground truth, newest first,
/// each task once.
async fn assert_lists_the_truth(client: &Client, sim: &SimHandle) {
    let listed = all_completed(client, ListQuery::newest_first())
        .await
        .unwrap();
    assert_eq!(
        ids(&listed),
        ids(&completed_truth(sim)),
        "the completed listing"
    );
}

/// A tenant started from `cfg`, and a client of it with the default settings.
async fn started(cfg: SimConfig) -> (SimHandle, Client, Arc<Recorder>) {
    let sim = sim(cfg).await;
    let (client, rec) = client(&sim);
    (sim, client, rec)
}

/// A tenant started from `cfg`, and a client retrying up to `max_retries` times.
async fn retrying(cfg: SimConfig, max_retries: u32) -> (SimHandle, Client, Arc<Recorder>) {
    let sim = sim(cfg).await;
    let (client, rec) = client_with(TenantSettings {
        max_retries,
        ..tenant(&sim, SECRET)
    });
    (sim, client, rec)
}

/// Under `faults` the listing still comes back exactly, every retry was for `reason`, and
/// only the answers that failed were asked again. Returns the retries.
async fn assert_retried_to_the_truth(
    faults: Faults,
    max_retries: u32,
    reason: RetryReason,
) -> (SimHandle, Vec<RetryReason>) {
    let (sim, client, rec) = retrying(large().with_faults(faults), max_retries).await;
    assert_lists_the_truth(&client, &sim).await;
    let retries = rec.retries.lock().unwrap().clone();
    assert!(!retries.is_empty(), "no {reason:?} retry");
    assert!(retries.iter().all(|r| *r == reason), "{retries:?}");
    assert_eq!(
        sim.request_count().get_task_status_list,
        LIST_PAGES + retries.len() as u64,
        "each {reason:?} retried once, nothing else re-read"
    );
    (sim, retries)
}

/// An error answered with HTTP `status`: typed, and its message starts with the operation.
fn assert_http_error(err: &ApiError, operation: &str, status: u16) {
    assert_eq!(err.status(), Some(status), "{err}");
    let prefix = format!("{operation}: HTTP {status}");
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

/// A tenant that answers `burst` requests with 429 and `Retry-After: retry_after` after
/// every `every` others.
fn rate_limited(every: u64, burst: u32, retry_after: Duration) -> Faults {
    Faults {
        rate_limit_every: Some(every),
        rate_limit_burst: burst,
        retry_after,
        ..Faults::none()
    }
}

fn large() -> SimConfig {
    SimConfig::new(11)
        .with_scenario(Scenario::LargeHistory)
        .with_history(3_000)
        .with_pending(600)
        .with_manual_clock(chrono::Utc::now())
}

#[tokio::test]
async fn pages_through_thousands_of_tasks_exactly() {
    let (sim, client, rec) = started(large()).await;
    let pending = client.pending_tasks().await.unwrap();
    assert_eq!(pending.len(), 600);
    assert_eq!(sorted(ids(&pending)), sorted(ids(&sim.pending_tasks())));
    assert_eq!(client.pending_count().await.unwrap(), 600);

    let truth = completed_truth(&sim);
    assert_eq!(truth.len(), 3_000);
    let listed = all_completed(&client, ListQuery::newest_first())
        .await
        .unwrap();
    assert_eq!(
        ids(&listed),
        ids(&truth),
        "every completed task, newest first, once"
    );
    assert_eq!(listed, truth, "and with every field as the tenant holds it");
    // 600/250 → 3 pending pages (the last one short) and the empty 4th that confirms
    // it, 1 HEAD, 3000/250 = 12 full list pages and the empty 13th that ends the
    // listing (no count was asked), 1 token.
    let counts = sim.request_count();
    assert_eq!(
        (
            counts.get_pending_tasks,
            counts.get_pending_task_headers,
            counts.get_task_status_list,
            counts.token
        ),
        (PENDING_PAGES, 1, LIST_PAGES, 1)
    );
    assert_eq!(
        rec.requests.load(Ordering::SeqCst),
        19,
        "every exchange observed"
    );
    assert_eq!(rec.refreshes.load(Ordering::SeqCst), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn unreadable_records_in_full_pages_end_no_listing() {
    let sim = sim(large()).await;
    // The newest completed task and the oldest pending task, each the first record of the
    // first page of its listing, are unreadable in every answer.
    let truth = completed_truth(&sim);
    let newest = truth.first().expect("completed tasks").id.clone();
    let mut pending_truth = sim.pending_tasks();
    pending_truth.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    let oldest = pending_truth.first().expect("pending tasks").id.clone();
    for id in [&newest, &oldest] {
        sim.set_faults(Faults {
            habits: Habits {
                unreadable_ids_ending: Some(id.clone()),
                ..Habits::default()
            },
            ..Faults::none()
        });
        let (client, _) = client(&sim);
        let pending = client.pending_tasks().await.unwrap();
        let want = ids_but(&pending_truth, id);
        assert_eq!(pending.len(), want.len(), "pending, {id} unreadable");
        assert!(
            sorted(ids(&pending)) == sorted(want),
            "pending, {id} unreadable"
        );
        let listed = all_completed(&client, ListQuery::newest_first())
            .await
            .unwrap();
        let want = ids_but(&truth, id);
        // Lengths first: a failing comparison of 3 000 ids would bury the message.
        assert_eq!(listed.len(), want.len(), "completed, {id} unreadable");
        assert!(ids(&listed) == want, "completed, {id} unreadable");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn filters_and_sorters_reach_the_tenant_intact() {
    let (sim, client, _) = started(large()).await;
    let truth = completed_truth(&sim);
    let errors: Vec<String> = truth
        .iter()
        .filter(|t| t.completion_status == Some(CompletionStatus::Error))
        .map(|t| t.id.clone())
        .collect();
    assert!(!errors.is_empty());
    let query = ListQuery::newest_first().with_filter(&Filter::completion_status_eq("error"));
    let listed = all_completed(&client, query).await.unwrap();
    assert_eq!(ids(&listed), errors);

    let pick: Vec<String> = truth.iter().step_by(97).map(|t| t.id.clone()).collect();
    let query = ListQuery {
        sorters: Some("created".into()),
        ..ListQuery::default()
    }
    .with_filter(&Filter::id_in(pick.clone()));
    let listed = all_completed(&client, query).await.unwrap();
    let mut want = pick.clone();
    want.reverse(); // ascending order is the reverse of the newest-first truth
    assert_eq!(ids(&listed), want);

    let err = client
        .list_page(
            &ListQuery {
                filters: Some("launcher eq \"x\"".into()),
                ..ListQuery::default()
            },
            0,
            10,
        )
        .await
        .unwrap_err();
    assert_http_error(&err, "getTaskStatusList", 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn survives_a_429_storm_with_the_right_data() {
    let faults = rate_limited(4, 2, Duration::ZERO);
    let (sim, retries) = assert_retried_to_the_truth(faults, 4, RetryReason::RateLimited).await;
    assert!(retries.len() >= 10, "{} retries", retries.len());
    assert_eq!(sim.request_count().rate_limited, retries.len() as u64);
    sim.shutdown().await;
}

#[tokio::test]
async fn honours_retry_after_seconds() {
    let faults = rate_limited(2, 1, Duration::from_secs(1));
    let sim = sim(SimConfig::new(3)
        .with_scenario(Scenario::Steady)
        .with_faults(faults))
    .await;
    let (client, rec) = client(&sim);
    let started = std::time::Instant::now();
    // The second API request is answered 429 with Retry-After: 1.
    client.pending_count().await.unwrap();
    client.pending_count().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*rec.retries.lock().unwrap(), vec![RetryReason::RateLimited]);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_the_data_is_right() {
    let mut faults = Faults::none();
    faults.server_error_rate = 0.3;
    let (sim, retries) = assert_retried_to_the_truth(faults, 10, RetryReason::ServerError).await;
    assert_eq!(sim.request_count().server_errors, retries.len() as u64);
    sim.shutdown().await;
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_typed_error() {
    let mut faults = Faults::none();
    faults.server_error_rate = 1.0;
    let (sim, client, rec) = retrying(SimConfig::new(4).with_faults(faults), 2).await;
    let err = client.pending_tasks().await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(err.to_string().contains("trackingId"), "{err}");
    assert_eq!(rec.retries.lock().unwrap().len(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_revoked_in_the_middle_of_paging_is_refreshed_once() {
    let (sim, client, rec) = started(large()).await;
    let truth = completed_truth(&sim);
    let mut stream = Box::pin(client.list_stream(ListQuery::newest_first()));
    let mut listed = Vec::new();
    let mut pages = 0;
    while let Some(page) = stream.try_next().await.unwrap() {
        pages += 1;
        if pages == 3 {
            sim.revoke_tokens();
        }
        listed.extend(page.items);
    }
    assert_eq!(ids(&listed), ids(&truth));
    assert_eq!(rec.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(sim.request_count().unauthorized, 1);
    assert!(
        rec.retries.lock().unwrap().is_empty(),
        "a 401 is not a retry"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tokens_expiring_during_a_slow_listing_are_refreshed() {
    let mut faults = Faults::none();
    faults.latency = Duration::from_millis(150);
    let sim = sim(SimConfig::new(5)
        .with_scenario(Scenario::LargeHistory)
        .with_history(1_500)
        .with_pending(10)
        .with_token_ttl(Duration::from_secs(1))
        .with_faults(faults))
    .await;
    let (client, rec) = client(&sim);
    assert_lists_the_truth(&client, &sim).await;
    // Seven 150 ms pages outlast a token refreshed at 0.8 s: at least one refresh on top
    // of the first token (more when the machine is slow, so no exact count).
    let refreshes = rec.refreshes.load(Ordering::SeqCst);
    assert!(refreshes >= 2, "{refreshes} refreshes");
    assert_eq!(
        sim.request_count().token,
        refreshes,
        "each refresh is a token request"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_retried_or_reported() {
    for (malformed, truncated) in [(0.25, 0.0), (0.0, 0.25)] {
        let faults = Faults {
            malformed_rate: malformed,
            truncated_rate: truncated,
            ..Faults::none()
        };
        // A body that does not decode is retried like a server error.
        let (sim, _) = assert_retried_to_the_truth(faults, 10, RetryReason::ServerError).await;
        sim.shutdown().await;
    }
    let mut faults = Faults::none();
    faults.malformed_rate = 1.0;
    let (sim, client, _) = retrying(large().with_faults(faults), 1).await;
    let err = client.pending_tasks().await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Decode {
                operation: "getPendingTasks",
                ..
            }
        ),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let mut faults = Faults::none();
    faults.reset_rate = 0.2;
    let (sim, client, rec) = retrying(large().with_faults(faults), 10).await;
    let pending = client.pending_tasks().await.unwrap();
    assert_eq!(sorted(ids(&pending)), sorted(ids(&sim.pending_tasks())));
    assert_lists_the_truth(&client, &sim).await;
    let retries = rec.retries.lock().unwrap().clone();
    assert!(!retries.is_empty(), "no connection was reset");
    assert!(
        retries.iter().all(|r| *r == RetryReason::Connect),
        "{retries:?}"
    );
    let counts = sim.request_count();
    assert_eq!(
        counts.get_pending_tasks + counts.get_task_status_list,
        PENDING_PAGES + LIST_PAGES + retries.len() as u64,
        "each reset retried once, nothing else re-read"
    );
    sim.shutdown().await;
}

/// Offset paging while the list shifts skips entries; the exporter's pending path covers
/// those with a by-id lookup. What the client returns is never invented and never
/// duplicated. Each read at offset > 0 completes the oldest pending task, so the list
/// moves up by one before pages 2 and 3: exactly the tasks at 250 and 501 are skipped.
/// The empty page that confirms the end of the listing is a third read past offset 0.
#[tokio::test]
async fn shifting_pending_pages_skip_entries_but_never_invent_or_duplicate() {
    let mut faults = Faults::none();
    faults.page_shift = true;
    let (sim, client, _) = started(large().with_faults(faults)).await;
    let before = ids(&sim.pending_tasks());
    let listed = ids(&client.pending_tasks().await.unwrap());
    let after: HashSet<String> = ids(&sim.pending_tasks()).into_iter().collect();

    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no task twice");
    let mut expected = before.clone();
    let skipped = [expected.remove(501), expected.remove(250)];
    assert_eq!(
        sorted(listed),
        sorted(expected),
        "only tasks that were pending"
    );
    assert!(
        skipped.iter().all(|id| after.contains(id)),
        "the skipped tasks are still pending"
    );
    assert_eq!(
        after.len(),
        before.len() - 3,
        "three shifts completed three tasks"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn get_patch_and_not_found() {
    let (sim, client, _) = started(SimConfig::new(6).with_scenario(Scenario::Empty)).await;
    let id = sim.add_task(NewTask::account_aggregation("Active Directory"));
    let task = client.task_status(&id).await.unwrap();
    assert!(task.is_pending());
    assert_eq!(task.source_name(), Some("Active Directory [source]"));
    assert_eq!(client.pending_count().await.unwrap(), 1);

    let patch = [
        JsonPatchOperation {
            op: "replace".into(),
            path: "/completionStatus".into(),
            value: Some("Error".into()),
        },
        JsonPatchOperation {
            op: "replace".into(),
            path: "/completed".into(),
            value: Some("2024-05-17T19:33:16.470Z".into()),
        },
    ];
    let updated = client.update_task_status(&id, &patch).await.unwrap();
    assert_eq!(updated.completion_status, Some(CompletionStatus::Error));
    assert_eq!(
        updated.completed.map(|c| c.to_rfc3339()),
        Some("2024-05-17T19:33:16.470+00:00".into())
    );
    assert_eq!(client.pending_count().await.unwrap(), 0);
    assert!(
        client.pending_tasks().await.unwrap().is_empty(),
        "204 reads as empty"
    );

    let err = client
        .task_status("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_http_error(&err, "getTaskStatus", 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error_without_the_secret() {
    let sim = sim(SimConfig::new(7).with_scenario(Scenario::Empty)).await;
    let (client, rec) = client_with(tenant(&sim, "wrong-secret-value"));
    let err = client.pending_count().await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value"));
    assert!(rec.retries.lock().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_tenant_is_a_transport_error() {
    // A port bound but never listened on refuses connections, and stays ours (a port
    // freed by dropping a listener could be taken by another test meanwhile).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let mut t = TenantSettings::with_defaults(
        "gone",
        format!("http://{addr}").parse().unwrap(),
        Credentials::StaticToken(SecretString::from("t".to_string())),
    );
    t.max_retries = 1;
    let (client, rec) = client_with(t);
    let err = client.pending_count().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert_eq!(*rec.retries.lock().unwrap(), vec![RetryReason::Connect]);
}

#[tokio::test]
async fn an_oversized_body_is_a_typed_error_not_a_memory_spike() {
    let sim = sim(large()).await;
    let (client, _) = client_with(TenantSettings {
        max_body_bytes: 4096,
        ..tenant(&sim, SECRET)
    });
    let err = client.pending_tasks().await.unwrap_err();
    let ApiError::BodyTooLarge { operation, limit } = &err else {
        panic!("not BodyTooLarge: {err:?}");
    };
    assert_eq!((*operation, *limit), ("getPendingTasks", 4096));
    assert_eq!(
        err.to_string(),
        "getPendingTasks: response body larger than 4096 bytes"
    );
    sim.shutdown().await;
}
