//! `spate cluster status`: the cluster as one node sees it, read from that node's admin
//! endpoint (`GET /cluster`, served by `spate_server::cluster::status`).
//!
//! It speaks HTTP/1.0 over a plain `TcpStream` (the admin server answers one request per
//! connection and closes) and reads the JSON into the server's own
//! [`spate_server::cluster::status::ClusterStatus`], so the two cannot drift. It shows only what
//! that node knows; it does not ask the other nodes, so a node cut off from the quorum shows its
//! last view.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use spate_client::cli::OutputFormat;
use spate_client::cli::output::{Align, Table, print_stdout};

use spate_server::cluster::status::ClusterStatus;

use super::Failure;

/// The answer lists every broker and voter; 16 MiB is far beyond any real cluster, and caps
/// what a wrong `--admin` (some other server streaming data) can make us buffer.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A node's admin HTTP address (its --admin-listen).
    #[arg(
        long,
        env = "SPATE_ADMIN",
        default_value = "127.0.0.1:9644",
        value_name = "HOST:PORT"
    )]
    admin: String,
    /// `table` for people; `json` (the node's answer, pretty-printed) for scripts.
    #[arg(long, value_enum, env = "SPATE_OUTPUT", default_value = "table")]
    output: OutputFormat,
    /// How long to wait for the connection and the whole answer, in ms (with
    /// `--wait-for-brokers`, for the cluster to get there).
    #[arg(long, env = "SPATE_TIMEOUT_MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Wait until the node sees an active controller and at least N unfenced brokers
    /// (polling; nodes that are still starting up count as not yet), so a script can create
    /// a topic of replication factor N right after starting the nodes.
    #[arg(long, value_name = "N")]
    wait_for_brokers: Option<usize>,
}

/// How often `--wait-for-brokers` asks again.
const WAIT_POLL: Duration = Duration::from_millis(100);

pub fn run(args: StatusArgs) -> Result<ExitCode, Failure> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let status = match args.wait_for_brokers {
        None => fetch_status(&args.admin, timeout)?,
        Some(wanted) => wait_for_brokers(&args.admin, wanted, timeout)?,
    };
    let text = match args.output {
        OutputFormat::Table => render_table(&status),
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&status).unwrap_or_default();
            text.push('\n');
            text
        }
    };
    match print_stdout(&text) {
        Ok(()) | Err(spate_client::cli::CliError::BrokenPipe) => Ok(ExitCode::SUCCESS),
        Err(error) => Err(Failure::Failed(error.to_string())),
    }
}

/// The node's `/cluster` answer, read.
fn fetch_status(admin: &str, timeout: Duration) -> Result<ClusterStatus, Failure> {
    let body = get_cluster(admin, timeout)?;
    // Read in both formats, so `--output json` is a document of the expected shape too.
    parse_status(&body).map_err(|reason| {
        Failure::Failed(format!(
            "cannot read the /cluster answer of {admin}: {reason}"
        ))
    })
}

/// Polls until `admin`'s node sees an active controller and `wanted` unfenced brokers.
/// A node not answering yet (still starting) is retried until the deadline too.
fn wait_for_brokers(
    admin: &str,
    wanted: usize,
    timeout: Duration,
) -> Result<ClusterStatus, Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match fetch_status(admin, left.max(WAIT_POLL)) {
            Ok(status) => {
                let live = status.brokers.iter().filter(|b| !b.fenced).count();
                if status.controller.leader_id.is_some() && live >= wanted {
                    return Ok(status);
                }
                format!(
                    "it sees {live} unfenced broker(s) and {}",
                    match status.controller.leader_id {
                        Some(id) => format!("node {id} as the active controller"),
                        None => "no active controller".to_owned(),
                    }
                )
            }
            Err(Failure::Usage(message)) => return Err(Failure::Usage(message)),
            Err(e) => e.to_string(),
        };
        if Instant::now() + WAIT_POLL >= deadline {
            return Err(Failure::Failed(format!(
                "{admin}: not {wanted} unfenced brokers with an active controller within {} ms \
                 (--timeout-ms): {last}; check that every node is running and can reach the \
                 controller voters",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// `GET /cluster` from `admin`, within `timeout` overall. Returns the body.
fn get_cluster(admin: &str, timeout: Duration) -> Result<String, Failure> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = match admin.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            return Err(Failure::Usage(format!(
                "--admin {admin} is not HOST:PORT ({e}); give a node's admin address, e.g. 127.0.0.1:9644"
            )));
        }
        Err(e) => return Err(unreachable(admin, &e.to_string())),
    };
    let mut last_error = format!("{admin} resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let mut stream = stream.ok_or_else(|| unreachable(admin, &last_error))?;
    let failed = |e: std::io::Error| {
        let e = if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            format!(
                "no complete answer within {} ms (--timeout-ms)",
                timeout.as_millis()
            )
        } else {
            e.to_string()
        };
        Failure::Failed(format!("GET /cluster from {admin}: {e}"))
    };
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    let request = format!("GET /cluster HTTP/1.0\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(e)),
        }
        if reply.len() as u64 > RESPONSE_BYTES_MAX {
            return Err(Failure::Failed(format!(
                "{admin} sent more than {RESPONSE_BYTES_MAX} bytes; is it a Spate admin port?"
            )));
        }
    }
    http_body(admin, &reply)
}

fn unreachable(admin: &str, reason: &str) -> Failure {
    Failure::Unreachable(format!(
        "cannot connect to the admin endpoint at {admin}: {reason}; check --admin (a node's \
         --admin-listen address) and that the node is running"
    ))
}

/// The body of a `200` reply; any other status is an error that says what it means here.
fn http_body(admin: &str, reply: &[u8]) -> Result<String, Failure> {
    let not_http = || {
        Failure::Failed(format!(
            "{admin} did not answer HTTP; is it a Spate admin port?"
        ))
    };
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(not_http)?;
    let status_line = reply.split(|&b| b == b'\r').next().unwrap_or_default();
    let code = std::str::from_utf8(status_line)
        .ok()
        .filter(|line| line.starts_with("HTTP/1."))
        .and_then(|line| line.split(' ').nth(1))
        .ok_or_else(not_http)?;
    let body = String::from_utf8_lossy(&reply[split + 4..]).into_owned();
    match code {
        "200" => Ok(body),
        "404" => Err(Failure::Failed(format!(
            "{admin} has no /cluster endpoint: the node may run an older version of Spate than \
             this `spate`"
        ))),
        other => Err(Failure::Failed(format!(
            "{admin} answered HTTP {other}: {}",
            body.trim().chars().take(200).collect::<String>()
        ))),
    }
}

/// `/cluster`'s answer. Unknown fields are ignored, so a newer node still works with this
/// `spate`; a missing one is an error that names it.
fn parse_status(body: &str) -> Result<ClusterStatus, String> {
    serde_json::from_str(body).map_err(|e| {
        if e.is_data() {
            format!("{e}; the node may run an older version of Spate than this `spate`")
        } else {
            e.to_string()
        }
    })
}

/// The header block, then one row per broker or voter, then a footnote for the `*`.
fn render_table(status: &ClusterStatus) -> String {
    let mut out = String::new();
    match &status.cluster_id {
        Some(id) => out.push_str(&format!("cluster {id}\n")),
        None => out.push_str("cluster (id not known yet)\n"),
    }
    match (status.controller.leader_id, status.controller.epoch) {
        (Some(leader), Some(epoch)) => {
            out.push_str(&format!("controller {leader} (epoch {epoch})\n"))
        }
        (Some(leader), None) => out.push_str(&format!("controller {leader}\n")),
        (None, _) => out.push_str("controller none (election in progress)\n"),
    }
    out.push_str(&format!(
        "metadata offset {} (as seen by node {})\npartitions {} ({} offline, {} under-replicated, {} under min ISR) in {} topic(s)\n\n",
        status.metadata_offset,
        status.node_id,
        status.partitions.total,
        status.partitions.offline,
        status.partitions.under_replicated,
        status.partitions.under_min_isr,
        status.topics,
    ));
    let mut table = Table::new(&[
        ("NODE", Align::Left),
        ("ROLE", Align::Left),
        ("KAFKA", Align::Left),
        ("CLUSTER", Align::Left),
        ("RACK", Align::Left),
        ("STATE", Align::Left),
        ("EPOCH", Align::Right),
        ("LEADERS", Align::Right),
        ("REPLICAS", Align::Right),
    ]);
    let voter_ids: BTreeSet<i32> = status.controller.voters.iter().map(|v| v.node_id).collect();
    let node_ids: BTreeSet<i32> = voter_ids
        .iter()
        .copied()
        .chain(status.brokers.iter().map(|b| b.node_id))
        .collect();
    let mut marked = false;
    for id in node_ids {
        let is_leader = status.controller.leader_id == Some(id);
        marked |= is_leader;
        let node = if is_leader {
            format!("{id}*")
        } else {
            id.to_string()
        };
        let is_voter = voter_ids.contains(&id);
        let row = match status.brokers.iter().find(|b| b.node_id == id) {
            Some(b) => vec![
                node,
                if is_voter { "broker+voter" } else { "broker" }.to_owned(),
                format!("{}:{}", b.host, b.port),
                b.cluster_address.clone(),
                b.rack.clone().unwrap_or_else(|| "-".to_owned()),
                b.state().to_owned(),
                b.epoch.to_string(),
                b.leaders.to_string(),
                b.replicas.to_string(),
            ],
            None => {
                let address = status.controller.voters.iter().find(|v| v.node_id == id);
                let address = address.map_or("-", |v| v.address.as_str()).to_owned();
                let dash = || "-".to_owned();
                vec![
                    node,
                    "voter".to_owned(),
                    dash(),
                    address,
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                ]
            }
        };
        table.row(row);
    }
    out.push_str(&table.render());
    if marked {
        out.push_str("\n* active controller\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four nodes: 1 broker+voter and active controller, 2 broker+voter fenced, 3 a broker in
    /// controlled shutdown (not a voter), 4 a voter with no broker; plus a field this version
    /// does not know.
    const FIXTURE: &str = r#"{
      "node_id": 1, "roles": ["broker", "controller"], "cluster_id": "Ab3xYz", "metadata_offset": 42,
      "controller": {"leader_id": 1, "epoch": 5, "voters": [
        {"node_id": 1, "address": "127.0.0.1:40001"}, {"node_id": 2, "address": "127.0.0.1:40002"},
        {"node_id": 4, "address": "127.0.0.1:40004"}]},
      "brokers": [
        {"node_id": 3, "host": "127.0.0.1", "port": 39003, "cluster_address": "127.0.0.1:40003",
         "rack": "eu-1c", "epoch": 14, "fenced": true, "controlled_shutdown": true, "leaders": 0, "replicas": 2},
        {"node_id": 1, "host": "127.0.0.1", "port": 39001, "cluster_address": "127.0.0.1:40001",
         "rack": "eu-1a", "epoch": 12, "fenced": false, "controlled_shutdown": false, "leaders": 2, "replicas": 6},
        {"node_id": 2, "host": "127.0.0.1", "port": 39002, "cluster_address": "127.0.0.1:40002",
         "rack": null, "epoch": 13, "fenced": true, "controlled_shutdown": false, "leaders": 0, "replicas": 4}],
      "partitions": {"total": 6, "offline": 1, "under_replicated": 2}, "topics": 1,
      "added_in_a_later_version": {"x": [1, 2.5e3]}
    }"#;

    fn status_of(text: &str) -> Result<ClusterStatus, String> {
        parse_status(text)
    }

    #[test]
    fn table_shows_every_role_and_state_and_marks_the_active_controller() {
        let status = status_of(FIXTURE).unwrap();
        assert_eq!(
            render_table(&status),
            "cluster Ab3xYz\n\
             controller 1 (epoch 5)\n\
             metadata offset 42 (as seen by node 1)\n\
             partitions 6 (1 offline, 2 under-replicated, 0 under min ISR) in 1 topic(s)\n\
             \n\
             NODE  ROLE          KAFKA            CLUSTER          RACK   STATE          EPOCH  LEADERS  REPLICAS\n\
             1*    broker+voter  127.0.0.1:39001  127.0.0.1:40001  eu-1a  live              12        2         6\n\
             2     broker+voter  127.0.0.1:39002  127.0.0.1:40002  -      fenced            13        0         4\n\
             3     broker        127.0.0.1:39003  127.0.0.1:40003  eu-1c  shutting-down     14        0         2\n\
             4     voter         -                127.0.0.1:40004  -      -                  -        -         -\n\
             \n\
             * active controller\n"
        );
    }

    #[test]
    fn table_without_a_leader_says_an_election_is_in_progress_and_marks_nobody() {
        let text = FIXTURE
            .replace(
                r#""leader_id": 1, "epoch": 5"#,
                r#""leader_id": null, "epoch": null"#,
            )
            .replace(r#""cluster_id": "Ab3xYz""#, r#""cluster_id": null"#);
        let table = render_table(&status_of(&text).unwrap());
        assert!(
            table.starts_with(
                "cluster (id not known yet)\ncontroller none (election in progress)\n"
            ),
            "{table}"
        );
        assert!(!table.contains('*'), "{table}");
    }

    #[test]
    fn a_leader_without_an_epoch_is_shown_without_one() {
        let text = FIXTURE.replace(r#""epoch": 5"#, r#""epoch": null"#);
        assert!(render_table(&status_of(&text).unwrap()).contains("\ncontroller 1\n"));
    }

    #[test]
    fn a_missing_field_names_it_and_suggests_an_older_node() {
        let text = FIXTURE.replace(
            r#""controlled_shutdown": false, "leaders": 2"#,
            r#""leaders": 2"#,
        );
        let error = status_of(&text).unwrap_err();
        assert!(error.contains("`controlled_shutdown`"), "{error}");
        assert!(error.contains("older version"), "{error}");
        let error = status_of(&FIXTURE.replace(r#""topics": 1,"#, "")).unwrap_err();
        assert!(error.contains("`topics`"), "{error}");
    }

    #[test]
    fn a_field_of_the_wrong_type_or_range_is_an_error() {
        let error =
            status_of(&FIXTURE.replace(r#""port": 39001"#, r#""port": 70000"#)).unwrap_err();
        assert!(error.contains("70000"), "{error}");
        let error =
            status_of(&FIXTURE.replace(r#""fenced": false"#, r#""fenced": "no""#)).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
        assert!(status_of("[]").is_err());
        assert!(status_of("{").is_err());
    }

    #[test]
    fn http_replies_other_than_200_say_what_they_mean() {
        let ok = http_body("h:1", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(ok, "{}");
        let old = http_body("h:1", b"HTTP/1.1 404 Not Found\r\n\r\nnot found\n").unwrap_err();
        assert!(old.to_string().contains("older version"), "{old}");
        let junk = http_body("h:1", b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(junk.to_string().contains("did not answer HTTP"), "{junk}");
        assert_eq!(junk.exit_code(), 1);
    }
}
