//! Canned answers that keep a real client moving to its next request.
//!
//! Each answer is the smallest honest response: a one-broker cluster (this process) that owns
//! every topic's single partition, accepts every produce, serves one batch on the first fetch,
//! and runs a one-member consumer group. Responses are the generated message types; fields a
//! version lacks are left at their defaults, which the generated encoders require.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

use bytes::Bytes;
use spate_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use spate_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use spate_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use spate_protocol::messages::heartbeat_response::HeartbeatResponse;
use spate_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use spate_protocol::messages::join_group_request::JoinGroupRequest;
use spate_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use spate_protocol::messages::leave_group_response::LeaveGroupResponse;
use spate_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use spate_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::offset_commit_request::OffsetCommitRequest;
use spate_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use spate_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use spate_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use spate_protocol::messages::produce_request::ProduceRequest;
use spate_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use spate_protocol::messages::sync_group_request::SyncGroupRequest;
use spate_protocol::messages::sync_group_response::SyncGroupResponse;
use spate_protocol::{RequestBody, ResponseBody, Uuid};

use crate::apis::ANSWERED;

const NODE_ID: i32 = 0;
const ERROR_NONE: i16 = 0;
/// Since JoinGroup v4 a broker makes a new member rejoin with an id it hands out (KIP-394).
const ERROR_MEMBER_ID_REQUIRED: i16 = 79;
/// Stand-in for the long poll a real broker does on an empty fetch, so clients do not spin.
const EMPTY_FETCH_DELAY_MS: u64 = 100;

/// The fake cluster's state, shared by all connections.
pub struct Cluster {
    host: String,
    port: i32,
    topics: Vec<String>,
    /// One batch served on the first fetch, so consumers have something to commit.
    fetch_batch: Bytes,
    fetch_batch_records: i64,
    fetch_served: AtomicBool,
    next_offset: AtomicI64,
    members: AtomicU32,
}

impl Cluster {
    pub fn new(
        host: String,
        port: i32,
        topics: Vec<String>,
        fetch_batch: Bytes,
        fetch_batch_records: i64,
    ) -> Self {
        Self {
            host,
            port,
            topics,
            fetch_batch,
            fetch_batch_records,
            fetch_served: AtomicBool::new(false),
            next_offset: AtomicI64::new(0),
            members: AtomicU32::new(0),
        }
    }

    /// The id of the `index`th topic; clients using Fetch v13+ address topics by it.
    pub fn topic_id(index: usize) -> Uuid {
        let mut id = [0x5a; 16];
        id[15] = index as u8 + 1;
        Uuid(id)
    }

    /// The response to a request, or `None` when Kafka sends none (Produce with acks=0) or
    /// the API is not one we answer.
    pub fn respond(&self, request: &RequestBody, version: i16) -> Option<ResponseBody> {
        Some(match request {
            RequestBody::ApiVersions(_) => ResponseBody::ApiVersions(api_versions()),
            RequestBody::Metadata(_) => ResponseBody::Metadata(self.metadata()),
            RequestBody::Produce(request) => ResponseBody::Produce(self.produce(request)?),
            RequestBody::Fetch(_) => ResponseBody::Fetch(self.fetch()),
            RequestBody::ListOffsets(_) => ResponseBody::ListOffsets(self.list_offsets(version)),
            RequestBody::FindCoordinator(request) => {
                let keys = if version >= 4 {
                    request.coordinator_keys.clone()
                } else {
                    vec![request.key.clone()]
                };
                ResponseBody::FindCoordinator(self.find_coordinator(keys, version))
            }
            RequestBody::JoinGroup(request) => {
                ResponseBody::JoinGroup(self.join_group(request, version))
            }
            RequestBody::SyncGroup(request) => ResponseBody::SyncGroup(sync_group(request)),
            RequestBody::Heartbeat(_) => ResponseBody::Heartbeat(HeartbeatResponse::default()),
            RequestBody::LeaveGroup(_) => ResponseBody::LeaveGroup(LeaveGroupResponse::default()),
            RequestBody::OffsetCommit(request) => {
                ResponseBody::OffsetCommit(offset_commit(request))
            }
            RequestBody::OffsetFetch(request) => {
                ResponseBody::OffsetFetch(self.offset_fetch(request, version))
            }
            RequestBody::InitProducerId(_) => {
                ResponseBody::InitProducerId(InitProducerIdResponse {
                    producer_id: 1000,
                    producer_epoch: 0,
                    ..Default::default()
                })
            }
            _ => return None,
        })
    }

    fn metadata(&self) -> MetadataResponse {
        let topics = self
            .topics
            .iter()
            .enumerate()
            .map(|(index, topic)| MetadataResponseTopic {
                error_code: ERROR_NONE,
                name: Some(topic.clone()),
                topic_id: Self::topic_id(index),
                partitions: vec![MetadataResponsePartition {
                    partition_index: 0,
                    leader_id: NODE_ID,
                    leader_epoch: 0,
                    replica_nodes: vec![NODE_ID],
                    isr_nodes: vec![NODE_ID],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        MetadataResponse {
            brokers: vec![MetadataResponseBroker {
                node_id: NODE_ID,
                host: self.host.clone(),
                port: self.port,
                rack: None,
                ..Default::default()
            }],
            cluster_id: Some("spate-capture".into()),
            controller_id: NODE_ID,
            topics,
            ..Default::default()
        }
    }

    fn produce(&self, request: &ProduceRequest) -> Option<ProduceResponse> {
        if request.acks == 0 {
            return None;
        }
        let responses = request
            .topic_data
            .iter()
            .map(|topic| TopicProduceResponse {
                name: topic.name.clone(),
                partition_responses: topic
                    .partition_data
                    .iter()
                    .map(|partition| PartitionProduceResponse {
                        index: partition.index,
                        error_code: ERROR_NONE,
                        base_offset: self.next_offset.fetch_add(1, Ordering::Relaxed),
                        log_start_offset: 0,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        Some(ProduceResponse {
            responses,
            ..Default::default()
        })
    }

    fn fetch(&self) -> FetchResponse {
        let first = !self.fetch_served.swap(true, Ordering::Relaxed);
        if !first {
            std::thread::sleep(std::time::Duration::from_millis(EMPTY_FETCH_DELAY_MS));
        }
        let responses = self
            .topics
            .iter()
            .enumerate()
            .map(|(index, topic)| {
                let records = if first && index == 0 {
                    self.fetch_batch.clone()
                } else {
                    Bytes::new()
                };
                FetchableTopicResponse {
                    topic: topic.clone(),
                    topic_id: Self::topic_id(index),
                    partitions: vec![PartitionData {
                        partition_index: 0,
                        error_code: ERROR_NONE,
                        high_watermark: self.fetch_batch_records,
                        last_stable_offset: self.fetch_batch_records,
                        log_start_offset: 0,
                        records: Some(records),
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect();
        FetchResponse {
            responses,
            ..Default::default()
        }
    }

    fn list_offsets(&self, version: i16) -> ListOffsetsResponse {
        let topics = self
            .topics
            .iter()
            .map(|topic| {
                let mut partition = ListOffsetsPartitionResponse {
                    partition_index: 0,
                    error_code: ERROR_NONE,
                    ..Default::default()
                };
                if version == 0 {
                    partition.old_style_offsets = vec![0];
                } else {
                    partition.offset = 0;
                }
                ListOffsetsTopicResponse {
                    name: topic.clone(),
                    partitions: vec![partition],
                    ..Default::default()
                }
            })
            .collect();
        ListOffsetsResponse {
            topics,
            ..Default::default()
        }
    }

    fn find_coordinator(&self, keys: Vec<String>, version: i16) -> FindCoordinatorResponse {
        if version < 4 {
            return FindCoordinatorResponse {
                node_id: NODE_ID,
                host: self.host.clone(),
                port: self.port,
                ..Default::default()
            };
        }
        FindCoordinatorResponse {
            coordinators: keys
                .into_iter()
                .map(|key| Coordinator {
                    key,
                    node_id: NODE_ID,
                    host: self.host.clone(),
                    port: self.port,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn join_group(&self, request: &JoinGroupRequest, version: i16) -> JoinGroupResponse {
        let mut member_id = request.member_id.clone();
        if member_id.is_empty() {
            let number = self.members.fetch_add(1, Ordering::Relaxed) + 1;
            member_id = format!("capture-member-{number}");
            if version >= 4 {
                return JoinGroupResponse {
                    error_code: ERROR_MEMBER_ID_REQUIRED,
                    protocol_name: if version >= 7 {
                        None
                    } else {
                        Some(String::new())
                    },
                    member_id,
                    ..Default::default()
                };
            }
        }
        let protocol = request.protocols.first();
        JoinGroupResponse {
            generation_id: 1,
            protocol_type: (version >= 7).then(|| request.protocol_type.clone()),
            protocol_name: Some(protocol.map(|p| p.name.clone()).unwrap_or_default()),
            leader: member_id.clone(),
            members: vec![JoinGroupResponseMember {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id.clone(),
                metadata: protocol.map(|p| p.metadata.clone()).unwrap_or_default(),
                ..Default::default()
            }],
            member_id,
            ..Default::default()
        }
    }

    fn offset_fetch(&self, request: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if version >= 8 {
            let groups = request
                .groups
                .iter()
                .map(|group| OffsetFetchResponseGroup {
                    group_id: group.group_id.clone(),
                    topics: self
                        .topics
                        .iter()
                        .map(|topic| OffsetFetchResponseTopics {
                            name: topic.clone(),
                            partitions: vec![OffsetFetchResponsePartitions {
                                partition_index: 0,
                                committed_offset: -1,
                                metadata: Some(String::new()),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            return OffsetFetchResponse {
                groups,
                ..Default::default()
            };
        }
        OffsetFetchResponse {
            topics: self
                .topics
                .iter()
                .map(|topic| OffsetFetchResponseTopic {
                    name: topic.clone(),
                    partitions: vec![OffsetFetchResponsePartition {
                        partition_index: 0,
                        committed_offset: -1,
                        metadata: Some(String::new()),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse {
        api_keys: ANSWERED
            .iter()
            .map(|key| ApiVersion {
                api_key: key.id(),
                min_version: *key.valid_versions().start(),
                max_version: *key.valid_versions().end(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn sync_group(request: &SyncGroupRequest) -> SyncGroupResponse {
    SyncGroupResponse {
        protocol_type: request.protocol_type.clone(),
        protocol_name: request.protocol_name.clone(),
        assignment: request
            .assignments
            .first()
            .map(|a| a.assignment.clone())
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn offset_commit(request: &OffsetCommitRequest) -> OffsetCommitResponse {
    OffsetCommitResponse {
        topics: request
            .topics
            .iter()
            .map(|topic| OffsetCommitResponseTopic {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|p| OffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: ERROR_NONE,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
