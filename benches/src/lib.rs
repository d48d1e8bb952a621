//! `spate bench`: a load generator for any Kafka-compatible broker, with its floors.
//!
//! Every throughput is printed next to the null-broker floor (what client, loopback and
//! framing allow, measured in the same run) and the disk floor (what `pwrite` and
//! `fdatasync` allow on the same disk), as `broker / floor` ratios, and every latency is
//! open-loop with coordinated omission corrected. The broker is pinned to its own cores
//! and the bench to the others, so the two do not share a CPU.
//!
//! Entry point: [`run`] with [`BenchArgs`], which the `spate` binary mounts as `spate bench`
//! and `spate-bench` runs standalone.

pub mod affinity;
pub mod args;
pub mod broker_cmd;
pub mod disk_floor;
pub mod metrics;
pub mod network_floor;
pub mod null_broker;
pub mod plot;
pub mod report;
pub mod runner;
pub mod scale;
pub mod suite;
pub mod workload;

use std::process::ExitCode;

pub use args::BenchArgs;

/// Why a bench run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] spate_client::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// Runs one `spate bench` command; builds its own runtime.
///
/// Exits non-zero when the run failed or measured nothing (zero throughput, or records
/// lost), so scripts and CI notice a broken figure.
pub fn run(args: BenchArgs) -> ExitCode {
    match runner::run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("spate bench: {e}");
            ExitCode::FAILURE
        }
    }
}
