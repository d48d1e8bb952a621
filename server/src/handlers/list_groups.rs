//! `ListGroups` (key 16): every group on this broker, optionally filtered by state (v4+)
//! and type (v5+). All of Spate's groups use the classic protocol.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::ErrorCode;
use spate_protocol::messages::list_groups_response::ListedGroup;
use spate_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// KIP-848's name for the protocol Spate's groups speak.
const GROUP_TYPE_CLASSIC: &str = "classic";

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match ListGroupsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let listed = groups::on_all(&broker.engine, |c| c.read(|state| state.list_groups())).await;
    // Kafka matches filters case-insensitively.
    let state_ok = |state: &str| {
        request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(GROUP_TYPE_CLASSIC));
    let mut groups: Vec<ListedGroup> = listed
        .into_iter()
        .flatten()
        .filter(|g| type_ok && state_ok(g.state.name()))
        .map(|g| ListedGroup {
            group_id: g.group_id,
            protocol_type: g.protocol_type,
            group_state: g.state.name().to_owned(),
            group_type: GROUP_TYPE_CLASSIC.to_owned(),
            ..Default::default()
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ctx.respond(&ListGroupsResponse {
        error_code: ErrorCode::None.code(),
        groups,
        ..Default::default()
    })
}
