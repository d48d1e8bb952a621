//! The engine facade: the surface `server/` programs against (`docs/engine-api.md`).
//!
//! `Engine` is `Send + Sync` and cheap to clone. It owns no partition state itself: it looks up
//! the owning shard in the placement table and sends the work there with `invoke_on`; the
//! shard runs it against state only that shard touches. It does not speak Kafka: errors are
//! typed here and mapped to Kafka codes by the server's handlers.

mod create;
mod disk;
mod outcomes;
mod replication;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use crate::log::{self, HighWatermarkMode, LogError, ReadBound};
use crate::placement::{Placement, PlacementError};
use crate::shard::group_commit::spawn_flusher;
use crate::shard::partition_table;
use crate::shard::{
    CROSS_SHARD_QUEUE_DEPTH, LocalBoxFuture, ShardContext, ShardError, ShardId, ShardInit,
    ShardSet, ShardSetConfig,
};
use crate::{LogConfig, TopicPartition};

pub use crate::log::{FileSlice, SegmentFile};
pub use disk::VolumeSpace;
pub use outcomes::{AppendOutcome, PartitionOffsets, ReadOutcome};

/// Kafka's `log.retention.check.interval.ms` default: how often each shard applies retention.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;

/// How often each shard writes recovery points and dirty indexes (Kafka's
/// `log.flush.offset.checkpoint.interval.ms`). A later checkpoint only means a longer scan
/// at the next start, never lost data.
pub const CHECKPOINT_INTERVAL_MS: u64 = 60_000;

/// Kafka's longest legal topic name; longer names cannot be folder names on every filesystem.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// How to start an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds one folder per partition plus the placement table.
    pub data_dir: PathBuf,
    /// 0 = one shard per CPU this process may run on.
    pub shard_count: usize,
    /// Pin each shard thread to its core (default true). Failure to pin is only a warning.
    pub pin_threads: bool,
    /// Capacity of each shard's call queue; default [`CROSS_SHARD_QUEUE_DEPTH`].
    pub cross_shard_queue_depth: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// Settings given to partitions recovered at start. The server re-applies per-topic
    /// overrides with [`Engine::set_config`] after start (topic configs are its metadata).
    pub default_log_config: LogConfig,
    /// Who moves the high watermark of every partition opened by this engine (recovered at
    /// start or created), until [`Engine::set_high_watermark_mode`] changes it. `Local` (the
    /// default) is the single node. A cluster node passes `Replicated`, so that between start
    /// and the replication glue taking over, consumers see nothing above each partition's
    /// checkpointed high watermark.
    pub default_high_watermark_mode: HighWatermarkMode,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            shard_count: 0,
            pin_threads: true,
            cross_shard_queue_depth: CROSS_SHARD_QUEUE_DEPTH,
            retention_check_interval_ms: RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            default_log_config: LogConfig::default(),
            default_high_watermark_mode: HighWatermarkMode::Local,
        }
    }
}

/// Errors of engine-level operations (routing, lifecycle, whole-log I/O).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    #[error("partition {0} already exists")]
    PartitionExists(TopicPartition),
    #[error("invalid partition name {partition}: {reason}")]
    InvalidPartition {
        partition: TopicPartition,
        reason: &'static str,
    },
    /// The partition's log failed to open at start (e.g. damaged acknowledged data); it is
    /// not served until an operator repairs it.
    #[error("partition {partition} is offline: {reason}")]
    PartitionOffline {
        partition: TopicPartition,
        reason: String,
    },
    #[error("{0} has stopped (the engine is shutting down)")]
    ShardGone(ShardId),
    /// The shard dropped the append without an answer (a panic there, logged).
    #[error("partition {0}: the commit of this append was lost (see the shard's log)")]
    CommitLost(TopicPartition),
    #[error(transparent)]
    Shard(ShardError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("partition {partition}: {source}")]
    Io {
        partition: TopicPartition,
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<ShardError> for EngineError {
    fn from(error: ShardError) -> Self {
        match error {
            ShardError::Gone(shard) => EngineError::ShardGone(shard),
            other => EngineError::Shard(other),
        }
    }
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log refused the batches (corrupt, too large, producer fencing, …); nothing staged.
    #[error(transparent)]
    Rejected(#[from] log::AppendError),
    /// Writing or syncing failed; the append was rolled back and is not in the log.
    #[error("partition {partition}: write failed: {source}")]
    Io {
        partition: TopicPartition,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Log(#[from] log::ReadError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Wall-clock milliseconds since the Unix epoch, the time base of Kafka timestamps.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Partition → shard, as read on every call. Replaced whole (copy on write) after each
/// placement change, so a reader holds the read lock only for a hash lookup, never while the
/// placement file is fsynced.
type Routes = Arc<HashMap<TopicPartition, ShardId>>;

struct EngineInner {
    shards: ShardSet,
    /// [`EngineConfig::default_high_watermark_mode`], for partitions created later.
    default_high_watermark_mode: HighWatermarkMode,
    routes: RwLock<Routes>,
    /// Serializes placement changes (each persists the table with an fsync). Never taken on
    /// the append/read path.
    placement: Mutex<Placement>,
    offline: RwLock<Vec<(TopicPartition, String)>>,
    data_dir: PathBuf,
}

/// The storage engine. `Send + Sync`; clones share the same shards.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl Engine {
    /// Starts the shards and recovers every partition found in the data dir on its shard,
    /// all shards in parallel. A partition whose log cannot be opened is reported offline
    /// rather than failing the engine.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| EngineError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let on_disk = list_partition_dirs(&data_dir)?;
        let shard_count = match config.shard_count {
            0 => crate::shard::allowed_cpus()
                .map(|c| c.len())
                .unwrap_or(1)
                .max(1),
            n => n,
        };
        let mut placement = match Placement::load(&data_dir, shard_count) {
            Ok(placement) => placement,
            Err(PlacementError::Corrupt {
                path,
                line_number,
                reason,
            }) => {
                tracing::warn!(path = %path.display(), line_number, %reason, "placement table is damaged; rebuilding it from the partition folders");
                std::fs::remove_file(&path).map_err(|source| EngineError::DataDir {
                    path: path.clone(),
                    source,
                })?;
                Placement::load(&data_dir, shard_count)?
            }
            Err(error) => return Err(error.into()),
        };
        placement.reconcile(&on_disk)?;
        let mut per_shard: Vec<Vec<TopicPartition>> = vec![Vec::new(); shard_count];
        for (tp, shard) in placement.partitions() {
            if let Some(list) = per_shard.get_mut(shard.0) {
                list.push(tp);
            }
        }
        let per_shard = Arc::new(per_shard);
        let offline = Arc::new(Mutex::new(Vec::new()));
        let init = shard_init(&config, per_shard, offline.clone());
        let shards = ShardSet::start(
            &ShardSetConfig {
                shard_count,
                pin_threads: config.pin_threads,
                queue_depth: config.cross_shard_queue_depth,
            },
            init,
        )?;
        let offline = offline.lock().map(|o| o.clone()).unwrap_or_default();
        Ok(Engine {
            inner: Arc::new(EngineInner {
                shards,
                default_high_watermark_mode: config.default_high_watermark_mode,
                routes: RwLock::new(routes_of(&placement)),
                placement: Mutex::new(placement),
                offline: RwLock::new(offline),
                data_dir,
            }),
        })
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shards.shard_count()
    }

    pub fn shard_for(&self, tp: &TopicPartition) -> Option<ShardId> {
        self.inner.routes.read().ok()?.get(tp).copied()
    }

    /// Every placed partition (offline ones included) and its shard, sorted by partition.
    pub fn partitions(&self) -> Vec<(TopicPartition, ShardId)> {
        let routes = self
            .inner
            .routes
            .read()
            .map(|r| r.clone())
            .unwrap_or_default();
        let mut partitions: Vec<_> = routes.iter().map(|(tp, s)| (tp.clone(), *s)).collect();
        partitions.sort();
        partitions
    }

    /// Publishes the placement table to the routing snapshot after a change.
    fn publish_routes(&self, placement: &Placement) {
        if let Ok(mut routes) = self.inner.routes.write() {
            *routes = routes_of(placement);
        }
    }

    /// Partitions that failed to open at start, with the reason.
    pub fn offline_partitions(&self) -> Vec<(TopicPartition, String)> {
        self.inner
            .offline
            .read()
            .map(|o| o.clone())
            .unwrap_or_default()
    }

    /// Runs `f` on `shard`'s thread and returns its result. Bounded queue; `ShardGone` after
    /// shutdown. Called from the target shard itself, it skips the queue.
    pub async fn invoke_on<R, F>(&self, shard: ShardId, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&ShardContext) -> LocalBoxFuture<'static, R> + Send + 'static,
    {
        Ok(self.inner.shards.invoke_on(shard, f).await?)
    }

    /// Starts a long-lived task on `shard` (the server's acceptor and its connections).
    pub fn spawn_on<F>(&self, shard: ShardId, f: F) -> Result<(), EngineError>
    where
        F: FnOnce(&ShardContext) -> LocalBoxFuture<'static, ()> + Send + 'static,
    {
        Ok(self.inner.shards.spawn_on(shard, f)?)
    }

    fn route(&self, tp: &TopicPartition) -> Result<ShardId, EngineError> {
        if let Some(shard) = self.shard_for(tp) {
            let offline = self.inner.offline.read().ok().and_then(|o| {
                o.iter()
                    .find(|(name, _)| name == tp)
                    .map(|(_, reason)| reason.clone())
            });
            return match offline {
                Some(reason) => Err(EngineError::PartitionOffline {
                    partition: tp.clone(),
                    reason,
                }),
                None => Ok(shard),
            };
        }
        Err(EngineError::UnknownPartition(tp.clone()))
    }

    /// Runs `f` with the owning shard's context.
    async fn on_owner<R, F>(&self, tp: &TopicPartition, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(ShardContext) -> LocalBoxFuture<'static, R> + Send + 'static,
    {
        let shard = self.route(tp)?;
        self.invoke_on(shard, move |context| f(context.clone()))
            .await
    }

    /// Runs the synchronous `f` on `tp`'s owning shard and hands back its answer.
    async fn call_on_owner<R, E, F>(&self, tp: &TopicPartition, f: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<EngineError> + Send + 'static,
        F: FnOnce(&ShardContext, &TopicPartition) -> Result<R, E> + Send + 'static,
    {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            let result = f(&context, &name);
            Box::pin(async move { result })
        })
        .await?
    }

    /// Deletes a partition and its data. In-flight appends finish first; readers holding
    /// slices keep reading the unlinked files.
    pub async fn delete_partition(&self, tp: &TopicPartition) -> Result<(), EngineError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            Box::pin(async move { partition_table::delete_partition(&context, &name).await })
        })
        .await??;
        if let Ok(mut placement) = self.inner.placement.lock() {
            let removed = placement.remove(tp);
            self.publish_routes(&placement);
            removed?;
        }
        Ok(())
    }

    pub async fn set_config(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<(), EngineError> {
        self.call_on_owner(tp, move |context, name| {
            partition_table::set_config(context, name, config)
        })
        .await
    }

    /// Kafka's DeleteRecords: records below `offset` stop being readable and the segments
    /// wholly below it are deleted. `offset` may not pass the high watermark. Returns the new
    /// log start offset. (The group coordinator uses it to drop what a snapshot superseded.)
    pub async fn delete_records_before(
        &self,
        tp: &TopicPartition,
        offset: i64,
    ) -> Result<i64, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            partition_table::delete_records_before(context, name, offset)
        })
        .await
    }

    /// `records` holds one or more RecordBatch v2 batches exactly as the producer sent them.
    /// Resolves when they are durable per the partition's flush policy. A uniquely owned
    /// buffer is rewritten in place; a slice of a shared frame is copied once.
    pub async fn append(
        &self,
        tp: &TopicPartition,
        records: Bytes,
    ) -> Result<AppendOutcome, AppendError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            Box::pin(async move { partition_table::append(&context, &name, records).await })
        })
        .await?
    }

    pub async fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: u32,
    ) -> Result<ReadOutcome, ReadError> {
        let name = tp.clone();
        self.on_owner(tp, move |context| {
            let result =
                partition_table::read(&context, &name, offset, max_bytes, ReadBound::HighWatermark);
            Box::pin(async move { result })
        })
        .await?
    }

    pub async fn offsets(&self, tp: &TopicPartition) -> Result<PartitionOffsets, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            partition_table::offsets(context, name)
        })
        .await
    }

    /// The first offset whose timestamp is at or after `timestamp_ms`, with that timestamp.
    pub async fn offset_for_timestamp(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, EngineError> {
        let name = tp.clone();
        let result = self
            .on_owner(tp, move |context| {
                let result = partition_table::offset_for_timestamp(&context, &name, timestamp_ms);
                Box::pin(async move { result })
            })
            .await?;
        result.map_err(|error| match error {
            ReadError::Engine(error) => error,
            ReadError::Log(error) => EngineError::Io {
                partition: tp.clone(),
                source: std::io::Error::other(error.to_string()),
            },
        })
    }

    /// Changes whenever the high watermark moves: Fetch long-polls on it.
    pub async fn watch_high_watermark(
        &self,
        tp: &TopicPartition,
    ) -> Result<watch::Receiver<i64>, EngineError> {
        self.call_on_owner(tp, move |context, name| {
            partition_table::watch_high_watermark(context, name)
        })
        .await
    }

    /// Stops accepting calls, then stops shards in reverse order of start; each finishes its
    /// queued calls and in-flight commits, then syncs and checkpoints every log.
    pub async fn shutdown(self) {
        self.inner.shards.shutdown().await;
    }
}

/// The init each shard runs at start: open its partitions, start its flusher and timers, and
/// register the shutdown hook that syncs and checkpoints its logs.
fn shard_init(
    config: &EngineConfig,
    per_shard: Arc<Vec<Vec<TopicPartition>>>,
    offline: Arc<Mutex<Vec<(TopicPartition, String)>>>,
) -> ShardInit {
    let data_dir = config.data_dir.clone();
    let log_config = config.default_log_config.clone();
    let mode = config.default_high_watermark_mode;
    let retention_interval = Duration::from_millis(config.retention_check_interval_ms.max(1));
    Arc::new(move |context: &ShardContext| {
        spawn_flusher(context);
        let names = per_shard
            .get(context.shard_id().0)
            .cloned()
            .unwrap_or_default();
        let opened = partition_table::open_partitions(
            context,
            &data_dir,
            names.clone(),
            log_config.clone(),
            mode,
        );
        for (tp, outcome) in names.into_iter().zip(opened) {
            if let Err(error) = outcome {
                tracing::error!(partition = %tp, %error, "partition failed to open; it is offline");
                if let Ok(mut offline) = offline.lock() {
                    offline.push((tp, error.to_string()));
                }
            }
        }
        spawn_every(
            context,
            retention_interval,
            partition_table::apply_retention,
        );
        spawn_every(
            context,
            Duration::from_millis(CHECKPOINT_INTERVAL_MS),
            partition_table::checkpoint_all,
        );
        let hook_context = context.clone();
        context.on_shutdown(move || {
            Box::pin(async move { partition_table::close_all(&hook_context).await })
        });
        Box::pin(async { Ok(()) })
    })
}

/// A shard-local timer task; it ends when the shard's `LocalSet` is dropped.
fn spawn_every(context: &ShardContext, period: Duration, work: fn(&ShardContext)) {
    let context = context.clone();
    tokio::task::spawn_local(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            context.run_guarded(|| work(&context));
        }
    });
}

fn routes_of(placement: &Placement) -> Routes {
    Arc::new(placement.partitions().into_iter().collect())
}

fn list_partition_dirs(data_dir: &Path) -> Result<Vec<TopicPartition>, EngineError> {
    let entries = std::fs::read_dir(data_dir).map_err(|source| EngineError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if let Some(tp) = entry
            .file_name()
            .to_str()
            .and_then(TopicPartition::from_dir_name)
        {
            found.push(tp);
        }
    }
    Ok(found)
}

/// Topic names become folder names: only Kafka's legal characters, so a name can never
/// climb out of the data dir.
fn validate_name(tp: &TopicPartition) -> Result<(), EngineError> {
    let invalid = |reason| EngineError::InvalidPartition {
        partition: tp.clone(),
        reason,
    };
    let topic: &str = &tp.topic;
    if topic.is_empty() || topic == "." || topic == ".." {
        return Err(invalid(
            "topic must be a non-empty name other than . and ..",
        ));
    }
    if topic.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(invalid("topic is longer than 249 characters"));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid("topic may only hold [a-zA-Z0-9._-]"));
    }
    if tp.partition < 0 {
        return Err(invalid("partition index is negative"));
    }
    Ok(())
}
