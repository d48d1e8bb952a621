//! `InitProducerId` (key 22): give an idempotent producer its id and epoch.
//!
//! Ids are unique across the cluster and increase across restarts: each node takes blocks
//! of them from the controller (a record in the metadata log, as KIP-730's
//! AllocateProducerIds) and hands them out one by one. A producer re-initializing with its current id and epoch (v3+, KIP-360) keeps
//! the id and gets the next epoch; on epoch exhaustion it gets a fresh id. Transactional ids
//! are refused until transactions exist.

use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use spate_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{ControllerReplyBody, ControllerRequest};
use crate::response::Outcome;

/// Producer ids a node takes from the controller at a time (Kafka's block size): one quorum
/// write per thousand producers.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// How long InitProducerId waits for a new block before answering a retriable error.
const BLOCK_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The ids this node may still hand out, `[next, end)`. Shared by every shard.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    range: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdBlock {
    /// The next id, taking a new block from the controller when this one is used up.
    pub async fn next(&self, broker: &Broker) -> Result<i64, String> {
        let mut range = self.range.lock().await;
        if range.0 >= range.1 {
            let request = ControllerRequest::AllocateProducerIds {
                node_id: broker.node_id,
                count: PRODUCER_ID_BLOCK_SIZE,
            };
            let timeout = Duration::from_millis(BLOCK_REQUEST_TIMEOUT_MS);
            let reply = broker
                .control
                .call(request, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let ControllerReplyBody::ProducerIds { first, count } = reply.body else {
                return Err("the controller answered with the wrong message".to_owned());
            };
            *range = (first, first.saturating_add(count));
        }
        let id = range.0;
        range.0 += 1;
        Ok(id)
    }
}

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match InitProducerIdRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut response = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    if request.transactional_id.is_some() {
        response.error_code = error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return ctx.respond(&response);
    }
    let bump = request.producer_id >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1;
    if bump {
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch + 1;
        return ctx.respond(&response);
    }
    match broker.producer_ids.next(broker).await {
        Ok(id) => {
            response.producer_id = id;
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot get producer ids from the controller");
            // Retriable: the producer retries InitProducerId.
            response.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
        }
    }
    ctx.respond(&response)
}
