//! The one place where errors become messages and exit codes.

use std::process::ExitCode;

use crate::controller::ControllerError;
use crate::store::{KvError, StoreError};
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
        match &e {
            StoreError::Kv(KvError::Unavailable { endpoints, message }) => {
                CliError::usage(format!(
                    "etcd at {endpoints} is unreachable: {}",
                    transport_cause(message)
                ))
            }
            _ => CliError::failure(e.to_string()),
        }
    }
}

impl CliError {
    /// A failure to connect to etcd: exit 2 whatever the cause (unreachable, not etcd at
    /// all, credentials refused), since no command could start, as documented.
    pub fn etcd_connect(e: StoreError, endpoints: &[String]) -> Self {
        match e {
            StoreError::Kv(KvError::Rejected(message)) => CliError::usage(format!(
                "etcd at {} refused the connection: {} (is it etcd's client port, and are the \
                 credentials right?)",
                endpoints.join(","),
                if message.is_empty() {
                    "no reason given"
                } else {
                    &message
                }
            )),
            other => {
                let mut e = CliError::from(other);
                e.status = ExitStatus::Usage;
                e
            }
        }
    }
}

/// What went wrong on the way to etcd, in a few words, from the gRPC library's message
/// (which carries its whole debug structure).
fn transport_cause(message: &str) -> String {
    const KNOWN: [(&str, &str); 9] = [
        ("ConnectionRefused", "connection refused"),
        (
            "connection closed",
            "the endpoint closed the connection (not etcd's client port?)",
        ),
        (
            "operation was canceled",
            "the endpoint closed the connection (not etcd's client port?)",
        ),
        ("dns error", "the host name does not resolve"),
        ("failed to lookup address", "the host name does not resolve"),
        ("HostUnreachable", "no route to the host"),
        ("NetworkUnreachable", "the network is unreachable"),
        ("TimedOut", "no answer (timed out)"),
        (
            "transport error",
            "no gRPC answer (not etcd's client port, or does it want TLS?)",
        ),
    ];
    if let Some((_, cause)) = KNOWN.iter().find(|(needle, _)| message.contains(needle)) {
        return (*cause).to_string();
    }
    if let Some(at) = message.find("invalid peer certificate") {
        let rest = &message[at..];
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        return format!("TLS: {}", &rest[..end]);
    }
    // `... message: "tcp connect error", source: ...`: the message alone.
    if let Some((_, rest)) = message.split_once("message: \"")
        && let Some((said, _)) = rest.split_once('"')
        && !said.is_empty()
    {
        return said.to_string();
    }
    message.lines().next().unwrap_or(message).to_string()
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
