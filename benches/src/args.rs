//! Command-line options of `spate bench`.
//!
//! Names follow the Kafka client settings they map to (`--linger-ms` is `linger.ms`), so a
//! figure can be reproduced with another client by reading the command that produced it.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

/// `spate bench`: load generator, floors and suite.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// One workload per subcommand, so each prints only the options that matter to it.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Max-throughput produce, with the null-broker and disk floors.
    Produce(RunArgs),
    /// Max-throughput consume, from the beginning of a pre-filled topic or from its tail.
    Consume(ConsumeArgs),
    /// End-to-end latency at a fixed rate (open loop, coordinated omission corrected).
    Latency(RunArgs),
    /// Broker RSS and open fds across partition counts, idle and under load.
    Scale(ScaleArgs),
    /// The workloads of BENCHMARKS.md, written as markdown.
    Suite(SuiteArgs),
    /// Serves a minimal Kafka-protocol sink until killed (the floor, for manual runs).
    NullBroker(NullBrokerArgs),
    /// Loopback throughput and CPU per GB of TCP, raw QUIC with the cluster's TLS, and the
    /// cluster transport's calls, between two processes: the floor for replication.
    NetworkFloor(NetworkFloorArgs),
    /// The server process of `network-floor`, which starts it; not for manual use.
    #[command(hide = true)]
    NetworkFloorPeer(NetworkPeerArgs),
}

/// Where the broker is and how the bench and the broker share the machine.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// `host:port` of any Kafka-compatible broker. Not needed with `--broker-cmd` when the
    /// command takes `{port}`.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// A command starting a broker for the run, e.g. `spate serve --listen 127.0.0.1:{port}
    /// --data-dir {data_dir} --admin-listen 127.0.0.1:0`. `{port}` becomes a free port and
    /// `{data_dir}` the `--data-dir` (or a fresh temporary directory).
    #[arg(long)]
    pub broker_cmd: Option<String>,
    /// Cores the broker (and the null broker) is pinned to, as for `taskset -c`.
    #[arg(long, default_value = "0")]
    pub broker_cores: String,
    /// Cores the bench runs on; default: every core not in `--broker-cores` (all cores when
    /// the machine has only those).
    #[arg(long)]
    pub bench_cores: Option<String>,
    /// Leave the bench unpinned.
    #[arg(long)]
    pub no_pin: bool,
    /// Directory for the disk floor (and `{data_dir}`); default: a temp dir, which may be a
    /// different disk from the broker's, and the report says so.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The broker's pid, for RSS and fd sampling when it was not started with `--broker-cmd`.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Keep the topics a workload created (by default they are deleted after it, so long
    /// runs do not fill the broker's disk).
    #[arg(long)]
    pub keep_topics: bool,
}

/// Workload shape shared by produce, consume and latency.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Topic name prefix; a fresh topic (or `--topics` of them) is created per run.
    #[arg(long, default_value = "spate-bench")]
    pub topic: String,
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Value bytes per record: `1024`, or a range `100..1000` drawn uniformly per record.
    #[arg(long, default_value = "1024")]
    pub record_size: SizeSpec,
    /// Give each record an 8-byte key (records then spread over partitions by key hash).
    #[arg(long)]
    pub keys: bool,
    /// `batch.size` in bytes.
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: usize,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// `max.in.flight.requests.per.connection`: batches of one partition awaiting an answer
    /// at once (at most 5 with acks=all, which makes the producer idempotent).
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Target records/s for `latency` (all producers together).
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Seconds excluded from the figures at the start.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured seconds after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Topic `flush` config the bench sets on the topic it creates: always, never or <ms>.
    #[arg(long, default_value = "never")]
    pub flush: String,
    /// Replication factor of the topics the bench creates; default: the broker's
    /// (`default.replication.factor`). With 3 and `--acks all`, every acknowledgement waits
    /// for the in-sync replicas.
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// Throughput sampling interval in seconds (medians are over these intervals).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write the result (with raw hdrhistograms, base64 V2) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG with the latency percentiles and throughput over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Skip the null-broker and disk floors.
    #[arg(long)]
    pub no_floors: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// `beginning`: read a topic pre-filled for `--warmup + --duration` seconds;
    /// `tail`: read what producers write at full speed meanwhile.
    #[arg(long, value_enum, default_value_t = ConsumeFrom::Beginning)]
    pub from: ConsumeFrom,
}

#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Partition counts for the RSS/fd table (one topic each).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000")]
    pub rss_partitions: Vec<u32>,
    /// Partition counts for the produce-throughput curve.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub throughput_partitions: Vec<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Markdown output.
    #[arg(long, default_value = "spate-bench-suite.md")]
    pub out: PathBuf,
    /// Directory for each workload's JSON and SVG.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000")]
    pub rss_partitions: Vec<u32>,
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub throughput_partitions: Vec<u32>,
    /// Skip the scale section (it needs the broker's pid).
    #[arg(long)]
    pub no_scale: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NullBrokerArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: String,
    /// Partitions reported for any topic asked about.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Value bytes per record of the fixed Fetch buffer.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Bytes per batch of the fixed Fetch buffer.
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct NetworkFloorArgs {
    /// Bytes each path moves after the warm-up at least: a slow path runs past `--duration`
    /// until it has (for at most 60 s), so its CPU per GB rests on enough bytes.
    #[arg(long, default_value = "2GiB")]
    pub bytes: ByteCount,
    /// Bytes per message: per `write_all` on TCP, per `write_chunk` on raw QUIC, per answer
    /// of a call (replication answers are up to a few MiB).
    #[arg(long, default_value = "1MiB")]
    pub message_bytes: ByteCount,
    /// Seconds excluded from the figures at the start of each path.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Measured seconds per path, at least.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Throughput sampling interval in seconds (medians are over these intervals).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Cores of the server process (the receiver of TCP and raw QUIC, the answerer of
    /// calls), as for `taskset -c`.
    #[arg(long, default_value = "0")]
    pub server_cores: String,
    /// Cores of the client process (this one); default: every core not in
    /// `--server-cores` (all cores when the machine has only those).
    #[arg(long)]
    pub client_cores: Option<String>,
    /// Leave both processes unpinned.
    #[arg(long)]
    pub no_pin: bool,
    /// Paths to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tcp,quic-raw,quic-call"
    )]
    pub paths: Vec<NetPath>,
    /// Calls in flight at once on the `quic-call` path; one row per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub concurrency: Vec<usize>,
    #[command(flatten)]
    pub quic: QuicOverrides,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One way of moving bytes between the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetPath {
    /// One TCP connection, bulk `write_all`; the server reads and discards.
    Tcp,
    /// One quinn connection with the cluster's mutual TLS, one stream, bulk writes.
    QuicRaw,
    /// `Transport::call`: small requests, answers of `--message-bytes`.
    QuicCall,
}

impl std::fmt::Display for NetPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetPath::Tcp => "tcp",
            NetPath::QuicRaw => "quic-raw",
            NetPath::QuicCall => "quic-call",
        })
    }
}

/// Settings that replace the cluster transport's quinn settings on the `quic-raw` path only,
/// on both ends, for tuning experiments (the `quic-call` path always runs the transport's own
/// settings, as a node would).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct QuicOverrides {
    /// Congestion controller.
    #[arg(long, value_enum)]
    pub quic_congestion: Option<CongestionArg>,
    /// Flow-control window per stream (quinn `stream_receive_window`).
    #[arg(long)]
    pub quic_stream_window: Option<ByteCount>,
    /// Flow-control window per connection (quinn `receive_window`).
    #[arg(long)]
    pub quic_receive_window: Option<ByteCount>,
    /// Unacknowledged bytes a connection may have in flight (quinn `send_window`).
    #[arg(long)]
    pub quic_send_window: Option<ByteCount>,
    /// UDP payload bytes to start with (quinn `initial_mtu`, at least 1200).
    #[arg(long)]
    pub quic_initial_mtu: Option<u16>,
    /// Largest UDP payload MTU discovery probes for (quinn's default is 1452).
    #[arg(long)]
    pub quic_mtu_upper_bound: Option<u16>,
    /// Largest UDP payload this end accepts, advertised to the peer (quinn endpoint
    /// `max_udp_payload_size`, default 1472): it caps what MTU discovery finds.
    #[arg(long)]
    pub quic_max_udp_payload: Option<u16>,
    /// Turn MTU discovery off (packets stay at the initial MTU).
    #[arg(long)]
    pub quic_no_mtu_discovery: bool,
    /// Ask the peer to acknowledge every N ack-eliciting packets (the ACK frequency
    /// extension) instead of every second one.
    #[arg(long)]
    pub quic_ack_threshold: Option<u32>,
    /// Turn UDP segmentation offload (GSO) off.
    #[arg(long)]
    pub quic_no_gso: bool,
    /// `SO_SNDBUF` and `SO_RCVBUF` of the UDP sockets (capped by net.core.[rw]mem_max).
    #[arg(long)]
    pub udp_buffer_bytes: Option<ByteCount>,
}

impl QuicOverrides {
    /// The flags that reproduce these overrides, for the peer process and the report.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut value = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(format!("--{flag}={value}"));
            }
        };
        value(
            "quic-congestion",
            self.quic_congestion
                .and_then(|c| c.to_possible_value())
                .map(|v| v.get_name().to_owned()),
        );
        value(
            "quic-stream-window",
            self.quic_stream_window.map(|b| b.to_string()),
        );
        value(
            "quic-receive-window",
            self.quic_receive_window.map(|b| b.to_string()),
        );
        value(
            "quic-send-window",
            self.quic_send_window.map(|b| b.to_string()),
        );
        value(
            "quic-initial-mtu",
            self.quic_initial_mtu.map(|m| m.to_string()),
        );
        value(
            "quic-mtu-upper-bound",
            self.quic_mtu_upper_bound.map(|m| m.to_string()),
        );
        value(
            "quic-max-udp-payload",
            self.quic_max_udp_payload.map(|m| m.to_string()),
        );
        value(
            "quic-ack-threshold",
            self.quic_ack_threshold.map(|t| t.to_string()),
        );
        value(
            "udp-buffer-bytes",
            self.udp_buffer_bytes.map(|b| b.to_string()),
        );
        if self.quic_no_mtu_discovery {
            args.push("--quic-no-mtu-discovery".into());
        }
        if self.quic_no_gso {
            args.push("--quic-no-gso".into());
        }
        args
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CongestionArg {
    Cubic,
    NewReno,
    Bbr,
}

/// What the `network-floor-peer` process serves.
#[derive(Debug, Clone, Args)]
pub struct NetworkPeerArgs {
    #[arg(long, value_enum)]
    pub path: NetPath,
    /// Cores to pin to, as for `taskset -c`.
    #[arg(long)]
    pub cores: Option<String>,
    /// Directory holding the throwaway CA and node certificates.
    #[arg(long)]
    pub certs: PathBuf,
    /// Bytes per answer on the `quic-call` path.
    #[arg(long)]
    pub message_bytes: ByteCount,
    #[command(flatten)]
    pub quic: QuicOverrides,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsumeFrom {
    Beginning,
    Tail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// A record size: fixed, or a half-open range drawn uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl SizeSpec {
    pub fn fixed(bytes: usize) -> Self {
        Self {
            min_bytes: bytes,
            max_bytes: bytes,
        }
    }

    pub fn mean_bytes(&self) -> usize {
        (self.min_bytes + self.max_bytes) / 2
    }

    /// The size for draw `random` (any u64).
    pub fn pick(&self, random: u64) -> usize {
        let span = (self.max_bytes - self.min_bytes) as u64;
        if span == 0 {
            self.min_bytes
        } else {
            self.min_bytes + (random % span) as usize
        }
    }
}

impl std::fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min_bytes == self.max_bytes {
            write!(f, "{}", self.min_bytes)
        } else {
            write!(f, "{}..{}", self.min_bytes, self.max_bytes)
        }
    }
}

impl FromStr for SizeSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("record size {text:?}: {s:?} is not a byte count"))
        };
        let spec = match text.split_once("..") {
            Some((low, high)) => SizeSpec {
                min_bytes: number(low)?,
                max_bytes: number(high)?,
            },
            None => SizeSpec::fixed(number(text)?),
        };
        if spec.min_bytes > spec.max_bytes {
            return Err(format!("record size {text:?}: the range is empty"));
        }
        if spec.min_bytes < crate::workload::STAMP_BYTES {
            return Err(format!(
                "record size {text:?}: at least {} bytes, for the send timestamp",
                crate::workload::STAMP_BYTES
            ));
        }
        Ok(spec)
    }
}

/// A byte count: `4096`, or with a unit: `64KiB`, `1MiB`, `2GiB` (powers of 1024) or `1MB`,
/// `2GB` (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteCount(pub u64);

impl ByteCount {
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The count as a `usize`, saturating on 32-bit targets.
    pub fn bytes_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

const BYTE_UNITS: [(&str, u64); 9] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("G", 1 << 30),
    ("M", 1 << 20),
    ("K", 1 << 10),
];

impl FromStr for ByteCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let trimmed = trimmed
            .strip_suffix('B')
            .filter(|t| {
                // "1MB" keeps its B; a bare trailing B ("4096B") is just bytes.
                t.ends_with(|c: char| c.is_ascii_digit())
            })
            .unwrap_or(trimmed);
        let (number, scale) = BYTE_UNITS
            .iter()
            .find_map(|(unit, scale)| {
                let at = trimmed.len().checked_sub(unit.len())?;
                let tail = trimmed.get(at..)?;
                tail.eq_ignore_ascii_case(unit)
                    .then(|| (&trimmed[..at], *scale))
            })
            .unwrap_or((trimmed, 1));
        let count: u64 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a byte count like 4096, 64KiB or 2GiB"))?;
        count
            .checked_mul(scale)
            .map(ByteCount)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl std::fmt::Display for ByteCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = BYTE_UNITS[..3]
            .iter()
            .find(|(_, scale)| self.0 >= *scale && self.0.is_multiple_of(*scale));
        match unit {
            Some((unit, scale)) => write!(f, "{}{unit}", self.0 / scale),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Seconds as a `Duration`, refusing negative or non-finite values.
pub fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value)
    } else {
        Duration::ZERO
    }
}

/// Parses a `taskset -c` style core list: `0`, `1,3`, `0-2`.
pub fn parse_cores(text: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("core list {text:?}: {part:?} is not a core or a range");
        match part.split_once('-') {
            Some((low, high)) => {
                let low: usize = low.parse().map_err(|_| bad())?;
                let high: usize = high.parse().map_err(|_| bad())?;
                if low > high {
                    return Err(bad());
                }
                cores.extend(low..=high);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cores.is_empty() {
        return Err(format!("core list {text:?} is empty"));
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_size_is_fixed_or_a_range() {
        assert_eq!("1024".parse::<SizeSpec>().unwrap(), SizeSpec::fixed(1024));
        let range: SizeSpec = "100..1000".parse().unwrap();
        assert_eq!((range.min_bytes, range.max_bytes), (100, 1000));
        assert!((0..1000).all(|i| (100..1000).contains(&range.pick(i * 7919))));
        assert!("1000..100".parse::<SizeSpec>().is_err());
        assert!("4".parse::<SizeSpec>().is_err());
        assert!("x".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn byte_counts_read_binary_and_decimal_units_and_print_back() {
        let parse = |text: &str| text.parse::<ByteCount>().map(ByteCount::bytes);
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("4096B"), Ok(4096));
        assert_eq!(parse("64KiB"), Ok(65_536));
        assert_eq!(parse("1mib"), Ok(1 << 20));
        assert_eq!(parse("2GiB"), Ok(2 << 30));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("1MB"), Ok(1_000_000));
        assert!(parse("MiB").is_err());
        assert!(parse("1.5GiB").is_err());
        assert!(parse("99999999999GiB").is_err());
        for text in ["2GiB", "1MiB", "64KiB", "1000"] {
            assert_eq!(text.parse::<ByteCount>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn quic_overrides_survive_the_trip_to_the_peer_process() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            quic: QuicOverrides,
        }
        let overrides = QuicOverrides {
            quic_congestion: Some(CongestionArg::NewReno),
            quic_stream_window: Some(ByteCount(8 << 20)),
            quic_mtu_upper_bound: Some(8952),
            quic_ack_threshold: Some(8),
            quic_no_gso: true,
            ..QuicOverrides::default()
        };
        let args = overrides.to_args();
        let parsed =
            <Cli as clap::Parser>::try_parse_from(std::iter::once("peer".to_string()).chain(args))
                .unwrap();
        assert_eq!(parsed.quic, overrides);
        assert!(QuicOverrides::default().to_args().is_empty());
    }

    #[test]
    fn core_lists_read_like_taskset() {
        assert_eq!(parse_cores("0").unwrap(), vec![0]);
        assert_eq!(parse_cores("3,1-2").unwrap(), vec![1, 2, 3]);
        assert!(parse_cores("2-1").is_err());
        assert!(parse_cores("").is_err());
    }
}
