//! `CreateTopics` (key 19): create topics, or only validate them (`validate_only`).
//!
//! A single node can only hold one replica: replication factor 1 or -1 (default), and manual
//! assignments only onto node 0. Configs are validated by name and value before anything is
//! written; unknown names are INVALID_CONFIG, as in Kafka.

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
use crate::response::Outcome;
use crate::topics::{self, NewTopic, TopicError};

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
    let mut results = Vec::with_capacity(request.topics.len());
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
        let mut partition_count = topic.num_partitions;
        if !topic.assignments.is_empty() {
            let single_node = topic
                .assignments
                .iter()
                .all(|a| a.broker_ids == [broker.node_id]);
            if !single_node || topic.num_partitions != -1 {
                let error = TopicError::InvalidReplicaAssignment;
                result.error_code = error.code();
                result.error_message = Some(error.to_string());
                results.push(result);
                continue;
            }
            partition_count = i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX);
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
            .collect();
        let new_topic = NewTopic {
            name: &topic.name,
            partition_count,
            replication_factor: topic.replication_factor,
            configs,
        };
        match topics::create_topic(broker, new_topic, request.validate_only).await {
            Ok(created) => {
                result.topic_id = Uuid(created.id.0);
                result.num_partitions = created.partition_count;
                result.replication_factor = 1;
                if ctx.version >= 5 {
                    result.configs = Some(
                        describe_configs::topic_entries(broker, &created)
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
                if request.validate_only {
                    result.topic_id = Uuid::ZERO;
                }
            }
            Err(e) => {
                tracing::debug!(topic = %topic.name, error = %e, "create topic refused");
                result.error_code = e.code();
                result.error_message = Some(e.to_string());
            }
        }
        results.push(result);
    }
    ctx.respond(&CreateTopicsResponse {
        topics: results,
        ..Default::default()
    })
}
