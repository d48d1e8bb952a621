//! The server process of the network floor, and the bench's handle on it.
//!
//! The bench starts its own binary with the hidden `network-floor-peer` subcommand, pinned to
//! `--server-cores`, so the two ends of every path are separate processes on separate cores,
//! as two nodes are. The peer prints `listening <addr>` once it serves, then answers one line
//! per command on its stdin:
//!
//! - `cpu` → `cpu <user_ns> <system_ns>`: its CPU time so far ([`CpuTime`]);
//! - `stats` → `stats <json>`: its raw QUIC connection's [`QuicStats`], or `null`.
//!
//! It exits when its stdin closes, so it never outlives the bench, even one that was killed.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cpu::CpuTime;
use super::quic::{self, QuicStats};
use super::{message, tcp};
use crate::BenchError;
use crate::affinity;
use crate::args::{NetPath, NetworkPeerArgs, QuicOverrides, parse_cores};

const LISTENING: &str = "listening";
const CPU: &str = "cpu";
const STATS: &str = "stats";

/// How long the peer may take to print its address (it loads certificates and binds).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the peer may take to exit once its stdin is closed, before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the `network-floor-peer` subcommand: serves `args.path` until stdin closes.
pub fn run(args: &NetworkPeerArgs) -> Result<bool, BenchError> {
    if let Some(cores) = &args.cores {
        affinity::pin_current_thread(&parse_cores(cores).map_err(BenchError::Setup)?)?;
    }
    // One current-thread runtime, as the broker's control-plane runtime that carries the
    // cluster transport.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let latest: Arc<Mutex<Option<quinn::Connection>>> = Arc::default();
    runtime.block_on(async {
        let (addr, serving) = serve(args, latest.clone()).await?;
        say(&format!("{LISTENING} {addr}"))?;
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("network-floor-peer-commands".into())
            .spawn(move || {
                answer_commands(&latest);
                let _ = closed_tx.send(());
            })?;
        let _ = closed_rx.await;
        match serving {
            Serving::Tcp => {}
            Serving::Quic(endpoint) => endpoint.close(quinn::VarInt::from_u32(0), b"done"),
            Serving::Calls(transport) => transport.close(),
        }
        Ok(true)
    })
}

/// What the peer holds while it serves.
enum Serving {
    Tcp,
    Quic(quinn::Endpoint),
    Calls(spate_server::cluster::transport::Transport),
}

async fn serve(
    args: &NetworkPeerArgs,
    latest: Arc<Mutex<Option<quinn::Connection>>>,
) -> Result<(SocketAddr, Serving), BenchError> {
    match args.path {
        NetPath::Tcp => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(tcp::receive(listener));
            Ok((addr, Serving::Tcp))
        }
        NetPath::QuicRaw => {
            let tls = quic::tls(&args.certs, quic::SERVER_NODE)?;
            let endpoint = quic::endpoint(&tls, true, &args.quic)?;
            let addr = endpoint.local_addr()?;
            tokio::spawn(quic::receive_raw(endpoint.clone(), latest));
            Ok((addr, Serving::Quic(endpoint)))
        }
        NetPath::QuicCall => {
            let transport =
                quic::serve_calls(&args.certs, message(args.message_bytes.bytes_usize()))?;
            Ok((transport.local_addr(), Serving::Calls(transport)))
        }
    }
}

fn say(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Answers commands on stdin until it closes.
fn answer_commands(latest: &Mutex<Option<quinn::Connection>>) {
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let answer = match line.trim() {
            CPU => match CpuTime::of_self() {
                Ok(cpu) => format!("{CPU} {}", cpu.encode()),
                Err(e) => format!("error {e}"),
            },
            STATS => {
                let stats = latest
                    .lock()
                    .ok()
                    .and_then(|c| c.as_ref().map(|c| QuicStats::from(c.stats())));
                format!(
                    "{STATS} {}",
                    serde_json::to_string(&stats).unwrap_or_else(|_| "null".into())
                )
            }
            other => format!("error unknown command {other:?}"),
        };
        if say(&answer).is_err() {
            return;
        }
    }
}

/// The bench's handle on a running peer. Dropping it ends the peer.
pub struct PeerProcess {
    child: Child,
    pipe: Mutex<Pipe>,
    addr: SocketAddr,
}

struct Pipe {
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Pipe {
    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("the network-floor peer exited"));
        }
        Ok(line.trim_end().to_owned())
    }

    fn ask(&mut self, command: &str) -> io::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("the peer's stdin is closed"))?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let line = self.line()?;
        line.strip_prefix(command)
            .map(|rest| rest.trim().to_owned())
            .ok_or_else(|| io::Error::other(format!("the peer answered {command:?} with {line:?}")))
    }
}

impl PeerProcess {
    /// Starts the peer for `path` on `cores` and waits for its address.
    pub fn spawn(
        path: NetPath,
        cores: Option<&str>,
        certs: &Path,
        message_bytes: u64,
        overrides: &QuicOverrides,
    ) -> Result<PeerProcess, BenchError> {
        let (exe, prefix) = own_command()?;
        let mut command = Command::new(exe);
        command
            .args(prefix)
            .arg("network-floor-peer")
            .arg(format!("--path={path}"))
            .arg(format!("--certs={}", certs.display()))
            .arg(format!("--message-bytes={message_bytes}"))
            .args(overrides.to_args());
        if let Some(cores) = cores {
            command.arg(format!("--cores={cores}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Setup(
                "no pipes to the network-floor peer".into(),
            ));
        };
        // Read the `listening` line on a helper thread, so a hung peer cannot hang the bench.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut pipe = Pipe {
                stdin: None,
                stdout: BufReader::new(stdout),
            };
            let _ = sender.send((pipe.line(), pipe.stdout));
        });
        let (line, stdout) = match receiver.recv_timeout(READY_TIMEOUT) {
            Ok((Ok(line), stdout)) => (line, stdout),
            failed => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Setup(match failed {
                    Ok((Err(e), _)) => format!("the network-floor peer did not start: {e}"),
                    _ => format!("the network-floor peer did not start within {READY_TIMEOUT:?}"),
                }));
            }
        };
        let peer = PeerProcess {
            child,
            pipe: Mutex::new(Pipe {
                stdin: Some(stdin),
                stdout,
            }),
            addr: line
                .strip_prefix(LISTENING)
                .and_then(|addr| addr.trim().parse().ok())
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        if peer.addr.port() == 0 {
            return Err(BenchError::Setup(format!(
                "the network-floor peer said {line:?}, not its address"
            )));
        }
        Ok(peer)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer's CPU time so far.
    pub fn cpu(&self) -> io::Result<CpuTime> {
        let answer = self.pipe.lock().map_err(|_| poisoned())?.ask(CPU)?;
        CpuTime::decode(&answer)
            .ok_or_else(|| io::Error::other(format!("the peer's CPU time {answer:?}")))
    }

    /// The peer's raw QUIC connection stats, if it has a connection.
    pub fn quic_stats(&self) -> io::Result<Option<QuicStats>> {
        let answer = self.pipe.lock().map_err(|_| poisoned())?.ask(STATS)?;
        serde_json::from_str(&answer).map_err(io::Error::other)
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Ok(pipe) = self.pipe.get_mut() {
            pipe.stdin = None;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn poisoned() -> io::Error {
    io::Error::other("the peer's pipe lock is poisoned")
}

/// This executable and the arguments that lead to `bench` subcommands: those before
/// `network-floor` on this process's command line (`bench` under `spate`, none under
/// `spate-bench`).
fn own_command() -> io::Result<(PathBuf, Vec<OsString>)> {
    let exe = std::env::current_exe()?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let prefix = match args.iter().position(|a| a == "network-floor") {
        Some(at) => args[..at].to_vec(),
        None if exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("spate-bench")) =>
        {
            Vec::new()
        }
        None => vec![OsString::from("bench")],
    };
    Ok((exe, prefix))
}
