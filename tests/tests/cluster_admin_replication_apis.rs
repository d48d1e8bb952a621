//! The Kafka APIs around replication, on real clusters with real clients:
//!
//! - **OffsetForLeaderEpoch** (KIP-101/320): after a `kill -9` of a partition's leader, the new
//!   leader answers where the old leader epoch ended, which is where its own epoch began, and
//!   fences or refuses requests the way Fetch does; a librdkafka consumer that read under the
//!   old epoch validates its position with it and reads every record once, in order, across
//!   the change ([`offset_for_leader_epoch`]).
//! - **ElectLeaders** (KIP-460): with `auto.leader.rebalance.enable` off, a preferred replica
//!   that was away gets its leadership back only when asked, through confluent-kafka's
//!   `AdminClient.elect_leaders`; `spate topic elect-leaders` says why it cannot while the
//!   replica is down; partitions already led by their preferred replica answer
//!   ELECTION_NOT_NEEDED ([`elect_leaders`]).
//! - **AlterPartitionReassignments / ListPartitionReassignments** (KIP-455) and
//!   **DescribeLogDirs**: a partition moved from {1,2,3} to {1,2,4} with `spate topic
//!   reassign` while a confluent-kafka producer keeps producing with `acks=all` ends with
//!   replicas {1,2,4}, node 4's log byte-identical to node 1's, every acknowledged record
//!   readable, node 3's copy deleted, and DescribeLogDirs reporting the sizes
//!   ([`reassignment`]).
//!
//! Requests the harness does not encode by hand go through the protocol crate's messages
//! ([`call`]), so what is checked is the broker's behaviour, not a second codec.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::net::SocketAddr;
use std::time::Duration;

use spate_protocol::header::{RequestHeader, ResponseHeader};
use spate_protocol::{ApiKey, Decode, Encode};
use spate_tests::cluster_requests::{ClusterMetadata, PartitionMetadata};
use spate_tests::wire::{FrameRead, KafkaConnection};
use spate_tests::{Cluster, HarnessError, NodeId};

/// Long enough for an election, a catch-up or a metadata change on a loaded 2-core machine
/// running a debug build; every wait names what it waited for when it runs out.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `timeout_ms` of admin requests: below the raw connection's 10 s read timeout, so the
/// broker's own answer arrives first.
const ADMIN_TIMEOUT_MS: i32 = 8_000;

/// Kafka error codes the tests expect.
mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
}

/// Sends `request` at `version` as API `api` on a fresh connection to `addr` and decodes the
/// answer, which must use every byte (the harness's group connection does the same for the
/// APIs it knows).
fn call<Req: Encode, Resp: Decode>(
    addr: SocketAddr,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Result<Resp, HarnessError> {
    let mut connection = KafkaConnection::connect(addr)?;
    let header = RequestHeader {
        request_api_key: api.id(),
        request_api_version: version,
        correlation_id: 7,
        client_id: Some("spate-admin-replication-tests".to_owned()),
        ..Default::default()
    };
    let mut payload = Default::default();
    let encoded = header
        .encode(&mut payload, api.request_header_version(version))
        .and_then(|()| request.encode(&mut payload, version));
    if let Err(e) = encoded {
        return Err(HarnessError::MalformedResponse(format!(
            "cannot encode {} v{version}: {e}",
            api.name()
        )));
    }
    let length = i32::try_from(payload.len()).unwrap();
    let mut frame = length.to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    connection.send_raw(&frame)?;
    let FrameRead::Frame(answer) = connection.read_frame()? else {
        return Err(HarnessError::MalformedResponse(format!(
            "{} v{version}: the broker closed the connection",
            api.name()
        )));
    };
    let mut bytes = answer.into();
    let malformed = |e: &dyn std::fmt::Display| {
        HarnessError::MalformedResponse(format!("{} v{version}: {e}", api.name()))
    };
    let header = ResponseHeader::decode(&mut bytes, api.response_header_version(version))
        .map_err(|e| malformed(&e))?;
    if header.correlation_id != 7 {
        return Err(malformed(&"wrong correlation id"));
    }
    let body = Resp::decode(&mut bytes, version).map_err(|e| malformed(&e))?;
    if !bytes.is_empty() {
        return Err(malformed(&format!("{} bytes left over", bytes.len())));
    }
    Ok(body)
}

/// Partition `partition` of `topic` in `metadata`.
fn partition_in(metadata: &ClusterMetadata, topic: &str, partition: i32) -> PartitionMetadata {
    metadata
        .topic(topic)
        .and_then(|t| t.partition(partition))
        .cloned()
        .unwrap_or_else(|| panic!("{topic}-{partition} is not in {metadata:#?}"))
}

/// Waits until every running broker agrees on Metadata in which `accept` holds for
/// `topic`-`partition`; returns that partition.
fn agreed_partition(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    what: &str,
    accept: impl Fn(&PartitionMetadata) -> bool,
) -> PartitionMetadata {
    let metadata = cluster
        .agreed_metadata(CONVERGE_TIMEOUT, what, |m| {
            m.topic(topic)
                .and_then(|t| t.partition(partition))
                .is_some_and(&accept)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    partition_in(&metadata, topic, partition)
}

/// Panics naming every node that panicked, with the cluster's logs.
fn assert_no_panics(cluster: &Cluster) {
    let panicked = spate_tests::replication::panics(cluster);
    assert!(
        panicked.is_empty(),
        "a node panicked: {panicked:#?}\n{}",
        cluster.logs()
    );
}

/// The node ids of `replicas` other than `except`.
fn others(replicas: &[NodeId], except: NodeId) -> Vec<NodeId> {
    replicas.iter().copied().filter(|n| *n != except).collect()
}

#[path = "cluster_admin_replication_apis/elect_leaders.rs"]
mod elect_leaders;
#[path = "cluster_admin_replication_apis/offset_for_leader_epoch.rs"]
mod offset_for_leader_epoch;
#[path = "cluster_admin_replication_apis/reassignment.rs"]
mod reassignment;
