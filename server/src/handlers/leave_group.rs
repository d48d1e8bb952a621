//! `LeaveGroup` (key 13): members leave at once instead of waiting for their session to
//! expire; v3+ removes a batch, by member id or by `group.instance.id` (KIP-345).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{ErrorCode, LeaveResult, LeavingMember};
use spate_protocol::messages::leave_group_response::MemberResponse;
use spate_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match LeaveGroupRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let members: Vec<LeavingMember> = if ctx.version >= 3 {
        request
            .members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                reason: m.reason,
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id,
            group_instance_id: None,
            reason: None,
        }]
    };
    let group_id = request.group_id.clone();
    let result = groups::on_owner(broker, &request.group_id, move |c| {
        Box::pin(async move { c.with(|state, now| state.leave_group(now, &group_id, members)) })
    })
    .await
    .unwrap_or_else(|code| LeaveResult {
        error: code,
        members: Vec::new(),
    });
    // v0–2 carry one member and only the top-level error: a per-member error becomes it.
    let error = if ctx.version < 3 && result.error == ErrorCode::None {
        result
            .members
            .first()
            .map(|(_, _, e)| *e)
            .unwrap_or(ErrorCode::None)
    } else {
        result.error
    };
    ctx.respond(&LeaveGroupResponse {
        error_code: error.code(),
        members: if ctx.version >= 3 {
            result
                .members
                .into_iter()
                .map(|(member_id, group_instance_id, error)| MemberResponse {
                    member_id,
                    group_instance_id,
                    error_code: error.code(),
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}
