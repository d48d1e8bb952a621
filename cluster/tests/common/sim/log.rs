//! An in-memory partition log with a sync mark: the simulator's disk.
//!
//! Fault model (after TigerBeetle's `testing/storage.zig`):
//!
//! - A batch is durable once a sync has covered it. A power loss keeps every synced batch;
//!   of the unsynced tail, a prefix of whole batches may survive (the page cache wrote them
//!   back), the next batch may be **torn** (partly on disk, its checksum fails), and the rest
//!   is gone. [`MemLog::power_loss`] takes how many survive and whether one is torn.
//! - Recovery ([`MemLog::recover`], at restart) cuts a torn batch and everything after it,
//!   as the engine's segment scan does, and syncs what is left: whatever a power loss left
//!   readable is on disk.
//! - A **failed fdatasync** moves no sync mark (the glue then takes the log dir offline and
//!   the broker halts; afterwards the unsynced tail is in the same undefined state as after
//!   a power loss: the kernel may have dropped the dirty pages).
//! - Leader-epoch entries are durable when assigned (Kafka fsyncs an assign), so a power
//!   loss keeps an entry that starts at the surviving log end: a tenure begun with no
//!   surviving batch (KAFKA-7415). A truncation is durable at once (the engine must sync it
//!   before reporting past it).

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

/// Why a follower's append was refused (the engine checks offsets before it writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendRefused {
    pub log_end: i64,
    pub batch_base: i64,
}

#[derive(Debug, Clone, Default)]
pub struct MemLog {
    pub batches: Vec<Batch>,
    pub log_start: i64,
    pub log_end: i64,
    /// The sync mark: everything below survives a power loss.
    pub flushed: i64,
    pub epochs: EpochCache,
    /// The HW this replica exposes (its checkpoint survives a crash, clamped to the log).
    pub high_watermark: i64,
    /// A batch only partly on disk after a power loss, until recovery cuts it.
    pub torn: Option<Batch>,
    /// Bumps on every change to the batches or marks, so a check can skip a log it has
    /// already verified.
    pub version: u64,
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
        self.version += 1;
    }

    /// A follower's append of a fetch answer's batches: refused, with nothing written, if
    /// they do not start at the log end and follow each other (the engine's offset check).
    pub fn append_replicated(&mut self, batches: &[Batch]) -> Result<(), AppendRefused> {
        let mut at = self.log_end;
        for batch in batches {
            if batch.base != at || batch.count <= 0 {
                return Err(AppendRefused {
                    log_end: self.log_end,
                    batch_base: batch.base,
                });
            }
            at = batch.end();
        }
        for batch in batches {
            self.append(*batch);
        }
        Ok(())
    }

    /// Whether `offset` is a batch boundary (or the log end): a truncation point that
    /// keeps every batch whole.
    pub fn is_boundary(&self, offset: i64) -> bool {
        offset >= self.log_end
            || self
                .batches
                .iter()
                .all(|b| b.end() <= offset || b.base >= offset)
    }

    /// Drops every offset at or above `to`, and every epoch entry starting there
    /// (Kafka's `UnifiedLog.truncateTo`, which trims the epoch cache even when `to` is the
    /// log end). A point inside a batch drops that whole batch, as Kafka's segment truncation
    /// does; the simulator reports such a point as a broken invariant before calling this.
    pub fn truncate_to(&mut self, to: i64) {
        assert!(
            to >= self.log_start,
            "truncate below the log start: start over instead"
        );
        let to = self
            .batches
            .iter()
            .find(|b| b.base < to && b.end() > to)
            .map_or(to, |split| split.base);
        self.batches.retain(|b| b.base < to);
        self.log_end = self.log_end.min(to);
        self.flushed = self.flushed.min(self.log_end);
        self.epochs.truncate_from_end(to);
        self.high_watermark = self.high_watermark.min(self.log_end);
        self.version += 1;
    }

    /// Drops the whole log; it starts empty at `offset`.
    pub fn start_at(&mut self, offset: i64) {
        self.batches.clear();
        self.log_start = offset;
        self.log_end = offset;
        self.flushed = offset;
        self.epochs = EpochCache::new();
        self.high_watermark = offset;
        self.version += 1;
    }

    pub fn advance_log_start(&mut self, offset: i64) {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} above the HW"
        );
        self.batches.retain(|b| b.end() > offset);
        self.log_start = self.log_start.max(offset);
        self.epochs.truncate_from_start(self.log_start);
        self.version += 1;
    }

    pub fn sync(&mut self) {
        if self.flushed != self.log_end {
            self.flushed = self.log_end;
            self.version += 1;
        }
    }

    /// Unsynced batches (above the sync mark).
    pub fn unsynced_batches(&self) -> usize {
        self.batches
            .iter()
            .filter(|b| b.end() > self.flushed)
            .count()
    }

    /// A power loss: of the unsynced batches, the first `surviving` are on disk whole; if
    /// `torn`, the next one is on disk in part (until [`MemLog::recover`] cuts it); the rest
    /// are gone. Returns how many unsynced batches were lost (the torn one included).
    pub fn power_loss(&mut self, surviving: usize, torn: bool) -> usize {
        let first_unsynced = self.batches.partition_point(|b| b.end() <= self.flushed);
        let kept = (first_unsynced + surviving).min(self.batches.len());
        let lost = self.batches.len() - kept;
        self.torn = if torn {
            self.batches.get(kept).copied()
        } else {
            None
        };
        self.batches.truncate(kept);
        let end = self.batches.last().map_or(self.flushed, Batch::end);
        self.log_end = end.max(self.flushed).max(self.log_start);
        self.epochs.truncate_from_end(self.log_end + 1);
        self.high_watermark = self.high_watermark.min(self.flushed);
        self.version += 1;
        lost
    }

    /// Recovery at restart: cuts a torn batch (returned) and syncs what survived.
    pub fn recover(&mut self) -> Option<Batch> {
        let torn = self.torn.take();
        self.sync();
        self.version += 1;
        torn
    }

    /// The batch holding `offset`.
    pub fn batch_at(&self, offset: i64) -> Option<&Batch> {
        let index = self.batches.partition_point(|b| b.end() <= offset);
        self.batches.get(index).filter(|b| b.base <= offset)
    }

    /// Batches from the one holding `from` on, at most `count_max` of them (a read that
    /// starts inside a batch returns that whole batch, as Kafka's does).
    pub fn read(&self, from: i64, count_max: usize) -> Vec<Batch> {
        let first = self.batches.partition_point(|b| b.end() <= from);
        self.batches
            .iter()
            .skip(first)
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
