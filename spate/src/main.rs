//! The `spate` binary. `spate serve` runs the broker; the client subcommands (`topic`,
//! `produce`, `consume`, `group`) are `spate_client::cli`'s, flattened in beside it, so
//! they are built from the same public client API as any other program. `spate bench` is
//! `spate_bench`'s load generator.
//!
//! Precedence of settings, lowest first: built-in defaults, the `--config` TOML file,
//! `SPATE_*` environment variables, flags (clap resolves the last two: a flag beats its
//! variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spate_server::ServerConfig;
use spate_server::metadata::topic_config;

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Kafka-compatible event streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node broker (data in ./data, Kafka on 127.0.0.1:9092, admin on :9644).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(spate_client::cli::ClientCommand),
    /// Throughput and end-to-end latency of any Kafka-compatible broker, with the
    /// null-broker and disk floors measured in the same run (see BENCHMARKS.md).
    Bench(spate_bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (see config/server.toml for every key).
    #[arg(long, env = "SPATE_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for partition logs and metadata [default: ./data].
    #[arg(long, env = "SPATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka listener, host:port; port 0 picks a free one [default: 127.0.0.1:9092].
    #[arg(long, env = "SPATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// host:port that Metadata tells clients to connect to [default: the listen address].
    #[arg(long, env = "SPATE_ADVERTISED_LISTEN")]
    advertised_listen: Option<String>,
    /// Admin HTTP listener (GET /health) [default: 127.0.0.1:9644].
    #[arg(long, env = "SPATE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Shard threads, one per core; 0 = every online core [default: 0].
    #[arg(long, env = "SPATE_CORES")]
    cores: Option<usize>,
    /// Partitions of auto-created topics (num.partitions) [default: 1].
    #[arg(long, env = "SPATE_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// Create unknown topics on Metadata/Produce (auto.create.topics.enable) [default: true].
    #[arg(long, env = "SPATE_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Default topic flush policy: always | never | <milliseconds> [default: always].
    #[arg(long, env = "SPATE_FLUSH")]
    flush: Option<String>,
    /// Serve fetches by copying instead of sendfile (for comparison; TLS later).
    #[arg(long, env = "SPATE_FETCH_COPY")]
    fetch_copy: bool,
    /// How often retention (retention.ms / retention.bytes) runs, in ms (Kafka's
    /// log.retention.check.interval.ms; default 300000).
    #[arg(long, env = "SPATE_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// How long the first rebalance of an empty group waits for more members, in ms
    /// (group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, env = "SPATE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<i32>,
    /// Smallest session.timeout.ms a consumer may ask for (group.min.session.timeout.ms)
    /// [default: 6000].
    #[arg(long, env = "SPATE_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// Largest session.timeout.ms a consumer may ask for (group.max.session.timeout.ms)
    /// [default: 1800000].
    #[arg(long, env = "SPATE_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<i32>,
    /// Partitions of __consumer_offsets, fixed at its creation
    /// (offsets.topic.num.partitions) [default: 50].
    #[arg(long, env = "SPATE_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// How long the offsets of an empty group are kept (offsets.retention.minutes)
    /// [default: 10080, 7 days].
    #[arg(long, env = "SPATE_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal: redirected logs (files, journald) stay plain text.
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A client command's stderr is for its own messages (errors, the produce summary);
    // the client library's routine logs would drown them, so only warnings show there.
    let default_log_level = match cli.command {
        Command::Serve(_) => "info",
        Command::Client(_) | Command::Bench(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_level)),
        )
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        // The client commands build their own small runtime; serve's per-core ones are
        // not wanted there.
        Command::Client(command) => spate_client::cli::run(command),
        Command::Bench(args) => spate_bench::run(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match server_config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("spate serve: {message}");
            return ExitCode::from(2);
        }
    };
    match spate_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("spate serve failed: {e}");
            eprintln!("spate serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server_config(args: ServeArgs) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if args.advertised_listen.is_some() {
        config.advertised_listen = args.advertised_listen;
    }
    if let Some(v) = args.admin_listen {
        config.admin_listen = v;
    }
    if let Some(v) = args.cores {
        config.cores = v;
    }
    if let Some(v) = args.num_partitions {
        config.num_partitions = v;
    }
    if let Some(v) = args.auto_create_topics {
        config.auto_create_topics = v;
    }
    if let Some(v) = args.flush {
        topic_config::apply(&mut config.log_defaults, "flush", &v).map_err(|e| e.to_string())?;
    }
    if args.fetch_copy {
        config.fetch_copy = true;
    }
    if let Some(interval_ms) = args.log_retention_check_interval_ms {
        config.log_retention_check_interval_ms = interval_ms;
    }
    if let Some(v) = args.group_initial_rebalance_delay_ms {
        config.groups.initial_rebalance_delay_ms = v;
    }
    if let Some(v) = args.group_min_session_timeout_ms {
        config.groups.min_session_timeout_ms = v;
    }
    if let Some(v) = args.group_max_session_timeout_ms {
        config.groups.max_session_timeout_ms = v;
    }
    if let Some(v) = args.offsets_topic_num_partitions {
        config.offsets_topic_partitions = v;
    }
    if let Some(minutes) = args.offsets_retention_minutes {
        config.groups.offsets_retention_ms = minutes.saturating_mul(60_000);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from([&["spate", "serve"], args].concat()).unwrap();
        match cli.command {
            Command::Serve(args) => args,
            Command::Client(_) | Command::Bench(_) => panic!("parsed as a client command"),
        }
    }

    #[test]
    fn serve_without_flags_is_the_embedded_default() {
        let config = server_config(serve_args(&[])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9644");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics);
        assert!(!config.fetch_copy);
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "\"num.partitions\" = 4\nflush = \"never\"\ncores = 3\n",
        )
        .unwrap();
        let config = server_config(serve_args(&[
            "--config",
            file.to_str().unwrap(),
            "--num-partitions",
            "6",
            "--listen",
            "127.0.0.1:0",
            "--fetch-copy",
        ]))
        .unwrap();
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.cores, 3);
        assert_eq!(
            config.log_defaults.flush,
            spate_server::metadata::topic_config::parse_flush("never").unwrap()
        );
        assert_eq!(config.listen.port(), 0);
        assert!(config.fetch_copy);
    }

    #[test]
    fn bad_values_are_refused_before_starting() {
        assert!(server_config(serve_args(&["--flush", "sometimes"])).is_err());
        assert!(server_config(serve_args(&["--num-partitions", "0"])).is_err());
        assert!(Cli::try_parse_from(["spate", "serve", "--listen", "nowhere"]).is_err());
    }
}
