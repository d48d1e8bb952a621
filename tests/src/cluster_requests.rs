//! What a client sees of a cluster: Metadata v7 (brokers, controller id, and per partition the
//! leader, leader epoch, replicas, ISR and offline replicas) and DescribeQuorum (the metadata
//! quorum's leader and voters).
//!
//! It also sends Produce v10, whose refusal by a node that does not lead the partition carries
//! KIP-951's hint: the current leader and epoch, and that leader's endpoint.
//!
//! Metadata is encoded and decoded by hand, like [`crate::kafka_requests`], so the cluster tests
//! compare what each node puts on the wire without the broker's codec in between. v7 is the last
//! non-flexible version and the first with `leader_epoch`. DescribeQuorum exists only in flexible
//! versions, so it goes through the protocol crate's messages, as the group requests do.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use spate_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::{
    DescribeQuorumRequest, DescribeQuorumResponse, ProduceRequest, ProduceResponse,
};

use crate::HarnessError;
use crate::group_requests::GroupConnection;
use crate::wire::{Decoder, Encoder, KafkaConnection, api_key};

/// The Metadata version asked for: the last non-flexible one, with leader epochs.
const METADATA_VERSION: i16 = 7;

/// The metadata quorum's log, as Kafka names it in DescribeQuorum.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// `leader_id` of a partition that has no leader.
pub const NO_LEADER: i32 = -1;

/// Kafka's LEADER_NOT_AVAILABLE, on a partition without a leader.
pub const LEADER_NOT_AVAILABLE: i16 = 5;

/// One live broker in a Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`, as a client would dial it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition in a Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub error_code: i16,
    pub index: i32,
    /// [`NO_LEADER`] when leaderless.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// One topic in a Metadata answer; partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub error_code: i16,
    pub name: String,
    pub is_internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// How many partitions each broker leads (leaderless partitions are not counted).
    pub fn leader_counts(&self) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for partition in self.partitions.iter().filter(|p| p.leader != NO_LEADER) {
            *counts.entry(partition.leader).or_insert(0) += 1;
        }
        counts
    }

    /// Partition `index`, if the topic has it.
    pub fn partition(&self, index: i32) -> Option<&PartitionMetadata> {
        self.partitions.iter().find(|p| p.index == index)
    }
}

/// A whole Metadata v7 answer, brokers sorted by id and topics by name, so two nodes' answers
/// compare equal when they describe the same cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub brokers: Vec<BrokerMetadata>,
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    /// The topic called `name`, if listed.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The ids of the brokers listed (the live, unfenced ones).
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.iter().map(|b| b.node_id).collect()
    }
}

/// Metadata v7 from the broker at `addr` on a fresh connection; `topics = None` asks for all.
/// Never creates a topic.
pub fn cluster_metadata(
    addr: SocketAddr,
    topics: Option<&[&str]>,
) -> Result<ClusterMetadata, HarnessError> {
    let mut connection = KafkaConnection::connect(addr)?;
    metadata_v7(&mut connection, topics)
}

/// Metadata v7 on `connection`; `topics = None` asks for all. Never creates a topic.
pub fn metadata_v7(
    connection: &mut KafkaConnection,
    topics: Option<&[&str]>,
) -> Result<ClusterMetadata, HarnessError> {
    let mut request = Encoder::default();
    match topics {
        None => {
            request.i32(-1);
        }
        Some(names) => {
            request.array_len(names.len());
            for name in names {
                request.string(name);
            }
        }
    }
    request.i8(0); // allow_auto_topic_creation
    let body = connection.round_trip(api_key::METADATA, METADATA_VERSION, &request.bytes)?;
    decode_metadata_v7(&body)
}

fn decode_metadata_v7(body: &[u8]) -> Result<ClusterMetadata, HarnessError> {
    let mut decoder = Decoder::new(body);
    let _throttle_time_ms = decoder.i32()?;
    let broker_count = decoder.array_len(12)?;
    let mut brokers = Vec::with_capacity(broker_count);
    for _ in 0..broker_count {
        brokers.push(BrokerMetadata {
            node_id: decoder.i32()?,
            host: decoder.string()?,
            port: decoder.i32()?,
            rack: decoder.nullable_string()?,
        });
    }
    brokers.sort();
    let cluster_id = decoder.nullable_string()?;
    let controller_id = decoder.i32()?;
    let topic_count = decoder.array_len(9)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let error_code = decoder.i16()?;
        let name = decoder.string()?;
        let is_internal = decoder.i8()? != 0;
        let partition_count = decoder.array_len(26)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(PartitionMetadata {
                error_code: decoder.i16()?,
                index: decoder.i32()?,
                leader: decoder.i32()?,
                leader_epoch: decoder.i32()?,
                replicas: node_list(&mut decoder)?,
                isr: node_list(&mut decoder)?,
                offline: node_list(&mut decoder)?,
            });
        }
        partitions.sort_by_key(|p| p.index);
        topics.push(TopicMetadata {
            error_code,
            name,
            is_internal,
            partitions,
        });
    }
    if decoder.remaining() != 0 {
        return Err(HarnessError::MalformedResponse(format!(
            "Metadata v{METADATA_VERSION}: {} bytes left after the answer",
            decoder.remaining()
        )));
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClusterMetadata {
        brokers,
        cluster_id,
        controller_id,
        topics,
    })
}

fn node_list(decoder: &mut Decoder<'_>) -> Result<Vec<i32>, HarnessError> {
    let count = decoder.array_len(4)?;
    (0..count).map(|_| decoder.i32()).collect()
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    pub error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    /// The voters' ids and log end offsets, sorted by id.
    pub voters: Vec<(i32, i64)>,
    /// The observers' (non-voting brokers') ids, sorted.
    pub observers: Vec<i32>,
}

/// DescribeQuorum's newest version, the one Kafka's own AdminClient sends.
pub const DESCRIBE_QUORUM_VERSION_MAX: i16 = 2;

/// DescribeQuorum at `version` (0..=2) of `__cluster_metadata-0` from the broker at `addr` (any
/// node: brokers forward it to the active controller).
pub fn describe_quorum(addr: SocketAddr, version: i16) -> Result<QuorumDescription, HarnessError> {
    let mut connection = GroupConnection::connect(addr)?;
    let request = DescribeQuorumRequest {
        topics: vec![TopicData {
            topic_name: METADATA_TOPIC.to_owned(),
            partitions: vec![PartitionData {
                partition_index: 0,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: DescribeQuorumResponse = connection.call(&request, version)?;
    if response.error_code != 0 {
        return Ok(QuorumDescription {
            error_code: response.error_code,
            leader_id: NO_LEADER,
            leader_epoch: -1,
            high_watermark: -1,
            voters: Vec::new(),
            observers: Vec::new(),
        });
    }
    let partition = response
        .topics
        .iter()
        .find(|t| t.topic_name == METADATA_TOPIC)
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
        .ok_or_else(|| {
            HarnessError::MalformedResponse(format!(
                "DescribeQuorum names no {METADATA_TOPIC}-0: {response:?}"
            ))
        })?;
    let mut voters: Vec<(i32, i64)> = partition
        .current_voters
        .iter()
        .map(|v| (v.replica_id, v.log_end_offset))
        .collect();
    voters.sort();
    let mut observers: Vec<i32> = partition.observers.iter().map(|o| o.replica_id).collect();
    observers.sort();
    Ok(QuorumDescription {
        error_code: partition.error_code,
        leader_id: partition.leader_id,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters,
        observers,
    })
}

/// The first Produce version whose refusals carry KIP-951's leader hint.
pub const PRODUCE_LEADER_HINT_VERSION: i16 = 10;

/// One partition's Produce result, with KIP-951's hint of where its leader is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    /// `current_leader` (leader id, leader epoch); (-1, -1) when the broker gives none.
    pub current_leader: (i32, i32),
    /// `node_endpoints`: (node id, host, port) of the brokers the hints name.
    pub node_endpoints: Vec<(i32, String, i32)>,
}

/// Produce v10 of one batch (raw RecordBatch bytes) to one partition, acks=all.
pub fn produce_v10(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> Result<ProduceOutcome, HarnessError> {
    let mut connection = GroupConnection::connect(addr)?;
    let request = ProduceRequest {
        acks: -1,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            name: topic.to_owned(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(batch.to_vec().into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: ProduceResponse = connection.call(&request, PRODUCE_LEADER_HINT_VERSION)?;
    let result = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| {
            HarnessError::MalformedResponse(format!(
                "Produce answer names no partition {partition}: {response:?}"
            ))
        })?;
    Ok(ProduceOutcome {
        error_code: result.error_code,
        base_offset: result.base_offset,
        current_leader: (
            result.current_leader.leader_id,
            result.current_leader.leader_epoch,
        ),
        node_endpoints: response
            .node_endpoints
            .iter()
            .map(|n| (n.node_id, n.host.clone(), n.port))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_answer() -> Vec<u8> {
        let mut body = Encoder::default();
        body.i32(0).array_len(2);
        for (id, port) in [(2, 9002), (1, 9001)] {
            body.i32(id).string("127.0.0.1").i32(port).null_string();
        }
        body.string("cluster-x").i32(2).array_len(1);
        body.i16(0).string("t").i8(0).array_len(2);
        for (index, leader) in [(1, 2), (0, NO_LEADER)] {
            body.i16(0).i32(index).i32(leader).i32(7);
            body.array_len(2).i32(1).i32(2);
            body.array_len(1).i32(2);
            body.array_len(0);
        }
        body.bytes
    }

    #[test]
    fn metadata_v7_answer_is_decoded_and_sorted() {
        let metadata = decode_metadata_v7(&encode_answer()).unwrap();
        assert_eq!(metadata.broker_ids(), vec![1, 2]);
        assert_eq!(metadata.controller_id, 2);
        assert_eq!(metadata.cluster_id.as_deref(), Some("cluster-x"));
        let topic = metadata.topic("t").unwrap();
        assert_eq!(topic.partitions[0].index, 0);
        assert_eq!(topic.partition(1).unwrap().replicas, vec![1, 2]);
        assert_eq!(topic.partition(1).unwrap().leader_epoch, 7);
        assert_eq!(topic.leader_counts(), BTreeMap::from([(2, 1)]));
    }

    #[test]
    fn metadata_v7_answer_with_trailing_bytes_is_malformed() {
        let mut bytes = encode_answer();
        bytes.push(0);
        assert!(matches!(
            decode_metadata_v7(&bytes),
            Err(HarnessError::MalformedResponse(_))
        ));
    }
}
