//! The node processes: starting each as `spate serve`, reading the line it prints once it
//! serves, noticing one that exits, and stopping them all on Ctrl-C or SIGTERM.
//!
//! Blocking and polled (every [`POLL_INTERVAL_MS`]) rather than async: a handful of children
//! and a signal counter need no runtime, and the binary has no direct tokio dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use spate_server::cluster::certs::{CA_CERT_FILE, node_dns_name};

use super::dir::Ports;
use super::{DevArgs, HOST, LOG_FILE, io_failure, node_dir};
use crate::cluster::Failure;

/// How long stopping nodes get before SIGKILL: above [`CONTROLLED_SHUTDOWN_TIMEOUT_MS`] plus
/// the final flush, so a clean stop is never cut short.
const STOP_GRACE_MS: u64 = 30_000;
/// The nodes' controlled shutdown bound, unless the environment sets one. When the whole
/// cluster stops there is nowhere to move leaderships, and the last voter standing has no
/// quorum to record its shutdown, so the server's 30 s default would only delay Ctrl-C.
const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;
const _: () = assert!(CONTROLLED_SHUTDOWN_TIMEOUT_MS + 5_000 <= STOP_GRACE_MS);
/// How often the children are checked: well below what a person notices.
const POLL_INTERVAL_MS: u64 = 50;
/// A node's stdout carries one short line; anything longer is cut, so a runaway child
/// cannot grow our memory.
const STDOUT_LINE_BYTES_MAX: u64 = 64 * 1024;
/// Lines taken per poll, so a chatty node cannot keep the watcher from checking signals
/// and exits; the rest wait in the channel for the next poll.
const LINES_PER_POLL_MAX: usize = 64;
/// Shown when a node fails: enough for the error and what led to it.
const LOG_TAIL_LINES: usize = 20;
const LOG_TAIL_BYTES_MAX: u64 = 64 * 1024;

/// SIGINT and SIGTERM received so far; the signal handler only counts them.
static STOP_SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_stop_signal(_: libc::c_int) {
    STOP_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Counts SIGINT and SIGTERM instead of dying on them, so the nodes are stopped first.
/// Children get the default handlers back at exec.
pub(super) fn install_stop_handlers() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only adds to an atomic, which is async-signal-safe; `action` is
        // fully initialised (zeroed, then the mask emptied) before it is passed.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                count_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What a node printed once it served: `spate listening kafka=… admin=… cluster=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listening {
    kafka: String,
    pub(super) admin: String,
    cluster: String,
}

impl Listening {
    fn parse(line: &str) -> Option<Listening> {
        let rest = line.strip_prefix("spate listening ")?;
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        Some(Listening {
            kafka: field("kafka")?,
            admin: field("admin")?,
            cluster: field("cluster")?,
        })
    }
}

pub(super) struct Node {
    pub(super) id: i32,
    child: Child,
    pub(super) listening: Option<Listening>,
    status: Option<ExitStatus>,
}

/// Why watching the nodes ended.
pub(super) enum Stop {
    /// Ctrl-C or SIGTERM: the normal end.
    Signal,
    Exited {
        id: i32,
        status: ExitStatus,
    },
    /// The ready deadline passed.
    NotReady,
}

/// The running nodes. Dropping it kills any still running, so an early return leaves none.
pub(super) struct Cluster {
    pub(super) nodes: Vec<Node>,
    lines: Receiver<(i32, String)>,
}

impl Cluster {
    /// Starts every node before waiting for any: brokers serve only once the quorum has a
    /// leader, which needs a majority of the voters running.
    pub(super) fn start(
        exe: &Path,
        args: &DevArgs,
        cluster_id: &str,
        ports: &BTreeMap<i32, Ports>,
    ) -> Result<Cluster, Failure> {
        let (sender, lines) = mpsc::channel();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            lines,
        };
        let voters: Vec<String> = ports
            .iter()
            .map(|(id, p)| format!("{id}@{HOST}:{}", p.cluster))
            .collect();
        let voters = voters.join(",");
        for (&id, node_ports) in ports {
            let mut command = serve_command(exe, args, cluster_id, id, node_ports, &voters);
            let dir = node_dir(&args.data_dir, id);
            fs::create_dir_all(&dir).map_err(|e| io_failure("cannot create", &dir, e))?;
            let log_path = dir.join(LOG_FILE);
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| io_failure("cannot open", &log_path, e))?;
            let _ = writeln!(log, "\n=== spate cluster dev starts node {id}: {command:?}");
            let mut child = command.stderr(log).spawn().map_err(|e| {
                Failure::Failed(format!("cannot start node {id} ({}): {e}", exe.display()))
            })?;
            if let Some(stdout) = child.stdout.take() {
                forward_lines(id, stdout, sender.clone());
            }
            cluster.nodes.push(Node {
                id,
                child,
                listening: None,
                status: None,
            });
        }
        Ok(cluster)
    }

    /// Watches the nodes until `done`, a stop signal, a node's exit, or `deadline`. `None`
    /// means `done` became true.
    pub(super) fn poll_until(
        &mut self,
        deadline: Option<Instant>,
        done: impl Fn(&Cluster) -> bool,
    ) -> Option<Stop> {
        loop {
            if STOP_SIGNALS.load(Ordering::SeqCst) > 0 {
                return Some(Stop::Signal);
            }
            if let Some((id, status)) = self.reap() {
                // Ctrl-C in a terminal reaches the whole process group, so the nodes may be
                // stopping on the same signal as this process: not a failure.
                if STOP_SIGNALS.load(Ordering::SeqCst) > 0 {
                    return Some(Stop::Signal);
                }
                return Some(Stop::Exited { id, status });
            }
            self.read_lines(Duration::from_millis(POLL_INTERVAL_MS));
            if done(self) {
                return None;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Some(Stop::NotReady);
            }
        }
    }

    /// The first node found to have exited since the last call.
    fn reap(&mut self) -> Option<(i32, ExitStatus)> {
        for node in self.nodes.iter_mut().filter(|n| n.status.is_none()) {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.status = Some(status);
                return Some((node.id, status));
            }
        }
        None
    }

    /// Takes the nodes' stdout lines for up to `wait`.
    fn read_lines(&mut self, wait: Duration) {
        let mut next = match self.lines.recv_timeout(wait) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
                None
            }
        };
        let mut line_count = 0;
        while let Some((id, line)) = next {
            line_count += 1;
            let node = self.nodes.iter_mut().find(|n| n.id == id);
            match (node, Listening::parse(&line)) {
                (Some(node), Some(listening)) if node.listening.is_none() => {
                    node.listening = Some(listening)
                }
                _ => eprintln!("node {id}: {line}"),
            }
            if line_count == LINES_PER_POLL_MAX {
                break;
            }
            next = self.lines.try_recv().ok();
        }
    }

    /// Node lines, aligned, then the bootstrap list.
    pub(super) fn ready_report(&self) -> String {
        let rows: Vec<(i32, String, &Listening)> = self
            .nodes
            .iter()
            .filter_map(|n| Some((n.id, n.child.id().to_string(), n.listening.as_ref()?)))
            .collect();
        let width = |cell: fn(&(i32, String, &Listening)) -> usize| {
            rows.iter().map(cell).max().unwrap_or(0)
        };
        let (pid_width, kafka_width) = (width(|r| r.1.len()), width(|r| r.2.kafka.len()));
        let admin_width = width(|r| r.2.admin.len());
        let mut out = String::new();
        for (id, pid, l) in &rows {
            let _ = writeln!(
                out,
                "node {id}  pid {pid:<pid_width$}  kafka {:<kafka_width$}  admin {:<admin_width$}  cluster {}",
                l.kafka, l.admin, l.cluster
            );
        }
        let bootstrap: Vec<&str> = rows.iter().map(|r| r.2.kafka.as_str()).collect();
        let _ = writeln!(out, "bootstrap: {}", bootstrap.join(","));
        out
    }

    /// SIGTERM to every running node, then waits up to [`STOP_GRACE_MS`] (or until another
    /// Ctrl-C) before SIGKILL. All at once rather than one by one: each node's controlled
    /// shutdown needs the quorum, which is there only while most voters still run.
    pub(super) fn stop_all(&mut self) {
        let running: Vec<i32> = self.running().collect();
        if running.is_empty() {
            return;
        }
        eprintln!(
            "stopping {} node(s); Ctrl-C again to kill them at once",
            running.len()
        );
        for node in self.nodes.iter().filter(|n| n.status.is_none()) {
            signal(&node.child, libc::SIGTERM);
        }
        let signals_before = STOP_SIGNALS.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_millis(STOP_GRACE_MS);
        while self.running().next().is_some() {
            let why = if STOP_SIGNALS.load(Ordering::SeqCst) > signals_before {
                "Ctrl-C again".to_owned()
            } else if Instant::now() >= deadline {
                format!("still running {} s after SIGTERM", STOP_GRACE_MS / 1000)
            } else {
                std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
                continue;
            };
            for node in self.nodes.iter_mut().filter(|n| n.status.is_none()) {
                eprintln!("node {}: {why}; killing it (SIGKILL)", node.id);
                let _ = node.child.kill();
                node.status = node.child.wait().ok();
            }
        }
        eprintln!("all nodes stopped");
    }

    /// Ids of nodes still running, reaping those that exited.
    fn running(&mut self) -> impl Iterator<Item = i32> + '_ {
        while self.reap().is_some() {}
        self.nodes
            .iter()
            .filter(|n| n.status.is_none())
            .map(|n| n.id)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| n.status.is_none()) {
            let _ = node.child.kill();
            node.status = node.child.wait().ok();
        }
    }
}

/// Sends `signal` to a child not yet waited for (so its pid cannot have been reused).
fn signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe { libc::kill(pid, signal) };
    }
}

/// `spate serve` for node `id`. Nodes inherit the environment, so `spate serve`'s SPATE_*
/// variables apply to all of them, except those that must differ per node or would break
/// the cluster, which are removed.
fn serve_command(
    exe: &Path,
    args: &DevArgs,
    cluster_id: &str,
    id: i32,
    ports: &Ports,
    voters: &str,
) -> Command {
    let certs = args.data_dir.join("certs");
    let name = node_dns_name(id);
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(node_dir(&args.data_dir, id))
        .args(["--listen", &format!("{HOST}:{}", ports.kafka)])
        .args(["--admin-listen", &format!("{HOST}:{}", ports.admin)])
        .args(["--node-id", &id.to_string()])
        .args(["--cluster-listen", &format!("{HOST}:{}", ports.cluster)])
        .args(["--controller-voters", voters])
        .args(["--cluster-id", cluster_id])
        .arg("--cluster-ca")
        .arg(certs.join(CA_CERT_FILE))
        .arg("--cluster-cert")
        .arg(certs.join(format!("{name}.pem")))
        .arg("--cluster-key")
        .arg(certs.join(format!("{name}.key")))
        .args(["--cores", &args.cores_per_node.to_string()])
        .args(&args.serve_flags)
        .env_remove("SPATE_ROLES")
        .env_remove("SPATE_ADVERTISED_LISTEN")
        .env_remove("SPATE_CLUSTER_ADVERTISED_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if std::env::var_os("SPATE_CONTROLLED_SHUTDOWN_TIMEOUT_MS").is_none() {
        command.env(
            "SPATE_CONTROLLED_SHUTDOWN_TIMEOUT_MS",
            CONTROLLED_SHUTDOWN_TIMEOUT_MS.to_string(),
        );
    }
    stop_with_parent(&mut command);
    command
}

/// Has the kernel SIGTERM a node if this process dies without stopping it (SIGKILL, a
/// crash), so no node outlives `spate cluster dev` holding its ports and data dir.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; prctl and getppid are async-signal-safe
    // and the closure touches no memory shared with the parent.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nothing would signal this node.
            if libc::getppid() != parent {
                return Err(io::Error::other(
                    "spate cluster dev exited while starting the node",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_: &mut Command) {}

/// Sends node `id`'s stdout lines to the watcher, on a thread, until the node closes it.
fn forward_lines(id: i32, stdout: ChildStdout, lines: Sender<(i32, String)>) {
    let forward = move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(STDOUT_LINE_BYTES_MAX)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if lines.send((id, text)).is_err() {
                return;
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name(format!("node-{id}-stdout"))
        .spawn(forward)
    {
        eprintln!("node {id}: cannot read its stdout ({e}); it will not be seen as ready");
    }
}

/// The last [`LOG_TAIL_LINES`] lines of a node's log, framed, for an error report.
pub(super) fn log_tail(path: &Path) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES_MAX)))?;
        file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("(cannot read {}: {e})\n", path.display());
    }
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!(
        "--- last lines of {} ---\n{}\n---\n",
        path.display(),
        tail.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_needs_all_three_addresses() {
        let line = "spate listening kafka=127.0.0.1:1 admin=127.0.0.1:2 cluster=127.0.0.1:3";
        let expected = Listening {
            kafka: "127.0.0.1:1".into(),
            admin: "127.0.0.1:2".into(),
            cluster: "127.0.0.1:3".into(),
        };
        assert_eq!(Listening::parse(line), Some(expected));
        assert_eq!(Listening::parse("spate listening admin=127.0.0.1:2"), None);
        assert_eq!(Listening::parse("something else"), None);
    }
}
