//! Appends on the leader with Kafka's `acks` semantics (the produce handler and the group
//! coordinators use it).
//!
//! Runs on the partition's own shard. `acks=1` (and `acks=0`) answer once the leader's own
//! write is durable per its flush policy. `acks=all` on a replicated partition is refused
//! before anything is written while the ISR is below `min.insync.replicas`
//! (NOT_ENOUGH_REPLICAS), and otherwise answered once the high watermark passes the batch
//! (the batch is then durable on every member of the maximal ISR), or with
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum meanwhile (the
//! record *is* committed: that error is ambiguous, as in Kafka). A partition of one replica
//! answers `acks=all` like `acks=1`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use spate_cluster::replication::ProduceRefusal;
use spate_engine::{AppendError, AppendOutcome, Engine, EngineError, TopicPartition};

use super::leader::LeaderSlot;
use super::registry::{self, Successor};

/// What the producer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAcks {
    /// acks=0 or acks=1: the leader's own write.
    Leader,
    /// acks=all (-1), waiting up to this long for the ISR.
    All { timeout: Duration },
}

/// Why a replicated append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ReplicatedAppendError {
    #[error(transparent)]
    Append(#[from] AppendError),
    /// NOT_ENOUGH_REPLICAS: nothing was written.
    #[error(
        "{0}; nothing was written: wait for replicas to catch up, or lower min.insync.replicas"
    )]
    NotEnoughReplicas(ProduceRefusal),
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: written and committed, but with fewer in-sync
    /// replicas than asked.
    #[error("{0}")]
    NotEnoughReplicasAfterAppend(ProduceRefusal),
    /// REQUEST_TIMED_OUT: written by the leader, not yet by enough replicas in time; it may
    /// still commit.
    #[error(
        "the write was not replicated to the in-sync replicas within {timeout_ms} ms; it may still commit"
    )]
    Timeout { timeout_ms: u64 },
    /// NOT_LEADER_OR_FOLLOWER: the partition is replicated and this node does not lead it
    /// (yet: it takes the role once its metadata has caught up). Nothing was written.
    #[error("this node does not lead the partition yet (its metadata is catching up); retry")]
    NotLeader,
    /// NOT_LEADER_OR_FOLLOWER: leadership moved while the append waited; it may survive.
    #[error("this node stopped leading the partition while the write waited for its replicas")]
    LeadershipMoved,
}

/// Appends `records` to `tp` (on its owning shard) with `acks`.
pub async fn append(
    engine: &Engine,
    tp: &TopicPartition,
    records: Bytes,
    acks: AppendAcks,
) -> Result<AppendOutcome, ReplicatedAppendError> {
    let Some(shard) = engine.shard_for(tp) else {
        return Err(AppendError::Engine(EngineError::UnknownPartition(tp.clone())).into());
    };
    let owner = engine.clone();
    let name = tp.clone();
    let outcome = engine
        .invoke_on(shard, move |_| {
            Box::pin(async move { append_here(&owner, &name, records, acks).await })
        })
        .await;
    match outcome {
        Ok(result) => result,
        Err(e) => Err(AppendError::Engine(e).into()),
    }
}

/// [`append`], on the partition's shard.
pub(crate) async fn append_here(
    engine: &Engine,
    tp: &TopicPartition,
    records: Bytes,
    acks: AppendAcks,
) -> Result<AppendOutcome, ReplicatedAppendError> {
    let slot = registry::leader(tp);
    if slot.is_none() && registry::is_tracked(tp) {
        // Replicated, but this node does not (yet, or any more) lead it here.
        return Err(ReplicatedAppendError::NotLeader);
    }
    if let (AppendAcks::All { .. }, Some(slot)) = (acks, &slot) {
        slot.state
            .borrow()
            .check_produce_acks_all()
            .map_err(ReplicatedAppendError::NotEnoughReplicas)?;
    }
    let appended = engine.append(tp, records).await?;
    let (AppendAcks::All { timeout }, Some(mut slot)) = (acks, slot) else {
        return Ok(appended);
    };
    let mut high_watermark = engine
        .watch_high_watermark(tp)
        .await
        .map_err(AppendError::Engine)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = Rc::clone(&slot);
        let stopping = current.stopping.notified();
        tokio::pin!(stopping);
        stopping.as_mut().enable();
        if current.stopped.get() {
            slot = successor(engine, tp, &current, appended.last_offset, deadline)
                .await
                .ok_or(ReplicatedAppendError::LeadershipMoved)?;
            continue;
        }
        if let Some(outcome) = current
            .state
            .borrow()
            .acks_all_outcome(appended.last_offset)
        {
            return outcome
                .map(|()| appended.clone())
                .map_err(ReplicatedAppendError::NotEnoughReplicasAfterAppend);
        }
        tokio::select! {
            changed = high_watermark.changed() => {
                if changed.is_err() {
                    return Err(ReplicatedAppendError::LeadershipMoved);
                }
            }
            () = &mut stopping => {}
            () = tokio::time::sleep_until(deadline) => {
                return Err(ReplicatedAppendError::Timeout {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }
}

/// How often a waiter whose leader slot stopped looks for the slot of the next tenure.
const SUCCESSOR_POLL: Duration = Duration::from_millis(5);

/// The slot of this node's next tenure as leader of `tp`, if the tenure `old` ended only by
/// an epoch bump that left this node leading with the batch ending at `last_offset` still
/// in its log; `None` if leadership moved (or the deadline passed first).
///
/// Kafka's delayed produce outlives such a bump (a reassignment that removes a replica bumps
/// the leader epoch; the leader stays): failing the waiters instead would make idempotent
/// producers retry, and librdkafka then acknowledges the retried batch implicitly, without
/// its offset. The batch is still this tenure's if the log still holds `old`'s epoch up to
/// past `last_offset`: only `old`'s leader wrote that epoch at those offsets.
async fn successor(
    engine: &Engine,
    tp: &TopicPartition,
    old: &Rc<LeaderSlot>,
    last_offset: i64,
    deadline: tokio::time::Instant,
) -> Option<Rc<LeaderSlot>> {
    let epoch = old.state.borrow().leader_epoch();
    let next = loop {
        match registry::successor(tp, old) {
            Successor::Ready(next) => break next,
            Successor::Gone => return None,
            Successor::NotYet => {}
        }
        if tokio::time::Instant::now() + SUCCESSOR_POLL > deadline {
            return None;
        }
        tokio::time::sleep(SUCCESSOR_POLL).await;
    };
    match engine.end_offset_for_epoch(tp, epoch).await {
        Ok(Some((found, end))) if found == epoch && end > last_offset => Some(next),
        _ => None,
    }
}

/// KIP-207: whether this leader can answer ListOffsets yet. `Err(high watermark)` while a
/// new leader's HW is still below the start of its epoch (its followers have not all
/// fetched in the new epoch): offsets it gave now could go backwards
/// (OFFSET_NOT_AVAILABLE, retriable). `Ok(None)`: not a replicated partition led here.
pub async fn list_offsets_high_watermark(
    engine: &Engine,
    tp: &TopicPartition,
) -> Result<Option<i64>, i64> {
    let Some(shard) = engine.shard_for(tp) else {
        return Ok(None);
    };
    let name = tp.clone();
    engine
        .invoke_on(shard, move |_| {
            let answer = match registry::leader(&name) {
                None => Ok(None),
                Some(slot) => {
                    let state = slot.state.borrow();
                    state
                        .latest_offset()
                        .map(Some)
                        .map_err(|_| state.high_watermark())
                }
            };
            Box::pin(async move { answer })
        })
        .await
        .unwrap_or(Ok(None))
}
