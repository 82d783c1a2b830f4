//! SailPoint operationIds, used in errors and as the `operation` label. A module of its
//! own so that the client and the transport both name operations without depending on
//! each other.

/// `GET /task-status/pending-tasks`.
pub const GET_PENDING_TASKS: &str = "getPendingTasks";
/// `HEAD /task-status/pending-tasks` (the count only).
pub const GET_PENDING_TASK_HEADERS: &str = "getPendingTaskHeaders";
/// `GET /task-status`.
pub const GET_TASK_STATUS_LIST: &str = "getTaskStatusList";
/// `GET /task-status/{id}`.
pub const GET_TASK_STATUS: &str = "getTaskStatus";
/// `PATCH /task-status/{id}`.
pub const UPDATE_TASK_STATUS: &str = "updateTaskStatus";
/// `POST /oauth/token` (not an API operation, but labelled alike).
pub const TOKEN: &str = "token";
