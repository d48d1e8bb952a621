//! `spate cluster dev`: a local cluster of N nodes for development, as `rpk container start -n 3`
//! is for Redpanda, but with plain processes.
//!
//! Everything lives under one directory, so a second run with the same `--data-dir` brings
//! back the same cluster: `certs/` (a CA and one certificate per node), `node-N/` (node N's data
//! dir and its `spate.log`), and `cluster.toml` (the cluster id and each node's ports). Ports
//! are remembered rather than picked afresh each run, so a restarted cluster keeps its
//! addresses: clients' bootstrap lists, what Metadata advertises and the controller voters
//! stay valid across restarts.
//!
//! The nodes are children of this process. It waits until every node has printed its
//! `spate listening …` line, prints where they are, and then watches them: Ctrl-C or SIGTERM
//! stops them all (SIGTERM each, so they shut down cleanly), and a node that dies stops the
//! rest, with an exit code of 1. It does not restart nodes, and is not a way to run a real
//! cluster: every node is on 127.0.0.1, and they share one CA whose key sits next to them.

mod dir;
mod nodes;

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::Failure;
use dir::{DevFile, assign_ports, ensure_certs, lock_dir};
use nodes::{Cluster, Stop, install_stop_handlers, log_tail};

/// Node ids are single digits, so `node-N` directories and the printed lines stay short and
/// sort; more nodes than this on one machine is not a development cluster any more.
const NODE_COUNT_MAX: u8 = 9;
/// The nodes listen on loopback only: this is a cluster for one machine.
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Each node's stderr, appended to, in its data dir.
const LOG_FILE: &str = "spate.log";

#[derive(clap::Args)]
pub struct DevArgs {
    /// Nodes to run, 1 to 9 (ids 1..=N), each a broker and a controller voter [default: the
    /// count DIR was first run with, else 3].
    #[arg(long, env = "SPATE_NODES", value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=NODE_COUNT_MAX as i64))]
    nodes: Option<u8>,
    /// Directory for certificates, node data and logs; a later run with the same DIR brings
    /// the same cluster back. Its variable is not SPATE_DATA_DIR, which is `spate serve`'s.
    #[arg(
        long,
        env = "SPATE_DEV_DATA_DIR",
        default_value = "spate-dev",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Shard threads of each node (its --cores; 0 = every online core).
    #[arg(long, env = "SPATE_CORES_PER_NODE", default_value_t = 1)]
    cores_per_node: usize,
    /// How long to wait for every node to join the cluster and serve, in ms.
    #[arg(long, env = "SPATE_READY_TIMEOUT_MS", default_value_t = 60_000)]
    ready_timeout_ms: u64,
    /// Flags passed to every node's `spate serve` (after `--`).
    #[arg(last = true, value_name = "SERVE_FLAGS")]
    serve_flags: Vec<String>,
}

pub fn run(args: DevArgs) -> Result<ExitCode, Failure> {
    let dir = args.data_dir.as_path();
    fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, e))?;
    let _lock = lock_dir(dir)?;
    let mut file = DevFile::load_or_create(dir, args.nodes)?;
    let ports = assign_ports(&mut file, dir)?;
    file.save(dir)?;
    ensure_certs(&dir.join("certs"), file.node_count)?;
    install_stop_handlers().map_err(|e| Failure::Failed(format!("cannot handle Ctrl-C: {e}")))?;
    let exe = std::env::current_exe().map_err(|e| {
        Failure::Failed(format!("cannot find this executable to run the nodes: {e}"))
    })?;
    eprintln!(
        "starting {} node(s) of cluster {} in {}; waiting up to {:?} for them to serve",
        file.node_count,
        file.cluster_id,
        dir.display(),
        Duration::from_millis(args.ready_timeout_ms)
    );
    let mut cluster = Cluster::start(&exe, &args, &file.cluster_id, &ports)?;
    let deadline = Instant::now() + Duration::from_millis(args.ready_timeout_ms);
    let mut stop = cluster.poll_until(Some(deadline), |c| {
        c.nodes.iter().all(|n| n.listening.is_some())
    });
    if stop.is_none() {
        // Best effort: the nodes serve whether or not anyone reads our stdout.
        let _ = spate_client::cli::output::print_stdout(&cluster.ready_report());
        eprintln!(
            "Ctrl-C stops all nodes; logs in {}; `spate cluster status --admin {}` shows the cluster",
            dir.join("node-*").join(LOG_FILE).display(),
            cluster
                .nodes
                .first()
                .and_then(|n| n.listening.as_ref())
                .map_or("?", |l| l.admin.as_str()),
        );
        stop = cluster.poll_until(None, |_| false);
    }
    let failed = match stop {
        None | Some(Stop::Signal) => false,
        Some(Stop::Exited { id, status }) => {
            let log = node_dir(dir, id).join(LOG_FILE);
            eprintln!(
                "spate cluster dev: node {id} exited with {status}; see {}",
                log.display()
            );
            eprint!("{}", log_tail(&log));
            true
        }
        Some(Stop::NotReady) => {
            for node in cluster.nodes.iter().filter(|n| n.listening.is_none()) {
                let log = node_dir(dir, node.id).join(LOG_FILE);
                eprintln!(
                    "spate cluster dev: node {} did not serve within {} ms (--ready-timeout-ms)",
                    node.id, args.ready_timeout_ms
                );
                eprint!("{}", log_tail(&log));
            }
            true
        }
    };
    cluster.stop_all();
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn node_dir(dir: &Path, id: i32) -> PathBuf {
    dir.join(format!("node-{id}"))
}

pub(super) fn io_failure(what: &str, path: &Path, e: io::Error) -> Failure {
    Failure::Failed(format!("{what} {}: {e}", path.display()))
}
