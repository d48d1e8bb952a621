//! `IncrementalAlterConfigs` (key 44): set or delete individual topic configs, leaving the
//! others as they are.
//!
//! APPEND and SUBTRACT apply to list configs only; the one list config Spate has,
//! `cleanup.policy`, supports a single value (`delete`), so they are refused with
//! INVALID_CONFIG.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use spate_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use spate_protocol::wire::Decode;

use super::alter_configs::alter_resources;
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{ConfigChange, ConfigOp};
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match IncrementalAlterConfigsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let changes = request
        .resources
        .iter()
        .map(|resource| {
            let ops = resource
                .configs
                .iter()
                .map(|c| ConfigOp {
                    key: c.name.clone(),
                    op: c.config_operation,
                    value: c.value.clone(),
                })
                .collect();
            (
                resource.resource_type,
                resource.resource_name.clone(),
                ConfigChange::Incremental(ops),
                resource.configs.iter().map(|c| c.name.clone()).collect(),
            )
        })
        .collect();
    let outcomes = alter_resources(broker, changes, request.validate_only).await;
    let responses = request
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(resource, result)| {
            let (code, message) = result.err().unwrap_or((error_code::NONE, String::new()));
            AlterConfigsResourceResponse {
                error_code: code,
                error_message: (code != error_code::NONE).then_some(message),
                resource_type: resource.resource_type,
                resource_name: resource.resource_name,
                ..Default::default()
            }
        })
        .collect();
    ctx.respond(&IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    })
}
