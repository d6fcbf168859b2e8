//! The one place where errors become messages and exit codes.

use std::process::ExitCode;

use crate::controller::ControllerError;
use crate::store::StoreError;
use crate::swarm::SwarmError;

/// Exit codes a script can rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done.
    Success = 0,
    /// Failed, or (for `validate`, `diff`, `wait`) the answer is "no".
    Failure = 1,
    /// Bad usage, unreadable input, or a service that cannot be reached.
    Usage = 2,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s as u8)
    }
}

/// An error at the edge: a message for a person and the exit code for a script.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The message, one line where possible.
    pub message: String,
    /// The exit status.
    pub status: ExitStatus,
}

impl CliError {
    /// A failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status: ExitStatus::Failure,
        }
    }

    /// Bad usage (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status: ExitStatus::Usage,
        }
    }

    /// An I/O failure on `what` (exit 2).
    pub fn io(what: &str, e: std::io::Error) -> Self {
        CliError::usage(format!("{what}: {e}"))
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Kv(crate::store::KvError::Unavailable { .. }) => ExitStatus::Usage,
            _ => ExitStatus::Failure,
        };
        CliError {
            message: e.to_string(),
            status,
        }
    }
}

impl From<SwarmError> for CliError {
    fn from(e: SwarmError) -> Self {
        let status = match &e {
            SwarmError::Unavailable { .. } => ExitStatus::Usage,
            _ => ExitStatus::Failure,
        };
        CliError {
            message: e.to_string(),
            status,
        }
    }
}

impl From<ControllerError> for CliError {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::Store(e) => e.into(),
            ControllerError::Swarm(e) => e.into(),
            e @ ControllerError::AnotherLeader { .. } => CliError::usage(e.to_string()),
            other => CliError::failure(other.to_string()),
        }
    }
}

/// Prints the error on stderr and returns its exit code.
pub fn report(e: &CliError) -> ExitCode {
    // An empty message is a quiet end (stdout closed by the reader, e.g. `| head`).
    // `note` and not `eprintln!`: a closed stderr must not turn an error into a panic.
    if !e.message.is_empty() {
        super::output::note(format_args!("error: {}", e.message));
    }
    e.status.into()
}
