//! `DescribeGroups` (key 15): state, protocol, and members with their subscriptions and
//! assignments. An unknown group is described as Dead, with no error (Kafka v0–5).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{DescribedGroup as Described, GroupState};
use spate_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use spate_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Kafka's "not requested" value for `authorized_operations`.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Without ACLs every client may do everything a group supports: READ (3), DELETE (6) and
/// DESCRIBE (8), as bits of Kafka's AclOperation codes.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeGroupsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut groups_out = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let owned = group_id.clone();
        let described = groups::on_owner(broker, &group_id, move |c| {
            Box::pin(async move { c.read(|state| state.describe_group(&owned)) })
        })
        .await
        .unwrap_or_else(|code| Described {
            group_id: group_id.clone(),
            error: code,
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        });
        groups_out.push(DescribedGroup {
            error_code: described.error.code(),
            group_id: described.group_id,
            group_state: described.state.name().to_owned(),
            protocol_type: described.protocol_type,
            protocol_data: described.protocol,
            members: described
                .members
                .into_iter()
                .map(|m| DescribedGroupMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    member_metadata: m.metadata,
                    member_assignment: m.assignment,
                    ..Default::default()
                })
                .collect(),
            authorized_operations: if request.include_authorized_operations {
                GROUP_OPERATIONS
            } else {
                OPERATIONS_NOT_REQUESTED
            },
            ..Default::default()
        });
    }
    ctx.respond(&DescribeGroupsResponse {
        groups: groups_out,
        ..Default::default()
    })
}
