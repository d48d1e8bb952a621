//! Answering followers: a replica fetch arrives on the control-plane runtime, is split by
//! owning shard, and each shard's leader slots check it, record the follower's positions
//! (which may move the HW at once and answer `acks=all` producers), and read the batches to
//! send without decoding them. A fetch with nothing new parks until a log grows or its wait
//! passes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spate_cluster::replication::{FetchDecision, FollowerFetch, ReplicaError};
use spate_cluster::{NodeId, TopicId};
use spate_engine::{
    EngineError, PartitionOffsets, ReadBound, ReadError, ShardContext, ShardId, TopicPartition,
};
use spate_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use spate_protocol::messages::{FetchRequest, FetchResponse};
use spate_protocol::wire::Uuid;
use tokio::sync::{Notify, watch};

use super::leader::LeaderSlot;
use super::{ReplicationContext, registry};
use crate::handlers::error_code;
use crate::net::sendfile::read_exact_at;
use spate_protocol::replica_fetch::{self as wire, durable_offset};

/// Longest park honoured for a follower's fetch, whatever it asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Answers a follower's replica fetch (the transport handler calls it on the control-plane
/// runtime): splits the partitions by owning shard, serves each part there, and joins the
/// answers in request order.
pub async fn answer_fetch(context: Arc<ReplicationContext>, from: NodeId, message: Bytes) -> Bytes {
    let request = match wire::decode_request(message) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(peer = from, error = %e, "unreadable replica fetch");
            return wire::refusal(error_code::INVALID_REQUEST);
        }
    };
    if request.replica_state.replica_id != from {
        tracing::warn!(
            peer = from,
            claimed = request.replica_state.replica_id,
            "a replica fetch names another node"
        );
        return wire::refusal(error_code::INVALID_REQUEST);
    }
    let mut by_shard: BTreeMap<usize, FetchRequest> = BTreeMap::new();
    let image = context.view.image();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let tp = image
                .topic_by_id(TopicId(topic.topic_id.0))
                .map(|t| TopicPartition::new(t.name.clone(), partition.partition));
            let shard = tp
                .as_ref()
                .and_then(|tp| context.engine.shard_for(tp))
                .map_or(0, |s| s.0);
            let part = by_shard.entry(shard).or_insert_with(|| FetchRequest {
                replica_state: request.replica_state.clone(),
                max_wait_ms: request.max_wait_ms,
                min_bytes: request.min_bytes,
                max_bytes: request.max_bytes,
                ..Default::default()
            });
            match part
                .topics
                .iter_mut()
                .find(|t| t.topic_id == topic.topic_id)
            {
                Some(t) => t.partitions.push(partition.clone()),
                None => part
                    .topics
                    .push(spate_protocol::messages::fetch_request::FetchTopic {
                        topic_id: topic.topic_id,
                        partitions: vec![partition.clone()],
                        ..Default::default()
                    }),
            }
        }
    }
    // The first shard with something to send ends every other shard's park: one answer per
    // fetch, as soon as any partition has data (Kafka's `min_bytes` = 1 over the whole fetch).
    let answered = Arc::new(Answered::default());
    let mut answers = Vec::new();
    for (shard, part) in by_shard {
        let for_shard = context.clone();
        let answered = answered.clone();
        answers.push(context.engine.invoke_on(ShardId(shard), move |ctx| {
            let ctx = ctx.clone();
            Box::pin(async move { serve_on_shard(&ctx, for_shard, from, part, &answered).await })
        }));
    }
    let mut response = FetchResponse::default();
    for answer in answers {
        match answer.await {
            Ok(part) => merge(&mut response, part),
            Err(e) => {
                tracing::warn!(peer = from, error = %e, "a shard could not answer a replica fetch");
            }
        }
    }
    wire::encode_response(&response).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a replica fetch answer");
        wire::refusal(error_code::UNKNOWN_SERVER_ERROR)
    })
}

fn merge(into: &mut FetchResponse, part: FetchResponse) {
    for topic in part.responses {
        match into
            .responses
            .iter_mut()
            .find(|t| t.topic_id == topic.topic_id)
        {
            Some(t) => t.partitions.extend(topic.partitions),
            None => into.responses.push(topic),
        }
    }
}

/// One partition of a fetch, resolved on its shard.
struct Wanted {
    topic_id: Uuid,
    partition: i32,
    slot: Option<Rc<LeaderSlot>>,
    decision: FetchDecision,
    max_bytes: u32,
}

/// Serves the partitions of `request` this shard owns: records the follower's positions
/// (which may move the HW at once), then reads; parks while nothing is new.
async fn serve_on_shard(
    _shard: &ShardContext,
    context: Arc<ReplicationContext>,
    follower: NodeId,
    request: FetchRequest,
    answered: &Answered,
) -> FetchResponse {
    let now = Instant::now();
    let image = context.view.image();
    let broker_epoch = request.replica_state.replica_epoch;
    let mut wanted = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let slot = image
                .topic_by_id(TopicId(topic.topic_id.0))
                .and_then(|t| registry::leader(&TopicPartition::new(t.name.clone(), p.partition)));
            let decision = match &slot {
                None => FetchDecision::Error(ReplicaError::NotLeaderOrFollower),
                Some(slot) => {
                    let fetch = FollowerFetch {
                        current_leader_epoch: p.current_leader_epoch,
                        fetch_offset: p.fetch_offset,
                        durable_offset: durable_offset(p).unwrap_or(-1),
                        last_fetched_epoch: (p.last_fetched_epoch >= 0)
                            .then_some(p.last_fetched_epoch),
                        log_start: p.log_start_offset,
                        broker_epoch,
                    };
                    let log_end = slot.offsets.borrow().written_end;
                    let decision = slot.state.borrow_mut().on_fetch(
                        now,
                        follower,
                        &fetch,
                        &slot.epochs.view(log_end),
                        &*image,
                    );
                    slot.wake.notify_one();
                    decision
                }
            };
            wanted.push(Wanted {
                topic_id: topic.topic_id,
                partition: p.partition,
                slot,
                decision,
                max_bytes: u32::try_from(p.partition_max_bytes.max(0)).unwrap_or(0),
            });
        }
    }
    for w in &wanted {
        if let Some(slot) = &w.slot {
            slot.apply_high_watermark().await;
        }
    }
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.max(0))
            .unwrap_or(0)
            .min(FETCH_WAIT_MS_MAX),
    );
    let deadline = tokio::time::Instant::now() + wait;
    let response_max = u32::try_from(request.max_bytes.max(0)).unwrap_or(0);
    let mut receivers: Vec<watch::Receiver<PartitionOffsets>> = wanted
        .iter()
        .filter_map(|w| w.slot.as_ref().map(|s| s.offsets.clone()))
        .collect();
    loop {
        // Seen before reading, so growth during the read wakes the park below.
        for rx in &mut receivers {
            rx.borrow_and_update();
        }
        let sibling_answered = answered.notify.notified();
        tokio::pin!(sibling_answered);
        sibling_answered.as_mut().enable();
        let (response, bytes) = read_all(&context, &wanted, response_max, follower).await;
        let any_error = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != error_code::NONE || p.diverging_epoch.epoch >= 0);
        if bytes > 0 || any_error {
            answered.done.store(true, Ordering::Release);
            answered.notify.notify_waiters();
            return response;
        }
        if answered.done.load(Ordering::Acquire) || tokio::time::Instant::now() >= deadline {
            return response;
        }
        let grown = async {
            if receivers.is_empty() {
                std::future::pending::<()>().await;
            }
            futures_select_any(receivers.iter_mut().map(|rx| Box::pin(rx.changed()))).await;
        };
        tokio::select! {
            () = grown => {}
            () = &mut sibling_answered => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Shared by the shards answering one fetch: set by the first with something to send.
#[derive(Default)]
struct Answered {
    done: AtomicBool,
    notify: Notify,
}

/// Resolves when the first of `futures` does.
async fn futures_select_any<F, T>(futures: impl Iterator<Item = std::pin::Pin<Box<F>>>)
where
    F: std::future::Future<Output = T> + ?Sized,
{
    let mut futures: Vec<_> = futures.collect();
    std::future::poll_fn(move |cx| {
        for future in futures.iter_mut() {
            if future.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Builds the answer: records for `Read` decisions (up to the per-partition and response
/// limits, and the throttle for followers outside the ISR), errors and diverging epochs for
/// the rest. Returns it with the record bytes it carries.
async fn read_all(
    context: &ReplicationContext,
    wanted: &[Wanted],
    response_max: u32,
    follower: NodeId,
) -> (FetchResponse, u64) {
    let mut response = FetchResponse::default();
    let mut remaining = u64::from(response_max.max(1));
    let mut total = 0u64;
    for w in wanted {
        let mut data = PartitionData {
            partition_index: w.partition,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            ..Default::default()
        };
        match (&w.decision, &w.slot) {
            (
                FetchDecision::Read {
                    from,
                    high_watermark,
                    log_start,
                },
                Some(slot),
            ) => {
                // The HW may have moved since the decision (this fetch's own report, or
                // others'): send the latest, never above what the follower may hold.
                let high_watermark = slot.state.borrow().high_watermark().max(*high_watermark);
                data.high_watermark = high_watermark;
                data.last_stable_offset = high_watermark;
                data.log_start_offset = *log_start;
                let in_isr = slot.state.borrow().maximal_isr().contains(&follower);
                let budget =
                    throttle_budget(context, in_isr, remaining.min(u64::from(w.max_bytes)));
                if budget > 0 && total < u64::from(response_max.max(1)) {
                    match read_records(context, &slot.tp, *from, budget as u32).await {
                        Ok(records) => {
                            total += records.len() as u64;
                            remaining = remaining.saturating_sub(records.len() as u64);
                            consume_throttle(context, in_isr, records.len() as u64);
                            if !records.is_empty() {
                                data.records = Some(records);
                            }
                        }
                        Err(code) => data.error_code = code,
                    }
                }
            }
            (
                FetchDecision::Diverging {
                    epoch,
                    end_offset,
                    high_watermark,
                    log_start,
                },
                _,
            ) => {
                data.diverging_epoch = EpochEndOffset {
                    epoch: *epoch,
                    end_offset: *end_offset,
                    ..Default::default()
                };
                data.high_watermark = *high_watermark;
                data.log_start_offset = *log_start;
            }
            (FetchDecision::OffsetOutOfRange { log_start, log_end }, _) => {
                data.error_code = error_code::OFFSET_OUT_OF_RANGE;
                data.log_start_offset = *log_start;
                // Spate: the leader's log end rides in last_stable_offset on this error
                // (the follower resolves OFFSET_OUT_OF_RANGE without a ListOffsets).
                data.last_stable_offset = *log_end;
            }
            (FetchDecision::Error(error), _) => {
                data.error_code = replica_error_code(error);
                if let Some(slot) = &w.slot {
                    let state = slot.state.borrow();
                    data.current_leader = LeaderIdAndEpoch {
                        leader_id: context.node_id,
                        leader_epoch: state.leader_epoch(),
                        ..Default::default()
                    };
                }
            }
            (FetchDecision::Read { .. }, None) => {
                data.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
            }
        }
        match response
            .responses
            .iter_mut()
            .find(|t| t.topic_id == w.topic_id)
        {
            Some(topic) => topic.partitions.push(data),
            None => response.responses.push(FetchableTopicResponse {
                topic_id: w.topic_id,
                partitions: vec![data],
                ..Default::default()
            }),
        }
    }
    (response, total)
}

/// Reads whole batches from `from`, up to everything written (followers may take what the
/// leader has not synced yet: they sync it themselves) and `max_bytes`, into memory.
async fn read_records(
    context: &ReplicationContext,
    tp: &TopicPartition,
    from: i64,
    max_bytes: u32,
) -> Result<Bytes, i16> {
    let read = context
        .engine
        .read_bounded(tp, from, max_bytes, ReadBound::WrittenEnd)
        .await
        .map_err(|e| {
            if matches!(e, ReadError::Engine(EngineError::ShardGone(_))) {
                tracing::debug!(partition = %tp, "replica read refused: the node is shutting down");
                return error_code::NOT_LEADER_OR_FOLLOWER;
            }
            tracing::warn!(partition = %tp, offset = from, error = %e, "replica read failed");
            error_code::KAFKA_STORAGE_ERROR
        })?;
    let total: usize = read.slices.iter().map(|s| s.len as usize).sum();
    let mut buf = BytesMut::zeroed(total);
    let mut at = 0usize;
    for slice in &read.slices {
        let len = slice.len as usize;
        read_exact_at(&*slice.segment, slice.position, &mut buf[at..at + len]).map_err(|e| {
            tracing::warn!(partition = %tp, error = %e, "reading batches for a follower failed");
            error_code::KAFKA_STORAGE_ERROR
        })?;
        at += len;
    }
    Ok(buf.freeze())
}

fn replica_error_code(error: &ReplicaError) -> i16 {
    match error {
        ReplicaError::FencedLeaderEpoch { .. } => error_code::FENCED_LEADER_EPOCH,
        ReplicaError::UnknownLeaderEpoch { .. } => error_code::UNKNOWN_LEADER_EPOCH,
        ReplicaError::StaleBrokerEpoch { .. } | ReplicaError::NotLeaderOrFollower => {
            error_code::NOT_LEADER_OR_FOLLOWER
        }
        ReplicaError::InvalidRequest(_) => error_code::INVALID_REQUEST,
    }
}

thread_local! {
    /// This shard's token bucket for `leader.replication.throttled.rate`: bytes it may still
    /// send to followers outside the ISR, and when it was last refilled.
    static THROTTLE: RefCell<(f64, Instant)> = RefCell::new((0.0, Instant::now()));
}

/// Bytes a fetch may carry for a follower: everything for ISR members; for others, what the
/// throttle's bucket holds (KIP-73: a catching-up replica cannot starve producers). The
/// node's rate is split evenly across shards.
fn throttle_budget(context: &ReplicationContext, in_isr: bool, wanted: u64) -> u64 {
    let Some(rate) = context.settings.throttled_rate.filter(|_| !in_isr) else {
        return wanted;
    };
    let per_shard = rate as f64 / context.engine.shard_count().max(1) as f64;
    THROTTLE.with(|bucket| {
        let mut bucket = bucket.borrow_mut();
        let now = Instant::now();
        let refill = now.saturating_duration_since(bucket.1).as_secs_f64() * per_shard;
        // At most one second's worth banked.
        bucket.0 = (bucket.0 + refill).min(per_shard);
        bucket.1 = now;
        (bucket.0.max(0.0) as u64).min(wanted)
    })
}

fn consume_throttle(context: &ReplicationContext, in_isr: bool, bytes: u64) {
    if in_isr || context.settings.throttled_rate.is_none() {
        return;
    }
    THROTTLE.with(|bucket| bucket.borrow_mut().0 -= bytes as f64);
}
