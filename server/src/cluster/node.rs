//! Starting a node's control plane: the transport, the quorum (on controllers), the active
//! controller task, and the metadata feed every role reads.
//!
//! A single node runs the same steps as a member of a cluster: its quorum has one voter and
//! no transport, and its own controller answers its broker's registration.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::Fatal;
use spate_cluster::records::RecordBody;
use spate_cluster::{ClusterImage, TopicId};
use spate_engine::Engine;

use super::config::ClusterConfig;
use super::control::{ControlPlane, NodeRpc, RpcTargets, apply_fetched};
use super::controller::{self, ControllerHandle, ControllerSettings};
use super::feed::MetadataFeed;
use super::identity::Stamp;
use super::raft::{self, LogStore, Raft, StateMachine, to_raft_id};
use super::raft_network::NetworkFactory;
use super::replication::ReplicationContext;
use super::tls::ClusterTls;
use super::transport::{Transport, TransportConfig};
use crate::ServerConfig;
use crate::metadata::legacy;

/// The folder of the metadata quorum's log and snapshots under the data dir (no `-N`
/// suffix, so the engine never takes it for a partition).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata";
/// Largest message between nodes: a metadata snapshot of a very large cluster, or a batch
/// of log entries, fits many times over.
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long a broker that is not a controller long-polls the metadata log.
const FOLLOW_WAIT_MS: u64 = 5_000;
/// Pause after a failed metadata fetch before trying again.
const FOLLOW_RETRY_MS: u64 = 200;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cluster certificates: {0}")]
    Tls(String),
    #[error("cluster listener: {0}")]
    Transport(String),
    #[error("metadata log in {dir}: {reason}")]
    MetadataLog { dir: String, reason: String },
    #[error("metadata quorum: {0}")]
    Quorum(String),
    #[error("migrating the single-node metadata: {0}")]
    Migration(String),
}

/// The running control plane of one node.
pub struct ControlNode {
    pub plane: Arc<ControlPlane>,
    pub feed: Arc<MetadataFeed>,
    pub raft: Option<Raft>,
    pub transport: Option<Transport>,
    pub controller: Option<ControllerHandle>,
    /// Where peers' replica fetches go, once the broker has built it.
    pub replication: Arc<OnceLock<Arc<ReplicationContext>>>,
}

impl ControlNode {
    /// Stops the quorum and closes the listener (after the broker's controlled shutdown).
    pub async fn shutdown(&self) {
        if let Some(raft) = &self.raft
            && let Err(e) = raft.shutdown().await
        {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
        if let Some(transport) = &self.transport {
            transport.close();
        }
    }
}

/// Starts the control plane on the current (control-plane) runtime.
pub async fn start(
    config: &ServerConfig,
    engine: &Engine,
    stamp: &Stamp,
) -> Result<ControlNode, NodeError> {
    let cluster = &config.cluster;
    let feed = Arc::new(MetadataFeed::new(ClusterImage::default()));
    let targets: Arc<OnceLock<RpcTargets>> = Arc::new(OnceLock::new());
    let replication: Arc<OnceLock<Arc<ReplicationContext>>> = Arc::new(OnceLock::new());
    let known_cluster_id = {
        let feed = feed.clone();
        let stamped = stamp.cluster_id.clone();
        Arc::new(move || {
            feed.image()
                .cluster_id()
                .map(str::to_owned)
                .or_else(|| stamped.clone())
        })
    };
    let transport = match (cluster.listen, &cluster.tls) {
        (Some(listen), Some(paths)) => {
            let tls = ClusterTls::load(&paths.ca, &paths.cert, &paths.key, cluster.node_id)
                .map_err(|e| NodeError::Tls(e.to_string()))?;
            let handler = Arc::new(NodeRpc::new(
                targets.clone(),
                replication.clone(),
                feed.clone(),
            ));
            let transport = Transport::bind(
                TransportConfig {
                    node_id: cluster.node_id,
                    listen,
                    tls,
                    cluster_id: known_cluster_id,
                    message_bytes_max: MESSAGE_BYTES_MAX,
                },
                handler,
            )
            .map_err(|e| NodeError::Transport(e.to_string()))?;
            tracing::info!(node = cluster.node_id, addr = %transport.local_addr(), "cluster listener bound");
            Some(transport)
        }
        _ => None,
    };

    let (raft, controller) = if cluster.roles.controller {
        let (raft, controller) =
            start_quorum(config, engine, stamp, &feed, transport.clone()).await?;
        (Some(raft), Some(controller))
    } else {
        (None, None)
    };
    let _ = targets.set(RpcTargets {
        raft: raft.clone(),
        controller: controller.clone(),
    });
    let plane = Arc::new(ControlPlane::new(
        cluster.node_id,
        cluster.voters(),
        controller.clone(),
        transport.clone(),
    ));
    if !cluster.roles.controller {
        tokio::spawn(follow_metadata(plane.clone(), feed.clone()));
    }
    Ok(ControlNode {
        plane,
        feed,
        raft,
        transport,
        controller,
        replication,
    })
}

async fn start_quorum(
    config: &ServerConfig,
    engine: &Engine,
    stamp: &Stamp,
    feed: &Arc<MetadataFeed>,
    transport: Option<Transport>,
) -> Result<(Raft, ControllerHandle), NodeError> {
    let cluster = &config.cluster;
    let dir = config.data_dir.join(METADATA_LOG_DIR);
    let log_error = |reason: String| NodeError::MetadataLog {
        dir: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| log_error(e.to_string()))?;
    let log_store = LogStore::open(&dir).map_err(|e| log_error(e.to_string()))?;
    let state_machine =
        StateMachine::open(&dir, feed.clone()).map_err(|e| log_error(e.to_string()))?;
    let heartbeat_ms = (cluster.election_timeout_ms / 5).max(1);
    let raft_config = raft::raft_config(cluster.election_timeout_ms, heartbeat_ms)
        .map_err(|e| NodeError::Quorum(e.to_string()))?;
    let network = NetworkFactory { transport };
    let raft = Raft::new(
        to_raft_id(cluster.node_id),
        raft_config,
        network,
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| NodeError::Quorum(e.to_string()))?;
    exit_when_quorum_member_fails(&raft);
    let voters = cluster.voters();
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Quorum(e.to_string()))?;
    if !initialized {
        let members: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|v| (to_raft_id(v.node_id), BasicNode::new(v.address.clone())))
            .collect();
        // Every voter of a new cluster initializes with the same voters: openraft makes that
        // safe (the membership entry is identical), and no voter has to be "first".
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "quorum already initialized");
        }
    }
    if voters.len() == 1 {
        // A quorum of one need not wait out an election timeout to lead.
        let _ = raft.trigger().elect().await;
    }

    let image = feed.image();
    let (bootstrap, migrating) = if image.cluster_id().is_none() {
        bootstrap_records(config, engine, stamp)?
    } else {
        (Vec::new(), false)
    };
    let data_dir = config.data_dir.clone();
    let on_bootstrapped: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
        if migrating {
            match legacy::mark_migrated(&data_dir) {
                Ok(()) => tracing::info!(
                    "single-node metadata migrated into the metadata log; the old file is kept as {}",
                    legacy::MIGRATED_FILE_NAME
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "metadata migrated, but the old file could not be renamed")
                }
            }
        }
    });
    let settings = ControllerSettings {
        node_id: cluster.node_id,
        session_timeout: Duration::from_millis(cluster.session_timeout_ms),
        topic_defaults: spate_cluster::controller::TopicDefaults {
            partition_count: config.num_partitions,
            replication_factor: cluster.default_replication_factor,
        },
        log_defaults: config.log_defaults.clone(),
        voters: voters
            .iter()
            .map(|v| (v.node_id, v.address.clone()))
            .collect(),
        leader_rebalance: cluster.auto_leader_rebalance_enable.then(|| {
            (
                Duration::from_millis(cluster.leader_imbalance_check_interval_ms),
                cluster.leader_imbalance_per_broker_percentage,
            )
        }),
        bootstrap,
    };
    let controller = controller::spawn(raft.clone(), feed.clone(), settings, on_bootstrapped);
    Ok((raft, controller))
}

/// openraft stops its core for good when the metadata log's storage fails (a full disk
/// under `__cluster_metadata`, say): the process would stay up as a node that can never
/// follow metadata again, and the cluster would stay a member short after the disk was
/// freed. Kafka halts the process on such a fault; so does Spate, so a supervisor
/// (systemd's `Restart=on-failure`) brings the node back once the cause is fixed. Every
/// acknowledged write is already durable, so this exit is no worse than a crash.
fn exit_when_quorum_member_fails(raft: &Raft) {
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        loop {
            let failure = match &metrics.borrow().running_state {
                Err(Fatal::StorageError(e)) => Some(e.to_string()),
                Err(Fatal::Panicked) => Some("its core panicked".to_owned()),
                // Stopped: this node is shutting down.
                Ok(()) | Err(Fatal::Stopped) => None,
            };
            if let Some(reason) = failure {
                tracing::error!(
                    %reason,
                    "the metadata quorum member stopped and cannot resume; exiting so the node \
                     can be restarted once the cause (often a full disk under the data dir) is fixed"
                );
                std::process::exit(QUORUM_FAILURE_EXIT_CODE);
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The exit status of a node whose metadata quorum member failed (EX_IOERR): a supervisor
/// restarts it; a person reads the error logged before it.
pub const QUORUM_FAILURE_EXIT_CODE: i32 = 74;

/// The records a new cluster starts with: its id, and, on a data dir from a single-node
/// release, that node's topics (from its metadata file, plus partition folders the file
/// did not list, which are adopted rather than ever deleted) and its producer-id
/// reservation. Returns whether a migration is included.
fn bootstrap_records(
    config: &ServerConfig,
    engine: &Engine,
    stamp: &Stamp,
) -> Result<(Vec<RecordBody>, bool), NodeError> {
    let node_id = config.cluster.node_id;
    let cluster_id = config
        .cluster
        .cluster_id
        .clone()
        .or_else(|| stamp.cluster_id.clone())
        .unwrap_or_else(random_cluster_id);
    let mut records = vec![RecordBody::ClusterInit { cluster_id }];
    let legacy = legacy::read(&config.data_dir).map_err(|e| NodeError::Migration(e.to_string()))?;
    let migrating = legacy.is_some();
    let legacy = legacy.unwrap_or_default();
    let mut topics: BTreeMap<String, (TopicId, i32, BTreeMap<String, String>)> = legacy
        .topics
        .iter()
        .map(|t| (t.name.clone(), (t.id, t.partition_count, t.configs.clone())))
        .collect();
    // A folder keeps the topic id this node last recorded for it, so adopting it does not
    // make it look like a re-created topic (whose stale data the reconciler drops).
    let recorded_ids = super::reconcile::read_local_ids(&config.data_dir);
    for (tp, _) in engine.partitions() {
        let recorded = recorded_ids.get(&tp.dir_name()).copied();
        let entry = topics.entry(tp.topic.to_string()).or_insert_with(|| {
            let configs = if &*tp.topic == crate::groups::OFFSETS_TOPIC {
                crate::groups::offsets_topic_configs()
            } else {
                BTreeMap::new()
            };
            (recorded.unwrap_or_else(TopicId::random), 0, configs)
        });
        if tp.partition >= entry.1 {
            tracing::warn!(partition = %tp, "adopting a partition found on disk but missing from the metadata");
            entry.1 = tp.partition + 1;
        }
    }
    for (name, (topic_id, partition_count, configs)) in &topics {
        records.push(RecordBody::Topic {
            topic_id: *topic_id,
            name: name.clone(),
            configs: configs.clone(),
        });
        for partition in 0..*partition_count {
            records.push(RecordBody::Partition {
                topic_id: *topic_id,
                partition,
                replicas: vec![node_id],
                isr: vec![node_id],
                leader: node_id,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                leader_recovery_state: Default::default(),
            });
        }
    }
    if legacy.producer_id_reserved_until > 0 {
        records.push(RecordBody::ProducerIds {
            node_id,
            first: 0,
            count: legacy.producer_id_reserved_until,
        });
    }
    // Refused records would leave a cluster with no id and these partitions unclaimed:
    // check them now and refuse to start instead, naming what is wrong.
    let mut scratch = ClusterImage::default();
    scratch
        .apply(1, &spate_cluster::MetadataBatch::new(records.clone()))
        .map_err(|e| {
            NodeError::Migration(format!(
                "the topics of {} cannot be carried over: {e}; fix or move the file away",
                config.data_dir.join(legacy::METADATA_FILE_NAME).display()
            ))
        })?;
    Ok((records, migrating))
}

/// A cluster id as Kafka makes them: a random UUID in URL-safe base64, 22 characters.
pub fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = TopicId::random().0;
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(ALPHABET[((bits >> bit_count) & 0x3f) as usize] as char);
        }
    }
    if bit_count > 0 {
        out.push(ALPHABET[((bits << (6 - bit_count)) & 0x3f) as usize] as char);
    }
    out
}

/// A broker that is not a controller follows the metadata log from the quorum leader and
/// publishes what it applies to its own feed.
async fn follow_metadata(plane: Arc<ControlPlane>, feed: Arc<MetadataFeed>) {
    let mut image = (*feed.image()).clone();
    loop {
        match plane
            .fetch_metadata(image.offset(), Duration::from_millis(FOLLOW_WAIT_MS))
            .await
        {
            Ok(fetched) => match apply_fetched(&image, fetched) {
                Ok(Some(next)) => {
                    image = next;
                    feed.publish(Arc::new(image.clone()), Vec::new());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a fetched metadata image is unreadable; fetching again");
                    tokio::time::sleep(Duration::from_millis(FOLLOW_RETRY_MS)).await;
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "metadata fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(FOLLOW_RETRY_MS)).await;
            }
        }
    }
}

/// The address peers should dial for this node (`cluster.advertised.listen`, else the
/// bound listener).
pub fn cluster_address(config: &ClusterConfig, transport: Option<&Transport>) -> String {
    config
        .advertised_listen
        .clone()
        .or_else(|| transport.map(|t| t.local_addr().to_string()))
        .unwrap_or_default()
}

/// Whether `dir` holds a metadata log (for messages).
pub fn has_metadata_log(data_dir: &Path) -> bool {
    data_dir.join(METADATA_LOG_DIR).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_cluster_ids_look_like_kafkas() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(spate_cluster::image::check_cluster_id(&id).is_ok());
        assert_ne!(id, random_cluster_id());
    }
}
