//! `Metadata` (key 3): brokers, topics and partition leaders — and, as clients and their
//! test suites assume, automatic creation of the topics asked for.
//!
//! On a single node this broker leads every partition, with itself as the only replica.
//! Auto-creation follows `auto.create.topics.enable` and, from v4, the request's
//! `allow_auto_topic_creation` (consumers send `false`).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::{MetadataRequest, MetadataResponse};
use spate_protocol::wire::{Decode, Uuid};

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::metadata::{Topic, TopicId, validate_topic_name};
use crate::response::Outcome;
use crate::topics::{self, NewTopic, TopicError};

pub const VERSIONS: RangeInclusive<i16> = 0..=12;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match MetadataRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let auto_create =
        broker.config.auto_create_topics && (ctx.version < 4 || request.allow_auto_topic_creation);
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => ctx.version == 0 && topics.is_empty(),
    };
    let mut topics = Vec::new();
    if all_topics {
        let image = broker.metadata.image();
        topics.extend(image.topics().map(|t| describe(t)));
    } else {
        for wanted in request.topics.iter().flatten() {
            topics.push(lookup(broker, wanted.name.as_deref(), wanted.topic_id, auto_create).await);
        }
    }
    let (host, port) = broker.advertised.clone();
    ctx.respond(&MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: broker.node_id,
            host,
            port: i32::from(port),
            rack: None,
            ..Default::default()
        }],
        cluster_id: Some(broker.cluster_id.clone()),
        controller_id: broker.node_id,
        topics,
        ..Default::default()
    })
}

async fn lookup(
    broker: &Broker,
    name: Option<&str>,
    id: Uuid,
    auto_create: bool,
) -> MetadataResponseTopic {
    let image = broker.metadata.image();
    let Some(name) = name else {
        return match image.topic_by_id(TopicId(id.0)) {
            Some(topic) => describe(topic),
            None => error_topic(None, id, error_code::UNKNOWN_TOPIC_ID),
        };
    };
    if let Some(topic) = image.topic(name) {
        return describe(topic);
    }
    if let Err(e) = validate_topic_name(name) {
        tracing::debug!(topic = name, error = %e, "metadata for an invalid topic name");
        return error_topic(Some(name), id, error_code::INVALID_TOPIC_EXCEPTION);
    }
    if !auto_create {
        return error_topic(Some(name), id, error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let new_topic = NewTopic {
        name,
        partition_count: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
    };
    match topics::create_topic(broker, new_topic, false).await {
        Ok(topic) => describe(&topic),
        // Another connection created it between our lookup and the lock.
        Err(TopicError::AlreadyExists(_)) => match broker.metadata.image().topic(name) {
            Some(topic) => describe(topic),
            None => error_topic(Some(name), id, error_code::UNKNOWN_TOPIC_OR_PARTITION),
        },
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creating topic failed");
            error_topic(Some(name), id, e.code())
        }
    }
}

fn describe(topic: &Topic) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: error_code::NONE,
        name: Some(topic.name.to_string()),
        topic_id: Uuid(topic.id.0),
        is_internal: topic.name.starts_with("__"),
        partitions: (0..topic.partition_count)
            .map(|partition_index| MetadataResponsePartition {
                error_code: error_code::NONE,
                partition_index,
                leader_id: 0,
                replica_nodes: vec![0],
                isr_nodes: vec![0],
                offline_replicas: Vec::new(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn error_topic(name: Option<&str>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: code,
        name: name.map(str::to_owned),
        topic_id: id,
        ..Default::default()
    }
}
