//! `OffsetFetch` (key 9): a group's committed offsets, all of them or the listed partitions;
//! v8+ asks for several groups at once. A partition without a commit answers offset -1.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_coordinator::{ErrorCode, OffsetAndMetadata, PartitionKey};
use spate_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use spate_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use spate_protocol::wire::Decode;

use super::RequestContext;
use crate::broker::Broker;
use crate::groups;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=9;

/// One partition's answer: (offset, leader epoch, metadata, error).
type Answer = (i64, i32, Option<String>, ErrorCode);
/// One group's answer: its error and its partitions grouped by topic, in order.
type GroupAnswer = (ErrorCode, Vec<(String, Vec<(i32, Answer)>)>);

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match OffsetFetchRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    if ctx.version >= 8 {
        let mut groups_out = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group
                .topics
                .map(|topics| keys(topics.into_iter().map(|t| (t.name, t.partition_indexes))));
            let (error, topics) = fetch_group(broker, &group.group_id, wanted).await;
            groups_out.push(OffsetFetchResponseGroup {
                group_id: group.group_id,
                error_code: error.code(),
                topics: shape(topics, |name, partitions| OffsetFetchResponseTopics {
                    name,
                    partitions: partitions
                        .into_iter()
                        .map(|(index, (offset, epoch, metadata, error))| {
                            OffsetFetchResponsePartitions {
                                partition_index: index,
                                committed_offset: offset,
                                committed_leader_epoch: epoch,
                                metadata,
                                error_code: error.code(),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        return ctx.respond(&OffsetFetchResponse {
            groups: groups_out,
            ..Default::default()
        });
    }
    let wanted = request
        .topics
        .map(|topics| keys(topics.into_iter().map(|t| (t.name, t.partition_indexes))));
    let (error, topics) = fetch_group(broker, &request.group_id, wanted).await;
    ctx.respond(&OffsetFetchResponse {
        error_code: error.code(),
        topics: shape(topics, |name, partitions| OffsetFetchResponseTopic {
            name,
            partitions: partitions
                .into_iter()
                .map(
                    |(index, (offset, epoch, metadata, error))| OffsetFetchResponsePartition {
                        partition_index: index,
                        committed_offset: offset,
                        committed_leader_epoch: epoch,
                        metadata,
                        error_code: error.code(),
                        ..Default::default()
                    },
                )
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The partitions a request lists, in order.
fn keys(topics: impl Iterator<Item = (String, Vec<i32>)>) -> Vec<PartitionKey> {
    topics
        .flat_map(|(name, partitions)| {
            partitions
                .into_iter()
                .map(move |p| PartitionKey::new(name.clone(), p))
        })
        .collect()
}

/// Builds one response topic per answered topic (the v0–7 and v8+ shapes differ in type
/// only).
fn shape<T>(
    topics: Vec<(String, Vec<(i32, Answer)>)>,
    topic: impl Fn(String, Vec<(i32, Answer)>) -> T,
) -> Vec<T> {
    topics
        .into_iter()
        .map(|(name, partitions)| topic(name, partitions))
        .collect()
}

/// Asks the group's coordinator and shapes the answer by topic, keeping request order for
/// listed partitions. A group-level error is repeated on every listed partition, which is
/// where v0–1 clients (no top-level error) look for it.
async fn fetch_group(
    broker: &Broker,
    group_id: &str,
    wanted: Option<Vec<PartitionKey>>,
) -> GroupAnswer {
    let owned_group = group_id.to_owned();
    let asked = wanted.clone();
    let fetched = groups::on_owner(broker, group_id, move |c| {
        Box::pin(async move { c.read(|state| state.fetch_offsets(&owned_group, asked.as_deref())) })
    })
    .await
    .and_then(|inner| inner);
    let (error, rows): (ErrorCode, Vec<(PartitionKey, Answer)>) = match fetched {
        Ok(rows) => (
            ErrorCode::None,
            rows.into_iter()
                .map(|(key, committed)| (key, answer(committed)))
                .collect(),
        ),
        Err(code) => (
            code,
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|key| (key, (-1, -1, Some(String::new()), code)))
                .collect(),
        ),
    };
    let mut topics: Vec<(String, Vec<(i32, Answer)>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (key, row) in rows {
        match index.get(&key.topic) {
            Some(&at) => topics[at].1.push((key.partition, row)),
            None => {
                index.insert(key.topic.clone(), topics.len());
                topics.push((key.topic, vec![(key.partition, row)]));
            }
        }
    }
    (error, topics)
}

fn answer(committed: Option<OffsetAndMetadata>) -> Answer {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, Some(c.metadata), ErrorCode::None),
        None => (-1, -1, Some(String::new()), ErrorCode::None),
    }
}
