//! `OffsetForLeaderEpoch` (key 23): where a leader epoch ends in the leader's log (KIP-101,
//! KIP-279, KIP-320).
//!
//! A consumer that fetched records stamped with epoch `E` asks the partition's new leader,
//! after a leader change, where `E` ends there. If that end is below the consumer's position,
//! the records it read past it were truncated away (an unclean election) and it resets; else
//! it resumes. librdkafka and the Java client send it whenever their position carries an
//! epoch, so a leader change that this API cannot answer stalls every such consumer.
//!
//! Only the leader answers (Kafka's `fetchOnlyFromLeader`, for consumers and followers
//! alike), and only in the epoch the client knows: the same checks as Fetch
//! ([`super::fetch::leader_check`]). The answer comes from the leader's epoch cache through
//! [`spate_engine::Engine::end_offset_for_epoch`]: the largest epoch at or below the one
//! asked for and the start of the next (the log end for the latest); an epoch it cannot
//! place gets Kafka's UNDEFINED (-1, -1).
//!
//! `replica_id` (v3+) is accepted whatever it says: Kafka's followers send their id, and
//! consumers -1; Spate's own followers find divergence through Fetch instead (KIP-320's
//! `diverging_epoch`), so a follower asking here is treated like any other client.

use std::ops::RangeInclusive;

use bytes::Bytes;
use spate_engine::{EngineError, TopicPartition};
use spate_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use spate_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use spate_protocol::wire::Decode;

use super::fetch::leader_check;
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

/// Kafka 4.0 serves 0..=4; v2 (with `current_leader_epoch`) is what librdkafka sends, v4
/// what the Java client does.
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`: no epoch at or below the one asked
/// for is known here.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match OffsetForLeaderEpochRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let image = broker.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let known = image.topic(&topic.topic);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let mut answer = EpochEndOffset {
                error_code: error_code::NONE,
                partition: p.partition,
                leader_epoch: UNDEFINED_EPOCH,
                end_offset: UNDEFINED_EPOCH_OFFSET,
                ..Default::default()
            };
            match known.and_then(|t| t.partition(p.partition).map(|state| (t, state))) {
                None => answer.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
                Some((t, state)) => {
                    if let Some((code, _)) =
                        leader_check(state, broker.node_id, p.current_leader_epoch)
                    {
                        answer.error_code = code;
                    } else {
                        let tp = TopicPartition::new(t.name.clone(), p.partition);
                        look_up(broker, &tp, p.leader_epoch, &mut answer).await;
                    }
                }
            }
            partitions.push(answer);
        }
        topics.push(OffsetForLeaderTopicResult {
            topic: topic.topic,
            partitions,
            ..Default::default()
        });
    }
    ctx.respond(&OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    })
}

/// Fills `answer` with where `leader_epoch` ends in this leader's log.
async fn look_up(
    broker: &Broker,
    tp: &TopicPartition,
    leader_epoch: i32,
    answer: &mut EpochEndOffset,
) {
    match broker.engine.end_offset_for_epoch(tp, leader_epoch).await {
        Ok(Some((epoch, end_offset))) => {
            answer.leader_epoch = epoch;
            answer.end_offset = end_offset;
        }
        Ok(None) => {}
        Err(error) => {
            answer.error_code = engine_error_code(&error);
            tracing::warn!(partition = %tp, leader_epoch, %error, "OffsetForLeaderEpoch lookup failed");
        }
    }
}

/// A partition the image says this node leads but the engine does not hold (yet, or any
/// more) is a leadership in motion: the client retries after a metadata refresh.
fn engine_error_code(error: &EngineError) -> i16 {
    match error {
        EngineError::UnknownPartition(_) | EngineError::PartitionOffline { .. } => {
            error_code::NOT_LEADER_OR_FOLLOWER
        }
        _ => error_code::KAFKA_STORAGE_ERROR,
    }
}
