//! The broker under test: a real `spate serve` child process.
//!
//! Each [`Broker`] owns a temporary data directory and listens on ephemeral ports, so tests run
//! in parallel processes without colliding. It is stopped on drop (SIGTERM, then SIGKILL if it
//! does not exit in time). [`Broker::kill9`] and [`Broker::restart`] keep the data directory, which
//! is what the durability tests need. The broker's stderr goes to a file whose tail is printed
//! when startup fails, and which a test can read with [`Broker::log_tail`].
//!
//! Starting is two steps, [`Broker::spawn_with`] and [`Broker::await_ready`], because a node of a
//! cluster prints its listening line only once a majority of the controller quorum runs: a
//! [`crate::Cluster`] spawns every node first and then waits for each. [`Broker::start_with`] does
//! both for a single node.

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

/// The largest admin answer read; `/cluster` of a small test cluster is a few KB.
const ADMIN_ANSWER_BYTES_MAX: u64 = 16 * 1024 * 1024;

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

/// What a listening line says: the Kafka listener (absent on a controller-only node), the admin
/// listener, and the cluster (QUIC) listener of a cluster node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListeningLine {
    pub kafka: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub cluster: Option<SocketAddr>,
}

/// A running `spate serve` process.
pub struct Broker {
    child: Option<Child>,
    options: BrokerOptions,
    data_dir: TempDir,
    log_dir: TempDir,
    kafka_addr: SocketAddr,
    admin_addr: SocketAddr,
    cluster_addr: Option<SocketAddr>,
    start_count: u32,
    /// The stdout lines of a process spawned but not yet awaited.
    pending_lines: Option<mpsc::Receiver<String>>,
}

impl Broker {
    /// Starts a broker with default options and waits until it prints its listening line.
    pub fn start() -> Result<Broker, HarnessError> {
        Broker::start_with(BrokerOptions::default())
    }

    /// Starts a broker with `options` and waits until it prints its listening line.
    pub fn start_with(options: BrokerOptions) -> Result<Broker, HarnessError> {
        let mut broker = Broker::spawn_with(options)?;
        broker.await_ready()?;
        Ok(broker)
    }

    /// Starts the process without waiting for its listening line; [`Broker::await_ready`] waits.
    /// Until then the addresses are `127.0.0.1:0`.
    pub fn spawn_with(options: BrokerOptions) -> Result<Broker, HarnessError> {
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
            cluster_addr: None,
            start_count: 0,
            pending_lines: None,
        };
        broker.spawn(None)?;
        Ok(broker)
    }

    /// Waits (up to [`READY_TIMEOUT_MS`]) for the listening line of the process last spawned.
    /// On failure the process is killed and the error carries its stderr's tail.
    pub fn await_ready(&mut self) -> Result<(), HarnessError> {
        self.await_ready_within(Duration::from_millis(READY_TIMEOUT_MS))
    }

    /// Like [`Broker::await_ready`], with a deadline of `timeout`: for tests that expect a node
    /// never to become ready.
    pub fn await_ready_within(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let Some(lines) = self.pending_lines.take() else {
            return Err(HarnessError::BrokerNotReady {
                reason: "no process was spawned, or it was already awaited".to_string(),
                stderr_tail: self.log_tail(STDERR_TAIL_BYTES),
            });
        };
        match self.await_listening_line(&lines, timeout) {
            Ok(line) => {
                self.kafka_addr = line
                    .kafka
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
                self.admin_addr = line.admin;
                self.cluster_addr = line.cluster;
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

    /// The cluster (QUIC, UDP) listener's address, for a cluster node.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.cluster_addr
    }

    /// Whether the listening line named a Kafka listener (a controller-only node has none).
    pub fn has_kafka_listener(&self) -> bool {
        self.kafka_addr.port() != 0
    }

    /// The options the next (re)start uses; a test may change them between starts, e.g. to
    /// restart on the same data directory as another node.
    pub fn options_mut(&mut self) -> &mut BrokerOptions {
        &mut self.options
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
        self.pending_lines = None;
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

    /// Stops the process with SIGSTOP, as a long GC pause or a hung host would: its sockets stay
    /// open but it answers nothing until [`Broker::resume`].
    pub fn pause(&mut self) -> Result<(), HarnessError> {
        self.signal("STOP")
    }

    /// Continues a process stopped by [`Broker::pause`] (SIGCONT).
    pub fn resume(&mut self) -> Result<(), HarnessError> {
        self.signal("CONT")
    }

    fn signal(&mut self, name: &str) -> Result<(), HarnessError> {
        let Some(pid) = self.pid() else {
            return Err(HarnessError::io(
                format!("SIG{name} broker"),
                std::io::Error::new(std::io::ErrorKind::NotFound, "the broker is not running"),
            ));
        };
        if send_signal(pid, name) {
            Ok(())
        } else {
            Err(HarnessError::io(
                format!("SIG{name} broker {pid}"),
                std::io::Error::other("kill(1) failed"),
            ))
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status, or `None` if the broker
    /// had to be SIGKILLed after [`SHUTDOWN_TIMEOUT_MS`].
    pub fn terminate(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        self.terminate_within(Duration::from_millis(SHUTDOWN_TIMEOUT_MS))
    }

    /// Like [`Broker::terminate`], SIGKILLing after `timeout`: a cluster node's controlled
    /// shutdown may wait for the controller longer than a single node's.
    pub fn terminate_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, HarnessError> {
        self.pending_lines = None;
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        // The pid is our unreaped child's, so it cannot have been reused by another process.
        send_signal(child.id(), "TERM");
        let deadline = Instant::now() + timeout;
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
    /// [`Broker::terminate`]) and waits for its listening line. Ports are ephemeral, so
    /// [`Broker::bootstrap`] changes.
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

    /// Spawns the process again on the same data directory and ports without waiting for its
    /// listening line ([`Broker::await_ready`] does): for restarting several nodes of a cluster
    /// at once, none of which gets ready before a majority runs. Unlike
    /// [`Broker::restart_on_same_ports`] it cannot retry a bind that fails: call it after the
    /// old process is gone (a SIGKILLed process's listeners are released when it is reaped).
    pub fn respawn_on_same_ports(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn(Some((self.kafka_addr, self.admin_addr)))
    }

    fn launch(&mut self, ports: Option<(SocketAddr, SocketAddr)>) -> Result<(), HarnessError> {
        self.spawn(ports)?;
        self.await_ready()
    }

    fn spawn(&mut self, ports: Option<(SocketAddr, SocketAddr)>) -> Result<(), HarnessError> {
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
        self.pending_lines = Some(lines);
        Ok(())
    }

    fn await_listening_line(
        &mut self,
        lines: &mpsc::Receiver<String>,
        timeout: Duration,
    ) -> Result<ListeningLine, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(listening) = parse_listening_fields(&line) {
                        return Ok(listening);
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
                return Err(format!(
                    "no listening line within {} ms",
                    timeout.as_millis()
                ));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Parses `spate listening kafka=127.0.0.1:PORT admin=127.0.0.1:PORT`; other fields (a cluster
/// node's `cluster=`) are ignored.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let listening = parse_listening_fields(line)?;
    Some((listening.kafka?, listening.admin))
}

/// Parses every address of a listening line. `admin=` is required; `kafka=` is absent on a
/// controller-only node and `cluster=` on a single node; unknown fields are ignored, but a known
/// one that does not parse makes the whole line unparseable.
pub fn parse_listening_fields(line: &str) -> Option<ListeningLine> {
    let rest = line.trim().strip_prefix(LISTENING_PREFIX)?;
    let mut kafka = None;
    let mut admin = None;
    let mut cluster = None;
    for field in rest.split_whitespace() {
        if let Some(value) = field.strip_prefix("kafka=") {
            kafka = Some(value.parse().ok()?);
        } else if let Some(value) = field.strip_prefix("admin=") {
            admin = Some(value.parse().ok()?);
        } else if let Some(value) = field.strip_prefix("cluster=") {
            cluster = Some(value.parse().ok()?);
        }
    }
    Some(ListeningLine {
        kafka,
        admin: admin?,
        cluster,
    })
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

/// A signal (`TERM`, `STOP`, `CONT`) through `kill(1)`: std has no portable way to send one, and
/// this keeps the harness free of `unsafe`. Returns whether `kill` succeeded; a failed SIGTERM
/// leaves the process running, which `terminate` then SIGKILLs.
fn send_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A minimal HTTP/1.0 GET returning the status code; enough for `/health`.
pub fn http_get_status(addr: SocketAddr, path: &str) -> Result<u16, HarnessError> {
    http_get(addr, path).map(|(status, _)| status)
}

/// A minimal HTTP/1.0 GET returning the status code and the body (the server closes the
/// connection after an HTTP/1.0 answer, so the body is everything after the headers).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), HarnessError> {
    let timeout = Duration::from_millis(ADMIN_HTTP_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| HarnessError::io(format!("connect admin {addr}"), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| HarnessError::io("set admin read timeout", e))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| HarnessError::io("send admin request", e))?;
    let mut answer = Vec::new();
    stream
        .take(ADMIN_ANSWER_BYTES_MAX)
        .read_to_end(&mut answer)
        .map_err(|e| HarnessError::io(format!("read admin answer to GET {path}"), e))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| HarnessError::MalformedResponse(format!("HTTP answer {answer:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| HarnessError::MalformedResponse(format!("HTTP head {head:?}")))?;
    Ok((status, body.to_string()))
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
    fn listening_line_of_a_cluster_node_names_its_cluster_listener() {
        let line =
            "spate listening kafka=127.0.0.1:40001 admin=127.0.0.1:40002 cluster=127.0.0.1:40003";
        let listening = parse_listening_fields(line).unwrap();
        assert_eq!(
            listening.cluster,
            Some(SocketAddr::from(([127, 0, 0, 1], 40003)))
        );
        assert_eq!(
            listening.kafka,
            Some(SocketAddr::from(([127, 0, 0, 1], 40001)))
        );
        assert!(
            parse_listening_line(line).is_some(),
            "unknown fields are ignored"
        );
        let controller_only =
            parse_listening_fields("spate listening admin=127.0.0.1:2 cluster=127.0.0.1:3")
                .unwrap();
        assert_eq!(controller_only.kafka, None);
        assert!(parse_listening_fields("spate listening admin=127.0.0.1:2 cluster=x").is_none());
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
