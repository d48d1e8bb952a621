//! The operations replication needs, on the shard that owns the partition: follower appends,
//! bounded reads, the high watermark, leader epochs, truncation and the marks watch.
//!
//! Lives on one shard, like `partition_table.rs`: a `PartitionLog` is borrowed only for the
//! length of a synchronous call. Operations that need the partition's appends written first
//! (truncation, an epoch start) wait for that with `GroupCommit::wait_until_written`, then act
//! before their next `.await`, so no append can slip in between.

use std::rc::Rc;

use bytes::Bytes;
use tokio::sync::watch;

use super::context::ShardContext;
use super::partition_table::{PartitionSlot, offsets_of, slot_of};
use crate::TopicPartition;
use crate::engine::{AppendError, AppendOutcome, EngineError, PartitionOffsets, now_ms};
use crate::log::HighWatermarkMode;
use crate::log::leader_epoch::EpochEntry;

/// Stages batches exactly as the leader stored them and waits for the group commit to make
/// them durable per the policy, like a leader append.
pub(crate) async fn append_replica(
    context: &ShardContext,
    tp: &TopicPartition,
    records: Bytes,
) -> Result<AppendOutcome, AppendError> {
    let slot = slot_of(context, tp)?;
    let staged = slot
        .log
        .borrow_mut()
        .stage_replica_append(records, now_ms())?;
    context.partitions().commit.enqueue(slot, staged).await
}

pub(crate) fn set_high_watermark_mode(
    context: &ShardContext,
    tp: &TopicPartition,
    mode: HighWatermarkMode,
) -> Result<PartitionOffsets, EngineError> {
    let slot = slot_of(context, tp)?;
    slot.log.borrow_mut().set_high_watermark_mode(mode)?;
    slot.publish_marks();
    Ok(offsets_of(&slot.log.borrow()))
}

pub(crate) fn set_high_watermark(
    context: &ShardContext,
    tp: &TopicPartition,
    high_watermark: i64,
) -> Result<i64, EngineError> {
    let slot = slot_of(context, tp)?;
    let applied = slot.log.borrow_mut().set_high_watermark(high_watermark)?;
    slot.publish_marks();
    Ok(applied)
}

/// Starts leader `epoch` at the log end once every staged append is written, so no append
/// of an older epoch can land above the start (and none can be undone below it).
pub(crate) async fn assign_leader_epoch(
    context: &ShardContext,
    tp: &TopicPartition,
    epoch: i32,
) -> Result<i64, EngineError> {
    let slot = written_slot(context, tp).await?;
    let start_offset = {
        let mut log = slot.log.borrow_mut();
        let log_end_offset = log.log_end_offset();
        log.assign_epoch(epoch, log_end_offset)?;
        // The same epoch assigned again keeps its first start.
        log.leader_epochs()
            .entries()
            .last()
            .map_or(log_end_offset, |entry| entry.start_offset)
    };
    slot.publish_marks();
    Ok(start_offset)
}

pub(crate) fn end_offset_for_epoch(
    context: &ShardContext,
    tp: &TopicPartition,
    epoch: i32,
) -> Result<Option<(i32, i64)>, EngineError> {
    let slot = slot_of(context, tp)?;
    let log = slot.log.borrow();
    Ok(log
        .leader_epochs()
        .end_offset_for_epoch(epoch, log.log_end_offset()))
}

pub(crate) fn epoch_entries(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<Vec<EpochEntry>, EngineError> {
    let slot = slot_of(context, tp)?;
    let log = slot.log.borrow();
    Ok(log.leader_epochs().entries().to_vec())
}

/// Truncates once every staged append of the partition is written.
pub(crate) async fn truncate(
    context: &ShardContext,
    tp: &TopicPartition,
    offset: i64,
    fully: bool,
) -> Result<PartitionOffsets, EngineError> {
    let slot = written_slot(context, tp).await?;
    let result = {
        let mut log = slot.log.borrow_mut();
        if fully {
            log.truncate_fully_and_start_at(offset)
        } else {
            log.truncate_to(offset)
        }
    };
    after_truncation(&slot);
    result?;
    Ok(offsets_of(&slot.log.borrow()))
}

/// Even a failed truncation may have cut part of the log: in-flight syncs must not report
/// their old ends, and the written-through offset must not pass the new end.
fn after_truncation(slot: &PartitionSlot) {
    slot.truncation_count.set(slot.truncation_count.get() + 1);
    let log_end_offset = slot.log.borrow().log_end_offset();
    slot.written_through
        .set(slot.written_through.get().min(log_end_offset - 1));
    slot.publish_marks();
}

pub(crate) fn watch_offsets(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<watch::Receiver<PartitionOffsets>, EngineError> {
    let slot = slot_of(context, tp)?;
    // Unwatched partitions do not update the channel: bring it up to date first.
    slot.offsets.send_replace(offsets_of(&slot.log.borrow()));
    Ok(slot.offsets.subscribe())
}

/// The partition's slot once no append of it is queued or in a commit round.
async fn written_slot(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<Rc<PartitionSlot>, EngineError> {
    let slot = slot_of(context, tp)?;
    context.partitions().commit.wait_until_written(&slot).await;
    if slot.deleted.get() {
        return Err(EngineError::UnknownPartition(tp.clone()));
    }
    Ok(slot)
}
