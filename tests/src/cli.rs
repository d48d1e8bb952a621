//! Running the `spate` binary's client subcommands (`topic`, `produce`, `consume`, `group`)
//! the way a user's shell does: a child process, stdin fed in, stdout and stderr captured.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::workspace::spate_binary;
use crate::{HarnessError, ProcessOutput, run_with_timeout};

/// A bound on one CLI command against a local broker, debug build, loaded machine.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// `spate` with `SPATE_BOOTSTRAP` pointing at `bootstrap` and no other `SPATE_*` variable
/// inherited, so a developer's environment cannot change what a test runs.
pub fn spate_command(bootstrap: &str) -> Result<Command, HarnessError> {
    let mut command = Command::new(spate_binary()?);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPATE_") {
            command.env_remove(name);
        }
    }
    command.env("SPATE_BOOTSTRAP", bootstrap);
    Ok(command)
}

/// Runs `spate <args…>` against `bootstrap` to completion, feeding `stdin`.
pub fn run_spate(
    bootstrap: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<ProcessOutput, HarnessError> {
    let mut command = spate_command(bootstrap)?;
    command.args(args);
    run_with_timeout(&mut command, stdin, CLI_TIMEOUT)
}

/// A `spate` command left running (e.g. `consume` following a topic), whose stdout lines
/// arrive on a channel as it prints them. Killed on drop.
pub struct RunningSpate {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl RunningSpate {
    pub fn start(bootstrap: &str, args: &[&str]) -> Result<RunningSpate, HarnessError> {
        let mut command = spate_command(bootstrap)?;
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::io("spawn spate", e))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(RunningSpate { child, lines })
    }

    /// The next line printed within `timeout`, if any.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Every line printed until `deadline` or until `done` says enough.
    pub fn lines_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(line) = self.next_line(left) {
                seen.push(line);
            }
        }
        seen
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RunningSpate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
