//! Partition replication: the glue between the sans-IO ISR protocol
//! (`spate_cluster::replication`), the engine and the cluster transport.
//!
//! Every partition with more than one replica is replicated; a single-replica partition
//! keeps the engine's local high watermark and costs nothing here. On each node:
//!
//! - **Roles** ([`apply_roles`]): the reconciler calls it with every metadata image, on every
//!   shard. Each local replica of a replicated partition gets a leader slot (a
//!   `LeaderReplica`, with its leader epoch recorded in the log's epoch cache first,
//!   KAFKA-7415) or a follower slot (a `FollowerReplica`, fetching from its leader), on the
//!   shard that owns the partition. Slots live in a shard-local registry ([`registry`]).
//! - **Followers** ([`fetcher`]): one fetch loop per (shard, leader node) sends Kafka Fetch
//!   requests (v17, with Spate's durable offset per partition, `spate_protocol::replica_fetch`) over the node
//!   pair's QUIC connection, and carries out what the follower state machine says:
//!   truncate by leader epoch first, append the leader's batches as they are (offsets and
//!   epochs kept, through the same io_uring group commit as a produce), move the HW.
//! - **Leaders** ([`leader`], [`serve`]): a replica fetch arrives on the control-plane runtime
//!   ([`answer_fetch`]) and is split by owning shard; each shard's leader slots check it,
//!   record the follower's positions (which may move the HW and answer `acks=all`
//!   producers), and read the batches to send without decoding them. A fetch with nothing
//!   new parks until the log grows or `replica.fetch.wait.max.ms` passes. A task per leader
//!   slot recomputes the HW as the leader's own appends become durable and asks the
//!   controller for ISR changes (AlterPartition).
//! - **Producers** ([`produce`]): `acks=all` is refused before the append when the ISR is
//!   below `min.insync.replicas`, and answered once the HW passes the batch.
//!
//! What this module does not do: decide anything about the ISR or truncation (the state
//! machines do), or touch a partition from another shard (it always runs on the owner).

mod fetcher;
mod leader;
mod produce;
mod registry;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use spate_cluster::image::TopicImage;
use spate_cluster::replication::ReplicationConfig;
use spate_cluster::{ClusterImage, NodeId};
use spate_engine::{Engine, ShardId};

use super::config::ClusterConfig;
use super::control::ControlClient;
use super::transport::Transport;
use crate::metadata::MetadataView;

pub use produce::{AppendAcks, ReplicatedAppendError, append, list_offsets_high_watermark};
pub use serve::answer_fetch;

/// Replication settings, from the node's configuration.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub config: ReplicationConfig,
    /// `replica.fetch.max.bytes`: per partition per fetch.
    pub fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`: per fetch answer.
    pub fetch_response_max_bytes: u32,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_wait_max: Duration,
    /// `leader.replication.throttled.rate`, bytes per second to followers outside the ISR.
    pub throttled_rate: Option<u64>,
    /// The broker's `min.insync.replicas`, for topics that do not set it.
    pub min_insync_default: i16,
}

impl ReplicationSettings {
    pub fn from_config(cluster: &ClusterConfig) -> Self {
        Self {
            config: ReplicationConfig {
                replica_lag_time_max: Duration::from_millis(cluster.replica_lag_time_max_ms),
                ..ReplicationConfig::default()
            },
            fetch_max_bytes: cluster.replica_fetch_max_bytes,
            fetch_response_max_bytes: cluster.replica_fetch_response_max_bytes,
            fetch_wait_max: Duration::from_millis(cluster.replica_fetch_wait_max_ms),
            throttled_rate: cluster.leader_replication_throttled_rate,
            min_insync_default: cluster.min_insync_replicas,
        }
    }
}

/// What replication needs on every shard. `Send + Sync`; one per node.
pub struct ReplicationContext {
    pub node_id: NodeId,
    pub engine: Engine,
    pub view: Arc<MetadataView>,
    pub control: ControlClient,
    pub transport: Option<Transport>,
    pub settings: ReplicationSettings,
}

impl ReplicationContext {
    /// The topic's `min.insync.replicas` (its override, else the broker's).
    pub fn min_insync_replicas(&self, topic: &TopicImage) -> usize {
        min_insync_replicas(topic, self.settings.min_insync_default)
    }
}

/// `topic`'s `min.insync.replicas`: its override, else the broker's `default`; at least 1.
pub fn min_insync_replicas(topic: &TopicImage, default: i16) -> usize {
    topic
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(i64::from(default))
        .clamp(1, i64::from(u16::MAX)) as usize
}

/// Whether `partition`'s replicas replicate: more than one replica. A partition of one keeps
/// the engine's local high watermark and has no replication state.
pub fn is_replicated(partition: &spate_cluster::PartitionState) -> bool {
    partition.replicas.len() > 1
}

/// Makes every shard's replication state match `image`: builds, updates or drops the leader
/// and follower slots of the partitions it owns, and starts or stops fetch loops.
/// `caught_up`: the image holds this process's own registration; until then replicated
/// partitions keep their checkpointed high watermark and take no role (a restarted node may
/// still be named leader of an epoch it led before, with a log that lost its unsynced tail).
pub async fn apply_roles(
    context: &Arc<ReplicationContext>,
    image: &Arc<ClusterImage>,
    caught_up: bool,
) {
    for shard in 0..context.engine.shard_count() {
        let for_shard = context.clone();
        let image = image.clone();
        let outcome = context
            .engine
            .invoke_on(ShardId(shard), move |ctx| {
                let ctx = ctx.clone();
                Box::pin(
                    async move { registry::apply_roles(&ctx, &for_shard, &image, caught_up).await },
                )
            })
            .await;
        if let Err(e) = outcome {
            tracing::warn!(shard, error = %e, "cannot apply replica roles on a shard");
        }
    }
}
