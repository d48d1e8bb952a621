//! The messages nodes send each other over the cluster transport.
//!
//! Three kinds share one connection per node pair: the quorum's own traffic (openraft's
//! append, vote and snapshot calls), requests to the active controller (broker registration
//! and heartbeats, topic changes forwarded from any node, producer-id blocks), and metadata
//! fetches by brokers that are not controllers. Messages are JSON: this is control traffic,
//! a few per second, and JSON keeps it readable in a capture; partition data (replication)
//! will use Kafka's own Fetch encoding.

use std::collections::BTreeMap;

use openraft::BasicNode;
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use spate_cluster::controller::{CreateTopic, HeartbeatReply};
use spate_cluster::records::{Endpoint, LeaderRecoveryState};
use spate_cluster::{MetadataBatch, NodeId, PartitionState, TopicId};

use super::raft::TypeConfig;

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    /// A whole snapshot in one message (metadata snapshots are small).
    Snapshot {
        vote: openraft::Vote<u64>,
        meta: openraft::SnapshotMeta<u64, BasicNode>,
        data: Vec<u8>,
    },
    Controller(ControllerRequest),
    /// A broker that is not a controller follows the metadata log from `offset`.
    FetchMetadata {
        offset: u64,
        wait_ms: u64,
    },
}

/// The answer to a [`PeerRequest`], in the same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    Controller(Result<ControllerReply, ControllerError>),
    Metadata(Result<MetadataFetch, ControllerError>),
    /// The request could not be read or is not served by this node.
    Refused(String),
}

/// What a broker fetching the metadata log gets.
#[derive(Debug, Serialize, Deserialize)]
pub enum MetadataFetch {
    UpToDate {
        offset: u64,
    },
    Entries(Vec<(u64, Option<MetadataBatch>)>),
    /// The image as a snapshot (`ClusterImage::to_snapshot`), when the entries needed are
    /// no longer kept.
    Image(Vec<u8>),
}

/// A request to the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker {
        node_id: NodeId,
        incarnation_id: String,
        kafka: Endpoint,
        cluster_addr: String,
        rack: Option<String>,
    },
    Heartbeat {
        node_id: NodeId,
        broker_epoch: i64,
        metadata_offset: u64,
        want_shutdown: bool,
    },
    CreateTopics {
        topics: Vec<CreateTopicRequest>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topics: Vec<CreatePartitionsRequest>,
        validate_only: bool,
    },
    AlterTopicConfigs {
        changes: Vec<TopicConfigChange>,
        validate_only: bool,
    },
    AllocateProducerIds {
        node_id: NodeId,
        count: i64,
    },
    DescribeQuorum,
    /// A partition leader asks to change its ISR (KIP-497's AlterPartition).
    AlterPartition(AlterPartitionRequest),
    /// ElectLeaders (KIP-460): `None` elects every partition that needs it.
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments (KIP-455): a target replica list, or `None` to cancel.
    AlterReassignments {
        changes: Vec<(String, i32, Option<Vec<NodeId>>)>,
    },
}

/// One partition's AlterPartition, as the leader sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    pub broker: NodeId,
    pub broker_epoch: i64,
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Each member with the broker epoch the leader saw it fetch with (KIP-903).
    pub new_isr: Vec<(NodeId, Option<i64>)>,
    pub leader_recovery_state: LeaderRecoveryState,
}

/// One topic of a forwarded CreateTopics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partition_count: i32,
    pub replication_factor: i16,
    pub assignments: Option<Vec<Vec<NodeId>>>,
    pub configs: BTreeMap<String, String>,
}

impl From<CreateTopicRequest> for CreateTopic {
    fn from(r: CreateTopicRequest) -> Self {
        CreateTopic {
            name: r.name,
            partition_count: r.partition_count,
            replication_factor: r.replication_factor,
            assignments: r.assignments,
            configs: r.configs,
        }
    }
}

/// One topic of a forwarded CreatePartitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    pub name: String,
    pub partition_count: i32,
    pub assignments: Option<Vec<Vec<NodeId>>>,
}

/// A topic's config change: a full replacement (AlterConfigs) or per-key operations
/// (IncrementalAlterConfigs), resolved against the current overrides by the controller so
/// concurrent changes are not lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicConfigChange {
    pub name: String,
    pub change: ConfigChange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ConfigChange {
    Replace(BTreeMap<String, String>),
    Incremental(Vec<ConfigOp>),
}

/// IncrementalAlterConfigs' operations (0 set, 1 delete, 2 append, 3 subtract).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigOp {
    pub key: String,
    pub op: i8,
    pub value: Option<String>,
}

/// A per-topic outcome: `Ok` or a Kafka error code with a message.
pub type TopicOutcome = Result<TopicCreated, (i16, String)>;

/// What a created (or validated) topic looks like.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TopicCreated {
    pub topic_id: String,
    pub partition_count: i32,
    pub replication_factor: i16,
}

/// The controller's answer. `offset` is the metadata offset that includes the change (the
/// caller waits for its own image to reach it before answering its client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControllerReply {
    pub offset: u64,
    pub body: ControllerReplyBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerReplyBody {
    Registered {
        broker_epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        in_controlled_shutdown: bool,
        should_shut_down: bool,
    },
    /// One outcome per topic, in request order.
    Topics(Vec<(String, TopicOutcome)>),
    ProducerIds {
        first: i64,
        count: i64,
    },
    Quorum(QuorumState),
    /// AlterPartition: the partition as it now stands, or a Kafka error code and why.
    Partition(Result<PartitionState, (i16, String)>),
    /// ElectLeaders and AlterPartitionReassignments: per partition, an error code
    /// (`NONE` on success) and a message.
    PartitionResults(Vec<PartitionResult>),
}

/// One partition's outcome of a per-partition admin request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub message: Option<String>,
}

impl From<HeartbeatReply> for ControllerReplyBody {
    fn from(reply: HeartbeatReply) -> Self {
        ControllerReplyBody::Heartbeat {
            fenced: reply.fenced,
            in_controlled_shutdown: reply.in_controlled_shutdown,
            should_shut_down: reply.should_shut_down,
        }
    }
}

/// The metadata quorum as its leader sees it (DescribeQuorum).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct QuorumState {
    pub leader_id: NodeId,
    /// The Raft term: KRaft's leader epoch.
    pub leader_epoch: i64,
    /// The last committed log index.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    pub observers: Vec<ReplicaProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub node_id: NodeId,
    pub log_end_offset: i64,
    pub address: String,
    /// When it last reported its position (ms since the epoch), if known.
    #[serde(default)]
    pub last_fetch_ms: Option<i64>,
}

/// Why the controller did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerError {
    /// This node is not the active controller; `leader` is who is, if known.
    #[error("node is not the active controller (the leader is {leader:?})")]
    NotController { leader: Option<NodeId> },
    /// No controller is active (an election is running, or the quorum has no majority).
    #[error("no active controller: {0}")]
    Unavailable(String),
    /// The broker's registration or heartbeat was refused.
    #[error("{0}")]
    Session(String),
    /// The broker must register again (its epoch is stale or unknown).
    #[error("{0}")]
    Reregister(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}
