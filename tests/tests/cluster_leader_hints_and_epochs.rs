//! Clients find leaders without a metadata refresh, and stale leaders are fenced by epoch:
//!
//! - a Fetch (v16) sent to a node that does not lead the partition gets
//!   NOT_LEADER_OR_FOLLOWER with the current leader and epoch (KIP-951's `CurrentLeader`) and
//!   the leader's endpoint in `NodeEndpoints`;
//! - on the leader, a Fetch or ListOffsets naming a newer leader epoch than the leader's gets
//!   UNKNOWN_LEADER_EPOCH, and after leadership has moved (a controlled shutdown of the old
//!   leader), the old epoch gets FENCED_LEADER_EPOCH on the new leader (KIP-320);
//! - FindCoordinator names the leader of the group's `__consumer_offsets` partition.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test by panicking"
)]

use std::net::SocketAddr;
use std::time::Duration;

use spate_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use spate_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use spate_protocol::messages::metadata_request::MetadataRequestTopic;
use spate_protocol::messages::{
    FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
};
use spate_tests::group_requests::GroupConnection;
use spate_tests::{Cluster, ClusterOptions};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const TOPIC: &str = "hinted";

/// The topic's id, from Metadata v12.
fn topic_id(addr: SocketAddr) -> [u8; 16] {
    let mut connection = GroupConnection::connect(addr).unwrap();
    let request = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(TOPIC.to_owned()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let response: MetadataResponse = connection.call(&request, 12).unwrap();
    response.topics[0].topic_id.0
}

/// One partition's Fetch answer: error, (leader, epoch) hint, and the endpoints listed.
fn fetch(addr: SocketAddr, topic_id: [u8; 16], epoch: i32) -> (i16, (i32, i32), Vec<(i32, i32)>) {
    let mut connection = GroupConnection::connect(addr).unwrap();
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic_id: spate_protocol::wire::Uuid(topic_id),
            partitions: vec![FetchPartition {
                partition: 0,
                current_leader_epoch: epoch,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: FetchResponse = connection.call(&request, 16).unwrap();
    let partition = &response.responses[0].partitions[0];
    (
        partition.error_code,
        (
            partition.current_leader.leader_id,
            partition.current_leader.leader_epoch,
        ),
        response
            .node_endpoints
            .iter()
            .map(|e| (e.node_id, e.port))
            .collect(),
    )
}

/// ListOffsets (v7, latest) at `epoch`: error and the leader epoch answered.
fn list_latest(addr: SocketAddr, epoch: i32) -> (i16, i32) {
    let mut connection = GroupConnection::connect(addr).unwrap();
    let request = ListOffsetsRequest {
        replica_id: -1,
        topics: vec![ListOffsetsTopic {
            name: TOPIC.to_owned(),
            partitions: vec![ListOffsetsPartition {
                partition_index: 0,
                current_leader_epoch: epoch,
                timestamp: -1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: ListOffsetsResponse = connection.call(&request, 7).unwrap();
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.leader_epoch)
}

#[test]
fn non_leaders_point_at_the_leader_and_stale_epochs_are_fenced() {
    let mut cluster = Cluster::start(ClusterOptions::default()).unwrap();
    cluster.create_topic(2, TOPIC, 1, 3).unwrap();
    let metadata = cluster
        .agreed_metadata(Duration::from_secs(30), "the topic is everywhere", |m| {
            m.topic(TOPIC).is_some_and(|t| t.partitions.len() == 1)
        })
        .unwrap();
    let topic = metadata.topic(TOPIC).unwrap();
    let partition = topic.partition(0).unwrap();
    let id = topic_id(cluster.node(1).kafka_addr());
    let (leader, epoch) = (partition.leader, partition.leader_epoch);
    let follower = partition
        .replicas
        .iter()
        .copied()
        .find(|n| *n != leader)
        .unwrap();
    let leader_port = i32::from(cluster.node(leader).kafka_addr().port());

    // A follower points at the leader, with its endpoint.
    let (code, hint, endpoints) = fetch(cluster.node(follower).kafka_addr(), id, epoch);
    assert_eq!(code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(hint, (leader, epoch));
    assert_eq!(endpoints, vec![(leader, leader_port)]);

    // The leader serves its epoch and refuses one it has not reached.
    let leader_addr = cluster.node(leader).kafka_addr();
    assert_eq!(fetch(leader_addr, id, epoch).0, 0);
    assert_eq!(fetch(leader_addr, id, -1).0, 0, "no epoch: no check");
    assert_eq!(fetch(leader_addr, id, epoch + 1).0, UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_latest(leader_addr, epoch), (0, epoch));
    assert_eq!(list_latest(leader_addr, epoch + 1).0, UNKNOWN_LEADER_EPOCH);

    // The leader stops cleanly; its successor has a higher epoch and fences the old one.
    let status = cluster.terminate(leader).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let survivor = partition
        .replicas
        .iter()
        .copied()
        .find(|n| *n != leader)
        .unwrap();
    let moved = cluster
        .poll(Duration::from_secs(30), |c| {
            let m = c.metadata(survivor).ok()?;
            let p = m.topic(TOPIC)?.partition(0)?.clone();
            (p.leader != leader && p.leader >= 0).then_some(p)
        })
        .unwrap_or_else(|| panic!("leadership never moved\n{}", cluster.logs()));
    assert!(moved.leader_epoch > epoch);
    let new_leader = cluster.node(moved.leader).kafka_addr();
    assert_eq!(fetch(new_leader, id, epoch).0, FENCED_LEADER_EPOCH);
    assert_eq!(list_latest(new_leader, epoch).0, FENCED_LEADER_EPOCH);
    assert_eq!(fetch(new_leader, id, moved.leader_epoch).0, 0);
}

#[test]
fn find_coordinator_names_the_leader_of_the_groups_offsets_partition() {
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let ask = |node: i32| -> FindCoordinatorResponse {
        let mut connection = GroupConnection::connect(cluster.node(node).kafka_addr()).unwrap();
        let request = FindCoordinatorRequest {
            key: "billing".to_owned(),
            key_type: 0,
            ..Default::default()
        };
        connection.call(&request, 3).unwrap()
    };
    // The first asks create __consumer_offsets; clients retry until it has leaders.
    let answer = cluster
        .poll(Duration::from_secs(30), |_| {
            let answer = ask(1);
            (answer.error_code == 0).then_some(answer)
        })
        .unwrap_or_else(|| panic!("no coordinator\n{}", cluster.logs()));
    let metadata = cluster
        .agreed_metadata(Duration::from_secs(30), "offsets topic everywhere", |m| {
            m.topic("__consumer_offsets").is_some()
        })
        .unwrap();
    let offsets = metadata.topic("__consumer_offsets").unwrap();
    // Kafka's partition for a group: abs(hash(group id)) % partitions (Java's String.hashCode).
    let hash = "billing"
        .bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
    let index = (hash.unsigned_abs() % offsets.partitions.len() as u32) as i32;
    let leader = offsets.partition(index).unwrap().leader;
    assert_eq!(answer.node_id, leader);
    assert_eq!(
        answer.port,
        i32::from(cluster.node(leader).kafka_addr().port())
    );
    for node in [2, 3] {
        let other = ask(node);
        assert_eq!(
            (other.error_code, other.node_id),
            (0, leader),
            "node {node}"
        );
    }
}
