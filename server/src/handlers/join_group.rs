//! `JoinGroup` (key 11): a member joins (or rejoins) a group; the answer waits until the
//! rebalance's join phase completes. v4+ first answers MEMBER_ID_REQUIRED (KIP-394).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{JoinGroup, JoinResult, Protocol};
use spate_protocol::messages::join_group_response::JoinGroupResponseMember;
use spate_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=9;

/// Kafka's limit for `group.instance.id` (the same as a topic name's).
const GROUP_INSTANCE_ID_LENGTH_MAX: usize = 249;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match JoinGroupRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    // Kafka limits group.instance.id like a topic name; anything near the stored-string
    // limit is certainly not a valid one.
    if request
        .group_instance_id
        .as_ref()
        .is_some_and(|id| id.len() > GROUP_INSTANCE_ID_LENGTH_MAX)
    {
        return ctx.respond(&JoinGroupResponse {
            error_code: spate_coordinator::ErrorCode::InvalidRequest.code(),
            member_id: request.member_id,
            protocol_name: Some(String::new()),
            ..Default::default()
        });
    }
    let join = JoinGroup {
        group_id: request.group_id.clone(),
        member_id: request.member_id.clone(),
        group_instance_id: request.group_instance_id,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if ctx.version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type,
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name,
                metadata: p.metadata,
            })
            .collect(),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.to_string(),
        require_known_member_id: ctx.version >= 4,
        reason: request.reason,
    };
    let member_id = request.member_id;
    let result = groups::on_owner(broker, &request.group_id, move |c| {
        Box::pin(async move { c.join(join).await })
    })
    .await
    .unwrap_or_else(|code| JoinResult::error(code, member_id));
    // KIP-814's skip_assignment exists from v9; an older static leader rejoining without a
    // rebalance gets what Kafka sends it: no members list, so it does not reassign.
    let mut result = result;
    if ctx.version < 9 && result.skip_assignment {
        result.skip_assignment = false;
        result.members.clear();
    }
    ctx.respond(&JoinGroupResponse {
        error_code: result.error.code(),
        generation_id: result.generation_id,
        protocol_type: result.protocol_type,
        // Nullable only from v7; before that "no protocol" is the empty string.
        protocol_name: if ctx.version >= 7 {
            result.protocol_name
        } else {
            Some(result.protocol_name.unwrap_or_default())
        },
        leader: result.leader,
        skip_assignment: result.skip_assignment,
        member_id: result.member_id,
        members: result
            .members
            .into_iter()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                metadata: m.metadata,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}
