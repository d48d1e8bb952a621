//! An in-memory partition log with a sync mark, as the simulator's disk.
//!
//! Fault model (after TigerBeetle's `testing/storage.zig`): a batch is durable once a sync
//! has covered it; a power loss drops every batch above the sync mark. Leader-epoch entries
//! are durable when assigned (Kafka fsyncs an assign), so a power loss keeps an entry that
//! starts at the surviving log end: a tenure begun with no surviving batch (KAFKA-7415).
//! A truncation is durable at once (the engine must sync it before reporting past it).

use spate_cluster::replication::{EpochCache, EpochView, LocalOffsets};

/// One batch: `count` records at `[base, base + count)`, written in `epoch`. `id` stands
/// for its bytes: two batches with the same id are byte-equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub base: i64,
    pub count: i64,
    pub epoch: i32,
    pub id: u64,
}

impl Batch {
    pub fn end(&self) -> i64 {
        self.base + self.count
    }

    pub fn last_offset(&self) -> i64 {
        self.end() - 1
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemLog {
    pub batches: Vec<Batch>,
    pub log_start: i64,
    pub log_end: i64,
    /// The sync mark: everything below survives a power loss.
    pub flushed: i64,
    pub epochs: EpochCache,
    /// The HW this replica exposes (its checkpoint survives a crash, clamped to the log).
    pub high_watermark: i64,
}

impl MemLog {
    /// A log holding `batches` (in order, contiguous from 0), all synced, with the epoch
    /// cache their headers give.
    pub fn with_batches(batches: &[(i32, i64, u64)]) -> Self {
        let mut log = MemLog::default();
        for &(epoch, count, id) in batches {
            log.append(Batch {
                base: log.log_end,
                count,
                epoch,
                id,
            });
        }
        log.sync();
        log
    }

    pub fn local(&self) -> LocalOffsets {
        LocalOffsets {
            log_start: self.log_start,
            log_end: self.log_end,
            stable_end: self.flushed,
        }
    }

    pub fn view(&self) -> EpochView<'_> {
        self.epochs.view(self.log_end)
    }

    /// Appends `batch` at the log end, keeping its offsets and epoch (a leader's append
    /// or a follower's).
    pub fn append(&mut self, batch: Batch) {
        assert_eq!(
            batch.base, self.log_end,
            "a gap or overlap would corrupt the log"
        );
        assert!(batch.count > 0);
        self.epochs.assign(batch.epoch, batch.base);
        self.log_end = batch.end();
        self.batches.push(batch);
    }

    /// Drops every offset at or above `to`, and every epoch entry starting there
    /// (Kafka's `UnifiedLog.truncateTo`, which trims the epoch cache even when `to` is the
    /// log end).
    pub fn truncate_to(&mut self, to: i64) {
        assert!(
            to >= self.log_start,
            "truncate below the log start: start over instead"
        );
        assert!(
            self.batches.iter().all(|b| b.end() <= to || b.base >= to),
            "truncation to {to} splits a batch: {:?}",
            self.batches
        );
        self.batches.retain(|b| b.base < to);
        self.log_end = self.log_end.min(to);
        self.flushed = self.flushed.min(self.log_end);
        self.epochs.truncate_from_end(to);
        self.high_watermark = self.high_watermark.min(self.log_end);
    }

    /// Drops the whole log; it starts empty at `offset`.
    pub fn start_at(&mut self, offset: i64) {
        self.batches.clear();
        self.log_start = offset;
        self.log_end = offset;
        self.flushed = offset;
        self.epochs = EpochCache::new();
        self.high_watermark = offset;
    }

    pub fn advance_log_start(&mut self, offset: i64) {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} above the HW"
        );
        self.batches.retain(|b| b.end() > offset);
        self.log_start = self.log_start.max(offset);
        self.epochs.truncate_from_start(self.log_start);
    }

    pub fn sync(&mut self) {
        self.flushed = self.log_end;
    }

    /// A power loss: everything above the sync mark is gone.
    pub fn power_loss(&mut self) {
        let flushed = self.flushed;
        self.batches.retain(|b| b.end() <= flushed);
        self.log_end = flushed;
        self.epochs.truncate_from_end(flushed + 1);
        self.high_watermark = self.high_watermark.min(flushed);
    }

    /// The batch holding `offset`.
    pub fn batch_at(&self, offset: i64) -> Option<&Batch> {
        let index = self.batches.partition_point(|b| b.end() <= offset);
        self.batches.get(index).filter(|b| b.base <= offset)
    }

    /// Batches from `from` on, at most `count_max` of them.
    pub fn read(&self, from: i64, count_max: usize) -> Vec<Batch> {
        self.batches
            .iter()
            .filter(|b| b.base >= from)
            .take(count_max)
            .copied()
            .collect()
    }

    /// `(epoch, id)` per offset range, for comparing logs.
    pub fn content(&self) -> Vec<(i64, i64, i32, u64)> {
        self.batches
            .iter()
            .map(|b| (b.base, b.count, b.epoch, b.id))
            .collect()
    }
}
