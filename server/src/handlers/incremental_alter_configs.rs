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

use super::alter_configs::alter_resource;
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match IncrementalAlterConfigsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let refusal = resource.configs.iter().find_map(|change| {
            (!matches!(change.config_operation, OP_SET | OP_DELETE)).then(|| {
                (
                    error_code::INVALID_CONFIG,
                    format!(
                        "operation {} on '{}' is not supported: use SET (0) or DELETE (1)",
                        change.config_operation, change.name
                    ),
                )
            })
        });
        let changes = &resource.configs;
        let result = match refusal {
            Some(refused) => Err(refused),
            None => {
                alter_resource(
                    broker,
                    resource.resource_type,
                    &resource.resource_name,
                    |current| {
                        let mut configs = current.clone();
                        for change in changes {
                            match (change.config_operation, &change.value) {
                                (OP_SET, Some(value)) => {
                                    configs.insert(change.name.clone(), value.clone());
                                }
                                _ => {
                                    configs.remove(&change.name);
                                }
                            }
                        }
                        configs
                    },
                    resource.configs.iter().map(|c| c.name.as_str()),
                    request.validate_only,
                )
                .await
            }
        };
        let (code, message) = result.err().unwrap_or((error_code::NONE, String::new()));
        responses.push(AlterConfigsResourceResponse {
            error_code: code,
            error_message: (code != error_code::NONE).then_some(message),
            resource_type: resource.resource_type,
            resource_name: resource.resource_name,
            ..Default::default()
        });
    }
    ctx.respond(&IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    })
}
