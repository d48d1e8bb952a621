//! `InitProducerId` (key 22): give an idempotent producer its id and epoch.
//!
//! Ids come from the metadata store: unique and increasing across restarts (reserved on disk
//! in blocks). A producer re-initializing with its current id and epoch (v3+, KIP-360) keeps
//! the id and gets the next epoch; on epoch exhaustion it gets a fresh id. Transactional ids
//! are refused until transactions exist.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

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
    match broker.metadata.allocate_producer_id() {
        Ok(id) => {
            response.producer_id = id;
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.error_code = error_code::KAFKA_STORAGE_ERROR;
        }
    }
    ctx.respond(&response)
}
