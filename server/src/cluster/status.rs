//! `GET /cluster` on the admin port: the cluster as this node sees it, as JSON (what
//! `spate cluster status` shows). The types are public and deserializable so the CLI reads
//! exactly what the server writes; unknown fields are ignored, so an older `spate` can read a
//! newer node.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spate_cluster::{ClusterImage, NO_LEADER, NodeId};

use super::config::{ClusterConfig, Voter};
use super::control::ControlPlane;
use super::raft::Raft;
use super::replication::min_insync_replicas;
use crate::metadata::MetadataView;

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub roles: Vec<String>,
    pub cluster_id: Option<String>,
    /// The metadata offset this node has applied.
    pub metadata_offset: u64,
    pub controller: ControllerStatus,
    pub brokers: Vec<BrokerStatus>,
    pub partitions: PartitionCounts,
    pub topics: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerStatus {
    /// The active controller, or null while none is.
    pub leader_id: Option<NodeId>,
    /// The quorum's epoch (Raft term), as this node knows it; null on brokers that are not
    /// voters.
    pub epoch: Option<u64>,
    pub voters: Vec<VoterStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoterStatus {
    pub node_id: NodeId,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerStatus {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
    pub cluster_address: String,
    pub rack: Option<String>,
    pub epoch: i64,
    pub fenced: bool,
    pub controlled_shutdown: bool,
    /// Partitions it leads.
    pub leaders: usize,
    /// Replicas it holds.
    pub replicas: usize,
}

impl BrokerStatus {
    /// A broker in controlled shutdown is usually fenced too; "shutting-down" says more.
    pub fn state(&self) -> &'static str {
        if self.controlled_shutdown {
            "shutting-down"
        } else if self.fenced {
            "fenced"
        } else {
            "live"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionCounts {
    pub total: usize,
    /// No leader: no member of the ISR is live.
    pub offline: usize,
    /// The ISR is smaller than the replica set.
    pub under_replicated: usize,
    /// The ISR is smaller than the topic's `min.insync.replicas` (capped at the replica
    /// count): `acks=all` produces to it are refused with NOT_ENOUGH_REPLICAS (Kafka's
    /// `UnderMinIsrPartitionCount`).
    #[serde(default)]
    pub under_min_isr: usize,
}

/// Builds `/cluster`'s answer. `Send + Sync`; called on the control-plane runtime.
pub struct StatusSource {
    pub config: ClusterConfig,
    pub view: Arc<MetadataView>,
    pub plane: Arc<ControlPlane>,
    pub raft: Option<Raft>,
}

impl StatusSource {
    pub fn json(&self) -> String {
        let image = self.view.image();
        let epoch = self
            .raft
            .as_ref()
            .map(|raft| raft.metrics().borrow().current_term);
        let status = ClusterStatus {
            node_id: self.config.node_id,
            roles: self
                .config
                .roles
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            cluster_id: image.cluster_id().map(str::to_owned),
            metadata_offset: image.offset(),
            controller: ControllerStatus {
                leader_id: self.plane.leader().filter(|id| *id != NO_LEADER),
                epoch,
                voters: self
                    .config
                    .voters()
                    .into_iter()
                    .map(|Voter { node_id, address }| VoterStatus { node_id, address })
                    .collect(),
            },
            brokers: brokers(&image),
            partitions: partition_counts(&image, self.config.min_insync_replicas),
            topics: image.topics().count(),
        };
        serde_json::to_string_pretty(&status).unwrap_or_else(|_| "{}".to_owned())
    }
}

fn brokers(image: &ClusterImage) -> Vec<BrokerStatus> {
    image
        .brokers()
        .map(|b| {
            let mut leaders = 0;
            let mut replicas = 0;
            for topic in image.topics() {
                for partition in &topic.partitions {
                    leaders += usize::from(partition.leader == b.node_id);
                    replicas += usize::from(partition.replicas.contains(&b.node_id));
                }
            }
            BrokerStatus {
                node_id: b.node_id,
                host: b.kafka.host.clone(),
                port: b.kafka.port,
                cluster_address: b.cluster_addr.clone(),
                rack: b.rack.clone(),
                epoch: b.broker_epoch,
                fenced: b.fenced,
                controlled_shutdown: b.in_controlled_shutdown,
                leaders,
                replicas,
            }
        })
        .collect()
}

fn partition_counts(image: &ClusterImage, min_insync_default: i16) -> PartitionCounts {
    let mut counts = PartitionCounts {
        total: 0,
        offline: 0,
        under_replicated: 0,
        under_min_isr: 0,
    };
    for topic in image.topics() {
        let min_insync = min_insync_replicas(topic, min_insync_default);
        for partition in &topic.partitions {
            counts.total += 1;
            counts.offline += usize::from(partition.leader == NO_LEADER);
            counts.under_replicated += usize::from(partition.isr.len() < partition.replicas.len());
            let effective = min_insync.min(partition.replicas.len()).max(1);
            counts.under_min_isr += usize::from(partition.isr.len() < effective);
        }
    }
    counts
}
