//! The `spate` binary's client subcommands: `topic`, `produce`, `consume` and `group`.
//!
//! They live here rather than in the binary so that they are built from the same public API
//! as any other program using the client (and so that the binary stays a thin dispatcher).
//! The feature `cli` compiles them; without it the library does not depend on clap,
//! serde_json or indicatif.
//!
//! Conventions every command follows, which scripts and the docs (`docs/cli.md`) rely on:
//! - `--bootstrap HOST:PORT` (env `SPATE_BOOTSTRAP`, default `127.0.0.1:9092`), and every
//!   other flag has an environment variable `SPATE_<FLAG>`. The one exception is the topic
//!   commands' `--config`, read from `SPATE_TOPIC_CONFIG`, because `SPATE_CONFIG` already
//!   names `spate serve`'s config file.
//! - Results go to stdout: aligned tables for people, `--output json` for programs. Errors
//!   and progress go to stderr, and the exit code says what kind of failure it was (see
//!   [`error::CliError::exit_code`]).

mod args;
mod consume;
mod consume_group;
pub mod error;
mod group;
pub mod output;
mod produce;
pub mod time;
mod topic;
mod topic_placement;

use std::process::ExitCode;
use std::time::Duration;

pub use args::{
    ClientCommand, ConnectArgs, ConsumeArgs, GroupArgs, GroupCommand, OutputFormat, ProduceArgs,
    RecordFormat, TopicArgs, TopicCommand,
};
pub use error::CliError;

use crate::config::ClientConfig;

/// Runs one client subcommand to completion and reports how it ended.
///
/// The binary is synchronous (`spate serve` builds its own per-core runtimes), so each client
/// command gets a small runtime of its own here. Errors are printed to stderr, prefixed with
/// the command, e.g. `spate topic describe: …`.
pub fn run(command: ClientCommand) -> ExitCode {
    let name = command.name();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKER_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spate {name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        wait_for_cluster(name, command.connect_args()).await?;
        dispatch(command).await
    });
    // Tasks still running (a fetcher waiting on a long poll) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spate {name}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Two workers: one can print or read stdin while the other keeps the producer's sender or
/// the consumer's fetcher going.
const RUNTIME_WORKER_THREADS: usize = 2;

/// How long background tasks get to finish after the command is done.
const RUNTIME_SHUTDOWN_MS: u64 = 100;

/// Pause between attempts to reach a broker that refused the connection.
const BOOTSTRAP_RETRY_MS: u64 = 200;

/// Waits until the cluster answers a Metadata request, retrying a refused or failed connection
/// until `--timeout-ms` has passed, as Kafka's own tools keep retrying their bootstrap servers.
/// This is what lets a script start `spate serve &` and use the broker on the next line.
/// Anything other than "no broker reachable" is returned at once.
async fn wait_for_cluster(name: &str, connect: &ConnectArgs) -> Result<(), CliError> {
    let config = connect.client_config();
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    let mut announced = false;
    loop {
        match crate::Client::connect(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) => {
                let error = CliError::from(error);
                let retry_at =
                    tokio::time::Instant::now() + Duration::from_millis(BOOTSTRAP_RETRY_MS);
                if !matches!(error, CliError::Unreachable(_)) || retry_at >= deadline {
                    return Err(error);
                }
                if !announced {
                    announced = true;
                    eprintln!(
                        "spate {name}: waiting up to {} ms for a broker at {}",
                        connect.timeout_ms, connect.bootstrap
                    );
                }
                tokio::time::sleep_until(retry_at).await;
            }
        }
    }
}

async fn dispatch(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Topic(args) => topic::run(args).await,
        ClientCommand::Produce(args) => produce::run(args).await,
        ClientCommand::Consume(args) => consume::run(args).await,
        ClientCommand::Group(args) => group::run(args).await,
    }
}

impl ConnectArgs {
    /// The client settings these flags describe.
    pub fn client_config(&self) -> ClientConfig {
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        ClientConfig {
            client_id: CLIENT_ID.to_string(),
            request_timeout: timeout,
            connect_timeout: timeout,
            ..ClientConfig::new(self.bootstrap.clone())
        }
    }
}

/// `client.id` of every CLI connection, so broker logs and `group describe` show where a
/// request came from.
pub const CLIENT_ID: &str = "spate-cli";
