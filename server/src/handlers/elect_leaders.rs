//! `ElectLeaders` (key 43): give partitions back to their preferred leaders, or elect a
//! leader for leaderless ones from outside the ISR (KIP-460).
//!
//! The active controller decides ([`crate::cluster::controller`]); this node forwards the
//! request and answers once its own metadata image has the new leaders. `election_type` 0
//! (the only one before v1) elects the first replica in assignment order if it is live and in
//! the ISR; 1 (unclean) only touches leaderless partitions, and may lose acknowledged records.
//! `topic_partitions: null` means every partition, and then the answer lists only the
//! partitions an election was attempted for (those that needed none are left out, as Kafka
//! does).
//!
//! A controller that cannot be reached makes every partition fail with the same code, also
//! the top-level `error_code` from v1, as Kafka's `ElectLeadersRequest.getErrorResponse`.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use spate_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use spate_protocol::wire::Decode;

use super::partition_changes::{Refusal, by_topic, forward};
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{self, ControllerRequest};
use crate::response::Outcome;
use crate::topics;

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// `election_type` values (Kafka's `ElectionType`).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match ElectLeadersRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let partitions: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|list| {
        list.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
            .collect()
    });
    let unclean = match request.election_type {
        PREFERRED => false,
        UNCLEAN => true,
        other => {
            let refusal = (
                error_code::INVALID_REQUEST,
                format!(
                    "election type {other} is not one Kafka defines; use 0 (preferred) or 1 (unclean)"
                ),
            );
            return ctx.respond(&refused(partitions.as_deref().unwrap_or(&[]), refusal));
        }
    };
    let timeout = topics::admin_timeout(request.timeout_ms);
    let forwarded = ControllerRequest::ElectLeaders {
        unclean,
        partitions: partitions.clone(),
    };
    match forward(broker, forwarded, timeout).await {
        Ok(results) => ctx.respond(&ElectLeadersResponse {
            error_code: error_code::NONE,
            replica_election_results: by_topic(results)
                .into_iter()
                .map(|(topic, results)| ReplicaElectionResult {
                    partition_result: results
                        .into_iter()
                        .map(|r| partition_result(&topic, r, unclean))
                        .collect(),
                    topic,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        Err(refusal) => {
            tracing::debug!(code = refusal.0, reason = %refusal.1, "ElectLeaders not forwarded");
            ctx.respond(&refused(partitions.as_deref().unwrap_or(&[]), refusal))
        }
    }
}

/// The answer when no election could be asked for: every listed partition, and the top
/// level, carry the refusal.
fn refused(partitions: &[(String, i32)], (code, message): Refusal) -> ElectLeadersResponse {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition) in partitions {
        let result = PartitionResult {
            partition_id: *partition,
            error_code: code,
            error_message: Some(message.clone()),
            ..Default::default()
        };
        match topics.iter_mut().find(|t| t.topic == *topic) {
            Some(t) => t.partition_result.push(result),
            None => topics.push(ReplicaElectionResult {
                topic: topic.clone(),
                partition_result: vec![result],
                ..Default::default()
            }),
        }
    }
    ElectLeadersResponse {
        error_code: code,
        replica_election_results: topics,
        ..Default::default()
    }
}

/// One partition's result as the client sees it: no message on success (the spec's "null if
/// there was no error"), otherwise what failed for which partition and what to do.
fn partition_result(topic: &str, result: rpc::PartitionResult, unclean: bool) -> PartitionResult {
    let error_message = (result.error_code != error_code::NONE).then(|| {
        let why = result
            .message
            .unwrap_or_else(|| "the controller refused the election".to_owned());
        format!(
            "leader election for {topic}-{}: {}; {}",
            result.partition,
            why.trim_end_matches('.'),
            advice(result.error_code, unclean)
        )
    });
    PartitionResult {
        partition_id: result.partition,
        error_code: result.error_code,
        error_message,
        ..Default::default()
    }
}

fn advice(code: i16, unclean: bool) -> &'static str {
    match code {
        error_code::ELECTION_NOT_NEEDED if unclean => {
            "it has a leader; unclean elections are only for leaderless partitions"
        }
        error_code::ELECTION_NOT_NEEDED => "its preferred replica already leads it",
        error_code::PREFERRED_LEADER_NOT_AVAILABLE => {
            "start the preferred replica (the first in its replica list) and wait until it is back in the ISR, then retry"
        }
        error_code::ELIGIBLE_LEADERS_NOT_AVAILABLE => {
            "start one of its replicas; an unclean election also needs a live replica"
        }
        error_code::UNKNOWN_TOPIC_OR_PARTITION => {
            "check the topic name and its partition count (Metadata, `spate topic describe`)"
        }
        _ => "retry; if it keeps failing, the active controller's log says why",
    }
}
