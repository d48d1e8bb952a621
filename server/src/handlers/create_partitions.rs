//! `CreatePartitions` (key 37): grow a topic's partition count (it can never shrink).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use spate_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;
use crate::topics::{self, TopicError};

pub const VERSIONS: RangeInclusive<i16> = 0..=3;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match CreatePartitionsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let single_node = topic
            .assignments
            .as_ref()
            .is_none_or(|assignments| assignments.iter().all(|a| a.broker_ids == [broker.node_id]));
        let outcome = if single_node {
            topics::add_partitions(broker, &topic.name, topic.count, request.validate_only).await
        } else {
            Err(TopicError::InvalidReplicaAssignment)
        };
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err(e) => (e.code(), Some(e.to_string())),
        };
        results.push(CreatePartitionsTopicResult {
            name: topic.name,
            error_code,
            error_message,
            ..Default::default()
        });
    }
    ctx.respond(&CreatePartitionsResponse {
        results,
        ..Default::default()
    })
}
