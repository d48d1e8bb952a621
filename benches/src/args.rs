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
    fn core_lists_read_like_taskset() {
        assert_eq!(parse_cores("0").unwrap(), vec![0]);
        assert_eq!(parse_cores("3,1-2").unwrap(), vec![1, 2, 3]);
        assert!(parse_cores("2-1").is_err());
        assert!(parse_cores("").is_err());
    }
}
