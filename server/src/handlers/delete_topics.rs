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
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let mut result = DeletableTopicResult {
            name: name.clone(),
            topic_id: id,
            ..Default::default()
        };
        let resolved = match name {
            Some(name) => Some(name),
            None => broker
                .metadata
                .image()
                .topic_by_id(TopicId(id.0))
                .map(|t| t.name.to_string()),
        };
        match resolved {
            None => {
                result.error_code = error_code::UNKNOWN_TOPIC_ID;
                result.error_message = Some(format!("no topic has id {id}"));
            }
            Some(name) => match topics::delete_topic(broker, &name).await {
                Ok(deleted) => {
                    result.name = Some(name);
                    result.topic_id = Uuid(deleted.id.0);
                }
                Err(e) => {
                    result.error_code = e.code();
                    result.error_message = Some(e.to_string());
                    result.name = Some(name);
                }
            },
        }
        responses.push(result);
    }
    ctx.respond(&DeleteTopicsResponse {
        responses,
        ..Default::default()
    })
}
