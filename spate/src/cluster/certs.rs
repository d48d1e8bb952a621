//! `spate cluster ca` and `spate cluster cert`: the files cluster mutual TLS needs, made with
//! `spate_server::cluster::certs`. Paths written go to stdout; errors to stderr, exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use spate_server::cluster::certs::{write_ca, write_node_cert};

#[derive(clap::Args)]
pub struct CaArgs {
    /// Directory for ca.pem and ca.key (created if missing; existing files are never
    /// overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct CertArgs {
    /// Directory holding the cluster CA (ca.pem and ca.key), as `spate cluster ca` wrote it.
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// The node the certificate is for; it becomes the certificate's name, node-N.
    #[arg(long, value_name = "N")]
    node_id: i32,
    /// Directory for node-N.pem and node-N.key (created if missing; existing files are never
    /// overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run_ca(args: CaArgs) -> ExitCode {
    match write_ca(&args.out) {
        Ok(files) => {
            println!("wrote {}", files.cert.display());
            println!(
                "wrote {} (keep it secret: it signs node certificates)",
                files.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("spate cluster ca: {error}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_cert(args: CertArgs) -> ExitCode {
    match write_node_cert(&args.ca, args.node_id, &args.out) {
        Ok(files) => {
            println!("wrote {}", files.cert.display());
            println!("wrote {}", files.key.display());
            println!(
                "node {} needs these two files and {}",
                args.node_id,
                args.ca.join("ca.pem").display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("spate cluster cert: {error}");
            ExitCode::FAILURE
        }
    }
}
