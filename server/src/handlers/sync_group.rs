//! `SyncGroup` (key 14): the leader hands out assignments; every member gets its own once
//! the leader's are stored.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{SyncGroup, SyncResult};
use spate_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match SyncGroupRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let sync = SyncGroup {
        group_id: request.group_id.clone(),
        member_id: request.member_id,
        group_instance_id: request.group_instance_id,
        generation_id: request.generation_id,
        protocol_type: request.protocol_type,
        protocol_name: request.protocol_name,
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id, a.assignment))
            .collect(),
    };
    let result = groups::on_owner(broker, &request.group_id, move |c| {
        Box::pin(async move { c.sync(sync).await })
    })
    .await
    .unwrap_or_else(SyncResult::error);
    ctx.respond(&SyncGroupResponse {
        error_code: result.error.code(),
        protocol_type: result.protocol_type,
        protocol_name: result.protocol_name,
        assignment: result.assignment,
        ..Default::default()
    })
}
