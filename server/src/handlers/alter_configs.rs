//! `AlterConfigs` (key 33): replace a topic's config overrides with the given set.
//!
//! Kafka's legacy semantics: configs not listed go back to their defaults. Names and values
//! are validated before anything changes; the new configs are persisted and applied to every
//! partition's log. Broker configs are static here (config file and flags).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use spate_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use spate_protocol::wire::Decode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::metadata::topic_config::{ConfigError, is_known};
use crate::response::Outcome;
use crate::topics::{self, TopicError};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match AlterConfigsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let replacement: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
            .collect();
        let result = alter_resource(
            broker,
            resource.resource_type,
            &resource.resource_name,
            |_| replacement,
            resource.configs.iter().map(|c| c.name.as_str()),
            request.validate_only,
        )
        .await;
        let (code, message) = result.err().unwrap_or((error_code::NONE, String::new()));
        responses.push(AlterConfigsResourceResponse {
            error_code: code,
            error_message: (code != error_code::NONE).then_some(message),
            resource_type: resource.resource_type,
            resource_name: resource.resource_name,
            ..Default::default()
        });
    }
    ctx.respond(&AlterConfigsResponse {
        responses,
        ..Default::default()
    })
}

/// Shared by AlterConfigs and IncrementalAlterConfigs: validates the resource and the names,
/// then sets the topic's overrides to what `change` makes of the current ones.
pub async fn alter_resource<'a>(
    broker: &Broker,
    resource_type: i8,
    resource_name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> BTreeMap<String, String>,
    mut names: impl Iterator<Item = &'a str>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                error_code::INVALID_CONFIG,
                "broker configs are static: edit config/server.toml (or flags) and restart".into(),
            ));
        }
        other => {
            return Err((
                error_code::INVALID_REQUEST,
                format!("config resource type {other} is not supported; use topic (2)"),
            ));
        }
    }
    if let Some(unknown) = names.find(|n| !is_known(n)) {
        let e = ConfigError::Unknown(unknown.to_owned());
        return Err((error_code::INVALID_CONFIG, e.to_string()));
    }
    topics::update_topic_configs(
        broker,
        resource_name,
        |current| Ok(change(current)),
        validate_only,
    )
    .await
    .map_err(|e: TopicError| (e.code(), e.to_string()))
}
