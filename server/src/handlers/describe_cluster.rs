//! `DescribeCluster` (key 60): the cluster id, the controller and the brokers — on a single
//! node, this node for all three roles.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use spate_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// v1 `endpoint_type`: brokers (1) or controllers (2); both are this node.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeClusterRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let (host, port) = broker.advertised.clone();
    ctx.respond(&DescribeClusterResponse {
        error_code: error_code::NONE,
        endpoint_type: if ctx.version >= 1 {
            request.endpoint_type
        } else {
            ENDPOINT_TYPE_BROKERS
        },
        cluster_id: broker.cluster_id.clone(),
        controller_id: broker.node_id,
        brokers: vec![DescribeClusterBroker {
            broker_id: broker.node_id,
            host,
            port: i32::from(port),
            rack: None,
            ..Default::default()
        }],
        ..Default::default()
    })
}
