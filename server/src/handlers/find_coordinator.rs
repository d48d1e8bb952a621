//! `FindCoordinator` (key 10): which broker coordinates a group: the leader of the group's
//! `__consumer_offsets` partition. v4+ batches keys.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::ErrorCode;
use spate_protocol::messages::find_coordinator_response::Coordinator;
use spate_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups::{GroupRouter, OFFSETS_TOPIC};
use crate::response::Outcome;
use spate_cluster::{ClusterImage, NO_LEADER};

pub const VERSIONS: RangeInclusive<i16> = 0..=6;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match FindCoordinatorRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    // Like Kafka, the first group request creates `__consumer_offsets`.
    let groups_ready = if request.key_type == KEY_TYPE_GROUP {
        broker.groups.ensure_started(broker).await
    } else {
        Ok(())
    };
    let image = broker.metadata.image();
    let answer = |key: String| -> Coordinator {
        let mut leader = None;
        let refusal = match request.key_type {
            KEY_TYPE_GROUP => match groups_ready {
                Err(code) => Some((
                    code,
                    "the group coordinator could not start; see the broker log".to_owned(),
                )),
                Ok(()) => match coordinator_of(&image, &key) {
                    Ok(found) => {
                        leader = Some(found);
                        None
                    }
                    Err(message) => Some((ErrorCode::CoordinatorNotAvailable, message)),
                },
            },
            KEY_TYPE_TRANSACTION => Some((
                ErrorCode::CoordinatorNotAvailable,
                "transactions are not supported yet, so there is no transaction coordinator; produce without a transactional.id".to_owned(),
            )),
            KEY_TYPE_SHARE => Some((
                ErrorCode::InvalidRequest,
                "share groups (KIP-932) are not supported".to_owned(),
            )),
            other => Some((
                ErrorCode::InvalidRequest,
                format!("unknown coordinator key type {other}: 0 is group, 1 is transaction"),
            )),
        };
        let refusal = match (refusal, leader) {
            (None, Some((node_id, host, port))) => {
                return Coordinator {
                    key,
                    node_id,
                    host,
                    port,
                    error_code: ErrorCode::None.code(),
                    error_message: None,
                    ..Default::default()
                };
            }
            (Some(refusal), _) => refusal,
            (None, None) => (
                ErrorCode::CoordinatorNotAvailable,
                "no coordinator found".to_owned(),
            ),
        };
        Coordinator {
            key,
            node_id: -1,
            host: String::new(),
            port: -1,
            error_code: refusal.0.code(),
            error_message: Some(refusal.1),
            ..Default::default()
        }
    };
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .cloned()
            .map(answer)
            .collect();
        return ctx.respond(&FindCoordinatorResponse {
            coordinators,
            ..Default::default()
        });
    }
    let one = answer(request.key.clone());
    ctx.respond(&FindCoordinatorResponse {
        error_code: one.error_code,
        error_message: one.error_message,
        node_id: one.node_id,
        host: one.host,
        port: one.port,
        ..Default::default()
    })
}

/// The node that coordinates `group_id`: the leader of its `__consumer_offsets` partition,
/// with the endpoint clients dial.
fn coordinator_of(image: &ClusterImage, group_id: &str) -> Result<(i32, String, i32), String> {
    let tp = GroupRouter::partition_of(image, group_id)
        .ok_or_else(|| format!("{OFFSETS_TOPIC} does not exist yet; retry"))?;
    let leader = image
        .topic(OFFSETS_TOPIC)
        .and_then(|t| t.partition(tp.partition))
        .map(|p| p.leader)
        .filter(|leader| *leader != NO_LEADER)
        .ok_or_else(|| format!("{tp} has no leader (its in-sync replicas are down); retry"))?;
    let broker = image
        .broker(leader)
        .filter(|b| !b.fenced)
        .ok_or_else(|| format!("node {leader} leads {tp} but is not live; retry"))?;
    Ok((
        leader,
        broker.kafka.host.clone(),
        i32::from(broker.kafka.port),
    ))
}
