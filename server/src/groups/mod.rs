//! Consumer groups: where each group's coordinator lives, and how a handler reaches it.
//!
//! A group belongs to one partition of `__consumer_offsets` (Kafka's hash of the group id),
//! and its coordinator ([`spate_coordinator::Coordinator`], sans-IO) lives on the shard that
//! owns that partition. Handlers run on the connection's shard and hop to the owner with
//! [`on_owner`]; everything about a group then happens on one thread, in order, without
//! locks. The coordinator's records go to that same partition, so offsets are as durable as
//! any topic's data (`flush=always` by default) and are rebuilt from it at startup.

mod offsets_log;
pub mod partition;
mod registry;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use spate_coordinator::records::{STRING_LENGTH_MAX_BYTES, partition_for};
use spate_coordinator::{CoordinatorConfig, ErrorCode};
use spate_engine::{Engine, LocalBoxFuture, TopicPartition};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::metadata::MetadataStore;
pub use partition::PartitionCoordinator;

/// Kafka's internal topic for committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Segments of `__consumer_offsets`: small (Kafka uses 100 MiB with log compaction), so the
/// space a snapshot frees (see `partition::snapshot`) is returned soon after.
const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "16777216";

/// Finds a group's coordinator. Shared by every shard; `Send + Sync`.
///
/// `__consumer_offsets` is created on the first request that needs a coordinator, as Kafka
/// does, so a broker nobody uses groups on carries no internal topic.
#[derive(Debug, Default)]
pub struct GroupRouter {
    /// Partitions of `__consumer_offsets` as it exists on disk (not as configured: a
    /// changed setting must not move groups away from their offsets). Unset until it exists.
    partitions: OnceLock<i32>,
    creating: tokio::sync::Mutex<()>,
}

impl GroupRouter {
    /// The `__consumer_offsets` partition that owns `group_id`, once the topic exists.
    pub fn partition_of(&self, group_id: &str) -> Option<TopicPartition> {
        let partitions = *self.partitions.get()?;
        Some(TopicPartition::new(
            OFFSETS_TOPIC,
            partition_for(group_id, partitions),
        ))
    }

    /// Makes sure `__consumer_offsets` exists and its coordinators are loaded.
    pub async fn ensure_started(&self, broker: &Broker) -> Result<(), ErrorCode> {
        if self.partitions.get().is_some() {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        if self.partitions.get().is_some() {
            return Ok(());
        }
        let partitions = {
            let _admin = broker.admin_lock.lock().await;
            ensure_offsets_topic(
                &broker.engine,
                &broker.metadata,
                broker.config.offsets_topic_partitions,
            )
            .await
        }
        .map_err(|e| {
            tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}; consumer groups are unavailable");
            ErrorCode::CoordinatorNotAvailable
        })?;
        load_all(&broker.engine, &broker.config.groups, partitions).await;
        let _ = self.partitions.set(partitions);
        Ok(())
    }
}

/// Runs `f` with the coordinator of `group_id`'s partition, on the shard that owns it.
///
/// `Err` is the error code to answer with: COORDINATOR_NOT_AVAILABLE when the partition has
/// no coordinator (offline, or the broker is stopping).
pub async fn on_owner<R, F>(broker: &Broker, group_id: &str, f: F) -> Result<R, ErrorCode>
where
    R: Send + 'static,
    F: FnOnce(std::rc::Rc<PartitionCoordinator>) -> LocalBoxFuture<'static, R> + Send + 'static,
{
    // Stored records carry the group id as a Kafka string (at most 32,767 bytes); a longer
    // one could not be written back faithfully, so it is refused up front.
    if group_id.len() > STRING_LENGTH_MAX_BYTES {
        return Err(ErrorCode::InvalidGroupId);
    }
    broker.groups.ensure_started(broker).await?;
    let engine = &broker.engine;
    let Some(tp) = broker.groups.partition_of(group_id) else {
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let Some(shard) = engine.shard_for(&tp) else {
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let partition = tp.partition;
    let outcome = engine
        .invoke_on(
            shard,
            move |_| -> LocalBoxFuture<'static, Result<R, ErrorCode>> {
                match registry::lookup(partition) {
                    Ok(coordinator) => Box::pin(async move { Ok(f(coordinator).await) }),
                    Err(code) => Box::pin(async move { Err(code) }),
                }
            },
        )
        .await;
    match outcome {
        Ok(result) => result,
        Err(e) => {
            tracing::debug!(group = group_id, error = %e, "group coordinator unreachable");
            Err(ErrorCode::CoordinatorNotAvailable)
        }
    }
}

/// Runs `f` with every coordinator of every shard and collects the results (ListGroups).
pub async fn on_all<R, F>(engine: &Engine, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&PartitionCoordinator) -> R + Send + Sync + Clone + 'static,
{
    let mut results = Vec::new();
    for shard in 0..engine.shard_count() {
        let f = f.clone();
        let outcome = engine
            .invoke_on(spate_engine::ShardId(shard), move |_| {
                let found: Vec<R> = registry::all().iter().map(|c| f(c)).collect();
                Box::pin(async move { found })
            })
            .await;
        if let Ok(found) = outcome {
            results.extend(found);
        }
    }
    results
}

/// At startup: if `__consumer_offsets` exists, rebuilds every partition's coordinator from
/// its records (each on its owning shard) before the listeners open, so committed offsets
/// are there for the first request after a restart.
pub async fn start(
    engine: &Engine,
    metadata: &MetadataStore,
    config: &crate::ServerConfig,
) -> GroupRouter {
    let router = GroupRouter::default();
    if let Some(topic) = metadata.image().topic(OFFSETS_TOPIC) {
        if topic.partition_count != config.offsets_topic_partitions {
            tracing::warn!(
                existing = topic.partition_count,
                configured = config.offsets_topic_partitions,
                "offsets.topic.num.partitions differs from the existing {OFFSETS_TOPIC}; keeping the existing count (groups must not move away from their offsets)"
            );
        }
        load_all(engine, &config.groups, topic.partition_count).await;
        let _ = router.partitions.set(topic.partition_count);
    }
    router
}

/// Loads every partition's coordinator concurrently, each on its owning shard.
async fn load_all(engine: &Engine, config: &CoordinatorConfig, partitions: i32) {
    let started = std::time::Instant::now();
    let mut loads = Vec::new();
    for partition in 0..partitions {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let Some(shard) = engine.shard_for(&tp) else {
            tracing::error!(partition = %tp, "no shard owns this offsets partition; its groups are unavailable");
            continue;
        };
        let engine_for_shard = engine.clone();
        let group_config = config.clone();
        loads.push(engine.invoke_on(shard, move |ctx| {
            let ctx = ctx.clone();
            Box::pin(async move { registry::load(ctx, engine_for_shard, tp, group_config).await })
        }));
    }
    let mut records = 0u64;
    for load in loads {
        match load.await {
            Ok(Ok(count)) => records += count,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot load an offsets partition; its groups are unavailable")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load an offsets partition; its groups are unavailable")
            }
        }
    }
    tracing::info!(
        partitions,
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "group coordinators loaded"
    );
}

/// Creates `__consumer_offsets` (metadata first, then the engine's partitions, like any
/// topic) if it is missing; returns its partition count.
async fn ensure_offsets_topic(
    engine: &Engine,
    metadata: &MetadataStore,
    partitions: i32,
) -> Result<i32, ServerError> {
    if let Some(topic) = metadata.image().topic(OFFSETS_TOPIC) {
        return Ok(topic.partition_count);
    }
    let configs = BTreeMap::from([
        ("retention.ms".to_owned(), "-1".to_owned()),
        ("retention.bytes".to_owned(), "-1".to_owned()),
        (
            "segment.bytes".to_owned(),
            OFFSETS_TOPIC_SEGMENT_BYTES.to_owned(),
        ),
    ]);
    let topic = metadata.new_topic(OFFSETS_TOPIC, partitions, configs)?;
    let log_config = topic.log_config.clone();
    metadata.insert_topic(topic)?;
    let missing: Vec<TopicPartition> = (0..partitions)
        .map(|partition| TopicPartition::new(Arc::<str>::from(OFFSETS_TOPIC), partition))
        .filter(|tp| engine.shard_for(tp).is_none())
        .collect();
    for created in engine.create_partitions(missing, log_config).await? {
        created?;
    }
    tracing::info!(partitions, "created {OFFSETS_TOPIC}");
    Ok(partitions)
}
