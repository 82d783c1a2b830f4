//! One simulated task: a compact record (so 100 000 of them stay small) and its
//! rendering into the API's [`TaskStatus`] at a given instant.
//!
//! The vocabulary (names, descriptions, task definitions, messages) follows the
//! official spec's examples and the real samples described in docs/sailpoint-api.md ("The TaskStatus object").

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use sailpoint_model::{
    CompletionStatus, LocalizedMessage, Target, TaskDefinitionSummary, TaskReturnDetails,
    TaskStatus, TaskStatusMessage, TaskType,
};

use super::filter::Filterable;

/// What a task does; decides its name, description, definition and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// "Cloud Account Aggregation" of a source.
    AccountAggregation,
    /// "Cloud Group Aggregation" of a source.
    GroupAggregation,
    /// "Identity Refresh" (no target).
    IdentityRefresh,
    /// "Entitlement Source Reset - \<uuid\>" of a source.
    EntitlementReset,
    /// Any other task, by its `uniqueName`.
    Named(String),
}

impl TaskKind {
    /// The value the `type` filter matches for this kind, if it has one.
    pub(crate) fn filter_kind(&self) -> Option<&'static str> {
        match self {
            TaskKind::AccountAggregation => Some("CLOUD_ACCOUNT_AGGREGATION"),
            TaskKind::GroupAggregation => Some("CLOUD_GROUP_AGGREGATION"),
            TaskKind::IdentityRefresh => Some("IDENTITY_REFRESH"),
            TaskKind::EntitlementReset | TaskKind::Named(_) => None,
        }
    }

    fn task_type(&self) -> TaskType {
        match self {
            TaskKind::AccountAggregation | TaskKind::GroupAggregation => TaskType::Quartz,
            TaskKind::IdentityRefresh => TaskType::Qpoc,
            TaskKind::EntitlementReset | TaskKind::Named(_) => TaskType::QueuedTask,
        }
    }

    fn base_name(&self) -> &str {
        match self {
            TaskKind::AccountAggregation => "Cloud Account Aggregation",
            TaskKind::GroupAggregation => "Cloud Group Aggregation",
            TaskKind::IdentityRefresh => "Identity Refresh",
            TaskKind::EntitlementReset => "Entitlement Source Reset",
            TaskKind::Named(name) => name,
        }
    }

    fn description(&self) -> &str {
        match self {
            TaskKind::AccountAggregation => "Aggregates from the specified application.",
            TaskKind::GroupAggregation => "Aggregates groups from the specified application.",
            TaskKind::IdentityRefresh => "Refreshes identity attributes, roles and access.",
            TaskKind::EntitlementReset => "Removes the entitlements of the specified source.",
            TaskKind::Named(name) => name,
        }
    }

    fn definition(&self) -> TaskDefinitionSummary {
        let (id, method) = match self {
            TaskKind::AccountAggregation => {
                ("2c91808475b4334b0175e1dff64b63c5", "accountAggregationTask")
            }
            TaskKind::GroupAggregation => {
                ("2c91808475b4334b0175e1dff64b63c6", "groupAggregationTask")
            }
            TaskKind::IdentityRefresh => ("2c91808475b4334b0175e1dff64b63c7", "identityRefresh"),
            TaskKind::EntitlementReset => {
                ("2c91808475b4334b0175e1dff64b63c8", "entitlementSourceReset")
            }
            TaskKind::Named(_) => ("2c91808475b4334b0175e1dff64b63c9", "genericTask"),
        };
        let name = self.base_name().to_string();
        let mut arguments = Map::new();
        arguments.insert(
            "serviceClass".into(),
            json!("sailpoint.thunderbolt.service.AggregationService"),
        );
        arguments.insert("serviceMethod".into(), json!(method));
        TaskDefinitionSummary {
            id: id.to_string(),
            unique_name: name.clone(),
            description: Some(self.description().to_string()),
            parent_name: Some(name),
            executor: Some("sailpoint.task.ServiceTaskExecutor".to_string()),
            arguments,
        }
    }

    fn returns(&self) -> Vec<TaskReturnDetails> {
        if *self == TaskKind::AccountAggregation {
            // The 28 results of a real Cloud Account Aggregation, in its order, with the
            // labels a real one gives them (in the spec's `name` field: the official SDK
            // requires it; the older `displayLabel` shape is covered by unit tests).
            return ACCOUNT_AGGREGATION_RETURNS
                .iter()
                .map(|(label, attribute)| TaskReturnDetails {
                    name: format!("TASK_OUT_ACCOUNT_AGGREGATION_{label}"),
                    attribute_name: (*attribute).to_string(),
                })
                .collect();
        }
        let names: &[&str] = match self {
            TaskKind::GroupAggregation => {
                &["applications", "total", "created", "updated", "deleted"]
            }
            TaskKind::IdentityRefresh => &["identityCount"],
            _ => &[],
        };
        names
            .iter()
            .map(|n| TaskReturnDetails {
                name: format!("task_out_{n}"),
                attribute_name: (*n).to_string(),
            })
            .collect()
    }

    /// Typical run time in seconds, used to show progress of a task that never ends.
    fn nominal_seconds(&self) -> i64 {
        match self {
            TaskKind::GroupAggregation => 60,
            TaskKind::IdentityRefresh => 300,
            _ => 180,
        }
    }
}

/// The results a real Cloud Account Aggregation names in `returns`: the suffix of its
/// `displayLabel` (after `TASK_OUT_ACCOUNT_AGGREGATION_`) and the attribute holding the
/// value, in the order a real tenant lists them.
const ACCOUNT_AGGREGATION_RETURNS: [(&str, &str); 28] = [
    ("APPLICATIONS", "applications"),
    ("TOTAL", "total"),
    ("OPTIMIZED", "optimizedAggregation"),
    ("IGNORED", "ignored"),
    ("UNCHANGED_ACCOUNTS", "optimized"),
    ("CREATED", "created"),
    ("UPDATED", "updated"),
    ("DELETED", "deleted"),
    ("MANAGER_CHANGES", "managerChanges"),
    ("BUSINESS_ROLE_CHANGES", "detectedRoleChanges"),
    ("EXCEPTION_CHANGES", "exceptionChanges"),
    ("POLICIES", "policies"),
    ("POLICY_VIOLATIONS", "policyViolations"),
    ("POLICY_NOTIFICATIONS", "policyNotifications"),
    ("SCORES_CHANGED", "scoresChanged"),
    ("SNAPSHOTS_CREATED", "snapshotsCreated"),
    ("SCOPES_CREATED", "scopesCreated"),
    ("SCOPES_CORRELATED", "scopesCorrelated"),
    ("SCOPES_SELECTED", "scopesSelected"),
    ("SCOPES_DORMANT", "scopesDormant"),
    ("UNSCOPED_IDENTITIES", "unscopedIdentities"),
    ("CERTIFICATIONS_CREATED", "certificationsCreated"),
    ("CERTIFICATIONS_DELETED", "certificationsDeleted"),
    ("APPLICATIONS_GENERATED", "applicationsGenerated"),
    ("MANAGED_ATTRIBUTES_PROMOTED", "managedAttributesCreated"),
    (
        "MANAGED_ATTRIBUTES_PROMOTED_BY_APP",
        "managedAttributesCreatedByApplication",
    ),
    (
        "IDENTITYENTITLEMENTS_CREATED",
        "identityEntitlementsCreated",
    ),
    ("GROUPS_CREATED", "groupsCreated"),
];

/// What a simulated account aggregation reports in its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AggregationResults {
    /// Plausible numbers derived from the task's size.
    #[default]
    Normal,
    /// The connector returned no accounts: `total` 0, nothing changed.
    Empty,
    /// Two accounts in five were deleted.
    MassDeletion,
}

/// How a task ends; decides its completion status and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Warning,
    Error,
    Terminated,
    TempError,
    /// ERROR because an earlier run of the same aggregation is still running.
    Blocked,
}

impl Outcome {
    pub(crate) fn status(self) -> CompletionStatus {
        match self {
            Outcome::Success => CompletionStatus::Success,
            Outcome::Warning => CompletionStatus::Warning,
            Outcome::Error | Outcome::Blocked => CompletionStatus::Error,
            Outcome::Terminated => CompletionStatus::Terminated,
            Outcome::TempError => CompletionStatus::TempError,
        }
    }
}

/// The messages of a finished task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Messages {
    /// Generated from the outcome when rendered.
    Of(Outcome),
    /// Given by a test or a PATCH.
    Explicit(Vec<TaskStatusMessage>),
}

/// When and how a pending task will finish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    At(DateTime<Utc>, CompletionStatus, Messages),
    /// Stuck: only a PATCH or `complete_task` ends it.
    Never,
}

impl Plan {
    /// A planned end with messages generated from the outcome.
    pub(crate) fn outcome(at: DateTime<Utc>, outcome: Outcome) -> Plan {
        Plan::At(at, outcome.status(), Messages::Of(outcome))
    }
}

/// A finished task's end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Done {
    pub at: DateTime<Utc>,
    pub status: CompletionStatus,
    pub messages: Messages,
}

/// A source of the simulated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSource {
    /// 32-hex source id: `target.id`, `attributes.appId` and the `sourceId` filter value.
    pub id: String,
    /// Display name, e.g. "Active Directory" (the target name adds " \[source\]").
    pub name: String,
}

/// The compact record of one task.
#[derive(Debug, Clone)]
pub(crate) struct SimTask {
    pub id: u128,
    /// Creation order; breaks ties between equal `created` times.
    pub seq: u64,
    pub kind: TaskKind,
    /// Suffix for "Entitlement Source Reset - <uuid>".
    pub suffix: Option<u128>,
    pub source: Option<u32>,
    pub created: DateTime<Utc>,
    /// Planned launch; rendered as null until the clock reaches it.
    pub launch_at: Option<DateTime<Utc>>,
    pub plan: Plan,
    pub done: Option<Done>,
    /// Accounts, groups or identities processed by the task.
    pub size: u32,
    /// Set by a PATCH.
    pub modified: Option<DateTime<Utc>>,
    /// What an account aggregation reports (anomalies of the `aggregation-anomalies`
    /// scenario).
    pub results: AggregationResults,
}

impl SimTask {
    /// Whether the task is still running at `t` according to its plan (independent of
    /// when the tenant last settled its tasks).
    pub(crate) fn running_at(&self, t: DateTime<Utc>) -> bool {
        match (&self.done, &self.plan) {
            (Some(done), _) => done.at > t && self.created <= t,
            (None, Plan::Never) => self.created <= t,
            (None, Plan::At(at, ..)) => self.created <= t && *at > t,
        }
    }

    /// Renders the task as the API returns it at `now`.
    pub(crate) fn render(&self, source: Option<&SimSource>, now: DateTime<Utc>) -> TaskStatus {
        // A finished task shows the launch it had by its end (or by the PATCH that
        // ended it); a queued task patched to done never shows one.
        let visible_until = match &self.done {
            Some(d) => self.modified.map_or(d.at, |m| m.max(d.at)).min(now),
            None => now,
        };
        let launched = self.launch_at.filter(|l| *l <= visible_until);
        let (percent, progress) = self.progress(launched, now);
        TaskStatus {
            id: hex32(self.id),
            task_type: self.kind.task_type(),
            unique_name: self.unique_name(),
            description: self.kind.description().to_string(),
            parent_name: None,
            attributes: self.attributes(source),
            created: self.created,
            modified: Some(self.modified_at(launched)),
            launched,
            launcher: self.launcher(),
            completed: self.done.as_ref().map(|d| d.at),
            completion_status: self.done.as_ref().map(|d| d.status.clone()),
            messages: self.messages(source),
            returns: self.kind.returns(),
            progress: Some(progress),
            percent_complete: percent,
            target: source.map(|s| Target {
                id: s.id.clone(),
                target_type: Some("APPLICATION".to_string()),
                name: format!("{} [source]", s.name),
            }),
            task_definition_summary: Some(self.kind.definition()),
        }
    }

    fn unique_name(&self) -> String {
        match self.suffix {
            Some(s) => format!("{} - {}", self.kind.base_name(), uuid(s)),
            None => self.kind.base_name().to_string(),
        }
    }

    fn launcher(&self) -> String {
        match self.kind {
            TaskKind::EntitlementReset | TaskKind::Named(_) => {
                "2c9180835d2e5168015d32f890ca1581".to_string()
            }
            _ => "System".to_string(),
        }
    }

    fn modified_at(&self, launched: Option<DateTime<Utc>>) -> DateTime<Utc> {
        self.modified
            .or(self.done.as_ref().map(|d| d.at))
            .or(launched)
            .unwrap_or(self.created)
    }

    fn progress(&self, launched: Option<DateTime<Utc>>, now: DateTime<Utc>) -> (i64, String) {
        if self.done.is_some() {
            return (100, "Completed".to_string());
        }
        let Some(launched) = launched else {
            return (0, "Initializing...".to_string());
        };
        let elapsed = (now - launched).num_milliseconds().max(0);
        let percent = match &self.plan {
            Plan::At(at, ..) => {
                let total = (*at - launched).num_milliseconds().max(1);
                (elapsed.saturating_mul(100) / total).clamp(0, 99)
            }
            Plan::Never => {
                let cap = 10 + (self.id % 60) as i64;
                let nominal = self.kind.nominal_seconds() * 1000;
                (elapsed.saturating_mul(100) / nominal).clamp(0, cap)
            }
        };
        let processed = u64::from(self.size) * percent.unsigned_abs() / 100;
        (percent, format!("Processed {processed} of {}", self.size))
    }

    fn attributes(&self, source: Option<&SimSource>) -> Map<String, Value> {
        let mut a = Map::new();
        match self.kind {
            TaskKind::IdentityRefresh => {
                a.insert("identityCount".into(), json!(self.size));
            }
            TaskKind::AccountAggregation => {
                if let Some(s) = source {
                    a.insert("appId".into(), json!(s.id));
                    a.insert("optimizedAggregation".into(), json!("enabled"));
                }
                if self.done.is_some() {
                    for (attribute, value) in self.account_results() {
                        a.insert(attribute.into(), json!(value));
                    }
                }
            }
            _ => {
                if let Some(s) = source {
                    a.insert("appId".into(), json!(s.id));
                    a.insert("optimizedAggregation".into(), json!("enabled"));
                }
                if self.done.is_some() {
                    let changed = self.size / 50;
                    a.insert("total".into(), json!(self.size));
                    a.insert("created".into(), json!(changed / 2));
                    a.insert("updated".into(), json!(changed));
                    a.insert("deleted".into(), json!(changed / 4));
                }
            }
        }
        a
    }

    /// The numeric results of a finished account aggregation (the ones a real tenant
    /// fills; the rest of its 28 `returns` stay absent, as they do there).
    fn account_results(&self) -> Vec<(&'static str, u32)> {
        let size = self.size;
        let (total, created, updated, deleted) = match self.results {
            AggregationResults::Normal => (size, size / 100, size / 50, size / 400),
            AggregationResults::Empty => (0, 0, 0, 0),
            AggregationResults::MassDeletion => (size, 0, size / 50, size * 2 / 5),
        };
        vec![
            ("applications", 1),
            ("total", total),
            ("ignored", total / 1000),
            (
                "optimized",
                total.saturating_sub(created + updated + deleted),
            ),
            ("created", created),
            ("updated", updated),
            ("deleted", deleted),
            ("managerChanges", total / 500),
            ("policyViolations", 0),
        ]
    }

    fn messages(&self, source: Option<&SimSource>) -> Vec<TaskStatusMessage> {
        match self.done.as_ref().map(|d| &d.messages) {
            None => Vec::new(),
            Some(Messages::Explicit(m)) => m.clone(),
            Some(Messages::Of(outcome)) => outcome_messages(*outcome, self, source),
        }
    }
}

fn outcome_messages(
    outcome: Outcome,
    task: &SimTask,
    source: Option<&SimSource>,
) -> Vec<TaskStatusMessage> {
    let name = source.map_or("the tenant", |s| s.name.as_str());
    match outcome {
        Outcome::Success => vec![],
        Outcome::Warning => vec![message(
            "WARN",
            "sailpoint.task.warning.uncorrelatedAccounts",
            &format!(
                "{} accounts of {name} could not be correlated",
                1 + task.size / 100
            ),
        )],
        Outcome::Error => vec![message(
            "ERROR",
            "sailpoint.connector.error",
            &format!("Error connecting to {name}: java.net.ConnectException: Connection refused"),
        )],
        Outcome::TempError => vec![
            message(
                "WARN",
                "sailpoint.task.retry",
                "The task will be retried after a temporary failure",
            ),
            message(
                "ERROR",
                "sailpoint.connector.timeout",
                &format!("Timed out waiting for {name} to respond"),
            ),
        ],
        Outcome::Terminated => vec![message(
            "WARN",
            "sailpoint.task.terminated",
            "The task was terminated before it finished",
        )],
        Outcome::Blocked => vec![message(
            "ERROR",
            "sailpoint.aggregation.already.running",
            &format!(
                "An aggregation of {name} is already running; it must finish before a new one can start"
            ),
        )],
    }
}

/// A task message in `en-US`.
pub(crate) fn message(level: &str, key: &str, text: &str) -> TaskStatusMessage {
    TaskStatusMessage {
        level: level.to_string(),
        localized_text: Some(LocalizedMessage {
            locale: "en-US".to_string(),
            message: text.to_string(),
        }),
        key: key.to_string(),
        parameters: Some(vec![]),
    }
}

/// A 32-hex id.
pub(crate) fn hex32(id: u128) -> String {
    format!("{id:032x}")
}

/// Parses a 32-hex id; anything else cannot name a task.
pub(crate) fn parse_hex32(s: &str) -> Option<u128> {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u128::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// A UUID-shaped rendering of a 128-bit value.
pub(crate) fn uuid(v: u128) -> String {
    let h = hex32(v);
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default().to_string();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// A task record paired with its source, as the filter sees it.
pub(crate) struct FilterView<'a> {
    pub task: &'a SimTask,
    pub source: Option<&'a SimSource>,
}

impl Filterable for FilterView<'_> {
    fn id(&self) -> String {
        hex32(self.task.id)
    }

    fn source_ids(&self) -> Vec<&str> {
        self.source.map(|s| s.id.as_str()).into_iter().collect()
    }

    fn completion_status(&self) -> Option<CompletionStatus> {
        self.task.done.as_ref().map(|d| d.status.clone())
    }

    fn kind(&self) -> Option<&'static str> {
        self.task.kind.filter_kind()
    }
}
