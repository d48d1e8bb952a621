//! `Metadata` (key 3): brokers, topics and partition leaders — and, as clients and their
//! test suites assume, automatic creation of the topics asked for.
//!
//! Brokers are the live (unfenced) ones; each partition names its leader, leader epoch,
//! replicas, ISR and the replicas on brokers that are down. Auto-creation follows `auto.create.topics.enable` and, from v4, the request's
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
use crate::cluster::rpc::CreateTopicRequest;
use crate::metadata::{TopicId, validate_topic_name};
use crate::response::Outcome;
use crate::topics;
use spate_cluster::image::TopicImage;
use spate_cluster::{ClusterImage, NO_LEADER};

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
        topics.extend(image.topics().map(|t| describe(&image, t)));
    } else {
        for wanted in request.topics.iter().flatten() {
            topics.push(lookup(broker, wanted.name.as_deref(), wanted.topic_id, auto_create).await);
        }
    }
    let image = broker.metadata.image();
    ctx.respond(&MetadataResponse {
        brokers: live_brokers(&image),
        cluster_id: image.cluster_id().map(str::to_owned),
        controller_id: broker.metadata.controller_id(),
        topics,
        ..Default::default()
    })
}

/// The brokers clients may use: registered and not fenced.
fn live_brokers(image: &ClusterImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers()
        .filter(|b| !b.fenced)
        .map(|b| MetadataResponseBroker {
            node_id: b.node_id,
            host: b.kafka.host.clone(),
            port: i32::from(b.kafka.port),
            rack: b.rack.clone(),
            ..Default::default()
        })
        .collect()
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
            Some(topic) => describe(&image, topic),
            None => error_topic(None, id, error_code::UNKNOWN_TOPIC_ID),
        };
    };
    if let Some(topic) = image.topic(name) {
        return describe(&image, topic);
    }
    if let Err(e) = validate_topic_name(name) {
        tracing::debug!(topic = name, error = %e, "metadata for an invalid topic name");
        return error_topic(Some(name), id, error_code::INVALID_TOPIC_EXCEPTION);
    }
    if !auto_create {
        return error_topic(Some(name), id, error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let new_topic = CreateTopicRequest {
        name: name.to_owned(),
        partition_count: -1,
        replication_factor: -1,
        assignments: None,
        configs: BTreeMap::new(),
    };
    let timeout = topics::admin_timeout(0);
    let outcome = topics::create_topics(broker, vec![new_topic], false, timeout)
        .await
        .into_iter()
        .next()
        .map(|(_, outcome)| outcome);
    match outcome {
        Some(Ok(_)) | Some(Err((error_code::TOPIC_ALREADY_EXISTS, _))) => {
            let image = broker.metadata.image();
            match image.topic(name) {
                Some(topic) => describe(&image, topic),
                // Created, but not applied here yet: clients retry on this code.
                None => error_topic(Some(name), id, error_code::LEADER_NOT_AVAILABLE),
            }
        }
        Some(Err((code, message))) => {
            tracing::warn!(topic = name, code, %message, "auto-creating topic failed");
            error_topic(Some(name), id, code)
        }
        None => error_topic(Some(name), id, error_code::UNKNOWN_SERVER_ERROR),
    }
}

fn describe(image: &ClusterImage, topic: &TopicImage) -> MetadataResponseTopic {
    let is_live = |node: &i32| image.broker(*node).is_some_and(|b| !b.fenced);
    MetadataResponseTopic {
        error_code: error_code::NONE,
        name: Some(topic.name.to_string()),
        topic_id: Uuid(topic.id.0),
        is_internal: topic.name.starts_with("__"),
        partitions: topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| MetadataResponsePartition {
                error_code: if p.leader == NO_LEADER {
                    error_code::LEADER_NOT_AVAILABLE
                } else {
                    error_code::NONE
                },
                partition_index: i32::try_from(index).unwrap_or(i32::MAX),
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.isr.clone(),
                offline_replicas: p.replicas.iter().copied().filter(|n| !is_live(n)).collect(),
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
