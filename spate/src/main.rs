//! The `spate` binary. `spate serve` runs the broker; the client subcommands (`topic`,
//! `produce`, `consume`, `group`) are `spate_client::cli`'s, flattened in beside it, so
//! they are built from the same public client API as any other program. `spate bench` is
//! `spate_bench`'s load generator.
//!
//! Precedence of settings, lowest first: built-in defaults, the `--config` TOML file,
//! `SPATE_*` environment variables, flags (clap resolves the last two: a flag beats its
//! variable).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cluster;
mod serve;

use serve::{ServeArgs, serve};

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Kafka-compatible event streaming broker"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a node: with no cluster flags, a single node (data in ./data, Kafka on
    /// 127.0.0.1:9092, admin on :9644); with --node-id, --controller-voters and
    /// --cluster-listen, a member of a cluster (docs/cluster.md).
    Serve(Box<ServeArgs>),
    #[command(flatten)]
    Client(spate_client::cli::ClientCommand),
    /// Throughput and end-to-end latency of any Kafka-compatible broker, with the
    /// null-broker and disk floors measured in the same run (see BENCHMARKS.md).
    Bench(Box<spate_bench::BenchArgs>),
    /// Cluster tools: certificates, a local dev cluster, status.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal: redirected logs (files, journald) stay plain text.
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A client command's stderr is for its own messages (errors, the produce summary);
    // the client library's routine logs would drown them, so only warnings show there.
    // openraft narrates every vote and heartbeat at info; a node's own log says what matters
    // (elections won, brokers fenced) in its own words.
    let default_log_level = match cli.command {
        Command::Serve(_) => "info,openraft=warn",
        Command::Client(_) | Command::Bench(_) | Command::Cluster(_) => "warn",
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
        Command::Serve(args) => serve(*args),
        // The client commands build their own small runtime; serve's per-core ones are
        // not wanted there.
        Command::Client(command) => spate_client::cli::run(command),
        Command::Bench(args) => spate_bench::run(*args),
        Command::Cluster(command) => cluster::run(command),
    }
}
