//! `spate cluster …`: the cluster's own tools (certificates, a local dev cluster, status).

pub mod certs;
pub mod dev;
pub mod status;

use std::fmt;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Make a cluster CA: writes DIR/ca.pem and DIR/ca.key (keep the key secret).
    Ca(certs::CaArgs),
    /// Make node N's certificate, signed by the cluster CA: writes DIR/node-N.pem and
    /// DIR/node-N.key.
    Cert(certs::CertArgs),
    /// Run a local N-node cluster for development (certificates, ports and data under one
    /// directory); Ctrl-C stops it.
    Dev(dev::DevArgs),
    /// Show the cluster as one node sees it: controller, brokers, partitions.
    Status(status::StatusArgs),
}

pub fn run(command: ClusterCommand) -> ExitCode {
    match command {
        ClusterCommand::Ca(args) => certs::run_ca(args),
        ClusterCommand::Cert(args) => certs::run_cert(args),
        ClusterCommand::Dev(args) => report("cluster dev", dev::run(args)),
        ClusterCommand::Status(args) => report("cluster status", status::run(args)),
    }
}

/// Why a `spate cluster` subcommand failed. The variant is the exit code, so scripts can tell
/// "fix the command" (2) from "retry later" (3) from "it failed" (1), as with the client
/// commands (docs/cli.md).
#[derive(Debug)]
pub enum Failure {
    /// The command line cannot work (exit code 2).
    Usage(String),
    /// Nothing answered at the address given (exit code 3).
    Unreachable(String),
    /// The command ran and failed (exit code 1).
    Failed(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) | Failure::Unreachable(message) | Failure::Failed(message) => {
                f.write_str(message)
            }
        }
    }
}

/// Prints a failure to stderr, prefixed with the command as the client commands do
/// (`spate cluster status: …`), and turns the outcome into the process's exit code.
fn report(name: &str, outcome: Result<ExitCode, Failure>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("spate {name}: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
