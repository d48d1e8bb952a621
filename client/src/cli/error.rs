//! The CLI's error: what failed, in words an operator can act on, and an exit code.

use crate::error::Error;

/// Why a client subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The cluster could not be reached at all.
    #[error("{0}")]
    Unreachable(Error),
    /// The cluster answered, and the answer was a failure.
    #[error("{0}")]
    Client(Error),
    /// What the user typed cannot work (a malformed value, a missing flag).
    #[error("{0}")]
    Usage(String),
    /// The operation ran and failed in a way that is not a single client error (e.g. some
    /// records were not delivered); the message says what happened.
    #[error("{0}")]
    Failed(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// stdout was closed by its reader (`spate consume … | head`): not a failure.
    #[error("stdout closed")]
    BrokenPipe,
}

impl CliError {
    /// 1 for a failed operation, 2 for a usage error (as clap's own), 3 when no broker could
    /// be reached, so a script can tell "retry later" from "fix the command".
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable(_) => 3,
            CliError::Usage(_) => 2,
            CliError::Client(_) | CliError::Failed(_) | CliError::Io { .. } => 1,
            CliError::BrokenPipe => 0,
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> CliError {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::BrokenPipe;
        }
        CliError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> CliError {
        match error {
            Error::Connect { .. } | Error::NoBrokerReachable { .. } => CliError::Unreachable(error),
            other => CliError::Client(other),
        }
    }
}

/// Parses `key=value`, as `--config` and `--header` take them.
pub fn key_value(text: &str, flag: &str, example: &str) -> Result<(String, String), CliError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(CliError::Usage(format!(
            "{flag} {text:?} is not key=value (e.g. {flag} {example})"
        ))),
    }
}
