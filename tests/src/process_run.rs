//! Running a client tool (kcat, Python) as a child process with a hard time limit.
//!
//! A client that hangs on a broker bug must fail its test, not stall the suite, so every child
//! gets a deadline and is killed when it passes. Output is collected on threads so a chatty child
//! cannot block on a full pipe.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::HarnessError;

/// How often we look whether a child has exited. Short enough not to add visible latency.
const EXIT_POLL_INTERVAL_MS: u64 = 20;

/// How much of a child's stderr goes into an error message: enough for a Python traceback.
pub const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// What a finished child left behind.
#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl ProcessOutput {
    /// stdout as text, lossily: for assertions and messages.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text, lossily.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A failure description with both streams' tails, for `assert!` messages.
    pub fn describe(&self) -> String {
        format!(
            "exit: {}, elapsed: {:?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.status,
            self.elapsed,
            tail_text(&self.stdout, STDERR_TAIL_BYTES),
            tail_text(&self.stderr, STDERR_TAIL_BYTES)
        )
    }
}

/// The last `limit_bytes` of `bytes`, as text.
pub fn tail_text(bytes: &[u8], limit_bytes: usize) -> String {
    let start = bytes.len().saturating_sub(limit_bytes);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Runs `command` to completion, feeding it `stdin`, and kills it if it outlives `timeout`.
pub fn run_with_timeout(
    command: &mut Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<ProcessOutput, HarnessError> {
    let description = format!("{command:?}");
    let started = Instant::now();
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io(format!("spawn {description}"), e))?;

    let stdin_writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
            // A child that exits early closes the pipe; that is its exit status's story to tell.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let stdout_reader = spawn_reader(child.stdout.take());
    let stderr_reader = spawn_reader(child.stderr.take());

    let status = wait_until(&mut child, started + timeout)
        .map_err(|e| HarnessError::io(format!("wait for {description}"), e))?;
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let stdout = join_reader(stdout_reader);
    let stderr = join_reader(stderr_reader);
    match status {
        Some(status) => Ok(ProcessOutput {
            status,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        }),
        None => Err(HarnessError::Timeout {
            command: description,
            timeout_ms: timeout.as_millis(),
            stderr_tail: tail_text(&stderr, STDERR_TAIL_BYTES),
        }),
    }
}

/// Waits for `child` until `deadline`; kills and reaps it if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(EXIT_POLL_INTERVAL_MS));
    }
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

fn join_reader(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}
