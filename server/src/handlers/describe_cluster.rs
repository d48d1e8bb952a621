//! `DescribeCluster` (key 60): the cluster id, the active controller and the live brokers.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use spate_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// v1 `endpoint_type`: brokers (1) or controllers (2).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeClusterRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let endpoint_type = if ctx.version >= 1 {
        request.endpoint_type
    } else {
        ENDPOINT_TYPE_BROKERS
    };
    let image = broker.metadata.image();
    let mut response = DescribeClusterResponse {
        error_code: error_code::NONE,
        endpoint_type,
        cluster_id: image.cluster_id().unwrap_or_default().to_owned(),
        controller_id: broker.metadata.controller_id(),
        ..Default::default()
    };
    if endpoint_type != ENDPOINT_TYPE_BROKERS {
        // KIP-919: controllers are described by asking a controller's own listener; a
        // broker answers for brokers only.
        response.error_code = error_code::UNSUPPORTED_ENDPOINT_TYPE;
        response.error_message = Some(
            "this listener describes brokers (endpoint type 1); controllers have no Kafka listener"
                .to_owned(),
        );
        return ctx.respond(&response);
    }
    response.brokers = image
        .brokers()
        .filter(|b| !b.fenced)
        .map(|b| DescribeClusterBroker {
            broker_id: b.node_id,
            host: b.kafka.host.clone(),
            port: i32::from(b.kafka.port),
            rack: b.rack.clone(),
            ..Default::default()
        })
        .collect();
    ctx.respond(&response)
}
