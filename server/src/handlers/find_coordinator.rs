//! `FindCoordinator` (key 10): which broker coordinates a group. On a single node it is this
//! one for every group; v4+ batches keys.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::ErrorCode;
use spate_protocol::messages::find_coordinator_response::Coordinator;
use spate_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::response::Outcome;

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
    let (host, port) = broker.advertised.clone();
    let answer = |key: String| -> Coordinator {
        let refusal = match request.key_type {
            KEY_TYPE_GROUP => groups_ready.err().map(|code| {
                (
                    code,
                    "the group coordinator could not start; see the broker log".to_owned(),
                )
            }),
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
        match refusal {
            None => Coordinator {
                key,
                node_id: broker.node_id,
                host: host.clone(),
                port: i32::from(port),
                error_code: ErrorCode::None.code(),
                error_message: None,
                ..Default::default()
            },
            Some((code, message)) => Coordinator {
                key,
                node_id: -1,
                host: String::new(),
                port: -1,
                error_code: code.code(),
                error_message: Some(message),
                ..Default::default()
            },
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
