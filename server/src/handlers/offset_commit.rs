//! `OffsetCommit` (key 8): store where a consumer got to. The answer comes once the offsets
//! are records in `__consumer_offsets`, durable per its flush policy; only then does
//! OffsetFetch see them.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{CommitPartition, ErrorCode, OffsetCommit, PartitionKey};
use spate_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use spate_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::groups::partition;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=9;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match OffsetCommitRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    // Every partition's answer, in request order; unknown topics are refused here, as Kafka
    // does, so a typo does not leave offsets nobody can use.
    let image = broker.metadata.image();
    let mut answers: Vec<(String, Vec<(i32, ErrorCode)>)> = Vec::new();
    let mut partitions = Vec::new();
    for topic in &request.topics {
        let partition_count = image.topic(&topic.name).map(|t| t.partition_count());
        let mut topic_answers = Vec::new();
        for p in &topic.partitions {
            if partition_count.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                partitions.push(CommitPartition {
                    key: PartitionKey::new(topic.name.clone(), p.partition_index),
                    offset: p.committed_offset,
                    leader_epoch: if ctx.version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.clone(),
                });
                topic_answers.push((p.partition_index, ErrorCode::None));
            } else {
                topic_answers.push((p.partition_index, ErrorCode::UnknownTopicOrPartition));
            }
        }
        answers.push((topic.name.clone(), topic_answers));
    }

    let mut outcome: HashMap<PartitionKey, ErrorCode> = HashMap::new();
    if !partitions.is_empty() {
        let keys: Vec<PartitionKey> = partitions.iter().map(|p| p.key.clone()).collect();
        let commit = OffsetCommit {
            group_id: request.group_id.clone(),
            member_id: request.member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            // v0 has no generation: it is a commit from outside any group.
            generation_id: if ctx.version >= 1 {
                request.generation_id_or_member_epoch
            } else {
                -1
            },
            retention_time_ms: if (2..=4).contains(&ctx.version) {
                request.retention_time_ms
            } else {
                -1
            },
            partitions,
        };
        let group_id = request.group_id.clone();
        let results = groups::on_owner(broker, &group_id, move |c| {
            Box::pin(async move {
                let prepared = match c.with(|state, now| state.prepare_commit(now, commit)) {
                    Ok(prepared) => prepared,
                    Err(code) => return Err(code),
                };
                let stored = c
                    .append_then(&prepared.records, |state| {
                        state.commit_written(partition::now_ms(), &prepared)
                    })
                    .await;
                if let Err(failure) = stored {
                    tracing::warn!(group = %prepared.group_id, error = %failure, "offset commit not stored");
                    return Err(failure.code);
                }
                Ok(prepared.results)
            })
        })
        .await
        .and_then(|inner| inner);
        match results {
            Ok(results) => outcome.extend(results),
            Err(code) => outcome.extend(keys.into_iter().map(|k| (k, code))),
        }
    }

    let topics = answers
        .into_iter()
        .map(|(name, partitions)| OffsetCommitResponseTopic {
            partitions: partitions
                .into_iter()
                .map(|(index, error)| {
                    let error = if error == ErrorCode::None {
                        outcome
                            .get(&PartitionKey::new(name.clone(), index))
                            .copied()
                            .unwrap_or(ErrorCode::UnknownServerError)
                    } else {
                        error
                    };
                    OffsetCommitResponsePartition {
                        partition_index: index,
                        error_code: error.code(),
                        ..Default::default()
                    }
                })
                .collect(),
            name,
            ..Default::default()
        })
        .collect();
    ctx.respond(&OffsetCommitResponse {
        topics,
        ..Default::default()
    })
}
