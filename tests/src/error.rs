//! The harness's one error type: what went wrong while starting, driving or stopping the broker
//! or a client. Test failures print it, so every variant says what to look at next.

use std::path::PathBuf;

/// Everything the harness can fail at. Each message names the file or command involved.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The `spate` binary was not where we looked.
    #[error(
        "spate binary not found at {0}: build it (`cargo build -p spate`) or set SPATE_BIN to its path"
    )]
    BinaryNotFound(PathBuf),
    /// Building the `spate` binary before the tests failed.
    #[error("`cargo build -p spate` failed (set SPATE_BIN to test a prebuilt binary):\n{0}")]
    BuildFailed(String),
    /// A client tool the tests drive is not installed.
    #[error("{tool} not found at {path}: run `scripts/install-test-deps.sh` first (CI does)")]
    ToolMissing { tool: &'static str, path: PathBuf },
    /// The broker exited or timed out before printing its listening line.
    #[error("broker did not become ready: {reason}\n--- broker stderr (tail) ---\n{stderr_tail}")]
    BrokerNotReady { reason: String, stderr_tail: String },
    /// A child process ran past its time limit and was killed.
    #[error("`{command}` timed out after {timeout_ms} ms\n--- stderr (tail) ---\n{stderr_tail}")]
    Timeout {
        command: String,
        timeout_ms: u128,
        stderr_tail: String,
    },
    /// A command the harness runs to set up (e.g. `spate cluster ca`) exited unsuccessfully.
    #[error("`{command}` failed\n{output}")]
    CommandFailed { command: String, output: String },
    /// A condition polled by the harness did not come true in time.
    #[error("timed out after {timeout_ms} ms waiting for {what}\n{details}")]
    WaitTimedOut {
        what: String,
        timeout_ms: u128,
        details: String,
    },
    /// The broker's answer on the wire was not what the protocol allows.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// An operating system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    /// Wraps an I/O error with what we were doing, because a bare `os error 111` helps nobody.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}
