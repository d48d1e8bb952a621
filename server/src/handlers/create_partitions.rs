//! `CreatePartitions` (key 37): grow a topic's partition count (it can never shrink).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use spate_protocol::messages::{CreatePartitionsRequest as Request, CreatePartitionsResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::CreatePartitionsRequest;
use crate::response::Outcome;
use crate::topics;

pub const VERSIONS: RangeInclusive<i16> = 0..=3;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match Request::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let forwarded: Vec<CreatePartitionsRequest> = request
        .topics
        .into_iter()
        .map(|topic| CreatePartitionsRequest {
            name: topic.name,
            partition_count: topic.count,
            assignments: topic
                .assignments
                .map(|lists| lists.into_iter().map(|a| a.broker_ids).collect()),
        })
        .collect();
    let timeout = topics::admin_timeout(request.timeout_ms);
    let outcomes =
        topics::create_partitions(broker, forwarded, request.validate_only, timeout).await;
    let results = outcomes
        .into_iter()
        .map(|(name, outcome)| {
            let (error_code, error_message) = match outcome {
                Ok(_) => (error_code::NONE, None),
                Err((code, message)) => (code, Some(message)),
            };
            CreatePartitionsTopicResult {
                name,
                error_code,
                error_message,
                ..Default::default()
            }
        })
        .collect();
    ctx.respond(&CreatePartitionsResponse {
        results,
        ..Default::default()
    })
}
