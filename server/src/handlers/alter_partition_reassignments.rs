//! `AlterPartitionReassignments` (key 45): move partitions to new replicas, or cancel a move
//! under way (KIP-455).
//!
//! The active controller decides ([`crate::cluster::controller`]): a target list starts (or
//! replaces) a reassignment, whose new replicas join as followers, catch up, enter the ISR,
//! and then replace the old ones; `replicas: null` cancels the one in progress. This node
//! forwards the request and answers once its own metadata image includes the change. The
//! answer says the reassignment was accepted, not that it is done:
//! ListPartitionReassignments shows it until it completes.
//!
//! A controller that cannot be reached fails the whole request: the top-level error and every
//! partition's carry the same code and message, as Kafka's `getErrorResponse` does.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use spate_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use spate_protocol::wire::Decode;

use super::partition_changes::{by_topic, forward};
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{self, ControllerRequest};
use crate::response::Outcome;
use crate::topics;

/// Kafka 4.0's only version.
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match AlterPartitionReassignmentsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let changes: Vec<(String, i32, Option<Vec<i32>>)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.clone(), p.partition_index, p.replicas.clone()))
        })
        .collect();
    let timeout = topics::admin_timeout(request.timeout_ms);
    let forwarded = ControllerRequest::AlterReassignments {
        changes: changes.clone(),
    };
    let response = match forward(broker, forwarded, timeout).await {
        Ok(results) => AlterPartitionReassignmentsResponse {
            error_code: error_code::NONE,
            error_message: None,
            responses: by_topic(results)
                .into_iter()
                .map(|(name, results)| ReassignableTopicResponse {
                    partitions: results
                        .into_iter()
                        .map(|r| partition_response(&name, &changes, r))
                        .collect(),
                    name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        Err((code, message)) => {
            tracing::debug!(code, reason = %message, "AlterPartitionReassignments not forwarded");
            AlterPartitionReassignmentsResponse {
                error_code: code,
                error_message: Some(message.clone()),
                responses: request
                    .topics
                    .iter()
                    .map(|t| ReassignableTopicResponse {
                        name: t.name.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| ReassignablePartitionResponse {
                                partition_index: p.partition_index,
                                error_code: code,
                                error_message: Some(message.clone()),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        }
    };
    ctx.respond(&response)
}

/// One partition's result: no message on success, otherwise what was refused for which
/// partition and what to do.
fn partition_response(
    topic: &str,
    changes: &[(String, i32, Option<Vec<i32>>)],
    result: rpc::PartitionResult,
) -> ReassignablePartitionResponse {
    let cancel = changes
        .iter()
        .any(|(t, p, target)| t == topic && *p == result.partition && target.is_none());
    let error_message = (result.error_code != error_code::NONE).then(|| {
        let what = if cancel {
            "cancelling the reassignment of"
        } else {
            "reassigning"
        };
        let why = result
            .message
            .unwrap_or_else(|| "the controller refused it".to_owned());
        format!(
            "{what} {topic}-{}: {}; {}",
            result.partition,
            why.trim_end_matches('.'),
            advice(result.error_code)
        )
    });
    ReassignablePartitionResponse {
        partition_index: result.partition,
        error_code: result.error_code,
        error_message,
        ..Default::default()
    }
}

fn advice(code: i16) -> &'static str {
    match code {
        error_code::INVALID_REPLICA_ASSIGNMENT => {
            "give each target broker once, only registered brokers (DescribeCluster lists them), and keep a live ISR member"
        }
        error_code::NO_REASSIGNMENT_IN_PROGRESS => {
            "there is nothing to cancel; ListPartitionReassignments shows the moves under way"
        }
        error_code::UNKNOWN_TOPIC_OR_PARTITION => {
            "check the topic name and its partition count (Metadata, `spate topic describe`)"
        }
        _ => "retry; if it keeps failing, the active controller's log says why",
    }
}
