//! Why a `tasks` command failed, and the exit code each reason maps to.
//!
//! The operator (or a script) must be able to tell "you typed it wrong" (2) from "the
//! tenant said no or could not be reached" (1), so every failure is classified here once.

use crate::config::ConfigError;
use crate::sailpoint::ApiError;
use crate::sailpoint::operation;

/// A failed `tasks` command.
#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    /// The command line or the tenant selection does not make sense.
    #[error("{0}")]
    Usage(String),
    /// The configuration file is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The API or the network failed (after the client's retries).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The command refused to act, e.g. completing a task that is no longer pending.
    #[error("{0}")]
    Refused(String),
    /// Standard output could not be written.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl TasksError {
    /// The process exit code: 2 for usage and configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            TasksError::Usage(_) | TasksError::Config(_) => super::super::EXIT_USAGE,
            TasksError::Api(_) | TasksError::Refused(_) | TasksError::Output(_) => {
                super::super::EXIT_FAILURE
            }
        }
    }

    /// A hint for the errors operators hit most, printed after the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            TasksError::Api(ApiError::Status {
                operation: operation::UPDATE_TASK_STATUS,
                status: 403,
                ..
            }) => Some(
                "updating a task needs a user-context token: a personal access token with \
                 idn:task-management:write (API-client tokens are refused with 403)",
            ),
            TasksError::Api(ApiError::Auth { .. }) => {
                Some("check the client id and secret (and the token URL)")
            }
            TasksError::Config(ConfigError::File { .. }) => Some(
                "name the file with --config.file, or give --base-url and --client-id \
                 with the secret in SAILPOINT_CLIENT_SECRET",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_separate_usage_from_failures() {
        assert_eq!(TasksError::Usage("x".into()).exit_code(), 2);
        let config = ConfigError::Parse("bad".into());
        assert_eq!(TasksError::Config(config).exit_code(), 2);
        let api = ApiError::from_response("getTaskStatus", 404, b"");
        assert_eq!(TasksError::Api(api).exit_code(), 1);
        assert_eq!(TasksError::Refused("no".into()).exit_code(), 1);
    }

    #[test]
    fn a_forbidden_patch_explains_the_token_kind() {
        let err = TasksError::Api(ApiError::from_response("updateTaskStatus", 403, b""));
        assert!(err.hint().unwrap().contains("personal access token"));
        let err = TasksError::Api(ApiError::from_response("getTaskStatus", 403, b""));
        assert_eq!(err.hint(), None);
    }
}
