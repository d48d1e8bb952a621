//! `CreateTopics` (key 19): create topics, or only validate them (`validate_only`).
//!
//! Forwarded to the active controller, which places the replicas (spread over brokers and
//! racks, leaders balanced) or takes the manual `assignments`. Configs are validated by name
//! and value before anything is written; unknown names are INVALID_CONFIG, as in Kafka.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use spate_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use spate_protocol::wire::{Decode, Uuid};

use super::{RequestContext, describe_configs, error_code};
use crate::broker::Broker;
use crate::cluster::rpc::CreateTopicRequest;
use crate::metadata::TopicId;
use crate::response::Outcome;
use crate::topics;

pub const VERSIONS: RangeInclusive<i16> = 0..=7;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match CreateTopicsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let mut name_counts: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *name_counts.entry(topic.name.as_str()).or_default() += 1;
    }
    let mut results: Vec<CreatableTopicResult> = Vec::with_capacity(request.topics.len());
    let mut forwarded = Vec::new();
    let mut slots = Vec::new();
    for topic in &request.topics {
        let mut result = CreatableTopicResult {
            name: topic.name.clone(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        if name_counts.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(format!(
                "topic '{}' appears more than once in the request",
                topic.name
            ));
            results.push(result);
            continue;
        }
        let assignments = (!topic.assignments.is_empty()).then(|| {
            let mut lists: Vec<_> = topic.assignments.iter().collect();
            lists.sort_by_key(|a| a.partition_index);
            lists
                .iter()
                .map(|a| a.broker_ids.clone())
                .collect::<Vec<_>>()
        });
        if assignments.is_some() && (topic.num_partitions != -1 || topic.replication_factor != -1) {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(
                "give either assignments or num_partitions and replication_factor, not both"
                    .to_owned(),
            );
            results.push(result);
            continue;
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
            .collect();
        slots.push((results.len(), configs.clone()));
        forwarded.push(CreateTopicRequest {
            name: topic.name.clone(),
            partition_count: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments,
            configs,
        });
        results.push(result);
    }
    let timeout = topics::admin_timeout(request.timeout_ms);
    let outcomes = topics::create_topics(broker, forwarded, request.validate_only, timeout).await;
    let image = broker.metadata.image();
    for ((slot, requested_configs), (name, outcome)) in slots.into_iter().zip(outcomes) {
        let result = &mut results[slot];
        match outcome {
            Ok(created) => {
                result.num_partitions = created.partition_count;
                result.replication_factor = created.replication_factor;
                if !request.validate_only {
                    result.topic_id = created
                        .topic_id
                        .parse::<TopicId>()
                        .map(|id| Uuid(id.0))
                        .unwrap_or(Uuid::ZERO);
                }
                if ctx.version >= 5 {
                    let configs = match image.topic(&name) {
                        Some(topic) if !request.validate_only => topic.configs.clone(),
                        _ => requested_configs,
                    };
                    result.configs = Some(
                        describe_configs::topic_entries(broker, &configs)
                            .into_iter()
                            .map(|e| CreatableTopicConfigs {
                                name: e.name,
                                value: e.value,
                                read_only: e.read_only,
                                config_source: e.config_source,
                                is_sensitive: false,
                                ..Default::default()
                            })
                            .collect(),
                    );
                }
            }
            Err((code, message)) => {
                tracing::debug!(topic = %name, code, %message, "create topic refused");
                result.error_code = code;
                result.error_message = Some(message);
            }
        }
    }
    ctx.respond(&CreateTopicsResponse {
        topics: results,
        ..Default::default()
    })
}
