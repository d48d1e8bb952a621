//! `DeleteGroups` (key 42): remove empty groups and their offsets. The answer comes after
//! the tombstones are durable, so a deleted group stays deleted across a crash.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::ErrorCode;
use spate_protocol::messages::delete_groups_response::DeletableGroupResult;
use spate_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DeleteGroupsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let owned = group_id.clone();
        let error = groups::on_owner(broker, &group_id, move |c| {
            Box::pin(async move {
                let (outcome, tombstones) =
                    c.with(|state, now| state.delete_groups(now, std::slice::from_ref(&owned)));
                let error = outcome.first().map(|(_, e)| *e).unwrap_or(ErrorCode::None);
                if let Err(failure) = c.append(&tombstones).await {
                    tracing::error!(group = %owned, error = %failure, "group deleted in memory but its tombstones were not stored; it may reappear after a restart");
                    return failure.code;
                }
                error
            })
        })
        .await
        .unwrap_or_else(|code| code);
        results.push(DeletableGroupResult {
            group_id,
            error_code: error.code(),
            ..Default::default()
        });
    }
    ctx.respond(&DeleteGroupsResponse {
        results,
        ..Default::default()
    })
}
