//! `DescribeQuorum` (key 55): the metadata quorum (`__cluster_metadata-0`): its leader, epoch,
//! high watermark, and how far each voter's log reaches. Any node forwards it to the active
//! controller, as KRaft brokers do.

use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use spate_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use spate_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{ControllerReplyBody, ControllerRequest, QuorumState};
use crate::response::Outcome;
use crate::topics::controller_error_code;

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The metadata log's name, as Kafka calls it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// How long the answer waits for the active controller.
const QUORUM_TIMEOUT_MS: u64 = 5_000;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeQuorumRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let wants_metadata_log = request.topics.len() == 1
        && request.topics[0].topic_name == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    if !wants_metadata_log {
        return ctx.respond(&DescribeQuorumResponse {
            error_code: error_code::INVALID_REQUEST,
            error_message: Some(format!("only {METADATA_TOPIC} partition 0 has a quorum")),
            ..Default::default()
        });
    }
    let answer = broker
        .control
        .call(
            ControllerRequest::DescribeQuorum,
            Duration::from_millis(QUORUM_TIMEOUT_MS),
        )
        .await;
    let quorum = match answer {
        Ok(reply) => match reply.body {
            ControllerReplyBody::Quorum(quorum) => quorum,
            _ => {
                return ctx.respond(&DescribeQuorumResponse {
                    error_code: error_code::UNKNOWN_SERVER_ERROR,
                    error_message: Some(
                        "the controller answered with the wrong message".to_owned(),
                    ),
                    ..Default::default()
                });
            }
        },
        Err(e) => {
            return ctx.respond(&DescribeQuorumResponse {
                error_code: controller_error_code(&e),
                error_message: Some(e.to_string()),
                ..Default::default()
            });
        }
    };
    ctx.respond(&response(&quorum, ctx.version))
}

/// First version with the voters' endpoints (`nodes`) and replica directory ids.
const NODES_VERSION_MIN: i16 = 2;

fn response(quorum: &QuorumState, version: i16) -> DescribeQuorumResponse {
    let replica = |r: &crate::cluster::rpc::ReplicaProgress| ReplicaState {
        replica_id: r.node_id,
        log_end_offset: r.log_end_offset,
        last_fetch_timestamp: if version >= 1 {
            r.last_fetch_ms.unwrap_or(-1)
        } else {
            -1
        },
        last_caught_up_timestamp: -1,
        ..Default::default()
    };
    DescribeQuorumResponse {
        error_code: error_code::NONE,
        topics: vec![TopicData {
            topic_name: METADATA_TOPIC.to_owned(),
            partitions: vec![PartitionData {
                partition_index: 0,
                error_code: error_code::NONE,
                leader_id: quorum.leader_id,
                leader_epoch: i32::try_from(quorum.leader_epoch).unwrap_or(i32::MAX),
                high_watermark: quorum.high_watermark,
                current_voters: quorum.voters.iter().map(replica).collect(),
                observers: quorum.observers.iter().map(replica).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        nodes: quorum
            .voters
            .iter()
            .filter(|_| version >= NODES_VERSION_MIN)
            .filter_map(|v| {
                let (host, port) = v.address.rsplit_once(':')?;
                Some(Node {
                    node_id: v.node_id,
                    listeners: vec![Listener {
                        name: "CLUSTER".to_owned(),
                        host: host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_owned(),
                        port: port.parse().ok()?,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            })
            .collect(),
        ..Default::default()
    }
}
