//! `ListOffsets` (key 2): earliest (-2), latest (-1) and by-timestamp offset lookups.
//!
//! Latest is the high watermark, which is also the last stable offset (no transactions yet).
//! Max-timestamp (-3) needs a per-partition maximum the engine does not track yet; it is
//! refused per partition with UNSUPPORTED_VERSION and a message saying so.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_engine::TopicPartition;
use spate_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use spate_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use spate_protocol::wire::Decode;

use super::fetch::leader_check;
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::cluster::replication;
use crate::response::Outcome;

/// v0 (a list of old-style offsets) is not served; Kafka 4.0 starts at v1 too.
pub const VERSIONS: RangeInclusive<i16> = 1..=10;

/// First version carrying the partition's leader epoch (KIP-320).
const LEADER_EPOCH_VERSION_MIN: i16 = 4;

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: earliest offset on local storage; with no tiering it is the earliest offset.
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match ListOffsetsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let image = broker.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let known = image.topic(&topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let mut answer = ListOffsetsPartitionResponse {
                partition_index: p.partition_index,
                error_code: error_code::NONE,
                timestamp: -1,
                offset: -1,
                ..Default::default()
            };
            let state = known.and_then(|t| t.partition(p.partition_index).map(|s| (t, s)));
            match state {
                None => answer.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((t, state)) => {
                    let epoch_field = if ctx.version >= LEADER_EPOCH_VERSION_MIN {
                        state.leader_epoch
                    } else {
                        -1
                    };
                    answer.leader_epoch = epoch_field;
                    if let Some((code, _)) =
                        leader_check(state, broker.node_id, p.current_leader_epoch)
                    {
                        answer.error_code = code;
                    } else {
                        let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                        lookup(broker, &tp, p.timestamp, &mut answer).await;
                    }
                }
            }
            partitions.push(answer);
        }
        topics.push(ListOffsetsTopicResponse {
            name: topic.name,
            partitions,
            ..Default::default()
        });
    }
    ctx.respond(&ListOffsetsResponse {
        topics,
        ..Default::default()
    })
}

async fn lookup(
    broker: &Broker,
    tp: &TopicPartition,
    timestamp: i64,
    answer: &mut ListOffsetsPartitionResponse,
) {
    // KIP-207 (`Partition.fetchOffsetForTimestamp`): a new leader whose high watermark has
    // not reached its epoch's start cannot answer latest or timestamp lookups yet.
    let not_available = replication::list_offsets_high_watermark(&broker.engine, tp)
        .await
        .err();
    match timestamp {
        LATEST_TIMESTAMP if not_available.is_some() => {
            answer.error_code = error_code::OFFSET_NOT_AVAILABLE;
        }
        LATEST_TIMESTAMP | EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            match broker.engine.offsets(tp).await {
                Ok(offsets) => {
                    answer.offset = if timestamp == LATEST_TIMESTAMP {
                        offsets.high_watermark
                    } else {
                        offsets.log_start_offset
                    };
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "offset lookup failed");
                    answer.error_code = error_code::KAFKA_STORAGE_ERROR;
                }
            }
        }
        MAX_TIMESTAMP => answer.error_code = error_code::UNSUPPORTED_VERSION,
        t if t < 0 => answer.error_code = error_code::INVALID_REQUEST,
        t => match broker.engine.offset_for_timestamp(tp, t).await {
            // Only offsets below the high watermark are answered (the engine looks at what
            // consumers can read; a lagging new leader's answer must not run ahead of it).
            Ok(Some((offset, found_timestamp)))
                if not_available.is_none_or(|high_watermark| offset < high_watermark) =>
            {
                answer.offset = offset;
                answer.timestamp = found_timestamp;
            }
            Ok(_) if not_available.is_some() => {
                answer.error_code = error_code::OFFSET_NOT_AVAILABLE;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(partition = %tp, timestamp = t, error = %e, "timestamp lookup failed");
                answer.error_code = error_code::KAFKA_STORAGE_ERROR;
            }
        },
    }
}
