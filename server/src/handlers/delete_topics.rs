//! `DeleteTopics` (key 20): delete topics by name (v0–5) or by name or id (v6).

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_protocol::messages::delete_topics_response::DeletableTopicResult;
use spate_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use spate_protocol::wire::{Decode, Uuid};

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::metadata::TopicId;
use crate::response::Outcome;
use crate::topics;

pub const VERSIONS: RangeInclusive<i16> = 0..=6;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DeleteTopicsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let targets: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::ZERO))
            .collect()
    };
    let image = broker.metadata.image();
    let mut responses = Vec::with_capacity(targets.len());
    let mut to_delete = Vec::new();
    for (name, id) in targets {
        let mut result = DeletableTopicResult {
            name: name.clone(),
            topic_id: id,
            ..Default::default()
        };
        let resolved = match name {
            Some(name) => Some(name),
            None => image.topic_by_id(TopicId(id.0)).map(|t| t.name.to_string()),
        };
        match resolved {
            None => {
                result.error_code = error_code::UNKNOWN_TOPIC_ID;
                result.error_message = Some(format!("no topic has id {id}"));
            }
            Some(name) => {
                if let Some(topic) = image.topic(&name) {
                    result.topic_id = Uuid(topic.id.0);
                }
                result.name = Some(name.clone());
                to_delete.push((responses.len(), name));
            }
        }
        responses.push(result);
    }
    let names = to_delete.iter().map(|(_, name)| name.clone()).collect();
    let timeout = topics::admin_timeout(request.timeout_ms);
    let outcomes = topics::delete_topics(broker, names, timeout).await;
    for ((slot, _), (_, outcome)) in to_delete.into_iter().zip(outcomes) {
        if let Err((code, message)) = outcome {
            responses[slot].error_code = code;
            responses[slot].error_message = Some(message);
        }
    }
    ctx.respond(&DeleteTopicsResponse {
        responses,
        ..Default::default()
    })
}
