//! A cluster under test: several real `spate serve` processes forming one metadata quorum over
//! mutually authenticated QUIC, as an operator would run them.
//!
//! [`Cluster::start`] makes a CA and one certificate per node with the real `spate cluster ca`
//! and `spate cluster cert` commands, picks each node's UDP port in advance (every node's
//! `--controller-voters` must name every voter's address), spawns every node, and only then waits
//! for each listening line: a node prints it once the quorum has a leader and it has registered
//! and been unfenced, which needs a majority of voters running. Node ids are 1..=N, all voters
//! unless [`ClusterOptions::roles`] says otherwise.
//!
//! Each node is a [`Broker`], so it keeps its data directory across [`Cluster::kill9`] and
//! [`Cluster::restart`] (which reuses its Kafka, admin and cluster ports, so the other nodes and
//! clients find it where it was); [`Cluster::kill9_all`] and [`Cluster::restart_stopped`] do the
//! same for the whole cluster. Dropping the cluster SIGKILLs every node and removes the data,
//! log and certificate directories; a clean stop of a node whose peers are gone would wait for a
//! quorum that no longer exists.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::broker::http_get;
use crate::cluster_requests::{ClusterMetadata, cluster_metadata};
use crate::kafka_requests::create_replicated_topic_v4;
use crate::wire::KafkaConnection;
use crate::workspace::spate_binary;
use crate::{Broker, BrokerOptions, HarnessError, run_with_timeout};

/// A node id, as `--node-id` and Kafka's Metadata use it.
pub type NodeId = i32;

/// The broker session timeout tests run with: short, so a dead broker is fenced quickly.
pub const SESSION_TIMEOUT_MS: u64 = 3_000;
/// The heartbeat interval tests run with (below the session timeout, as the server requires).
pub const HEARTBEAT_INTERVAL_MS: u64 = 500;
/// The controller election timeout tests run with (Kafka's default): a dead quorum leader is
/// replaced within about 1 to 1.5 of these. Shorter ones risk needless elections when the
/// 2-core CI machine stalls a node under the whole suite's load.
pub const ELECTION_TIMEOUT_MS: u64 = 1_000;
/// How long SIGTERM waits for the controller to move a broker's leaderships before exiting.
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// How long a SIGTERM'd cluster node may take: the controlled shutdown, then the drain of
/// in-flight requests (10 s at most) and the engine's flush.
const NODE_SHUTDOWN_TIMEOUT_MS: u64 = CONTROLLED_SHUTDOWN_TIMEOUT_MS + 20_000;

/// The `timeout_ms` of the harness's admin requests: below the raw connection's read timeout,
/// so the broker's own answer (REQUEST_TIMED_OUT, if it comes to that) arrives first.
const ADMIN_REQUEST_TIMEOUT_MS: i32 = 8_000;

/// How long [`Cluster::controller_leader`] keeps asking: an election on a loaded 2-core machine
/// takes a few election timeouts at worst.
const CONTROLLER_LEADER_TIMEOUT_MS: u64 = 30_000;

/// How often [`Cluster::wait_until`] and [`Cluster::controller_leader`] look again.
const POLL_INTERVAL_MS: u64 = 50;

/// A `spate cluster ca|cert` run makes a key pair and writes two files: instant, even in debug.
const CERT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of each node's stderr [`Cluster::logs`] shows.
const LOG_TAIL_BYTES: usize = 6 * 1024;

/// What a node does: `--roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeRole {
    /// A broker and a voter of the metadata quorum (KRaft's combined mode).
    #[default]
    BrokerAndController,
    /// Serves clients and stores partitions, but does not vote.
    Broker,
    /// Votes in the quorum, serves no Kafka clients.
    Controller,
}

impl NodeRole {
    fn flag(self) -> &'static str {
        match self {
            NodeRole::BrokerAndController => "broker,controller",
            NodeRole::Broker => "broker",
            NodeRole::Controller => "controller",
        }
    }

    /// Whether the node is in `--controller-voters`.
    pub fn is_voter(self) -> bool {
        self != NodeRole::Broker
    }

    /// Whether the node serves Kafka clients.
    pub fn is_broker(self) -> bool {
        self != NodeRole::Controller
    }
}

/// How to start a [`Cluster`]. The default is three combined nodes with the short timeouts above.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Node count; the ids are 1..=nodes.
    pub nodes: u32,
    /// Roles other than [`NodeRole::BrokerAndController`], by node id.
    pub roles: HashMap<NodeId, NodeRole>,
    /// `--cluster-id` for every node; unset, the first controller leader picks one.
    pub cluster_id: Option<String>,
    /// `--broker-session-timeout-ms`.
    pub session_timeout_ms: u64,
    /// `--broker-heartbeat-interval-ms`.
    pub heartbeat_interval_ms: u64,
    /// `--controller-election-timeout-ms`.
    pub election_timeout_ms: u64,
    /// `--controlled-shutdown-timeout-ms`.
    pub controlled_shutdown_timeout_ms: u64,
    /// `--cores` of every node; 1 keeps a 3-node cluster within a 2-core machine.
    pub cores: u32,
    /// Raw `serve` arguments for every node (after the harness's own).
    pub extra_args: Vec<String>,
    /// Raw `serve` arguments for one node (after `extra_args`).
    pub per_node_args: HashMap<NodeId, Vec<String>>,
    /// Environment variables for every node.
    pub env: Vec<(String, String)>,
    /// A binary to run for `serve` instead of [`spate_binary`]'s (certificates are always made
    /// by the real one); for the harness's own tests.
    pub binary: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            roles: HashMap::new(),
            cluster_id: None,
            session_timeout_ms: SESSION_TIMEOUT_MS,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            election_timeout_ms: ELECTION_TIMEOUT_MS,
            controlled_shutdown_timeout_ms: CONTROLLED_SHUTDOWN_TIMEOUT_MS,
            cores: 1,
            extra_args: Vec::new(),
            per_node_args: HashMap::new(),
            env: Vec::new(),
            binary: None,
        }
    }
}

impl ClusterOptions {
    fn role(&self, id: NodeId) -> NodeRole {
        self.roles.get(&id).copied().unwrap_or_default()
    }
}

struct ClusterNode {
    broker: Broker,
    role: NodeRole,
    cluster_addr: SocketAddr,
}

/// A running cluster of `spate serve` processes. Every node is SIGKILLed on drop.
pub struct Cluster {
    nodes: BTreeMap<NodeId, ClusterNode>,
    /// `--controller-voters`, as every node got it.
    voters: String,
    /// `ca/` (ca.pem, ca.key) and `nodes/` (node-N.pem, node-N.key).
    certs_dir: TempDir,
}

impl Cluster {
    /// Makes the certificates, starts every node, and waits until each has printed its
    /// listening line.
    pub fn start(options: ClusterOptions) -> Result<Cluster, HarnessError> {
        assert!(options.nodes >= 1, "a cluster needs at least one node");
        let ids: Vec<NodeId> = (1..=options.nodes)
            .map(|id| NodeId::try_from(id).expect("node count fits an i32"))
            .collect();
        assert!(
            ids.iter().any(|id| options.role(*id).is_voter()),
            "a cluster needs at least one controller"
        );
        let certs_dir = tempfile::Builder::new()
            .prefix("spate-certs-")
            .tempdir()
            .map_err(|e| HarnessError::io("create certificate dir", e))?;
        let ca_dir = certs_dir.path().join("ca");
        let node_dir = certs_dir.path().join("nodes");
        make_ca(&ca_dir)?;
        for id in &ids {
            make_node_cert(&ca_dir, *id, &node_dir)?;
        }
        let ports = free_udp_ports(ids.len())?;
        let cluster_addrs: BTreeMap<NodeId, SocketAddr> = ids
            .iter()
            .zip(ports)
            .map(|(id, port)| (*id, SocketAddr::from(([127, 0, 0, 1], port))))
            .collect();
        let voters = cluster_addrs
            .iter()
            .filter(|(id, _)| options.role(**id).is_voter())
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            voters,
            certs_dir,
        };
        for (id, cluster_addr) in cluster_addrs {
            let role = options.role(id);
            let broker = Broker::spawn_with(cluster.node_options(&options, id, cluster_addr))?;
            cluster.nodes.insert(
                id,
                ClusterNode {
                    broker,
                    role,
                    cluster_addr,
                },
            );
        }
        for id in ids {
            if let Err(error) = cluster.node_entry_mut(id).broker.await_ready() {
                return Err(cluster.not_ready(id, &error));
            }
        }
        Ok(cluster)
    }

    /// The `serve` options of node `id`: the harness's cluster flags, then the test's.
    fn node_options(
        &self,
        options: &ClusterOptions,
        id: NodeId,
        cluster_addr: SocketAddr,
    ) -> BrokerOptions {
        let node_dir = self.certs_dir.path().join("nodes");
        let mut args: Vec<String> = vec![
            "--node-id".into(),
            id.to_string(),
            "--cluster-listen".into(),
            cluster_addr.to_string(),
            "--controller-voters".into(),
            self.voters.clone(),
            "--roles".into(),
            options.role(id).flag().into(),
            "--cluster-ca".into(),
            path_arg(&self.ca_dir().join("ca.pem")),
            "--cluster-cert".into(),
            path_arg(&node_dir.join(format!("node-{id}.pem"))),
            "--cluster-key".into(),
            path_arg(&node_dir.join(format!("node-{id}.key"))),
            "--broker-session-timeout-ms".into(),
            options.session_timeout_ms.to_string(),
            "--broker-heartbeat-interval-ms".into(),
            options.heartbeat_interval_ms.to_string(),
            "--controller-election-timeout-ms".into(),
            options.election_timeout_ms.to_string(),
            "--controlled-shutdown-timeout-ms".into(),
            options.controlled_shutdown_timeout_ms.to_string(),
        ];
        if let Some(cluster_id) = &options.cluster_id {
            args.extend(["--cluster-id".into(), cluster_id.clone()]);
        }
        args.extend(options.extra_args.iter().cloned());
        if let Some(node_args) = options.per_node_args.get(&id) {
            args.extend(node_args.iter().cloned());
        }
        BrokerOptions {
            num_partitions: None,
            cores: Some(options.cores),
            extra_args: args,
            env: options.env.clone(),
            binary: options.binary.clone(),
        }
    }

    /// A start failure of node `id`, with every other node's log tail: a node that never gets
    /// ready usually waits on a peer, and the peer's log says why.
    fn not_ready(&self, id: NodeId, error: &HarnessError) -> HarnessError {
        HarnessError::BrokerNotReady {
            reason: format!("cluster node {id}: {error}"),
            stderr_tail: self.logs(),
        }
    }

    /// The ids of every node, running or not.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of the nodes whose process the harness has not stopped (a node that crashed on
    /// its own still counts; its log will say so).
    pub fn running_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.broker.pid().is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Node `id`'s process. Panics on an id the cluster does not have: a bug in the test.
    pub fn node(&self, id: NodeId) -> &Broker {
        &self.node_entry(id).broker
    }

    /// Node `id`'s process, mutably (to change its options before a restart, say).
    pub fn node_mut(&mut self, id: NodeId) -> &mut Broker {
        &mut self.node_entry_mut(id).broker
    }

    /// Node `id`'s role.
    pub fn role(&self, id: NodeId) -> NodeRole {
        self.node_entry(id).role
    }

    /// Node `id`'s cluster (QUIC) address, fixed for the cluster's life.
    pub fn cluster_addr(&self, id: NodeId) -> SocketAddr {
        self.node_entry(id).cluster_addr
    }

    fn node_entry(&self, id: NodeId) -> &ClusterNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("the cluster has no node {id}"))
    }

    fn node_entry_mut(&mut self, id: NodeId) -> &mut ClusterNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("the cluster has no node {id}"))
    }

    /// `--controller-voters` as every node got it (`1@127.0.0.1:P,…`), for a node a test starts
    /// by hand to join (or try to join) this cluster.
    pub fn voters(&self) -> &str {
        &self.voters
    }

    /// The cluster CA's directory (ca.pem, ca.key), for certificates a test makes itself.
    pub fn ca_dir(&self) -> PathBuf {
        self.certs_dir.path().join("ca")
    }

    /// The Kafka addresses of the running broker nodes, comma-joined, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.running_ids()
            .into_iter()
            .filter(|id| self.role(*id).is_broker())
            .map(|id| self.node(id).bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs node `id`, as a crash would; its data directory stays.
    pub fn kill9(&mut self, id: NodeId) -> Result<(), HarnessError> {
        self.node_mut(id).kill9()
    }

    /// Starts node `id` again on its data directory and its Kafka, admin and cluster ports
    /// (stopping it first if it runs), and waits for its listening line: it must rejoin the
    /// quorum and be unfenced.
    pub fn restart(&mut self, id: NodeId) -> Result<(), HarnessError> {
        if self.node(id).pid().is_some() {
            self.terminate(id)?;
        }
        let result = self.node_mut(id).restart_on_same_ports();
        result.map_err(|error| self.not_ready(id, &error))
    }

    /// SIGKILLs every node at once, as a power cut of the whole cluster would.
    pub fn kill9_all(&mut self) -> Result<(), HarnessError> {
        for id in self.node_ids() {
            self.kill9(id)?;
        }
        Ok(())
    }

    /// Starts every stopped node again on its data directory and ports, then waits for each
    /// listening line (none comes before a majority of voters runs, so all are spawned first).
    pub fn restart_stopped(&mut self) -> Result<(), HarnessError> {
        let stopped: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|id| self.node(*id).pid().is_none())
            .collect();
        for id in &stopped {
            self.node_mut(*id).respawn_on_same_ports()?;
        }
        for id in stopped {
            if let Err(error) = self.node_mut(id).await_ready() {
                return Err(self.not_ready(id, &error));
            }
        }
        Ok(())
    }

    /// SIGTERMs node `id` (a controlled shutdown) and waits for it to exit; returns its exit
    /// status, or `None` if it had to be SIGKILLed.
    pub fn terminate(&mut self, id: NodeId) -> Result<Option<ExitStatus>, HarnessError> {
        self.node_mut(id)
            .terminate_within(Duration::from_millis(NODE_SHUTDOWN_TIMEOUT_MS))
    }

    /// SIGSTOPs node `id`: it stops heartbeating and answering, its sockets stay open.
    pub fn pause(&mut self, id: NodeId) -> Result<(), HarnessError> {
        self.node_mut(id).pause()
    }

    /// SIGCONTs node `id` after [`Cluster::pause`].
    pub fn resume(&mut self, id: NodeId) -> Result<(), HarnessError> {
        self.node_mut(id).resume()
    }

    /// `GET /cluster` on node `id`'s admin port: the cluster as that node sees it.
    pub fn status(&self, id: NodeId) -> Result<serde_json::Value, HarnessError> {
        let (code, body) = http_get(self.node(id).admin_addr(), "/cluster")?;
        if code != 200 {
            return Err(HarnessError::MalformedResponse(format!(
                "GET /cluster on node {id}: HTTP {code}: {body}"
            )));
        }
        serde_json::from_str(&body).map_err(|e| {
            HarnessError::MalformedResponse(format!("GET /cluster on node {id}: {e}: {body}"))
        })
    }

    /// Metadata (v7, all topics) as node `id` answers it.
    pub fn metadata(&self, id: NodeId) -> Result<ClusterMetadata, HarnessError> {
        let node = self.node(id);
        if !node.has_kafka_listener() {
            return Err(HarnessError::io(
                format!("Metadata from node {id}"),
                std::io::Error::new(std::io::ErrorKind::Unsupported, "a controller-only node"),
            ));
        }
        cluster_metadata(node.kafka_addr(), None)
    }

    /// Creates `topic` with raw CreateTopics v4 sent to node `via` (which forwards it to the
    /// active controller). `replication_factor` -1 takes the cluster's default.
    pub fn create_topic(
        &self,
        via: NodeId,
        topic: &str,
        partition_count: i32,
        replication_factor: i16,
    ) -> Result<(), HarnessError> {
        let mut connection = KafkaConnection::connect(self.node(via).kafka_addr())?;
        let code = create_replicated_topic_v4(
            &mut connection,
            topic,
            partition_count,
            replication_factor,
            &[],
            ADMIN_REQUEST_TIMEOUT_MS,
        )?;
        if code == 0 {
            Ok(())
        } else {
            Err(HarnessError::MalformedResponse(format!(
                "CreateTopics {topic} ({partition_count} x RF {replication_factor}) via node {via}: error code {code}"
            )))
        }
    }

    /// Polls until every running broker node answers Metadata identically and `accept` likes
    /// that answer; returns it. The error shows each node's last answer.
    pub fn agreed_metadata(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<ClusterMetadata, HarnessError> {
        let mut last = Vec::new();
        let agreed = self.poll(timeout, |cluster| {
            last = cluster
                .running_ids()
                .into_iter()
                .filter(|id| cluster.role(*id).is_broker())
                .map(|id| (id, cluster.metadata(id)))
                .collect();
            let first = match last.first() {
                Some((_, Ok(first))) => first,
                _ => return None,
            };
            let all_equal = last
                .iter()
                .all(|(_, answer)| answer.as_ref().is_ok_and(|m| m == first));
            (all_equal && accept(first)).then(|| first.clone())
        });
        agreed.ok_or_else(|| HarnessError::WaitTimedOut {
            what: format!("every node's Metadata to agree on {what}"),
            timeout_ms: timeout.as_millis(),
            details: last
                .iter()
                .map(|(id, answer)| format!("node {id}: {answer:#?}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    /// The active controller: asks the running nodes in turn until one names a leader that is
    /// running and whose own `/cluster` agrees that it leads. Retries through an election, for
    /// up to [`CONTROLLER_LEADER_TIMEOUT_MS`].
    pub fn controller_leader(&self) -> Result<NodeId, HarnessError> {
        let mut last = String::from("no node answered");
        let found = self.poll(
            Duration::from_millis(CONTROLLER_LEADER_TIMEOUT_MS),
            |cluster| {
                for id in cluster.running_ids() {
                    match cluster.status(id) {
                        Ok(status) => {
                            let named = leader_in(&status);
                            last = format!("node {id} names leader {named:?}");
                            let Some(leader) = named else { continue };
                            if cluster.running_ids().contains(&leader)
                                && cluster
                                    .status(leader)
                                    .is_ok_and(|own| leader_in(&own) == Some(leader))
                            {
                                return Some(leader);
                            }
                        }
                        Err(error) => last = format!("node {id}: {error}"),
                    }
                }
                None
            },
        );
        found.ok_or_else(|| HarnessError::WaitTimedOut {
            what: "a controller leader that the running nodes agree on".into(),
            timeout_ms: u128::from(CONTROLLER_LEADER_TIMEOUT_MS),
            details: format!("last: {last}\n{}", self.logs()),
        })
    }

    /// Polls `condition` every [`POLL_INTERVAL_MS`] until it holds; returns how long that took,
    /// or an error naming `what` (with every node's log tail) after `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) -> Result<Duration, HarnessError> {
        let started = Instant::now();
        match self.poll(timeout, |cluster| condition(cluster).then_some(())) {
            Some(()) => Ok(started.elapsed()),
            None => Err(HarnessError::WaitTimedOut {
                what: what.to_string(),
                timeout_ms: timeout.as_millis(),
                details: self.logs(),
            }),
        }
    }

    /// Calls `probe` every [`POLL_INTERVAL_MS`] until it returns something or `timeout` passes.
    /// It is called at least once, even with a zero timeout.
    pub fn poll<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&Cluster) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe(self) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// The tail of node `id`'s stderr, across its restarts.
    pub fn log_tail(&self, id: NodeId) -> String {
        self.node(id).log_tail(LOG_TAIL_BYTES)
    }

    /// Every node's log tail, headed by its id: for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|(id, node)| {
                format!(
                    "--- node {id} stderr (tail) ---\n{}",
                    node.broker.log_tail(LOG_TAIL_BYTES)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            let _ = node.broker.kill9();
        }
    }
}

/// The controller leader a `/cluster` answer names, if any.
pub fn leader_in(status: &serde_json::Value) -> Option<NodeId> {
    status["controller"]["leader_id"]
        .as_i64()
        .and_then(|id| NodeId::try_from(id).ok())
}

/// The entry of broker `id` in a `/cluster` answer's `brokers`, if registered.
pub fn broker_in(status: &serde_json::Value, id: NodeId) -> Option<&serde_json::Value> {
    status["brokers"]
        .as_array()?
        .iter()
        .find(|b| b["node_id"].as_i64() == Some(i64::from(id)))
}

/// Whether a `/cluster` answer shows broker `id` registered and unfenced.
pub fn is_unfenced_in(status: &serde_json::Value, id: NodeId) -> bool {
    broker_in(status, id).is_some_and(|b| b["fenced"].as_bool() == Some(false))
}

/// `spate cluster ca --out DIR`: a new cluster CA (DIR/ca.pem, DIR/ca.key).
pub fn make_ca(out: &Path) -> Result<(), HarnessError> {
    run_spate_tool(&["cluster", "ca", "--out", &path_arg(out)])
}

/// `spate cluster cert --ca CA_DIR --node-id N --out DIR`: node N's certificate and key
/// (DIR/node-N.pem, DIR/node-N.key), signed by the CA in `ca_dir`.
pub fn make_node_cert(ca_dir: &Path, node_id: NodeId, out: &Path) -> Result<(), HarnessError> {
    run_spate_tool(&[
        "cluster",
        "cert",
        "--ca",
        &path_arg(ca_dir),
        "--node-id",
        &node_id.to_string(),
        "--out",
        &path_arg(out),
    ])
}

fn run_spate_tool(args: &[&str]) -> Result<(), HarnessError> {
    let mut command = Command::new(spate_binary()?);
    command.args(args);
    let output = run_with_timeout(&mut command, None, CERT_COMMAND_TIMEOUT)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HarnessError::CommandFailed {
            command: format!("spate {}", args.join(" ")),
            output: output.describe(),
        })
    }
}

/// `count` distinct free UDP ports on 127.0.0.1. Each is bound, read and released, so another
/// process could take one before the node binds it; on a test machine that is rare, and the
/// node's start then fails loudly rather than joining the wrong peer.
pub fn free_udp_ports(count: usize) -> Result<Vec<u16>, HarnessError> {
    let sockets = (0..count)
        .map(|_| UdpSocket::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HarnessError::io("bind a UDP port to pick it", e))?;
    sockets
        .iter()
        .map(|socket| socket.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HarnessError::io("read a picked UDP port", e))
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_udp_ports_are_distinct() {
        let ports = free_udp_ports(8).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|port| *port != 0));
    }

    #[test]
    fn status_helpers_read_the_cluster_answer() {
        let status = serde_json::json!({
            "controller": {"leader_id": 2, "epoch": 5, "voters": []},
            "brokers": [
                {"node_id": 1, "fenced": false},
                {"node_id": 3, "fenced": true},
            ],
        });
        assert_eq!(leader_in(&status), Some(2));
        assert!(is_unfenced_in(&status, 1));
        assert!(!is_unfenced_in(&status, 3));
        assert!(!is_unfenced_in(&status, 2));
        let leaderless = serde_json::json!({"controller": {"leader_id": null}});
        assert_eq!(leader_in(&leaderless), None);
    }

    #[test]
    fn cluster_whose_nodes_exit_at_once_is_reported_not_ready() {
        let started = Instant::now();
        let result = Cluster::start(ClusterOptions {
            binary: Some(PathBuf::from("/bin/false")),
            ..ClusterOptions::default()
        });
        match result {
            Err(HarnessError::BrokerNotReady { reason, .. }) => {
                assert!(reason.contains("cluster node 1"), "{reason}");
            }
            other => panic!("expected BrokerNotReady, got {:?}", other.err()),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
