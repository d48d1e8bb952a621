//! `OffsetDelete` (key 47): remove a group's committed offsets for some partitions, refused
//! while the group's members still subscribe to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{ErrorCode, PartitionKey};
use spate_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use spate_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match OffsetDeleteRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let image = broker.metadata.image();
    let mut asked = Vec::new();
    for topic in &request.topics {
        if image.topic(&topic.name).is_some() {
            asked.extend(
                topic
                    .partitions
                    .iter()
                    .map(|p| PartitionKey::new(topic.name.clone(), p.partition_index)),
            );
        }
    }
    let group_id = request.group_id.clone();
    let outcome = groups::on_owner(broker, &request.group_id, move |c| {
        Box::pin(async move {
            let (results, tombstones) =
                c.with(|state, now| state.delete_offsets(now, &group_id, &asked))?;
            if let Err(failure) = c.append(&tombstones).await {
                tracing::error!(group = %group_id, error = %failure, "offsets deleted in memory but their tombstones were not stored; they may reappear after a restart");
                return Err(failure.code);
            }
            Ok(results)
        })
    })
    .await
    .and_then(|inner| inner);
    let (top_error, per_partition): (ErrorCode, HashMap<PartitionKey, ErrorCode>) = match outcome {
        Ok(results) => (ErrorCode::None, results.into_iter().collect()),
        Err(code) => (code, HashMap::new()),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let known = image.topic(&topic.name).is_some();
            OffsetDeleteResponseTopic {
                partitions: topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = if !known {
                            ErrorCode::UnknownTopicOrPartition
                        } else {
                            per_partition
                                .get(&PartitionKey::new(topic.name.clone(), p.partition_index))
                                .copied()
                                .unwrap_or(ErrorCode::None)
                        };
                        OffsetDeleteResponsePartition {
                            partition_index: p.partition_index,
                            error_code: error.code(),
                            ..Default::default()
                        }
                    })
                    .collect(),
                name: topic.name,
                ..Default::default()
            }
        })
        .collect();
    ctx.respond(&OffsetDeleteResponse {
        error_code: top_error.code(),
        topics: if top_error == ErrorCode::None {
            topics
        } else {
            Vec::new()
        },
        ..Default::default()
    })
}
