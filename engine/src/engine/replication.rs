//! The engine surface replication programs against: follower appends, reads bounded by the
//! written end, the high watermark and its mode, leader epochs, truncation, and a watch on
//! every mark. Each call routes to the partition's shard like the rest of the facade.
//!
//! None of it is used by a single node: a partition stays in `HighWatermarkMode::Local`, where
//! the high watermark is the stable end, unless the replication glue switches it.

use bytes::Bytes;
use tokio::sync::watch;

use super::{
    AppendError, AppendOutcome, Engine, EngineError, PartitionOffsets, ReadError, ReadOutcome,
};
use crate::TopicPartition;
use crate::log::leader_epoch::EpochEntry;
use crate::log::{HighWatermarkMode, ReadBound};
use crate::shard::{partition_table, replication};

impl Engine {
    /// A follower's append: `records` holds one or more RecordBatch v2 batches exactly as the
    /// leader stored them, the first starting at this log's end. Nothing is rewritten (offsets,
    /// leader epochs, CRCs stay the leader's); a batch with a new leader epoch starts it in the
    /// epoch cache, durably, before the append is staged. Goes through the same group commit as
    /// [`Engine::append`] and resolves when the batches are durable per the flush policy: the
    /// stable end has passed them, and the follower may report it as its durable offset.
    ///
    /// Refused with nothing staged: a corrupt batch (`Corrupt`), a gap or overlap
    /// (`NotContiguous`: fetch again from `expected`), `Empty`, `OffsetOverflow`.
    pub async fn append_replica(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<AppendOutcome, AppendError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            Box::pin(async move { replication::append_replica(&context, &name, records).await })
        })
        .await?
    }

    /// [`Engine::read`] up to `bound`: `HighWatermark` for consumers, `WrittenEnd` for a
    /// follower fetching from this leader (every written byte, under `flush=always` maybe not
    /// yet fsynced). An offset in `(bound, log end]` gets an empty answer; past the log end,
    /// `OffsetOutOfRange`. The outcome's `high_watermark` is the high watermark either way.
    pub async fn read_bounded(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: u32,
        bound: ReadBound,
    ) -> Result<ReadOutcome, ReadError> {
        self.call_on_owner(tp, move |context, name| {
            partition_table::read(context, name, offset, max_bytes, bound)
        })
        .await
    }

    /// Switches who moves the partition's high watermark. `Replicated`: it starts at the
    /// checkpointed high watermark (`replication-offset-checkpoint`, or the log start if there
    /// is none), clamped to `[log start, stable end]`, and only [`Engine::set_high_watermark`]
    /// moves it. `Local`: it is the stable end again.
    pub async fn set_high_watermark_mode(
        &self,
        tp: &TopicPartition,
        mode: HighWatermarkMode,
    ) -> Result<PartitionOffsets, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            replication::set_high_watermark_mode(context, name, mode)
        })
        .await
    }

    /// Sets the high watermark of a `Replicated` partition (`HighWatermarkIsLocal` otherwise)
    /// and returns the value applied: clamped to `[log start, stable end]` and rounded down to
    /// the start of the batch holding it. It may go down. Readers, Fetch long polls (the
    /// `watch_high_watermark` channel), retention and DeleteRecords follow it.
    pub async fn set_high_watermark(
        &self,
        tp: &TopicPartition,
        high_watermark: i64,
    ) -> Result<i64, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            replication::set_high_watermark(context, name, high_watermark)
        })
        .await
    }

    /// A new leader starts `epoch` at its log end (KAFKA-7415: before any append, so followers
    /// holding epochs it never saw still get a truncation point), persisted. Waits until every
    /// append staged before it is written, so the start is exact. Returns the epoch's start
    /// offset (the log end; the earlier start if `epoch` already is the latest). Appends staged
    /// afterwards carry `epoch` in `partitionLeaderEpoch`.
    pub async fn assign_leader_epoch(
        &self,
        tp: &TopicPartition,
        epoch: i32,
    ) -> Result<i64, EngineError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            Box::pin(async move { replication::assign_leader_epoch(&context, &name, epoch).await })
        })
        .await?
    }

    /// `OffsetsForLeaderEpoch` (KIP-101, KIP-279) over the epoch cache and the log end: for
    /// the largest epoch at or below `epoch`, that epoch and where it ends (the next epoch's
    /// start, or the log end for the latest). An epoch below every entry gets itself and the
    /// first start; above the latest, negative, or an empty cache: `None`.
    pub async fn end_offset_for_epoch(
        &self,
        tp: &TopicPartition,
        epoch: i32,
    ) -> Result<Option<(i32, i64)>, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            replication::end_offset_for_epoch(context, name, epoch)
        })
        .await
    }

    /// The partition's whole leader-epoch cache (epoch → first offset), oldest first: a
    /// follower keeps a copy to answer its own divergence lookups without a shard hop.
    pub async fn epoch_entries(&self, tp: &TopicPartition) -> Result<Vec<EpochEntry>, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            replication::epoch_entries(context, name)
        })
        .await
    }

    /// The latest epoch in the partition's epoch cache (also in [`PartitionOffsets`]).
    pub async fn latest_epoch(&self, tp: &TopicPartition) -> Result<Option<i32>, EngineError> {
        Ok(self.offsets(tp).await?.latest_epoch)
    }

    /// A follower's truncation: removes every batch whose last offset is at or after `offset`
    /// (a straddling batch goes whole), once the partition has no append queued or in a
    /// commit round. Everything follows: the recovery point and high watermark checkpoint
    /// (lowered before any file is cut), the stable and written ends and the high watermark
    /// (clamped), epochs starting at or after the new end (dropped, persisted), producer state
    /// (rebuilt exactly as of the new end). An `offset` below the first segment empties the
    /// log and restarts it there. At or past the log end only the epoch cache is trimmed (a
    /// former leader's empty-tenure epoch goes). Returns the marks afterwards.
    pub async fn truncate_to(
        &self,
        tp: &TopicPartition,
        offset: i64,
    ) -> Result<PartitionOffsets, EngineError> {
        self.truncate(tp, offset, false).await
    }

    /// Kafka's `truncateFullyAndStartAt`: drops the whole log and starts it empty at `offset`
    /// (log start, high watermark and every end at `offset`; no epochs, no producer state).
    /// For a follower whose log ends below the leader's log start. Waits like
    /// [`Engine::truncate_to`].
    pub async fn truncate_fully_and_start_at(
        &self,
        tp: &TopicPartition,
        offset: i64,
    ) -> Result<PartitionOffsets, EngineError> {
        self.truncate(tp, offset, true).await
    }

    async fn truncate(
        &self,
        tp: &TopicPartition,
        offset: i64,
        fully: bool,
    ) -> Result<PartitionOffsets, EngineError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            Box::pin(async move { replication::truncate(&context, &name, offset, fully).await })
        })
        .await?
    }

    /// Every mark of the partition, published after each commit round that moves the written
    /// or stable end (so a follower can report its durable offset the moment its fsync
    /// completes), after truncation, high watermark changes, epoch starts, retention and
    /// DeleteRecords. Only watched partitions pay for it.
    pub async fn watch_offsets(
        &self,
        tp: &TopicPartition,
    ) -> Result<watch::Receiver<PartitionOffsets>, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            replication::watch_offsets(context, name)
        })
        .await
    }
}
