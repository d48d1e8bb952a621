//! `AlterConfigs` (key 33): replace a topic's config overrides with the given set.
//!
//! Kafka's legacy semantics: configs not listed go back to their defaults. Names are checked
//! here; values by the controller, which writes the change to the metadata log; every
//! replica's log picks it up as the change reaches its node. Broker configs are static here
//! (config file and flags).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use spate_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use spate_protocol::wire::Decode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::{ConfigChange, TopicConfigChange};
use crate::metadata::topic_config::{ConfigError, is_known};
use crate::response::Outcome;
use crate::topics;

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match AlterConfigsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let changes = request
        .resources
        .iter()
        .map(|resource| {
            let replacement: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
                .collect();
            (
                resource.resource_type,
                resource.resource_name.clone(),
                ConfigChange::Replace(replacement),
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
    ctx.respond(&AlterConfigsResponse {
        responses,
        ..Default::default()
    })
}

/// One resource's change: (resource type, name, change, the config names it touches).
pub type ResourceChange = (i8, String, ConfigChange, Vec<String>);

/// Shared by AlterConfigs and IncrementalAlterConfigs: checks each resource and the names,
/// then forwards the topic changes to the controller in one call. One result per resource,
/// in order.
pub async fn alter_resources(
    broker: &Broker,
    resources: Vec<ResourceChange>,
    validate_only: bool,
) -> Vec<Result<(), (i16, String)>> {
    let mut results: Vec<Result<(), (i16, String)>> = Vec::with_capacity(resources.len());
    let mut forwarded = Vec::new();
    let mut slots = Vec::new();
    for (resource_type, name, change, names) in resources {
        let checked = match resource_type {
            RESOURCE_TOPIC => match names.iter().find(|n| !is_known(n)) {
                Some(unknown) => Err((
                    error_code::INVALID_CONFIG,
                    ConfigError::Unknown(unknown.clone()).to_string(),
                )),
                None => Ok(()),
            },
            RESOURCE_BROKER => Err((
                error_code::INVALID_CONFIG,
                "broker configs are static: edit config/server.toml (or flags) and restart".into(),
            )),
            other => Err((
                error_code::INVALID_REQUEST,
                format!("config resource type {other} is not supported; use topic (2)"),
            )),
        };
        if checked.is_ok() {
            slots.push(results.len());
            forwarded.push(TopicConfigChange { name, change });
        }
        results.push(checked);
    }
    if forwarded.is_empty() {
        return results;
    }
    let timeout = topics::admin_timeout(0);
    let outcomes = topics::alter_topic_configs(broker, forwarded, validate_only, timeout).await;
    for (slot, (_, outcome)) in slots.into_iter().zip(outcomes) {
        results[slot] = outcome.map(|_| ());
    }
    results
}
