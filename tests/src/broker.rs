//! The broker under test: a real `spate serve` child process.
//!
//! Each [`Broker`] owns a temporary data directory and listens on ephemeral ports, so tests run
//! in parallel processes without colliding. It is stopped on drop (SIGTERM, then SIGKILL if it
//! does not exit in time). [`Broker::kill9`] and [`Broker::restart`] keep the data directory, which
//! is what the durability tests need. The broker's stderr goes to a file whose tail is printed
//! when startup fails, and which a test can read with [`Broker::log_tail`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::HarnessError;
use crate::process_run::{STDERR_TAIL_BYTES, tail_text};
use crate::workspace::spate_binary;

/// How long a debug build may take to recover its data and print its listening line. Recovery of
/// a few hundred MB in a debug build on a loaded 2-core machine stays well inside this.
const READY_TIMEOUT_MS: u64 = 60_000;

/// How long a SIGTERM'd broker may take to answer in-flight requests and flush before SIGKILL.
const SHUTDOWN_TIMEOUT_MS: u64 = 15_000;

/// How long a restart on the same ports keeps retrying while the old sockets linger.
const SAME_PORT_REBIND_TIMEOUT_MS: u64 = 10_000;

/// A bound on any one HTTP exchange with the admin endpoint.
const ADMIN_HTTP_TIMEOUT_MS: u64 = 5_000;

/// The prefix of the one stdout line that says where the broker listens.
const LISTENING_PREFIX: &str = "spate listening ";

/// Extra settings for a broker; the default is `spate serve` with nothing but temp dirs and ports.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// `--num-partitions`: partitions of an auto-created topic.
    pub num_partitions: Option<u32>,
    /// `--cores`: shard count.
    pub cores: Option<u32>,
    /// Further raw arguments after `serve`.
    pub extra_args: Vec<String>,
    /// Extra environment variables (`SPATE_*`).
    pub env: Vec<(String, String)>,
    /// A binary to run instead of [`spate_binary`]'s; for the harness's own tests.
    pub binary: Option<PathBuf>,
}

/// A running `spate serve` process.
pub struct Broker {
    child: Option<Child>,
    options: BrokerOptions,
    data_dir: TempDir,
    log_dir: TempDir,
    kafka_addr: SocketAddr,
    admin_addr: SocketAddr,
    start_count: u32,
}

impl Broker {
    /// Starts a broker with default options and waits until it prints its listening line.
    pub fn start() -> Result<Broker, HarnessError> {
        Broker::start_with(BrokerOptions::default())
    }

    /// Starts a broker with `options`.
    pub fn start_with(options: BrokerOptions) -> Result<Broker, HarnessError> {
        let data_dir = tempfile::Builder::new()
            .prefix("spate-data-")
            .tempdir()
            .map_err(|e| HarnessError::io("create data dir", e))?;
        let log_dir = tempfile::Builder::new()
            .prefix("spate-log-")
            .tempdir()
            .map_err(|e| HarnessError::io("create log dir", e))?;
        let unbound: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut broker = Broker {
            child: None,
            options,
            data_dir,
            log_dir,
            kafka_addr: unbound,
            admin_addr: unbound,
            start_count: 0,
        };
        broker.launch(None)?;
        Ok(broker)
    }

    /// The Kafka bootstrap address, `127.0.0.1:PORT`, for clients.
    pub fn bootstrap(&self) -> String {
        self.kafka_addr.to_string()
    }

    /// The Kafka listener's socket address.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka_addr
    }

    /// The admin HTTP listener's socket address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The data directory, which survives [`Broker::kill9`] and [`Broker::restart`].
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the broker with SIGKILL, as a crash or power cut would, and reaps it.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| HarnessError::io("SIGKILL broker", e))?;
            child
                .wait()
                .map_err(|e| HarnessError::io("reap broker", e))?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status, or `None` if the broker
    /// had to be SIGKILLed after [`SHUTDOWN_TIMEOUT_MS`].
    pub fn terminate(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        // The pid is our unreaped child's, so it cannot have been reused by another process.
        send_sigterm(child.id());
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_TIMEOUT_MS);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(None);
                }
            }
        }
    }

    /// Starts the broker again on the same data directory (after [`Broker::kill9`] or
    /// [`Broker::terminate`]). Ports are ephemeral, so [`Broker::bootstrap`] changes.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.launch(None)
    }

    /// Like [`Broker::restart`], but on the ports it had, so clients that are still running
    /// reconnect to it as they would to a restarted Kafka broker. The old sockets may linger
    /// briefly, so binding is retried for up to [`SAME_PORT_REBIND_TIMEOUT_MS`].
    pub fn restart_on_same_ports(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            self.terminate()?;
        }
        let ports = (self.kafka_addr, self.admin_addr);
        let deadline = Instant::now() + Duration::from_millis(SAME_PORT_REBIND_TIMEOUT_MS);
        loop {
            match self.launch(Some(ports)) {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The last `limit_bytes` of everything the broker wrote to stderr, across restarts.
    pub fn log_tail(&self, limit_bytes: usize) -> String {
        let mut bytes = Vec::new();
        for index in 1..=self.start_count {
            if let Ok(mut file) = File::open(self.stderr_path(index)) {
                let _ = writeln!(bytes, "=== start #{index} ===");
                let _ = file.read_to_end(&mut bytes);
            }
        }
        tail_text(&bytes, limit_bytes)
    }

    /// The first line of the broker's stderr (across restarts) that reports a Rust panic, if any.
    /// A panic caught by the runtime keeps the process alive, but one reachable from network or
    /// disk bytes is still a bug, so hostile-input tests check for it.
    pub fn first_panic_line(&self) -> Option<String> {
        let log = self.log_tail(usize::MAX);
        log.lines()
            .find(|line| line.contains("panicked at"))
            .map(str::to_string)
    }

    /// `GET /health` on the admin listener; returns the HTTP status code.
    pub fn admin_health_status(&self) -> Result<u16, HarnessError> {
        http_get_status(self.admin_addr, "/health")
    }

    fn stderr_path(&self, start_index: u32) -> PathBuf {
        self.log_dir
            .path()
            .join(format!("stderr-{start_index}.log"))
    }

    fn launch(&mut self, ports: Option<(SocketAddr, SocketAddr)>) -> Result<(), HarnessError> {
        self.start_count += 1;
        let stderr_path = self.stderr_path(self.start_count);
        let stderr_file =
            File::create(&stderr_path).map_err(|e| HarnessError::io("create stderr log", e))?;
        let binary = match &self.options.binary {
            Some(binary) => binary.clone(),
            None => spate_binary()?,
        };
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--listen")
            .arg(ports.map_or("127.0.0.1:0".to_string(), |(kafka, _)| kafka.to_string()))
            .arg("--admin-listen")
            .arg(ports.map_or("127.0.0.1:0".to_string(), |(_, admin)| admin.to_string()));
        if let Some(count) = self.options.num_partitions {
            command.arg("--num-partitions").arg(count.to_string());
        }
        if let Some(cores) = self.options.cores {
            command.arg("--cores").arg(cores.to_string());
        }
        command.args(&self.options.extra_args);
        for (key, value) in &self.options.env {
            command.env(key, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {}", binary.display()), e))?;
        let lines = forward_stdout(&mut child, self.log_dir.path(), self.start_count);
        self.child = Some(child);
        match self.await_listening_line(&lines) {
            Ok((kafka_addr, admin_addr)) => {
                self.kafka_addr = kafka_addr;
                self.admin_addr = admin_addr;
                Ok(())
            }
            Err(reason) => {
                let _ = self.kill9();
                Err(HarnessError::BrokerNotReady {
                    reason,
                    stderr_tail: self.log_tail(STDERR_TAIL_BYTES),
                })
            }
        }
    }

    fn await_listening_line(
        &mut self,
        lines: &mpsc::Receiver<String>,
    ) -> Result<(SocketAddr, SocketAddr), String> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(addrs) = parse_listening_line(&line) {
                        return Ok(addrs);
                    }
                    if line.starts_with(LISTENING_PREFIX) {
                        return Err(format!("unparseable listening line: {line:?}"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("stdout closed before the listening line".to_string());
                }
            }
            if !self.is_running() {
                return Err("process exited before printing its listening line".to_string());
            }
            if Instant::now() >= deadline {
                return Err(format!("no listening line within {READY_TIMEOUT_MS} ms"));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Parses `spate listening kafka=127.0.0.1:PORT admin=127.0.0.1:PORT`.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix(LISTENING_PREFIX)?;
    let mut kafka = None;
    let mut admin = None;
    for field in rest.split_whitespace() {
        if let Some(value) = field.strip_prefix("kafka=") {
            kafka = value.parse().ok();
        } else if let Some(value) = field.strip_prefix("admin=") {
            admin = value.parse().ok();
        }
    }
    Some((kafka?, admin?))
}

/// Reads the child's stdout on a thread: every line goes to the returned channel (for the
/// listening line) and to `stdout-N.log`, so the pipe never fills and blocks the broker.
fn forward_stdout(child: &mut Child, log_dir: &Path, start_index: u32) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    let stdout = child.stdout.take();
    let mut log = File::create(log_dir.join(format!("stdout-{start_index}.log"))).ok();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                // The receiver is gone once the broker is ready; keep draining regardless.
                let _ = sender.send(line);
            }
        });
    }
    receiver
}

/// SIGTERM through `kill(1)`: std has no portable way to send it, and this keeps the harness
/// free of `unsafe`. A failure leaves the process running, which `terminate` then SIGKILLs.
fn send_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A minimal HTTP/1.0 GET returning the status code; enough for `/health`.
pub fn http_get_status(addr: SocketAddr, path: &str) -> Result<u16, HarnessError> {
    let timeout = Duration::from_millis(ADMIN_HTTP_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| HarnessError::io(format!("connect admin {addr}"), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| HarnessError::io("set admin read timeout", e))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| HarnessError::io("send admin request", e))?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(|e| HarnessError::io("read admin status line", e))?;
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| HarnessError::MalformedResponse(format!("HTTP status line {status_line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_yields_both_addresses() {
        let (kafka, admin) =
            parse_listening_line("spate listening kafka=127.0.0.1:40001 admin=127.0.0.1:40002\n")
                .unwrap();
        assert_eq!(kafka, SocketAddr::from(([127, 0, 0, 1], 40001)));
        assert_eq!(admin, SocketAddr::from(([127, 0, 0, 1], 40002)));
    }

    #[test]
    fn listening_line_without_admin_or_with_other_text_is_rejected() {
        assert!(parse_listening_line("spate listening kafka=127.0.0.1:1").is_none());
        assert!(
            parse_listening_line("INFO starting kafka=127.0.0.1:1 admin=127.0.0.1:2").is_none()
        );
        assert!(parse_listening_line("spate listening kafka=nonsense admin=127.0.0.1:2").is_none());
    }

    #[test]
    fn broker_that_exits_before_its_listening_line_is_reported_not_ready() {
        let started = Instant::now();
        let result = Broker::start_with(BrokerOptions {
            binary: Some(PathBuf::from("/bin/false")),
            ..BrokerOptions::default()
        });
        assert!(
            matches!(result, Err(HarnessError::BrokerNotReady { .. })),
            "{:?}",
            result.err()
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
