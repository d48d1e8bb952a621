//! Typed group-API requests over a raw connection, for the wire-level tests of the group
//! coordinator's error paths.
//!
//! Unlike [`crate::wire`], this uses the protocol crate's generated messages: the group APIs have
//! ten request types with flexible versions and tagged fields, and hand-writing every layout would
//! test our hand-written layouts more than the broker. What the tests check is the broker's
//! *behaviour* (which error code, which generation, which member), which the codec cannot fake.
//! Every response must decode with no byte left over, so an encoding slip on the broker side
//! fails loudly too.

use std::io::ErrorKind;
use std::net::SocketAddr;

use spate_protocol::ApiKey;
use spate_protocol::header::{RequestHeader, ResponseHeader};
use spate_protocol::messages::describe_groups_response::DescribedGroup;
use spate_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use spate_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use spate_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use spate_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use spate_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use spate_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use spate_protocol::wire::{Decode, Encode};

use crate::HarnessError;
use crate::wire::{CLIENT_ID, FrameRead, KafkaConnection};

/// Inside Kafka's default [6 s, 30 min] range, and long enough that a member the test does not
/// heartbeat stays in its group for the whole test on a loaded machine.
pub const SESSION_TIMEOUT_MS: i32 = 45_000;

/// Long enough that a member never times out of a rebalance while a test drives the others.
pub const REBALANCE_TIMEOUT_MS: i32 = 60_000;

/// The protocol type every Java, librdkafka and Python consumer sends.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The assignor name the tests' members offer.
pub const RANGE_ASSIGNOR: &str = "range";

/// A request of a group API (or another flexible API a test needs: DescribeQuorum, Produce v10+),
/// tied to its response type and API key so one generic call can frame, send and decode it.
pub trait GroupRequest: Encode {
    /// The response this request is answered with.
    type Response: Decode;
    /// The API the request is sent under.
    const API: ApiKey;
}

macro_rules! group_requests {
    ($($request:ty => $response:ty, $api:ident;)*) => {
        $(impl GroupRequest for $request {
            type Response = $response;
            const API: ApiKey = ApiKey::$api;
        })*
    };
}

group_requests! {
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    JoinGroupRequest => JoinGroupResponse, JoinGroup;
    SyncGroupRequest => SyncGroupResponse, SyncGroup;
    HeartbeatRequest => HeartbeatResponse, Heartbeat;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    ListGroupsRequest => ListGroupsResponse, ListGroups;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups;
    OffsetDeleteRequest => OffsetDeleteResponse, OffsetDelete;
    DescribeQuorumRequest => DescribeQuorumResponse, DescribeQuorum;
    ProduceRequest => ProduceResponse, Produce;
    FetchRequest => FetchResponse, Fetch;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    MetadataRequest => MetadataResponse, Metadata;
}

/// A request sent but not yet answered: a JoinGroup the coordinator holds until the rebalance
/// completes is sent first and read later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
}

/// One client connection speaking the group APIs at any version, with the right header versions.
pub struct GroupConnection {
    connection: KafkaConnection,
    next_correlation_id: i32,
}

impl GroupConnection {
    /// Connects with the raw connection's read timeout, so a request the broker never answers
    /// fails the test instead of hanging it.
    pub fn connect(addr: SocketAddr) -> Result<Self, HarnessError> {
        Ok(GroupConnection {
            connection: KafkaConnection::connect(addr)?,
            next_correlation_id: 1,
        })
    }

    /// Sends `request` at `version` and waits for its answer.
    pub fn call<R: GroupRequest>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, HarnessError> {
        let pending = self.send(request, version)?;
        self.receive::<R::Response>(pending)
    }

    /// Sends `request` without waiting; [`GroupConnection::receive`] reads the answer.
    pub fn send<R: GroupRequest>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<Pending, HarnessError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let api = R::API;
        let header = RequestHeader {
            request_api_key: api.id(),
            request_api_version: version,
            correlation_id,
            client_id: Some(CLIENT_ID.to_owned()),
            ..Default::default()
        };
        let mut payload = Default::default();
        header
            .encode(&mut payload, api.request_header_version(version))
            .map_err(|e| encode_error(api, version, &e))?;
        request
            .encode(&mut payload, version)
            .map_err(|e| encode_error(api, version, &e))?;
        let length = i32::try_from(payload.len()).unwrap_or(i32::MAX);
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&payload);
        self.connection.send_raw(&frame)?;
        Ok(Pending {
            api,
            version,
            correlation_id,
        })
    }

    /// Reads the answer to `pending`, which must be the next frame on this connection.
    pub fn receive<T: Decode>(&mut self, pending: Pending) -> Result<T, HarnessError> {
        let Pending {
            api,
            version,
            correlation_id,
        } = pending;
        let frame = match self.connection.read_frame()? {
            FrameRead::Frame(frame) => frame,
            FrameRead::Closed => {
                return Err(HarnessError::io(
                    format!("{} v{version}", api.name()),
                    std::io::Error::new(
                        ErrorKind::ConnectionAborted,
                        "broker closed the connection",
                    ),
                ));
            }
        };
        let mut bytes = frame.into();
        let header = ResponseHeader::decode(&mut bytes, api.response_header_version(version))
            .map_err(|e| malformed(api, version, &e))?;
        if header.correlation_id != correlation_id {
            return Err(HarnessError::MalformedResponse(format!(
                "{} v{version}: correlation id {}, expected {correlation_id}",
                api.name(),
                header.correlation_id
            )));
        }
        let body = T::decode(&mut bytes, version).map_err(|e| malformed(api, version, &e))?;
        if !bytes.is_empty() {
            return Err(HarnessError::MalformedResponse(format!(
                "{} v{version}: {} bytes left after the response body",
                api.name(),
                bytes.len()
            )));
        }
        Ok(body)
    }
}

fn encode_error(api: ApiKey, version: i16, error: &dyn std::fmt::Display) -> HarnessError {
    HarnessError::io(
        format!("encode {} v{version}", api.name()),
        std::io::Error::new(ErrorKind::InvalidInput, error.to_string()),
    )
}

fn malformed(api: ApiKey, version: i16, error: &dyn std::fmt::Display) -> HarnessError {
    HarnessError::MalformedResponse(format!("{} v{version}: {error}", api.name()))
}

/// A `ConsumerProtocolSubscription` v0 as Java's consumer writes it: the broker reads the topic
/// list out of it (OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC depends on that).
pub fn consumer_subscription(topics: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(
        &i32::try_from(topics.len())
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    for topic in topics {
        put_string(&mut out, topic);
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // user data: null
    out
}

/// A `ConsumerProtocolAssignment` v0: what a leader hands each member in SyncGroup.
pub fn consumer_assignment(partitions: &[(&str, &[i32])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(
        &i32::try_from(partitions.len())
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    for (topic, indexes) in partitions {
        put_string(&mut out, topic);
        out.extend_from_slice(
            &i32::try_from(indexes.len())
                .unwrap_or(i32::MAX)
                .to_be_bytes(),
        );
        for index in *indexes {
            out.extend_from_slice(&index.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // user data: null
    out
}

fn put_string(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&i16::try_from(value.len()).unwrap_or(i16::MAX).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// A consumer's JoinGroup: protocol type `consumer`, one `range` protocol subscribed to `topics`.
pub fn consumer_join(
    group_id: &str,
    member_id: &str,
    group_instance_id: Option<&str>,
    topics: &[&str],
) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: group_id.to_owned(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
        protocols: vec![JoinGroupRequestProtocol {
            name: RANGE_ASSIGNOR.to_owned(),
            metadata: consumer_subscription(topics).into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A SyncGroup v5 naming the consumer protocol, with `assignments` (empty for a follower).
pub fn consumer_sync(
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
    assignments: &[(&str, Vec<u8>)],
) -> SyncGroupRequest {
    SyncGroupRequest {
        group_id: group_id.to_owned(),
        generation_id,
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
        protocol_name: Some(RANGE_ASSIGNOR.to_owned()),
        assignments: assignments
            .iter()
            .map(|(member, assignment)| SyncGroupRequestAssignment {
                member_id: (*member).to_owned(),
                assignment: assignment.clone().into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A Heartbeat (v3+ carries the instance id).
pub fn heartbeat(
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: group_id.to_owned(),
        generation_id,
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        ..Default::default()
    }
}

/// One partition's offset commit: topic, partition, offset, metadata.
pub type CommitEntry<'a> = (&'a str, i32, i64, Option<&'a str>);

/// An OffsetCommit of `entries`, grouped by topic in the order given.
pub fn offset_commit(
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
    entries: &[CommitEntry<'_>],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in entries {
        let entry = OffsetCommitRequestPartition {
            partition_index: *partition,
            committed_offset: *offset,
            committed_leader_epoch: -1,
            commit_timestamp: -1,
            committed_metadata: metadata.map(str::to_owned),
            ..Default::default()
        };
        match topics.iter_mut().find(|t| t.name == *topic) {
            Some(existing) => existing.partitions.push(entry),
            None => topics.push(OffsetCommitRequestTopic {
                name: (*topic).to_owned(),
                partitions: vec![entry],
                ..Default::default()
            }),
        }
    }
    OffsetCommitRequest {
        group_id: group_id.to_owned(),
        generation_id_or_member_epoch: generation_id,
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        retention_time_ms: -1,
        topics,
        ..Default::default()
    }
}

/// The error codes of an OffsetCommit answer, as `(topic, partition, code)` in answer order.
pub fn commit_errors(response: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    response
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| (topic.name.clone(), p.partition_index, p.error_code))
        })
        .collect()
}

/// One partition of an OffsetFetch answer, flattened across the v0–7 and v8+ layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    pub error_code: i16,
}

/// An OffsetFetch v8+ request for one group; `topics = None` asks for every partition.
pub fn offset_fetch_v8(group_id: &str, topics: Option<&[(&str, &[i32])]>) -> OffsetFetchRequest {
    OffsetFetchRequest {
        groups: vec![OffsetFetchRequestGroup {
            group_id: group_id.to_owned(),
            member_id: None,
            member_epoch: -1,
            topics: topics.map(|topics| {
                topics
                    .iter()
                    .map(|(name, partitions)| OffsetFetchRequestTopics {
                        name: (*name).to_owned(),
                        partition_indexes: partitions.to_vec(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The partitions of one group's v8+ OffsetFetch answer.
pub fn fetched_v8(group: &OffsetFetchResponseGroup) -> Vec<FetchedOffset> {
    group
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| FetchedOffset {
                topic: topic.name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                metadata: p.metadata.clone(),
                error_code: p.error_code,
            })
        })
        .collect()
}

/// The partitions of a v0–7 OffsetFetch answer.
pub fn fetched_v0_to_v7(response: &OffsetFetchResponse) -> Vec<FetchedOffset> {
    response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| FetchedOffset {
                topic: topic.name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                metadata: p.metadata.clone(),
                error_code: p.error_code,
            })
        })
        .collect()
}

/// FindCoordinator v3 for a group on `connection`; returns the answer.
pub fn find_group_coordinator(
    connection: &mut GroupConnection,
    group_id: &str,
) -> Result<FindCoordinatorResponse, HarnessError> {
    let request = FindCoordinatorRequest {
        key: group_id.to_owned(),
        key_type: 0,
        ..Default::default()
    };
    connection.call(&request, 3)
}

/// DescribeGroups v5 of one group.
pub fn describe_group(
    connection: &mut GroupConnection,
    group_id: &str,
) -> Result<DescribedGroup, HarnessError> {
    let request = DescribeGroupsRequest {
        groups: vec![group_id.to_owned()],
        include_authorized_operations: false,
        ..Default::default()
    };
    let response = connection.call(&request, 5)?;
    response
        .groups
        .into_iter()
        .find(|group| group.group_id == group_id)
        .ok_or_else(|| {
            HarnessError::MalformedResponse(format!("DescribeGroups does not name {group_id}"))
        })
}
