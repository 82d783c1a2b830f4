//! The simulated tenant's HTTP contract, checked over real loopback HTTP: tokens,
//! paging, counts, sorters, filters, errors, PATCH, faults and determinism.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use sailpoint_simulator::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Faults, NewTask, Scenario, SimConfig, SimHandle, Simulator,
};
use sailpoint_task_exporter::sailpoint::model::{CompletionStatus, TaskStatus};

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn sim(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn manual(seed: u64, scenario: Scenario) -> SimConfig {
    SimConfig::new(seed)
        .with_scenario(scenario)
        .with_manual_clock(start_time())
}

/// A tenant on a manual clock, and the API signed in to it.
async fn manual_api(seed: u64, scenario: Scenario) -> (SimHandle, Api) {
    let sim = sim(manual(seed, scenario)).await;
    let api = Api::new(&sim).await;
    (sim, api)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(sim: &SimHandle) -> Api {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = client_credentials(&http, sim, DEMO_CLIENT_SECRET).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        Api {
            http,
            base: sim.base_url(),
            token: body["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, method: Method, path_and_query: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}{}", self.base, path_and_query))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.call(Method::GET, path_and_query).await
    }

    async fn list(&self, query: &[(&str, &str)]) -> (StatusCode, Option<u64>, Value) {
        let resp = self
            .http
            .get(format!("{}/v2024/task-status", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let total = total_count(&resp);
        (status, total, resp.json().await.unwrap())
    }

    /// The tasks matching `filter`, and the total count the tenant reports for it.
    async fn counted(&self, filter: &str) -> (Option<u64>, Value) {
        let (_, total, body) = self.list(&[("filters", filter), ("count", "true")]).await;
        (total, body)
    }

    async fn patch(&self, id: &str, content_type: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(format!("{}/v2024/task-status/{id}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// A client-credentials token request for the demo client with `secret`, as a form.
async fn client_credentials(
    http: &reqwest::Client,
    sim: &SimHandle,
    secret: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", secret),
    ];
    let url = format!("{}/oauth/token", sim.base_url());
    http.post(url).form(&form).send().await.unwrap()
}

fn total_count(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("X-Total-Count")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of the finished tasks among `tasks` (oldest first, as the simulator keeps
/// them), newest first.
fn completed_newest_first(tasks: &[TaskStatus]) -> Vec<String> {
    let mut ids: Vec<String> = tasks
        .iter()
        .filter(|t| !t.is_pending())
        .map(|t| t.id.clone())
        .collect();
    ids.reverse();
    ids
}

fn truth_ids<'a>(tasks: impl IntoIterator<Item = &'a TaskStatus>) -> Vec<String> {
    tasks.into_iter().map(|t| t.id.clone()).collect()
}

fn assert_error_dto(body: &Value, detail_code: &str, text_contains: &str) {
    assert_eq!(body["detailCode"], detail_code, "{body}");
    let tracking = body["trackingId"].as_str().unwrap();
    assert_eq!(tracking.len(), 32);
    assert!(tracking.bytes().all(|b| b.is_ascii_hexdigit()));
    let messages = body["messages"].as_array().unwrap();
    assert!(!messages.is_empty());
    for m in messages {
        assert!(m["locale"].is_string() && m["localeOrigin"].is_string());
    }
    let en = messages.iter().find(|m| m["locale"] == "en-US").unwrap();
    assert!(
        en["text"].as_str().unwrap().contains(text_contains),
        "{body}"
    );
    assert_eq!(body["causes"], json!([]));
}

#[tokio::test]
async fn token_flow_and_401s() {
    let sim = sim(manual(1, Scenario::Steady).with_token_ttl(Duration::from_secs(60))).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token_url = format!("{}/oauth/token", sim.base_url());

    let resp = client_credentials(&http, &sim, DEMO_CLIENT_SECRET).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 60);
    for key in ["access_token", "scope", "tenant_id", "pod", "org", "jti"] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
    let token = body["access_token"].as_str().unwrap().to_string();

    // Fields as query parameters work too.
    let resp = http
        .post(format!(
            "{token_url}?grant_type=client_credentials&client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let resp = client_credentials(&http, &sim, "wrong").await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");

    let resp = http
        .post(&token_url)
        .form(&[("grant_type", "password"), ("client_id", DEMO_CLIENT_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let pending = format!("{}/v2024/task-status/pending-tasks", sim.base_url());
    let resp = http.get(&pending).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("JWT validation failed")
    );

    let resp = http
        .get(&pending)
        .bearer_auth("bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = http.get(&pending).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    sim.advance(Duration::from_secs(60));
    let resp = http.get(&pending).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "JWT validation failed: JWT is expired"})
    );

    let fresh = sim.issue_token();
    let resp = http.get(&pending).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    sim.revoke_tokens();
    let resp = http.get(&pending).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    let counts = sim.request_count();
    assert_eq!(counts.token, 4);
    assert_eq!(counts.get_pending_tasks, 6);
    assert_eq!(counts.unauthorized, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_over_thousands_with_exact_totals() {
    let cfg = manual(11, Scenario::LargeHistory)
        .with_history(3_000)
        .with_pending(600);
    let sim = sim(cfg).await;
    let api = Api::new(&sim).await;
    let truth = sim.tasks();
    let completed: Vec<&TaskStatus> = truth.iter().filter(|t| !t.is_pending()).collect();
    let pending: Vec<&TaskStatus> = truth.iter().filter(|t| t.is_pending()).collect();
    assert_eq!(completed.len(), 3_000);
    assert_eq!(pending.len(), 600);

    let mut got = Vec::new();
    let mut offset = 0;
    loop {
        let (status, total, body) = api
            .list(&[
                ("offset", &offset.to_string()),
                ("limit", "250"),
                ("count", "true"),
            ])
            .await;
        assert_eq!(status, 200);
        assert_eq!(total, Some(3_000));
        let page = ids(&body);
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 250);
        offset += page.len();
        got.extend(page);
    }
    assert_eq!(got, truth_ids(completed.iter().copied()));

    let mut got = Vec::new();
    for offset in (0..).step_by(250) {
        let resp = api
            .get(&format!(
                "/v2024/task-status/pending-tasks?offset={offset}&limit=250&count=true"
            ))
            .await;
        assert_eq!(total_count(&resp), Some(600));
        if resp.status() == StatusCode::NO_CONTENT {
            assert_eq!(offset, 750);
            assert!(resp.bytes().await.unwrap().is_empty());
            break;
        }
        assert_eq!(resp.status(), 200);
        got.extend(ids(&resp.json().await.unwrap()));
    }
    assert_eq!(got, truth_ids(pending.iter().copied()));

    // Without count, no X-Total-Count; default limit is 250.
    let (_, total, body) = api.list(&[]).await;
    assert_eq!(total, None);
    assert_eq!(body.as_array().unwrap().len(), 250);
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_pending_is_204_and_head_counts() {
    let (sim, api) = manual_api(2, Scenario::Empty).await;
    let resp = api.get("/v2024/task-status/pending-tasks").await;
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = api
        .call(Method::HEAD, "/v2024/task-status/pending-tasks?count=true")
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(total_count(&resp), Some(0));

    let a = sim.add_task(NewTask::account_aggregation("Active Directory").launched(start_time()));
    sim.add_task(NewTask::identity_refresh());
    let resp = api
        .call(Method::HEAD, "/beta/task-status/pending-tasks?count=true")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(total_count(&resp), Some(2));
    assert!(resp.bytes().await.unwrap().is_empty());

    let resp = api.get("/v2025/task-status/pending-tasks").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(ids(&body).first(), Some(&a));
    let first = &body[0];
    assert_eq!(first["uniqueName"], "Cloud Account Aggregation");
    assert_eq!(first["target"]["type"], "APPLICATION");
    assert_eq!(first["target"]["name"], "Active Directory [source]");
    assert_eq!(first["completionStatus"], Value::Null);
    assert_eq!(first["completed"], Value::Null);
    assert_eq!(
        body[1]["target"],
        Value::Null,
        "identity refresh has a null target"
    );
    assert_eq!(body[1]["launched"], Value::Null, "not launched yet");
    sim.shutdown().await;
}

#[tokio::test]
async fn sorters_both_ways_and_bad_sorter() {
    let (sim, api) = manual_api(3, Scenario::Steady).await;
    let completed: Vec<TaskStatus> = sim
        .tasks()
        .into_iter()
        .filter(|t| !t.is_pending())
        .collect();
    let ascending = truth_ids(&completed);
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();

    let (_, _, body) = api.list(&[("sorters", "created"), ("limit", "250")]).await;
    assert_eq!(ids(&body), ascending[..250].to_vec());
    let (_, _, body) = api.list(&[("sorters", "-created"), ("limit", "250")]).await;
    assert_eq!(ids(&body), descending[..250].to_vec());
    let (_, _, body) = api
        .list(&[("sorters", "-created"), ("offset", "250"), ("limit", "100")])
        .await;
    assert_eq!(ids(&body), descending[250..350].to_vec());

    let (status, _, body) = api.list(&[("sorters", "name")]).await;
    assert_eq!(status, 400);
    assert_error_dto(&body, "400.1 Bad Request Content", "'name'");
    sim.shutdown().await;
}

#[tokio::test]
async fn filters_eq_in_isnull_and_escaping() {
    let (sim, api) = manual_api(4, Scenario::FailingSource).await;
    let truth = sim.tasks();
    let completed: Vec<&TaskStatus> = truth.iter().filter(|t| !t.is_pending()).collect();
    let some = completed[17];
    let other = completed[42];

    let (_, _, body) = api
        .list(&[("filters", &format!("id eq \"{}\"", some.id))])
        .await;
    assert_eq!(ids(&body), vec![some.id.clone()]);

    let filter = format!("(id in (\"{}\", \"{}\"))", other.id.to_uppercase(), some.id);
    let (_, _, body) = api.list(&[("filters", &filter)]).await;
    assert_eq!(ids(&body), truth_ids([some, other]));

    let success: Vec<&TaskStatus> = completed
        .iter()
        .copied()
        .filter(|t| t.completion_status == Some(CompletionStatus::Success))
        .collect();
    let (total, body) = api.counted("completionStatus eq \"Success\"").await;
    assert_eq!(total, Some(success.len() as u64));
    assert_eq!(ids(&body), truth_ids(success.iter().copied().take(250)));

    let bad: Vec<&TaskStatus> = completed
        .iter()
        .copied()
        .filter(|t| {
            matches!(
                t.completion_status,
                Some(CompletionStatus::Error | CompletionStatus::Warning)
            )
        })
        .collect();
    let (total, _) = api
        .counted("completionStatus in (\"ERROR\",\"warning\")")
        .await;
    assert_eq!(total, Some(bad.len() as u64));

    let failing = sim.sources()[3].clone();
    assert_eq!(failing.name, "Salesforce");
    let of_source: Vec<&TaskStatus> = completed
        .iter()
        .copied()
        .filter(|t| t.target.as_ref().is_some_and(|x| x.id == failing.id))
        .filter(|t| t.completion_status == Some(CompletionStatus::Error))
        .collect();
    assert!(!of_source.is_empty());
    let filter = format!(
        "sourceId eq \"{}\" and completionStatus eq \"ERROR\"",
        failing.id
    );
    let (_, total, body) = api
        .list(&[
            ("filters", &filter),
            ("count", "true"),
            ("sorters", "-created"),
        ])
        .await;
    assert_eq!(total, Some(of_source.len() as u64));
    let mut want = truth_ids(of_source.iter().copied());
    want.reverse();
    want.truncate(250);
    assert_eq!(ids(&body), want);

    let accounts = completed
        .iter()
        .filter(|t| t.unique_name == "Cloud Account Aggregation")
        .count();
    let (total, _) = api.counted("type eq \"CLOUD_ACCOUNT_AGGREGATION\"").await;
    assert_eq!(total, Some(accounts as u64));

    let pending: Vec<&TaskStatus> = truth.iter().filter(|t| t.is_pending()).collect();
    let (total, body) = api.counted("completionStatus isnull").await;
    assert_eq!(total, Some(pending.len() as u64));
    assert_eq!(ids(&body), truth_ids(pending.iter().copied()));

    // Escapes are understood; nothing has such an id.
    let (status, _, body) = api.list(&[("filters", r#"id eq "a\"b\\c""#)]).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([]));

    for (filter, text) in [
        (r#"id eq "unterminated"#, "unterminated string"),
        (r#"name eq "x""#, "field 'name'"),
        (r#"id co "x""#, "operator 'co'"),
        (r#"id EQ "x""#, "lower-case"),
        (r#"id eq "a" or id eq "b""#, "'or'"),
        (r#"type eq "QUARTZ""#, "(QUARTZ)"),
    ] {
        let (status, _, body) = api.list(&[("filters", filter)]).await;
        assert_eq!(status, 400, "{filter}");
        assert_error_dto(&body, "400.1 Bad Request Content", text);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_paging_parameters_and_404s() {
    let (sim, api) = manual_api(5, Scenario::Steady).await;
    for query in [
        "limit=251",
        "limit=-1",
        "offset=-5",
        "offset=abc",
        "limit=ten",
    ] {
        let resp = api.get(&format!("/v2024/task-status?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_error_dto(&body, "400.1 Bad Request Content", "must be");
    }
    let resp = api.get("/v2024/task-status/pending-tasks?limit=251").await;
    assert_eq!(resp.status(), 400);

    let resp = api
        .get("/v2024/task-status/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_error_dto(&body, "404 Not found", "0123456789abcdef0123456789abcdef");

    for path in [
        "/v3/task-status",
        "/v2024/tasks",
        "/",
        "/v2024/task-status/a/b",
    ] {
        let resp = api.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["detailCode"], "404 Not found");
    }

    let known = &sim.tasks()[0];
    let resp = api.get(&format!("/v2024/task-status/{}", known.id)).await;
    assert_eq!(resp.status(), 200);
    let got: TaskStatus = resp.json().await.unwrap();
    assert_eq!(&got, known);
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_completes_a_pending_task() {
    let (sim, api) = manual_api(6, Scenario::StuckAggregation).await;
    let stuck = sim.pending_tasks()[0].clone();
    assert_eq!(stuck.unique_name, "Cloud Account Aggregation");
    let pending_before = sim.pending_tasks().len();

    let body = json!([
        {"op": "replace", "path": "/completionStatus", "value": "Error"},
        {"op": "replace", "path": "/completed", "value": "2024-05-17 19:33:16.470000+00:00"}
    ]);
    let other_field = json!([{"op": "replace", "path": "/description", "value": "x"}]);
    let unknown_status =
        json!([{"op": "replace", "path": "/completionStatus", "value": "Finished"}]);
    let patch_type = "application/json-patch+json";
    let stuck_id = stuck.id.as_str();
    let nobody = "ffffffffffffffffffffffffffffffff";
    for (what, id, content_type, patch, status) in [
        ("plain JSON", stuck_id, "application/json", &body, 415),
        (
            "a field no patch may change",
            stuck_id,
            patch_type,
            &other_field,
            400,
        ),
        (
            "an unknown status",
            stuck_id,
            patch_type,
            &unknown_status,
            400,
        ),
        ("an unknown task", nobody, patch_type, &body, 404),
    ] {
        let resp = api.patch(id, content_type, patch).await;
        assert_eq!(resp.status(), status, "{what}");
    }
    assert_eq!(
        sim.pending_tasks().len(),
        pending_before,
        "refused patches change nothing"
    );

    let resp = api
        .patch(&stuck.id, "application/json-patch+json", &body)
        .await;
    assert_eq!(resp.status(), 200);
    let raw: Value = resp.json().await.unwrap();
    assert_eq!(raw["completionStatus"], "ERROR");
    assert_eq!(raw["completed"], "2024-05-17T19:33:16.470Z");
    assert_eq!(raw["modified"], "2026-03-02T09:00:00.000Z");
    assert_eq!(raw["id"], stuck.id.as_str());
    let patched: TaskStatus = serde_json::from_value(raw).unwrap();
    let mut expected = stuck.clone();
    expected.completion_status = Some(CompletionStatus::Error);
    expected.completed = patched.completed;
    expected.modified = Some(start_time());
    expected.percent_complete = 100;
    expected.progress = Some("Completed".into());
    expected.attributes = patched.attributes.clone();
    assert_eq!(patched, expected);
    assert_eq!(patched.attributes["total"], json!(50_000));

    let resp = api.get("/v2024/task-status/pending-tasks?count=true").await;
    assert_eq!(total_count(&resp), Some(pending_before as u64 - 1));
    let listed = ids(&resp.json().await.unwrap());
    assert!(!listed.contains(&stuck.id));
    assert_eq!(sim.task(&stuck.id), Some(patched.clone()));

    // ISO form and `add`; status alone completes at the simulated now.
    let next = sim.pending_tasks()[0].clone();
    let resp = api
        .patch(
            &next.id,
            "application/json-patch+json; charset=utf-8",
            &json!([{"op": "add", "path": "/completionStatus", "value": "terminated"}]),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let raw: Value = resp.json().await.unwrap();
    assert_eq!(raw["completionStatus"], "TERMINATED");
    assert_eq!(raw["completed"], "2026-03-02T09:00:00.000Z");
    assert_eq!(sim.request_count().update_task_status, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_have_the_spec_shapes() {
    let (sim, api) = manual_api(7, Scenario::Steady).await;
    let path = "/v2024/task-status?limit=5";

    sim.set_faults(Faults {
        rate_limit_every: Some(1),
        retry_after: Duration::from_secs(7),
        ..Faults::default()
    });
    let resp = api.get(path).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["Retry-After"], "7");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": " Rate Limit Exceeded "}));

    sim.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let resp = api.get(path).await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_error_dto(&body, "500.0 Internal Fault", "An internal fault occurred.");

    for faults in [
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        Faults {
            truncated_rate: 1.0,
            ..Faults::default()
        },
    ] {
        sim.set_faults(faults);
        let resp = api.get(path).await;
        assert_eq!(resp.status(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert!(!bytes.is_empty());
        assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    }

    sim.set_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    let err = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await;
    assert!(err.is_err(), "connection closed without an answer");

    sim.set_faults(Faults::none());
    let resp = api.get(path).await;
    assert_eq!(resp.status(), 200);
    let counts = sim.request_count();
    assert_eq!(counts.get_task_status_list, 6);
    assert_eq!((counts.rate_limited, counts.server_errors), (1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn page_shift_moves_offsets_like_a_live_tenant() {
    let (sim, api) = manual_api(8, Scenario::Steady).await;
    let before = sim.tasks();
    let before_desc = completed_newest_first(&before);
    sim.set_faults(Faults {
        page_shift: true,
        ..Faults::default()
    });
    let (_, _, first) = api.list(&[("sorters", "-created"), ("limit", "10")]).await;
    let (_, _, second) = api
        .list(&[("sorters", "-created"), ("offset", "10"), ("limit", "10")])
        .await;
    let first = ids(&first);
    let second = ids(&second);
    let after = sim.tasks();
    let newest_first = completed_newest_first(&after);
    assert_eq!(second, newest_first[10..20].to_vec());
    assert_eq!(first, before_desc[..10].to_vec());
    assert!(
        first.contains(&second[0]),
        "the shift pushed page-1 entries onto page 2: {first:?} {second:?}"
    );

    assert_eq!(after.len(), before.len() + 1);
    let oldest_pending = before.iter().find(|t| t.is_pending()).unwrap();
    let now_done = after.iter().find(|t| t.id == oldest_pending.id).unwrap();
    assert_eq!(now_done.completion_status, Some(CompletionStatus::Success));
    assert_eq!(now_done.completed, Some(start_time()));
    sim.shutdown().await;
}

#[tokio::test]
async fn tasks_follow_the_clock() {
    let sim = sim(manual(9, Scenario::Steady)).await;
    let before = sim.tasks();
    let pending_before: Vec<_> = before.iter().filter(|t| t.is_pending()).collect();
    assert_eq!(pending_before.len(), 3);
    sim.advance(Duration::from_secs(4 * 3600));
    let after = sim.tasks();
    assert!(after.len() > before.len() + 20, "schedules created runs");
    let api = Api::new(&sim).await;
    for t in &after {
        if let Some(done) = t.completed {
            assert!(done <= sim.now());
            assert!(t.completion_status.is_some());
        }
        assert!(t.created <= sim.now());
    }
    let resp = api.get("/v2024/task-status/pending-tasks?count=true").await;
    let pending_now = after.iter().filter(|t| t.is_pending()).count() as u64;
    assert_eq!(total_count(&resp).unwrap_or(0), pending_now);
    sim.shutdown().await;
}

#[tokio::test]
async fn same_seed_gives_identical_json() {
    async fn snapshot(seed: u64) -> (String, String) {
        let sim = sim(manual(seed, Scenario::Steady)).await;
        sim.advance(Duration::from_secs(7200));
        let api = Api::new(&sim).await;
        let list = api
            .get("/v2024/task-status?sorters=-created&limit=250")
            .await
            .text()
            .await
            .unwrap();
        let pending = api
            .get("/v2024/task-status/pending-tasks")
            .await
            .text()
            .await
            .unwrap();
        sim.shutdown().await;
        (list, pending)
    }
    let a = snapshot(21).await;
    let b = snapshot(21).await;
    let c = snapshot(22).await;
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

#[tokio::test]
async fn payloads_have_every_required_key() {
    let (sim, api) = manual_api(10, Scenario::Steady).await;
    let required = [
        "id",
        "type",
        "uniqueName",
        "description",
        "parentName",
        "attributes",
        "created",
        "modified",
        "launched",
        "launcher",
        "completed",
        "completionStatus",
        "messages",
        "progress",
        "percentComplete",
        "returns",
        "target",
        "taskDefinitionSummary",
    ];
    let (_, _, body) = api.list(&[("limit", "250")]).await;
    let mut levels = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for task in body.as_array().unwrap() {
        for key in required {
            assert!(task.get(key).is_some(), "{key} missing in {task}");
        }
        assert!(["QUARTZ", "QPOC", "QUEUED_TASK"].contains(&task["type"].as_str().unwrap()));
        let id = task["id"].as_str().unwrap();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(task["modified"].is_string());
        for m in task["messages"].as_array().unwrap() {
            levels.insert(m["type"].as_str().unwrap().to_string());
        }
        let name = task["uniqueName"].as_str().unwrap();
        names.insert(name.split(" - ").next().unwrap().to_string());
        if name == "Identity Refresh" {
            assert_eq!(task["target"], Value::Null);
        } else {
            assert_eq!(task["target"]["type"], "APPLICATION");
            assert!(
                task["target"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(" [source]")
            );
        }
    }
    assert!(
        levels.contains("WARN") && levels.contains("ERROR"),
        "{levels:?}"
    );
    let kinds = [
        "Cloud Account Aggregation",
        "Cloud Group Aggregation",
        "Identity Refresh",
        "Entitlement Source Reset",
    ];
    let missing: Vec<&str> = kinds.into_iter().filter(|k| !names.contains(*k)).collect();
    assert!(missing.is_empty(), "{missing:?} not in {names:?}");
    sim.shutdown().await;
}

/// `run` takes an address, not a listener, so the test must pick a port: a freed port 0
/// may be taken by someone else before `run` binds it. Credentials nobody else uses tell
/// our server from another one; a failed bind is retried on a new port.
#[tokio::test]
async fn run_serves_until_shutdown() {
    use sailpoint_simulator::{SimulateArgs, run};
    const CLIENT_ID: &str = "run-serves-until-shutdown";
    const SECRET: &str = "run-serves-until-shutdown-secret";
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
    ];
    for _attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = SimulateArgs {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            scenario: Some(Scenario::Empty),
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.to_string().into(),
            ..SimulateArgs::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(args, async {
            let _ = stopped.await;
        }));
        let url = format!("http://127.0.0.1:{port}/oauth/token");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if server.is_finished() {
                break None;
            }
            if let Ok(resp) = http.post(&url).form(&form).send().await {
                break Some(resp.status());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run never answered on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if status != Some(StatusCode::OK) {
            // Not our server: the bind failed (someone took the port). Try another one.
            let _ = stop.send(());
            let result = server.await.unwrap();
            assert!(
                result.is_err(),
                "run answered {status:?} to its own credentials"
            );
            continue;
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(
            http.post(&url).form(&form).send().await.is_err(),
            "closed after shutdown"
        );
        return;
    }
    panic!("five ports in a row were taken before run could bind them");
}

#[tokio::test]
async fn large_history_has_exact_benchmark_numbers() {
    let (sim, api) = manual_api(12, Scenario::LargeHistory).await;
    let (status, total, body) = api
        .list(&[("count", "true"), ("sorters", "-created"), ("limit", "250")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(total, Some(100_000));
    assert_eq!(body.as_array().unwrap().len(), 250);
    let resp = api
        .call(Method::HEAD, "/v2024/task-status/pending-tasks?count=true")
        .await;
    assert_eq!(total_count(&resp), Some(1_000));
    let oldest = body[249]["created"].as_str().unwrap();
    let newest = body[0]["created"].as_str().unwrap();
    assert!(newest > oldest);
    assert_eq!(sim.sources().len(), 12);
    sim.shutdown().await;
}

#[tokio::test]
async fn scripted_tasks_follow_their_plan() {
    use sailpoint_task_exporter::sailpoint::model::{LocalizedMessage, TaskStatusMessage};
    let sim = sim(manual(13, Scenario::Empty)).await;
    let t0 = start_time();
    let message = TaskStatusMessage {
        level: "WARN".into(),
        localized_text: Some(LocalizedMessage {
            locale: "en-US".into(),
            message: "12 accounts skipped".into(),
        }),
        key: "skipped".into(),
        parameters: Some(vec![]),
    };
    let planned = sim.add_task(
        NewTask::group_aggregation("HR Feed")
            .created(t0 - chrono::Duration::minutes(5))
            .launched(t0 - chrono::Duration::minutes(4))
            .completes(
                t0 + chrono::Duration::minutes(10),
                CompletionStatus::Warning,
            )
            .messages(vec![message.clone()]),
    );
    let manual_end = sim.add_task(NewTask::identity_refresh().launched(t0));
    assert_eq!(sim.pending_tasks().len(), 2);
    assert_eq!(
        sim.sources().len(),
        1,
        "an unknown source name creates a source"
    );

    sim.advance(Duration::from_secs(600));
    let done = sim.task(&planned).unwrap();
    assert_eq!(done.completion_status, Some(CompletionStatus::Warning));
    assert_eq!(done.completed, Some(t0 + chrono::Duration::minutes(10)));
    assert_eq!(done.messages, vec![message]);
    assert_eq!(done.target.unwrap().name, "HR Feed [source]");

    assert!(sim.complete_task(&manual_end, CompletionStatus::Terminated, vec![]));
    assert!(!sim.complete_task(&manual_end, CompletionStatus::Success, vec![]));
    assert!(!sim.complete_task("nope", CompletionStatus::Success, vec![]));
    let ended = sim.task(&manual_end).unwrap();
    assert_eq!(ended.completed, Some(sim.now()));
    assert_eq!(ended.completion_status, Some(CompletionStatus::Terminated));
    assert!(sim.pending_tasks().is_empty());
    sim.shutdown().await;
}

/// Runs created after the start, oldest first, as (task name, milliseconds after start).
fn new_runs(sim: &SimHandle, before: &std::collections::HashSet<String>) -> Vec<(String, i64)> {
    let mut runs: Vec<(String, i64)> = sim
        .tasks()
        .into_iter()
        .filter(|t| !before.contains(&t.id))
        .map(|t| {
            let after = (t.created - start_time()).num_milliseconds();
            (t.unique_name, after)
        })
        .collect();
    runs.sort_by_key(|r| r.1);
    runs
}

#[tokio::test]
async fn speed_divides_schedules() {
    let slow = sim(manual(14, Scenario::Steady)).await;
    let fast = sim(manual(14, Scenario::Steady).with_speed(60.0)).await;
    let id_set = |sim: &SimHandle| -> std::collections::HashSet<String> {
        sim.tasks().into_iter().map(|t| t.id).collect()
    };
    let (slow_before, fast_before) = (id_set(&slow), id_set(&fast));
    slow.advance(Duration::from_secs(3600));
    fast.advance(Duration::from_secs(60));
    let slow_runs = new_runs(&slow, &slow_before);
    let fast_runs = new_runs(&fast, &fast_before);
    // One hour at speed 1 and one minute at speed 60 hold the same runs, each created
    // at a sixtieth of its slow offset (to the millisecond the clock keeps).
    assert!(
        slow_runs.len() >= 6,
        "one account aggregation per source at least: {slow_runs:?}"
    );
    let names = |runs: &[(String, i64)]| runs.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fast_runs), names(&slow_runs));
    for ((_, slow_at), (_, fast_at)) in slow_runs.iter().zip(&fast_runs) {
        assert!(
            (slow_at / 60 - fast_at).abs() <= 1,
            "{slow_at} ms at speed 1 vs {fast_at} ms at speed 60"
        );
        assert!((0..=60_000).contains(fast_at), "{fast_at}");
    }
    slow.shutdown().await;
    fast.shutdown().await;
}

#[tokio::test]
async fn every_view_serves_the_tenant_clock_when_views_lag() {
    use sailpoint_simulator::Habits;
    let sim = sim(manual(31, Scenario::Empty)).await;
    let now = sim.now();
    let running = sim.add_task(NewTask::account_aggregation("AD").created(now));
    let done = sim.add_task(NewTask::account_aggregation("AD").created(now).completes(
        now + chrono::Duration::seconds(5),
        CompletionStatus::Success,
    ));
    sim.advance(Duration::from_secs(10));
    // The tenant's clock an hour ahead, and a pending view that still lists the finished
    // task: both the pending view and the lists serve timestamps on the tenant's clock.
    sim.set_faults(Faults {
        habits: Habits {
            clock_offset_secs: 3600,
            pending_view_lag: Duration::from_secs(60),
            ..Habits::default()
        },
        ..Faults::none()
    });
    let served: Vec<TaskStatus> = sim.tasks_as_served();
    let want = |id: &str| served.iter().find(|t| t.id == id).unwrap().created;
    let api = Api::new(&sim).await;
    let pending: Vec<TaskStatus> = api
        .get("/v2024/task-status/pending-tasks")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending.len(), 2, "the finished task still lingers");
    for task in &pending {
        assert_eq!(
            task.created,
            want(&task.id),
            "pending view, task {}",
            task.id
        );
    }
    let (_, _, listed) = api.list(&[]).await;
    let listed: Vec<TaskStatus> = serde_json::from_value(listed).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, done);
    assert_eq!(listed[0].created, want(&done));
    assert_eq!(want(&running), now + chrono::Duration::hours(1));
}
