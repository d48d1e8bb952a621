//! The metadata records: what the controller quorum's log holds, one batch per log entry.
//!
//! A record is a JSON object `{"v": <version>, "type": "<kind>", ...fields}`. JSON because
//! the metadata log is small (topic and broker changes, not data), and an operator can read
//! it; the version is per record kind, so a later release can add fields to one kind and
//! still read every older record. A record whose kind is unknown, or whose version is newer
//! than this build reads, is an error ([`RecordError`]): a node must never guess at
//! metadata. Decoding never panics and allocates only as the input's own bytes go.
//!
//! Records say *what* changed, not *why*: the controller decides (see [`crate::controller`])
//! and every node applies the same records in the same order ([`crate::image`]). Records
//! that depend on state carry a precondition (a broker epoch, a partition epoch), so a
//! decision made on an image that has since moved is refused at apply, the same way on
//! every node, instead of overwriting a newer change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::topic_id::TopicId;

/// A broker's Kafka listener as clients should dial it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordBody {
    /// Names the cluster. The first record of every cluster's log, written once by the first
    /// active controller; every data directory is stamped with this id.
    ClusterInit { cluster_id: String },
    /// A broker (re)joined: it starts fenced, with a new broker epoch (the log index of this
    /// record), and is unfenced once it has caught up with the log.
    RegisterBroker {
        node_id: NodeId,
        /// Random per process start: tells a restarted broker from a duplicate heartbeat.
        incarnation_id: String,
        kafka: Endpoint,
        /// `host:port` of its QUIC listener (controller and replication traffic).
        cluster_addr: String,
        rack: Option<String>,
    },
    /// A registered broker's state changes. Refused unless `broker_epoch` is its current
    /// epoch, so a change decided for an earlier incarnation cannot touch a restarted broker.
    BrokerChange {
        node_id: NodeId,
        broker_epoch: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fenced: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_controlled_shutdown: Option<bool>,
    },
    /// A topic is created (its partitions follow as [`RecordBody::Partition`] records in the
    /// same batch).
    Topic {
        topic_id: TopicId,
        name: String,
        /// Topic-level overrides, Kafka names (`retention.ms`, …).
        configs: BTreeMap<String, String>,
    },
    /// A partition is created; `partition` must be the topic's next index.
    ///
    /// Version 2 adds the reassignment sets and the leader recovery state; a record that
    /// leaves them at their defaults is written as version 1, so older nodes still read it.
    Partition {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
        /// v2: replicas a reassignment is adding (KIP-455); a subset of `replicas`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<NodeId>,
        /// v2: replicas a reassignment is removing (KIP-455); a subset of `replicas`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<NodeId>,
        /// v2: whether the leader came from an unclean election and has not yet said it
        /// recovered (KIP-704).
        #[serde(default, skip_serializing_if = "LeaderRecoveryState::is_recovered")]
        leader_recovery_state: LeaderRecoveryState,
    },
    /// A partition's leader, ISR, replicas, reassignment sets or recovery state change.
    /// Applied only if the partition epoch is still `expected_partition_epoch`; the
    /// partition epoch then bumps, and the leader epoch bumps when the leader changes or a
    /// replica is removed (Kafka's `PartitionChangeBuilder`: a removed replica must be
    /// fenced out of fetching, KIP-455).
    ///
    /// Version 2 adds the last three fields; a record that sets none of them is written as
    /// version 1.
    PartitionChange {
        topic_id: TopicId,
        partition: i32,
        expected_partition_epoch: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<NodeId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isr: Option<Vec<NodeId>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<NodeId>>,
        /// v2: the replicas a reassignment is adding, replaced whole.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<NodeId>>,
        /// v2: the replicas a reassignment is removing, replaced whole.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<NodeId>>,
        /// v2: set after an unclean election, cleared by the leader's first ISR expansion.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader_recovery_state: Option<LeaderRecoveryState>,
    },
    /// A topic's config overrides are replaced by `configs`.
    TopicConfigs {
        topic_id: TopicId,
        configs: BTreeMap<String, String>,
    },
    /// A topic and its partitions are deleted.
    RemoveTopic { topic_id: TopicId },
    /// A block of producer ids `[first, first + count)` is handed to `node_id`'s
    /// InitProducerId; `first` must be the image's next unallocated id.
    ProducerIds {
        node_id: NodeId,
        first: i64,
        count: i64,
    },
}

/// Whether a partition's leader came from an unclean election (KIP-704).
///
/// An unclean election makes the partition `Recovering`: its ISR is the new leader alone,
/// and the controller refuses to grow it until the leader asks, in the same AlterPartition,
/// to mark it `Recovered` (the leader does so with its first expansion). Followers of a
/// recovering leader may have to truncate acknowledged records: that is the loss an unclean
/// election accepts, and the replication layer counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    pub fn is_recovered(&self) -> bool {
        *self == LeaderRecoveryState::Recovered
    }
}

impl RecordBody {
    /// The newest version of this kind this build writes and reads.
    pub fn version_max(&self) -> u16 {
        match self {
            RecordBody::Partition { .. } | RecordBody::PartitionChange { .. } => 2,
            RecordBody::ClusterInit { .. }
            | RecordBody::RegisterBroker { .. }
            | RecordBody::BrokerChange { .. }
            | RecordBody::Topic { .. }
            | RecordBody::TopicConfigs { .. }
            | RecordBody::RemoveTopic { .. }
            | RecordBody::ProducerIds { .. } => 1,
        }
    }

    /// The oldest version that can carry this record: 2 for a partition record that uses a
    /// version 2 field, 1 otherwise. Records are written at this version, so a node that
    /// reads only version 1 keeps reading every record that does not need more.
    pub fn version_needed(&self) -> u16 {
        match self {
            RecordBody::Partition {
                adding_replicas,
                removing_replicas,
                leader_recovery_state,
                ..
            } if !adding_replicas.is_empty()
                || !removing_replicas.is_empty()
                || !leader_recovery_state.is_recovered() =>
            {
                2
            }
            RecordBody::PartitionChange {
                adding_replicas,
                removing_replicas,
                leader_recovery_state,
                ..
            } if adding_replicas.is_some()
                || removing_replicas.is_some()
                || leader_recovery_state.is_some() =>
            {
                2
            }
            _ => 1,
        }
    }

    /// The kind's name as it appears in the `type` field, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::ClusterInit { .. } => "cluster_init",
            RecordBody::RegisterBroker { .. } => "register_broker",
            RecordBody::BrokerChange { .. } => "broker_change",
            RecordBody::Topic { .. } => "topic",
            RecordBody::Partition { .. } => "partition",
            RecordBody::PartitionChange { .. } => "partition_change",
            RecordBody::TopicConfigs { .. } => "topic_configs",
            RecordBody::RemoveTopic { .. } => "remove_topic",
            RecordBody::ProducerIds { .. } => "producer_ids",
        }
    }
}

/// A record with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RecordRepr", into = "RecordRepr")]
pub struct Record {
    pub version: u16,
    pub body: RecordBody,
}

impl Record {
    /// A record at the oldest version that carries it ([`RecordBody::version_needed`]).
    pub fn new(body: RecordBody) -> Self {
        Self {
            version: body.version_needed(),
            body,
        }
    }
}

impl From<RecordBody> for Record {
    fn from(body: RecordBody) -> Self {
        Record::new(body)
    }
}

#[derive(Serialize, Deserialize)]
struct RecordRepr {
    v: u16,
    #[serde(flatten)]
    body: RecordBody,
}

impl TryFrom<RecordRepr> for Record {
    type Error = RecordError;

    fn try_from(repr: RecordRepr) -> Result<Self, RecordError> {
        let max = repr.body.version_max();
        if repr.v == 0 || repr.v > max {
            return Err(RecordError::Version {
                kind: repr.body.kind(),
                version: repr.v,
                max,
            });
        }
        let needed = repr.body.version_needed();
        if repr.v < needed {
            // A version 1 writer never wrote these fields, and a version 1 reader would
            // silently ignore them: reading them here would split the images.
            return Err(RecordError::Malformed(format!(
                "metadata record '{}' of version {} carries fields of version {needed}",
                repr.body.kind(),
                repr.v
            )));
        }
        Ok(Record {
            version: repr.v,
            body: repr.body,
        })
    }
}

impl From<Record> for RecordRepr {
    fn from(record: Record) -> Self {
        RecordRepr {
            v: record.version,
            body: record.body,
        }
    }
}

/// The payload of one metadata log entry: records applied together, all or none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<Record>,
}

impl MetadataBatch {
    pub fn new(records: impl IntoIterator<Item = RecordBody>) -> Self {
        Self {
            records: records.into_iter().map(Record::new).collect(),
        }
    }

    /// Encodes the batch as it is stored and sent.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored or received batch. Unknown kinds, newer versions and malformed
    /// bytes are errors.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))
    }
}

/// A record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "metadata record '{kind}' has version {version}; this build reads versions 1 to {max}: upgrade this node"
    )]
    Version {
        kind: &'static str,
        version: u16,
        max: u16,
    },
    #[error("malformed metadata record: {0}")]
    Malformed(String),
}

impl From<RecordError> for String {
    fn from(e: RecordError) -> String {
        e.to_string()
    }
}

/// A record that is well formed but cannot be applied to the image it meets. Applying is
/// deterministic, so every node refuses the same records: the batch is skipped whole and the
/// image stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    #[error("the cluster is already named '{existing}'; a record names it '{found}'")]
    ClusterIdMismatch { existing: String, found: String },
    #[error("broker {node_id} is not registered")]
    UnknownBroker { node_id: NodeId },
    #[error("broker {node_id} has epoch {current}; the record is for epoch {found}")]
    StaleBrokerEpoch {
        node_id: NodeId,
        current: i64,
        found: i64,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic id {0} is already used")]
    TopicIdExists(TopicId),
    #[error("topic id {0} is unknown")]
    UnknownTopic(TopicId),
    #[error("partition {partition} of topic {topic_id} is unknown")]
    UnknownPartition { topic_id: TopicId, partition: i32 },
    #[error(
        "partition {partition} of topic {topic_id} has epoch {current}; the change expected {expected}"
    )]
    StalePartitionEpoch {
        topic_id: TopicId,
        partition: i32,
        current: i32,
        expected: i32,
    },
    #[error("producer ids from {expected} are next; a record hands out {found}")]
    ProducerIdGap { expected: i64, found: i64 },
    #[error("invalid metadata record: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_with_its_version() {
        let batch = MetadataBatch::new([RecordBody::ClusterInit {
            cluster_id: "abc".into(),
        }]);
        let bytes = batch.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""v":1"#), "{text}");
        assert!(text.contains(r#""type":"cluster_init""#), "{text}");
        assert_eq!(MetadataBatch::decode(&bytes).unwrap(), batch);
    }

    #[test]
    fn newer_versions_and_unknown_kinds_are_refused() {
        let newer = br#"{"records":[{"v":2,"type":"cluster_init","cluster_id":"a"}]}"#;
        let err = MetadataBatch::decode(newer).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        let zero = br#"{"records":[{"v":0,"type":"cluster_init","cluster_id":"a"}]}"#;
        assert!(MetadataBatch::decode(zero).is_err());
        let unknown = br#"{"records":[{"v":1,"type":"teleport","to":"mars"}]}"#;
        assert!(MetadataBatch::decode(unknown).is_err());
        let missing = br#"{"records":[{"type":"cluster_init","cluster_id":"a"}]}"#;
        assert!(MetadataBatch::decode(missing).is_err());
    }
}
