//! `Heartbeat` (key 12): keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::Heartbeat;
use spate_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match HeartbeatRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let heartbeat = Heartbeat {
        group_id: request.group_id.clone(),
        member_id: request.member_id,
        group_instance_id: request.group_instance_id,
        generation_id: request.generation_id,
    };
    let error = groups::on_owner(broker, &request.group_id, move |c| {
        Box::pin(async move { c.with(|state, now| state.heartbeat(now, heartbeat)) })
    })
    .await
    .unwrap_or_else(|code| code);
    ctx.respond(&HeartbeatResponse {
        error_code: error.code(),
        ..Default::default()
    })
}
