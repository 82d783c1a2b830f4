//! `PATCH /task-status/{id}`: the JSON Patch operations the API accepts (`replace`/`add`
//! of `/completionStatus` and `/completed`) and their validation.

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::Tenant;
use crate::task::{Done, Messages, SimTask};
use sailpoint_model::{CompletionStatus, JsonPatchOperation, TaskStatus, parse_timestamp};

/// Why a PATCH was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PatchError {
    #[error("task not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

impl Tenant {
    /// Applies a JSON Patch (`replace`/`add` of `/completionStatus` and `/completed`).
    pub(crate) fn patch(
        &mut self,
        id: &str,
        ops: &[JsonPatchOperation],
        now: DateTime<Utc>,
    ) -> Result<TaskStatus, PatchError> {
        let slot = self.slot_of(id).ok_or(PatchError::NotFound)?;
        let task = self
            .slots
            .get_mut(slot as usize)
            .ok_or(PatchError::NotFound)?;
        let (status, completed) = patched_fields(task, ops)?;
        let messages = match task.done.take() {
            Some(done) => done.messages,
            None => Messages::Explicit(Vec::new()),
        };
        task.done = Some(Done {
            at: completed.unwrap_or(now),
            status,
            messages,
        });
        task.modified = Some(now);
        self.pending.retain(|&s| s != slot);
        self.render(slot, now).ok_or(PatchError::NotFound)
    }
}

/// Validates a patch against a task and returns the resulting status and completion time.
fn patched_fields(
    task: &SimTask,
    ops: &[JsonPatchOperation],
) -> Result<(CompletionStatus, Option<DateTime<Utc>>), PatchError> {
    if ops.is_empty() {
        return Err(PatchError::Invalid("the patch is empty".into()));
    }
    let mut status = task.done.as_ref().map(|d| d.status.clone());
    let mut completed = task.done.as_ref().map(|d| d.at);
    for op in ops {
        if op.op != "replace" && op.op != "add" {
            return Err(PatchError::Invalid(format!(
                "operation '{}' is not supported; use replace or add",
                op.op
            )));
        }
        let text = op.value.as_ref().and_then(|v| v.as_str());
        match op.path.as_str() {
            "/completionStatus" => {
                let parsed = text.map(CompletionStatus::from);
                match parsed {
                    Some(CompletionStatus::Other(v)) => {
                        return Err(PatchError::Invalid(format!(
                            "'{v}' is not a completion status (SUCCESS, WARNING, ERROR, TERMINATED, TEMPERROR)"
                        )));
                    }
                    Some(s) => status = Some(s),
                    None => {
                        return Err(PatchError::Invalid(
                            "/completionStatus needs a string value".into(),
                        ));
                    }
                }
            }
            "/completed" => {
                let t = text.and_then(parse_timestamp).ok_or_else(|| {
                    PatchError::Invalid("/completed needs a date-time string value".into())
                })?;
                completed = Some(t);
            }
            other => {
                return Err(PatchError::Invalid(format!(
                    "path '{other}' cannot be patched; only /completionStatus and /completed can"
                )));
            }
        }
    }
    let status = status
        .ok_or_else(|| PatchError::Invalid("a completed task needs a /completionStatus".into()))?;
    Ok((status, completed))
}
