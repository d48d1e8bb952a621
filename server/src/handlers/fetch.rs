//! `Fetch` (key 1): read whole batches from partitions, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes, and send them zero-copy.
//!
//! Only the partition's leader serves consumer fetches, and only at the leader epoch the
//! client knows (KIP-320): otherwise NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or
//! UNKNOWN_LEADER_EPOCH, with the current leader and its endpoint (KIP-951) so the client
//! goes there without a metadata refresh.
//!
//! Sessions (KIP-227): every answer carries session id 0, which tells the client that no
//! session was created, so librdkafka and the Java client keep sending full fetch requests
//! and get full responses. A request naming a session id we never gave out gets
//! FETCH_SESSION_ID_NOT_FOUND, and the client starts over without one.
//!
//! Budgets: `partition_max_bytes` per partition and `max_bytes` for the response, except that
//! the first batch is always returned whole even if larger (KIP-74), or a consumer with small
//! limits could never make progress past a big batch. The engine returns whole batches
//! starting at the one containing the fetch offset; clients skip the records before it.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spate_engine::log::ReadError as LogReadError;
use spate_engine::{EngineError, ReadError, TopicPartition};
use spate_protocol::messages::FetchRequest;
use spate_protocol::wire::Decode;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fetch_encode::{
    LeaderEndpoint, PartitionAnswer, RecordSlice, TopicAnswer, encode_fetch_response,
};
use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::metadata::{Leadership, TopicId};
use crate::response::{Outcome, SharedFile};
use spate_cluster::ClusterImage;
use spate_cluster::image::{PartitionState, TopicImage};

/// v4 is the oldest version with the fields every current client expects (last stable
/// offset); Kafka 4.0 itself starts at v4.
pub const VERSIONS: RangeInclusive<i16> = 4..=17;

/// Longest long poll honoured: bounds how long a request (and its connection's later
/// responses) can be parked. Clients use 500 ms by default.
const FETCH_WAIT_MS_MAX: i32 = 60_000;
/// Largest response assembled, whatever the client asks: 64 MiB keeps one fetch from
/// monopolizing a connection's writes (librdkafka's default fetch.max.bytes is 50 MiB).
const FETCH_RESPONSE_BYTES_MAX: i32 = 64 * 1024 * 1024;
/// `isolation_level` value of read_committed.
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved.
struct Wanted {
    topic_index: usize,
    partition: i32,
    tp: Option<TopicPartition>,
    unknown_code: i16,
    /// Why this node will not read it (not the leader, or a stale or future leader epoch):
    /// the error code and the leader the client should use.
    refusal: Option<(i16, (i32, i32))>,
    fetch_offset: i64,
    partition_max_bytes: i32,
}

/// Whether this node serves a consumer fetch of `partition` at the client's
/// `current_leader_epoch` (-1: the client does not say), as Kafka's leader checks it
/// (KIP-320): only the leader reads, and only in the epoch the client knows.
pub(crate) fn leader_check(
    partition: &PartitionState,
    node_id: i32,
    current_leader_epoch: i32,
) -> Option<(i16, (i32, i32))> {
    let current = (partition.leader, partition.leader_epoch);
    match Leadership::of(partition, node_id) {
        Leadership::Local { leader_epoch } => {
            if current_leader_epoch >= 0 && current_leader_epoch < leader_epoch {
                Some((error_code::FENCED_LEADER_EPOCH, current))
            } else if current_leader_epoch > leader_epoch {
                Some((error_code::UNKNOWN_LEADER_EPOCH, current))
            } else {
                None
            }
        }
        Leadership::Remote { .. } | Leadership::None { .. } => {
            Some((error_code::NOT_LEADER_OR_FOLLOWER, current))
        }
    }
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match FetchRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    if ctx.version >= 7 && request.session_id != 0 {
        return Outcome::Respond(encode_fetch_response(
            ctx.version,
            ctx.correlation_id,
            error_code::FETCH_SESSION_ID_NOT_FOUND,
            0,
            Vec::new(),
            &[],
        ));
    }
    let read_committed = request.isolation_level == READ_COMMITTED;
    let image = broker.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    let mut endpoints: Vec<LeaderEndpoint> = Vec::new();
    for (topic_index, fetch_topic) in request.topics.iter().enumerate() {
        let (topic, unknown_code): (Option<&Arc<TopicImage>>, i16) = if ctx.version >= 13 {
            (
                image.topic_by_id(TopicId(fetch_topic.topic_id.0)),
                error_code::UNKNOWN_TOPIC_ID,
            )
        } else {
            (
                image.topic(&fetch_topic.topic),
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
            )
        };
        topics.push(TopicAnswer {
            name: fetch_topic.topic.clone(),
            topic_id: fetch_topic.topic_id,
            partitions: Vec::with_capacity(fetch_topic.partitions.len()),
        });
        for p in &fetch_topic.partitions {
            let state = topic.and_then(|t| t.partition(p.partition));
            let tp = topic
                .filter(|_| state.is_some())
                .map(|t| TopicPartition::new(t.name.clone(), p.partition));
            let refusal =
                state.and_then(|state| leader_check(state, broker.node_id, p.current_leader_epoch));
            if let Some((_, (leader, _))) = refusal {
                add_endpoint(&image, leader, &mut endpoints);
            }
            let unknown_code = if topic.is_some() {
                error_code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                unknown_code
            };
            wanted.push(Wanted {
                topic_index,
                partition: p.partition,
                tp,
                unknown_code,
                refusal,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
            });
        }
    }

    let max_wait_ms = request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX);
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms.unsigned_abs().into());
    let max_bytes = request.max_bytes.clamp(0, FETCH_RESPONSE_BYTES_MAX);
    let mut watchers: Option<Vec<tokio::sync::watch::Receiver<i64>>> = None;
    let answers = loop {
        let (answers, total_bytes, any_error) =
            read_all(broker, &wanted, max_bytes, read_committed).await;
        let enough = total_bytes >= i64::from(request.min_bytes.max(0)) || any_error;
        if enough || Instant::now() >= deadline {
            break answers;
        }
        match &mut watchers {
            None => {
                // Subscribe, then read once more: data that landed in between is not missed.
                watchers = Some(subscribe(broker, &wanted).await);
            }
            Some(receivers) => {
                if !wait_for_any(receivers, deadline).await {
                    // Deadline passed: answer with what there is now.
                    break read_all(broker, &wanted, max_bytes, read_committed).await.0;
                }
            }
        }
    };

    for (want, answer) in wanted.iter().zip(answers) {
        topics[want.topic_index].partitions.push(answer);
    }
    Outcome::Respond(encode_fetch_response(
        ctx.version,
        ctx.correlation_id,
        error_code::NONE,
        0,
        topics,
        &endpoints,
    ))
}

/// Remembers how to reach `leader`, for the response's node endpoints.
fn add_endpoint(image: &ClusterImage, leader: i32, endpoints: &mut Vec<LeaderEndpoint>) {
    if endpoints.iter().any(|e| e.node_id == leader) {
        return;
    }
    if let Some(b) = image.broker(leader).filter(|b| !b.fenced) {
        endpoints.push(LeaderEndpoint {
            node_id: leader,
            host: b.kafka.host.clone(),
            port: i32::from(b.kafka.port),
            rack: b.rack.clone(),
        });
    }
}

/// Reads every wanted partition within the budgets. Returns the answers in request order,
/// the record bytes found, and whether any partition had an error.
async fn read_all(
    broker: &Broker,
    wanted: &[Wanted],
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<PartitionAnswer>, i64, bool) {
    let mut answers = Vec::with_capacity(wanted.len());
    let mut remaining_bytes = i64::from(max_bytes);
    let mut total_bytes = 0i64;
    let mut any_error = false;
    for want in wanted {
        let mut answer = PartitionAnswer {
            partition_index: want.partition,
            error_code: error_code::NONE,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            read_committed,
            current_leader: None,
            records: Vec::new(),
        };
        if let Some((code, leader)) = want.refusal {
            answer.error_code = code;
            answer.current_leader = Some(leader);
            any_error = true;
            answers.push(answer);
            continue;
        }
        let Some(tp) = &want.tp else {
            answer.error_code = want.unknown_code;
            any_error = true;
            answers.push(answer);
            continue;
        };
        // Past the response budget, only the first batch rule could add bytes; report
        // offsets with no records instead (the client fetches again).
        let budget = i64::from(want.partition_max_bytes.max(0)).min(remaining_bytes);
        let budget = if total_bytes == 0 {
            budget.max(1)
        } else {
            budget
        };
        if budget <= 0 {
            match broker.engine.offsets(tp).await {
                Ok(offsets) => {
                    answer.high_watermark = offsets.high_watermark;
                    answer.last_stable_offset = offsets.high_watermark;
                    answer.log_start_offset = offsets.log_start_offset;
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "reading offsets failed");
                    answer.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    any_error = true;
                }
            }
            answers.push(answer);
            continue;
        }
        let budget_u32 = u32::try_from(budget).unwrap_or(u32::MAX);
        match broker.engine.read(tp, want.fetch_offset, budget_u32).await {
            Ok(read) => {
                answer.high_watermark = read.high_watermark;
                answer.last_stable_offset = read.high_watermark;
                answer.log_start_offset = read.log_start_offset;
                for slice in read.slices {
                    let file: SharedFile = slice.segment;
                    total_bytes += i64::from(slice.len);
                    answer.records.push(RecordSlice {
                        file,
                        position: slice.position,
                        len: slice.len,
                    });
                }
                remaining_bytes -= answer.records_len_bytes() as i64;
            }
            Err(ReadError::Log(LogReadError::OffsetOutOfRange {
                log_start, log_end, ..
            })) => {
                tracing::debug!(partition = %tp, offset = want.fetch_offset, log_start, log_end, "fetch offset out of range");
                answer.error_code = error_code::OFFSET_OUT_OF_RANGE;
                answer.high_watermark = log_end;
                answer.last_stable_offset = log_end;
                answer.log_start_offset = log_start;
                any_error = true;
            }
            Err(e) => {
                tracing::warn!(partition = %tp, offset = want.fetch_offset, error = %e, "fetch read failed");
                answer.error_code = read_error_code(&e);
                any_error = true;
            }
        }
        answers.push(answer);
    }
    (answers, total_bytes, any_error)
}

fn read_error_code(error: &ReadError) -> i16 {
    match error {
        ReadError::Log(LogReadError::OffsetOutOfRange { .. }) => error_code::OFFSET_OUT_OF_RANGE,
        ReadError::Engine(EngineError::UnknownPartition(_)) => {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        }
        ReadError::Engine(EngineError::PartitionOffline { .. }) => {
            error_code::NOT_LEADER_OR_FOLLOWER
        }
        _ => error_code::KAFKA_STORAGE_ERROR,
    }
}

async fn subscribe(broker: &Broker, wanted: &[Wanted]) -> Vec<tokio::sync::watch::Receiver<i64>> {
    let mut receivers = Vec::with_capacity(wanted.len());
    for tp in wanted
        .iter()
        .filter(|w| w.refusal.is_none())
        .filter_map(|w| w.tp.as_ref())
    {
        match broker.engine.watch_high_watermark(tp).await {
            Ok(mut rx) => {
                rx.borrow_and_update();
                receivers.push(rx);
            }
            Err(e) => {
                tracing::debug!(partition = %tp, error = %e, "cannot watch the high watermark")
            }
        }
    }
    receivers
}

/// Waits until any high watermark moves (`true`) or the deadline passes (`false`).
async fn wait_for_any(
    receivers: &mut [tokio::sync::watch::Receiver<i64>],
    deadline: Instant,
) -> bool {
    if receivers.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    let mut waits = JoinSet::new();
    for rx in receivers.iter() {
        let mut rx = rx.clone();
        waits.spawn_local(async move {
            if rx.changed().await.is_err() {
                // The partition went away; only the deadline can end this wait.
                std::future::pending::<()>().await;
            }
        });
    }
    let moved = tokio::time::timeout_at(deadline, waits.join_next())
        .await
        .is_ok();
    for rx in receivers.iter_mut() {
        rx.borrow_and_update();
    }
    moved
}
