//! The partitions one shard owns, and the operations that run on that shard for them.
//!
//! Lives on one shard (`Rc`/`RefCell`, `!Send`). A `PartitionLog` is only ever borrowed for
//! the length of a synchronous call, never across an `.await`, so no borrow can be observed
//! by another task. Everything here is reached through `invoke_on` from the engine facade.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::context::ShardContext;
use super::group_commit::GroupCommit;
use super::panic_guard::PanicGuard;
use crate::engine::{
    AppendError, AppendOutcome, EngineError, PartitionOffsets, ReadOutcome, now_ms,
};
use crate::log::{HighWatermarkMode, PartitionLog, ReadBound, ReadError};
use crate::uring::{SharedFile, WriteChain};
use crate::{FlushPolicy, LogConfig, TopicPartition};

/// One partition on its owning shard.
pub(crate) struct PartitionSlot {
    pub(crate) name: TopicPartition,
    pub(crate) dir: PathBuf,
    pub(crate) log: RefCell<PartitionLog>,
    /// Latest high watermark, for Fetch long polls on any shard.
    pub(crate) high_watermark: watch::Sender<i64>,
    /// Latest marks, for the replication glue. Only updated while someone watches them
    /// (`watch_offsets` refreshes it before subscribing), so a single node pays nothing.
    pub(crate) offsets: watch::Sender<PartitionOffsets>,
    /// Highest offset reported to the log with `mark_written` (inclusive), -1 if none.
    pub(crate) written_through: Cell<i64>,
    /// Bumped by every truncation: a sync that started before one must not report its end.
    pub(crate) truncation_count: Cell<u64>,
    /// Bumped by every config change and by deletion; timer tasks of older generations stop.
    pub(crate) generation: Cell<u64>,
    pub(crate) deleted: Cell<bool>,
}

impl PartitionSlot {
    pub(crate) fn flush_policy(&self) -> FlushPolicy {
        self.log.borrow().config().flush
    }

    /// Publishes the log's high watermark if it moved, and its marks if they changed and
    /// anyone watches them.
    pub(crate) fn publish_marks(&self) {
        let log = self.log.borrow();
        let high_watermark = log.high_watermark();
        self.high_watermark.send_if_modified(|current| {
            let moved = *current != high_watermark;
            *current = high_watermark;
            moved
        });
        if self.offsets.receiver_count() > 0 {
            let offsets = offsets_of(&log);
            self.offsets.send_if_modified(|current| {
                let changed = *current != offsets;
                *current = offsets;
                changed
            });
        }
    }
}

/// Every mark of `log`, read at one moment.
pub(crate) fn offsets_of(log: &PartitionLog) -> PartitionOffsets {
    PartitionOffsets {
        log_start_offset: log.log_start_offset(),
        high_watermark: log.high_watermark(),
        log_end_offset: log.log_end_offset(),
        written_end: log.written_end(),
        stable_end: log.stable_end(),
        synced_end: log.recovery_point(),
        latest_epoch: log.leader_epochs().latest_epoch(),
    }
}

/// The partitions of one shard and its group commit.
pub(crate) struct PartitionTable {
    slots: RefCell<HashMap<TopicPartition, Rc<PartitionSlot>>>,
    pub(crate) commit: GroupCommit,
}

impl PartitionTable {
    pub(crate) fn new() -> Self {
        Self {
            slots: RefCell::new(HashMap::new()),
            commit: GroupCommit::new(),
        }
    }

    pub(crate) fn get(&self, tp: &TopicPartition) -> Option<Rc<PartitionSlot>> {
        self.slots.borrow().get(tp).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Rc<PartitionSlot>> {
        self.slots.borrow().values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.borrow().len()
    }
}

pub(crate) fn slot_of(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<Rc<PartitionSlot>, EngineError> {
    context
        .partitions()
        .get(tp)
        .ok_or_else(|| EngineError::UnknownPartition(tp.clone()))
}

/// Opens (recovering, or creating) the logs of `tps` on this shard in high watermark `mode`
/// and starts their timers. Returns one result per partition, in order; one that fails does
/// not stop the others.
///
/// Created partitions are durable before they are served, but their folder syncs are
/// batched: every log is opened first, then each new partition folder is fsynced and
/// `data_dir` once. Syncing after all the creations lets the filesystem write each metadata
/// block once (on a journaling one, the first sync commits them all) instead of once per
/// partition.
pub(crate) fn open_partitions(
    context: &ShardContext,
    data_dir: &Path,
    tps: Vec<TopicPartition>,
    config: LogConfig,
    mode: HighWatermarkMode,
) -> Vec<Result<(), EngineError>> {
    let mut results: Vec<Result<(), EngineError>> = Vec::with_capacity(tps.len());
    let mut opened = Vec::new();
    let mut listed = HashSet::new();
    for (index, tp) in tps.into_iter().enumerate() {
        if context.partitions().get(&tp).is_some() || !listed.insert(tp.clone()) {
            results.push(Err(EngineError::PartitionExists(tp)));
            continue;
        }
        let dir = data_dir.join(tp.dir_name());
        let opened_log =
            PartitionLog::open_leaving_dir_sync(&dir, tp.clone(), config.clone(), now_ms())
                .and_then(|(mut log, dir_unsynced)| {
                    // Before the log is served: nothing above the checkpointed high watermark
                    // of a replicated partition is ever visible.
                    log.set_high_watermark_mode(mode)?;
                    Ok((log, dir_unsynced))
                });
        match opened_log {
            Ok((log, dir_unsynced)) => {
                results.push(Ok(()));
                opened.push((index, tp, dir, log, dir_unsynced));
            }
            Err(error) => results.push(Err(error.into())),
        }
    }
    let any_created = opened.iter().any(|(.., dir_unsynced)| *dir_unsynced);
    let mut synced = Vec::with_capacity(opened.len());
    for (index, tp, dir, log, dir_unsynced) in opened {
        let sync = if dir_unsynced { sync_dir(&dir) } else { Ok(()) };
        synced.push((index, tp, dir, log, sync));
    }
    // The new folders' names live in `data_dir`: one sync covers them all.
    let data_dir_sync = if any_created {
        sync_dir(data_dir)
    } else {
        Ok(())
    };
    for (index, tp, dir, log, sync) in synced {
        let sync = sync.and_then(|()| match &data_dir_sync {
            Ok(()) => Ok(()),
            Err(error) => Err(io::Error::new(
                error.kind(),
                format!("{}: {error}", data_dir.display()),
            )),
        });
        let outcome = match sync {
            Ok(()) => {
                install(context, tp, dir, log);
                Ok(())
            }
            Err(source) => Err(EngineError::Io {
                partition: tp,
                source,
            }),
        };
        if let Some(result) = results.get_mut(index) {
            *result = outcome;
        }
    }
    results
}

/// Makes creations in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Starts serving an opened log on this shard.
fn install(context: &ShardContext, tp: TopicPartition, dir: PathBuf, log: PartitionLog) {
    let written_through = log.log_end_offset() - 1;
    let (high_watermark, _) = watch::channel(log.high_watermark());
    let (offsets, _) = watch::channel(offsets_of(&log));
    let slot = Rc::new(PartitionSlot {
        name: tp.clone(),
        dir,
        log: RefCell::new(log),
        high_watermark,
        offsets,
        written_through: Cell::new(written_through),
        truncation_count: Cell::new(0),
        generation: Cell::new(0),
        deleted: Cell::new(false),
    });
    context
        .partitions()
        .slots
        .borrow_mut()
        .insert(tp, slot.clone());
    start_interval_flush(context, &slot);
}

/// Stops serving `tp`, waits for its in-flight writes, and removes its folder.
pub(crate) async fn delete_partition(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<(), EngineError> {
    let slot = context
        .partitions()
        .slots
        .borrow_mut()
        .remove(tp)
        .ok_or_else(|| EngineError::UnknownPartition(tp.clone()))?;
    slot.deleted.set(true);
    slot.generation.set(slot.generation.get() + 1);
    context.partitions().commit.wait_until_idle_for(&slot).await;
    // Readers holding segment `Arc`s keep their open files; the names go now.
    std::fs::remove_dir_all(&slot.dir).map_err(|source| EngineError::Io {
        partition: tp.clone(),
        source,
    })
}

pub(crate) fn set_config(
    context: &ShardContext,
    tp: &TopicPartition,
    config: LogConfig,
) -> Result<(), EngineError> {
    let slot = slot_of(context, tp)?;
    slot.log.borrow_mut().set_config(config);
    slot.generation.set(slot.generation.get() + 1);
    start_interval_flush(context, &slot);
    Ok(())
}

/// Moves the log start offset up to `offset` and deletes the segments wholly below it.
pub(crate) fn delete_records_before(
    context: &ShardContext,
    tp: &TopicPartition,
    offset: i64,
) -> Result<i64, EngineError> {
    let slot = slot_of(context, tp)?;
    let start = slot.log.borrow_mut().delete_records_before(offset)?;
    slot.publish_marks();
    Ok(start)
}

/// Stages `records` and waits for the group commit to make them durable per the policy.
pub(crate) async fn append(
    context: &ShardContext,
    tp: &TopicPartition,
    records: Bytes,
) -> Result<AppendOutcome, AppendError> {
    let slot = slot_of(context, tp)?;
    // The log rewrites base offsets in place: free when the caller's buffer is unique, one copy
    // when it is a slice of a larger shared frame.
    let records = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let staged = slot.log.borrow_mut().stage_append(records, now_ms())?;
    if staged.duplicate && slot.log.borrow().stable_end() <= staged.last_offset {
        // A retry of a batch whose original is still in a commit round. Answering now would
        // acknowledge bytes not yet written (or, under `flush=always`, not yet synced), which
        // a crash could lose: wait for the round, then answer as the original's outcome says.
        // (Local durability only: in a replicated partition the caller waits for the high
        // watermark, as for any append.)
        let commit = &context.partitions().commit;
        commit.wait_until_idle_for(&slot).await;
        if slot.log.borrow().stable_end() <= staged.last_offset {
            return Err(AppendError::Io {
                partition: tp.clone(),
                source: io::Error::other(
                    "the first copy of this retried batch failed to write; send it again",
                ),
            });
        }
    }
    if staged.duplicate || staged.writes.is_empty() {
        return Ok(AppendOutcome {
            base_offset: staged.base_offset,
            last_offset: staged.last_offset,
            log_append_time_ms: staged.log_append_time_ms,
            log_start_offset: slot.log.borrow().log_start_offset(),
            duplicate: staged.duplicate,
        });
    }
    context.partitions().commit.enqueue(slot, staged).await
}

pub(crate) fn read(
    context: &ShardContext,
    tp: &TopicPartition,
    offset: i64,
    max_bytes: u32,
    bound: ReadBound,
) -> Result<ReadOutcome, crate::engine::ReadError> {
    let slot = slot_of(context, tp)?;
    let result = slot.log.borrow().read_bounded(offset, max_bytes, bound)?;
    Ok(ReadOutcome {
        slices: result.slices,
        high_watermark: result.high_watermark,
        log_start_offset: result.log_start_offset,
        log_end_offset: result.log_end_offset,
    })
}

pub(crate) fn offsets(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<PartitionOffsets, EngineError> {
    let slot = slot_of(context, tp)?;
    let offsets = offsets_of(&slot.log.borrow());
    Ok(offsets)
}

pub(crate) fn offset_for_timestamp(
    context: &ShardContext,
    tp: &TopicPartition,
    timestamp_ms: i64,
) -> Result<Option<(i64, i64)>, crate::engine::ReadError> {
    let slot = slot_of(context, tp)?;
    let found: Result<_, ReadError> = slot.log.borrow().offset_for_timestamp(timestamp_ms);
    Ok(found?)
}

pub(crate) fn watch_high_watermark(
    context: &ShardContext,
    tp: &TopicPartition,
) -> Result<watch::Receiver<i64>, EngineError> {
    Ok(slot_of(context, tp)?.high_watermark.subscribe())
}

/// fdatasyncs every dirty segment of `slot` and reports it synced through what was written
/// when the sync started.
pub(crate) async fn sync_dirty(
    context: &ShardContext,
    slot: &PartitionSlot,
) -> Result<(), EngineError> {
    let through = slot.written_through.get();
    let truncation_count = slot.truncation_count.get();
    let dirty = slot.log.borrow().dirty_segments();
    if dirty.is_empty() || through < 0 {
        return Ok(());
    }
    let chains = dirty
        .into_iter()
        .map(|segment| WriteChain {
            file: segment as SharedFile,
            writes: Vec::new(),
            sync: true,
        })
        .collect();
    for result in context.io().write_chains(chains).await {
        result.map_err(|source| EngineError::Io {
            partition: slot.name.clone(),
            source,
        })?;
    }
    // After a truncation `through` may name offsets that were cut and staged again since,
    // unwritten: the truncation synced what it kept, and the next sync reports the rest.
    if !slot.deleted.get() && slot.truncation_count.get() == truncation_count {
        slot.log.borrow_mut().mark_synced(through);
        slot.publish_marks();
    }
    Ok(())
}

/// For `flush=interval_ms=N`: a task that syncs the partition every N ms until its config
/// changes or it is deleted.
fn start_interval_flush(context: &ShardContext, slot: &Rc<PartitionSlot>) {
    let FlushPolicy::IntervalMs(interval_ms) = slot.flush_policy() else {
        return;
    };
    let generation = slot.generation.get();
    let slot = slot.clone();
    let task_context = context.clone();
    let interval = Duration::from_millis(interval_ms.max(1));
    tokio::task::spawn_local(async move {
        loop {
            tokio::time::sleep(interval).await;
            if slot.generation.get() != generation || slot.deleted.get() {
                return;
            }
            match PanicGuard::new(sync_dirty(&task_context, &slot)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(partition = %slot.name, %error, "interval flush failed");
                }
                Err(message) => task_context.record_panic(&message),
            }
        }
    });
}

/// Shutdown hook body: once the group commit is idle, sync and checkpoint every log.
pub(crate) async fn close_all(context: &ShardContext) {
    context.partitions().commit.wait_until_idle().await;
    for slot in context.partitions().all() {
        if let Err(error) = sync_dirty(context, &slot).await {
            tracing::error!(partition = %slot.name, %error, "final sync failed");
            continue;
        }
        if let Err(error) = slot.log.borrow_mut().checkpoint() {
            tracing::error!(partition = %slot.name, %error, "final checkpoint failed");
        }
    }
}

/// Retention pass over every partition of this shard.
pub(crate) fn apply_retention(context: &ShardContext) {
    let now = now_ms();
    for slot in context.partitions().all() {
        let outcome = slot.log.borrow_mut().apply_retention(now);
        match outcome {
            Ok(outcome) if outcome.deleted_segment_count > 0 => {
                slot.publish_marks();
                tracing::info!(
                    partition = %slot.name,
                    deleted_segment_count = outcome.deleted_segment_count,
                    deleted_bytes = outcome.deleted_bytes,
                    "retention deleted segments"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(partition = %slot.name, %error, "retention failed"),
        }
    }
}

/// Writes every log's recovery point and dirty indexes.
pub(crate) fn checkpoint_all(context: &ShardContext) {
    for slot in context.partitions().all() {
        if let Err(error) = slot.log.borrow_mut().checkpoint() {
            tracing::error!(partition = %slot.name, %error, "checkpoint failed");
        }
    }
}
