//! `spate bench network-floor`: what loopback allows between two processes over TCP, over raw
//! QUIC with the cluster's TLS, and over the cluster transport's calls. Replication figures
//! are read against it, as broker figures are read against the null broker.
//!
//! This process is the client (it dials) and a child, the same binary with the hidden
//! `network-floor-peer` subcommand ([`peer`]), is the server. Each is pinned to its own cores
//! and runs one current-thread tokio runtime, as the broker's control-plane runtime that
//! carries the cluster transport does. TCP and raw QUIC send from the client to the server;
//! calls carry the bytes the other way, as a follower's fetch does: the client asks, the
//! server answers with `--message-bytes`.
//!
//! Throughput is the median of interval rates after a warm-up, as everywhere in the bench.
//! CPU is each process's user+system time over the measured window divided by the bytes moved
//! in it: a path that is fast because it burns two cores shows it. Neither side touches the
//! bytes it moves (no checksum, no disk), so every figure is a ceiling.

pub mod cpu;
pub mod peer;
pub mod quic;
pub mod tcp;

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use self::cpu::{CpuTime, MachineTicks, UdpDrops};
use self::peer::PeerProcess;
use self::quic::{CertDir, Offload, QuicStats};
use crate::BenchError;
use crate::affinity;
use crate::args::{NetPath, NetworkFloorArgs, parse_cores, seconds};
use crate::metrics::{self, Meter, Sample, Throughput};

/// How often the sampler looks whether a path has moved its bytes or failed.
const DONE_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// A path stops this long after its warm-up even if it has not moved `--bytes` (unless
/// `--duration` is longer), so a broken path cannot hold the run for hours.
const MEASURE_TIME_MAX: Duration = Duration::from_secs(60);
/// How long a path's client may take to stop once asked, before it is abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One path's result.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    pub path: NetPath,
    /// Calls in flight at once (1 for the stream paths).
    pub concurrency: usize,
    pub throughput: Throughput,
    /// The measured window CPU figures are over.
    pub window_s: f64,
    pub window_bytes: u64,
    /// The side that writes the bytes: the client on `tcp` and `quic-raw`, the server
    /// (answering) on `quic-call`.
    pub sender: SideCpu,
    pub receiver: SideCpu,
    /// Cores the whole machine kept busy during the window; well above the two processes'
    /// `busy_cores` means a neighbour had part of the machine.
    pub machine_busy_cores: Option<f64>,
    /// MB/s over the TCP path's MB/s in the same run.
    pub vs_tcp: Option<f64>,
    /// The client's raw QUIC connection, whole run.
    pub client_quic: Option<QuicStats>,
    /// The server's raw QUIC connection, whole run.
    pub server_quic: Option<QuicStats>,
    /// UDP datagrams the kernel dropped for want of buffer during the path (machine-wide).
    pub udp_drops: Option<UdpDrops>,
    pub error: Option<String>,
}

impl PathResult {
    pub fn name(&self) -> String {
        match self.path {
            NetPath::QuicCall => format!("{} x{}", self.path, self.concurrency),
            _ => self.path.to_string(),
        }
    }
}

/// One process's CPU over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct SideCpu {
    /// `client` (this bench) or `server` (the peer process).
    pub process: &'static str,
    pub user_s: f64,
    pub system_s: f64,
    /// (user + system) seconds per 10^9 bytes moved.
    pub cpu_s_per_gb: f64,
    /// CPU seconds per wall second of the window: 1.0 is one core kept busy.
    pub busy_cores: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkFloorReport {
    pub workload: &'static str,
    pub machine: String,
    /// The command-line shape, for reproducing the figures.
    pub params: String,
    pub pinning: String,
    /// The quinn settings the raw QUIC path ran (the call path always runs the transport's).
    pub quic_raw_settings: String,
    pub offload: Option<Offload>,
    pub paths: Vec<PathResult>,
}

/// One measurement: what was moved and what each process had spent, `at` after the start.
#[derive(Debug, Clone, Copy)]
struct Point {
    at: Duration,
    bytes: u64,
    messages: u64,
    client: CpuTime,
    server: CpuTime,
    machine: Option<MachineTicks>,
}

/// How long each path runs, and when it stops early.
struct Plan {
    warmup: Duration,
    duration: Duration,
    interval: Duration,
    bytes: u64,
}

/// `message_bytes` bytes of a fixed pattern (nothing here compresses or reads them).
pub fn message(message_bytes: usize) -> Bytes {
    (0..message_bytes)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Runs `spate bench network-floor`.
pub fn run(args: &NetworkFloorArgs) -> Result<bool, BenchError> {
    let machine = crate::report::machine_summary();
    let (server_cores, pinning) = pin(args)?;
    let certs = CertDir::create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let plan = Plan {
        warmup: seconds(args.warmup),
        duration: seconds(args.duration),
        interval: seconds(args.interval).max(DONE_POLL_INTERVAL),
        bytes: args.bytes.bytes().max(1),
    };
    let mut results: Vec<PathResult> = Vec::new();
    for (path, concurrency) in rows(args) {
        eprintln!("[network-floor] {path} (concurrency {concurrency}) ...");
        let peer = PeerProcess::spawn(
            path,
            server_cores.as_deref(),
            certs.path(),
            args.message_bytes.bytes(),
            &args.quic,
        )?;
        let mut result = runtime.block_on(measure(
            path,
            concurrency,
            args,
            &plan,
            certs.path().to_path_buf(),
            Arc::new(peer),
        ))?;
        let tcp = results
            .iter()
            .find(|r| r.path == NetPath::Tcp)
            .map(|r| r.throughput.mb_per_s);
        result.vs_tcp = tcp
            .filter(|t| *t > 0.0)
            .map(|t| result.throughput.mb_per_s / t);
        results.push(result);
    }
    let report = NetworkFloorReport {
        workload: "network-floor",
        machine,
        params: params(args),
        pinning,
        quic_raw_settings: if args.quic == Default::default() {
            "the cluster transport's".to_string()
        } else {
            format!(
                "the cluster transport's with {}",
                args.quic.to_args().join(" ")
            )
        },
        offload: quic::offload().ok(),
        paths: results,
    };
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, text)?;
    }
    Ok(report
        .paths
        .iter()
        .all(|r| r.error.is_none() && r.throughput.mb_per_s > 0.0))
}

/// Pins this process to the client cores. Returns the server's cores as a `taskset -c` list
/// for the peer (none when unpinned) and a line saying who runs where.
fn pin(args: &NetworkFloorArgs) -> Result<(Option<String>, String), BenchError> {
    let server_cores = parse_cores(&args.server_cores).map_err(BenchError::Setup)?;
    let client_cores = match (&args.client_cores, args.no_pin) {
        (_, true) => return Ok((None, "both processes unpinned".to_string())),
        (Some(cores), false) => parse_cores(cores).map_err(BenchError::Setup)?,
        (None, false) => affinity::complement(&server_cores)?,
    };
    affinity::pin_current_thread(&client_cores)?;
    let list = server_cores
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let pinning = format!(
        "server process on cores {server_cores:?}, client (this bench) on cores \
         {client_cores:?}; one current-thread tokio runtime each"
    );
    Ok((Some(list), pinning))
}

/// The paths to run, in order, with their concurrency: one `quic-call` row per value.
fn rows(args: &NetworkFloorArgs) -> Vec<(NetPath, usize)> {
    let mut rows = Vec::new();
    for &path in &args.paths {
        match path {
            NetPath::QuicCall => rows.extend(args.concurrency.iter().map(|&c| (path, c.max(1)))),
            NetPath::Tcp | NetPath::QuicRaw => rows.push((path, 1)),
        }
    }
    rows
}

fn params(args: &NetworkFloorArgs) -> String {
    format!(
        "--bytes {} --message-bytes {} --warmup {} --duration {} --interval {} --concurrency {}",
        args.bytes,
        args.message_bytes,
        args.warmup,
        args.duration,
        args.interval,
        args.concurrency
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

type Workload = Pin<Box<dyn Future<Output = Result<Option<QuicStats>, String>> + Send>>;

/// Runs one path against its peer and measures it.
async fn measure(
    path: NetPath,
    concurrency: usize,
    args: &NetworkFloorArgs,
    plan: &Plan,
    certs: std::path::PathBuf,
    peer: Arc<PeerProcess>,
) -> Result<PathResult, BenchError> {
    let meter = Arc::new(Meter::default());
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let message_bytes = args.message_bytes.bytes_usize();
    let addr = peer.addr();
    let workload: Workload = match path {
        NetPath::Tcp => Box::pin(tcp::send(
            addr,
            message(message_bytes),
            meter.clone(),
            stop.clone(),
        )),
        NetPath::QuicRaw => Box::pin(quic::send_raw(
            addr,
            certs,
            args.quic.clone(),
            message(message_bytes),
            meter.clone(),
            stop.clone(),
        )),
        NetPath::QuicCall => Box::pin(quic::call(
            addr,
            certs,
            message_bytes,
            concurrency,
            meter.clone(),
            stop.clone(),
        )),
    };
    let drops_before = UdpDrops::read();
    let client = tokio::spawn({
        let finished = finished.clone();
        async move {
            let outcome = workload.await;
            finished.store(true, Ordering::Release);
            outcome
        }
    });
    let sampled = sample(plan, &meter, &peer, &finished).await;
    stop.store(true, Ordering::Relaxed);
    let outcome = match tokio::time::timeout(STOP_TIMEOUT, client).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Err(format!("the client task failed: {e}")),
        Err(_) => Err(format!("the client did not stop within {STOP_TIMEOUT:?}")),
    };
    let udp_drops = UdpDrops::read()
        .zip(drops_before)
        .map(|(after, before)| after.since(before));
    let points = sampled?;
    let server_quic = match path {
        NetPath::QuicRaw => {
            let peer = peer.clone();
            tokio::task::spawn_blocking(move || peer.quic_stats())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        }
        _ => None,
    };
    let (client_quic, error) = match outcome {
        Ok(stats) => (stats, None),
        Err(e) => (None, Some(e)),
    };
    Ok(summarise(
        path,
        concurrency,
        plan,
        &points,
        client_quic,
        server_quic,
        udp_drops,
        error,
    ))
}

/// Samples every `plan.interval` from the warm-up's end. Stops once `plan.duration` has
/// passed and `plan.bytes` have moved since the warm-up, at [`MEASURE_TIME_MAX`] (or
/// `plan.duration` if longer) whatever has moved, or when the client has finished (it failed).
async fn sample(
    plan: &Plan,
    meter: &Arc<Meter>,
    peer: &Arc<PeerProcess>,
    finished: &AtomicBool,
) -> Result<Vec<Point>, BenchError> {
    let start = Instant::now();
    let mut points = vec![point(start, meter, peer).await?];
    let warm = start + plan.warmup;
    let end = warm + plan.duration;
    let end_max = warm + plan.duration.max(MEASURE_TIME_MAX);
    let mut next = if plan.warmup.is_zero() {
        start + plan.interval
    } else {
        warm
    };
    // Bytes moved at the warm-up's end, once it has passed.
    let mut warm_bytes = plan.warmup.is_zero().then_some(0);
    let done = |now: Instant, bytes: u64, warm_bytes: Option<u64>| {
        let moved = warm_bytes.is_some_and(|warm| bytes.saturating_sub(warm) >= plan.bytes);
        (now >= end && moved) || now >= end_max || finished.load(Ordering::Acquire)
    };
    loop {
        let wake = next.min(Instant::now() + DONE_POLL_INTERVAL);
        tokio::time::sleep_until(wake.into()).await;
        let now = Instant::now();
        if now < next {
            if done(now, meter.snapshot().0, warm_bytes) {
                points.push(point(start, meter, peer).await?);
                return Ok(points);
            }
            continue;
        }
        let taken = point(start, meter, peer).await?;
        warm_bytes.get_or_insert(taken.bytes);
        points.push(taken);
        if done(now, taken.bytes, warm_bytes) {
            return Ok(points);
        }
        next += plan.interval;
    }
}

async fn point(
    start: Instant,
    meter: &Arc<Meter>,
    peer: &Arc<PeerProcess>,
) -> Result<Point, BenchError> {
    let at = start.elapsed();
    let (bytes, messages) = meter.snapshot();
    let client = CpuTime::of_self()?;
    let machine = MachineTicks::read();
    // The peer answers over a pipe: wait for it off the runtime, so the path keeps moving.
    let peer = peer.clone();
    let server = tokio::task::spawn_blocking(move || peer.cpu())
        .await
        .map_err(|e| BenchError::Setup(format!("asking the peer for its CPU time: {e}")))??;
    Ok(Point {
        at,
        bytes,
        messages,
        client,
        server,
        machine,
    })
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    path: NetPath,
    concurrency: usize,
    plan: &Plan,
    points: &[Point],
    client_quic: Option<QuicStats>,
    server_quic: Option<QuicStats>,
    udp_drops: Option<UdpDrops>,
    error: Option<String>,
) -> PathResult {
    let samples: Vec<Sample> = points
        .iter()
        .map(|p| Sample {
            at: p.at,
            bytes: p.bytes,
            records: p.messages,
        })
        .collect();
    let throughput = metrics::throughput(&samples, plan.warmup, plan.interval);
    // The CPU window: from the warm-up's end (or the start, if the path ended sooner) to the
    // last point.
    let last = points[points.len() - 1];
    let first = points[..points.len() - 1]
        .iter()
        .find(|p| p.at >= plan.warmup)
        .unwrap_or(&points[0]);
    let window_s = (last.at - first.at).as_secs_f64().max(1e-9);
    let window_bytes = last.bytes - first.bytes;
    let side = |process: &'static str, spent: CpuTime| {
        let total_s = spent.total().as_secs_f64();
        SideCpu {
            process,
            user_s: spent.user.as_secs_f64(),
            system_s: spent.system.as_secs_f64(),
            cpu_s_per_gb: if window_bytes == 0 {
                0.0
            } else {
                total_s / (window_bytes as f64 / 1e9)
            },
            busy_cores: total_s / window_s,
        }
    };
    let client = side("client", last.client.since(first.client));
    let server = side("server", last.server.since(first.server));
    let (sender, receiver) = match path {
        NetPath::QuicCall => (server, client),
        NetPath::Tcp | NetPath::QuicRaw => (client, server),
    };
    let machine_busy_cores = last
        .machine
        .zip(first.machine)
        .and_then(|(last, first)| last.busy_cores_since(first));
    PathResult {
        path,
        concurrency,
        throughput,
        window_s,
        window_bytes,
        sender,
        receiver,
        machine_busy_cores,
        vs_tcp: None,
        client_quic,
        server_quic,
        udp_drops,
        error,
    }
}

/// The human table.
pub fn table(report: &NetworkFloorReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== spate bench network-floor  (loopback, two processes)"
    );
    let _ = writeln!(out, "   {}", report.params);
    let _ = writeln!(out, "   {}", report.machine);
    let _ = writeln!(out, "   {}", report.pinning);
    let _ = writeln!(out, "   quinn settings: {}", report.quic_raw_settings);
    if let Some(offload) = &report.offload {
        let _ = writeln!(
            out,
            "   UDP offload: GSO up to {} datagrams per sendmsg (quinn sends at most 10), GRO {}",
            offload.gso_segments_max, offload.gro_segments
        );
    }
    let _ = writeln!(
        out,
        "   {:<14} {:>9} {:>6}  {:>26}  {:>26}",
        "path", "MB/s", "/ tcp", "sender CPU s/GB (u+s)", "receiver CPU s/GB (u+s)"
    );
    let cpu = |side: &SideCpu| {
        format!(
            "{:.3} ({:.2}+{:.2}) {:>3.0}%",
            side.cpu_s_per_gb,
            side.user_s / (side.user_s + side.system_s).max(1e-12) * side.cpu_s_per_gb,
            side.system_s / (side.user_s + side.system_s).max(1e-12) * side.cpu_s_per_gb,
            side.busy_cores * 100.0
        )
    };
    for result in &report.paths {
        let _ = writeln!(
            out,
            "   {:<14} {:>9.1} {:>6}  {:>26}  {:>26}",
            result.name(),
            result.throughput.mb_per_s,
            result.vs_tcp.map_or("-".into(), |r| format!("{r:.2}")),
            cpu(&result.sender),
            cpu(&result.receiver),
        );
    }
    let _ = writeln!(
        out,
        "   (sender: the client on tcp and quic-raw, the server on quic-call; % is CPU per wall \
         second of the window: 100% = one core busy)"
    );
    for result in &report.paths {
        let ours = result.sender.busy_cores + result.receiver.busy_cores;
        let _ = writeln!(
            out,
            "   {}: {}; machine busy {}",
            result.name(),
            result.throughput.basis,
            result.machine_busy_cores.map_or("?".into(), |m| format!(
                "{m:.2} cores ({:.2} not these two processes)",
                (m - ours).max(0.0)
            ))
        );
        for (end, stats) in [
            ("client", &result.client_quic),
            ("server", &result.server_quic),
        ] {
            if let Some(s) = stats {
                let _ = writeln!(
                    out,
                    "     {end}: {:.1} datagrams per sendmsg; MTU {} B; {} of {} packets lost, {} \
                     congestion events; cwnd {} B; rtt {} us; {} ACKs sent, {} received",
                    s.datagrams_per_send_io,
                    s.mtu_bytes,
                    s.lost_packets,
                    s.sent_packets,
                    s.congestion_events,
                    s.cwnd_bytes,
                    s.rtt_us,
                    s.acks_sent,
                    s.acks_received
                );
            }
        }
        if let Some(drops) = result.udp_drops.filter(|d| *d != UdpDrops::default()) {
            let _ = writeln!(
                out,
                "     kernel UDP drops: {} receive-buffer, {} send-buffer",
                drops.rcvbuf_errors, drops.sndbuf_errors
            );
        }
        if let Some(error) = &result.error {
            let _ = writeln!(out, "     ERROR: {error}");
        }
    }
    out
}
