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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use spate_cluster::ClusterImage;
use spate_coordinator::records::{STRING_LENGTH_MAX_BYTES, partition_for};
use spate_coordinator::{CoordinatorConfig, ErrorCode};
use spate_engine::{Engine, LocalBoxFuture, ShardId, TopicPartition};

use crate::broker::Broker;
use crate::cluster::rpc::{ControllerReplyBody, ControllerRequest, CreateTopicRequest};
use crate::handlers::error_code;
use crate::metadata::Leadership;
pub use partition::PartitionCoordinator;

/// Kafka's internal topic for committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Segments of `__consumer_offsets`: small (Kafka uses 100 MiB with log compaction), so the
/// space a snapshot frees (see `partition::snapshot`) is returned soon after.
const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "16777216";
/// How long the first group request waits for `__consumer_offsets` to be created and
/// applied here before answering COORDINATOR_NOT_AVAILABLE (clients retry).
const OFFSETS_TOPIC_CREATE_TIMEOUT_MS: u64 = 10_000;

/// Creates `__consumer_offsets` on first use. Shared by every shard; `Send + Sync`.
///
/// The topic is created on the first request that needs a coordinator, as Kafka does, so a
/// cluster nobody uses groups on carries no internal topic. Where each group's coordinator
/// runs follows the topic's leadership: the node that leads a group's partition loads its
/// coordinator ([`sync_coordinators`]); others answer NOT_COORDINATOR.
#[derive(Debug, Default)]
pub struct GroupRouter {
    creating: tokio::sync::Mutex<()>,
}

impl GroupRouter {
    /// The `__consumer_offsets` partition that owns `group_id`, once the topic exists. The
    /// partition count is the topic's (not the configured one: a changed setting must not
    /// move groups away from their offsets).
    pub fn partition_of(image: &ClusterImage, group_id: &str) -> Option<TopicPartition> {
        let partitions = image.topic(OFFSETS_TOPIC)?.partition_count();
        (partitions > 0)
            .then(|| TopicPartition::new(OFFSETS_TOPIC, partition_for(group_id, partitions)))
    }

    /// Makes sure `__consumer_offsets` exists (asking the controller to create it) and that
    /// this node has applied it.
    pub async fn ensure_started(&self, broker: &Broker) -> Result<(), ErrorCode> {
        if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let image = broker.metadata.image();
        let live = image.brokers().filter(|b| !b.fenced).count().max(1);
        let wanted = broker
            .config
            .cluster
            .offsets_topic_replication_factor
            .max(1);
        let replication_factor = i16::try_from(live).unwrap_or(i16::MAX).min(wanted);
        if usize::try_from(wanted).unwrap_or(0) > live {
            tracing::warn!(
                wanted,
                live,
                "creating {OFFSETS_TOPIC} with replication factor {replication_factor}: only {live} broker(s) are live (offsets.topic.replication.factor is {wanted})"
            );
        }
        let configs = offsets_topic_configs();
        let request = ControllerRequest::CreateTopics {
            topics: vec![CreateTopicRequest {
                name: OFFSETS_TOPIC.to_owned(),
                partition_count: broker.config.offsets_topic_partitions,
                replication_factor,
                assignments: None,
                configs,
            }],
            validate_only: false,
        };
        let timeout = Duration::from_millis(OFFSETS_TOPIC_CREATE_TIMEOUT_MS);
        let reply = broker.control.call(request, timeout).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}; consumer groups are unavailable until it exists");
            ErrorCode::CoordinatorNotAvailable
        })?;
        if let ControllerReplyBody::Topics(outcomes) = &reply.body {
            for (_, outcome) in outcomes {
                if let Err((code, message)) = outcome
                    && *code != error_code::TOPIC_ALREADY_EXISTS
                {
                    tracing::warn!(code, %message, "cannot create {OFFSETS_TOPIC}");
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
            }
        }
        broker.metadata.wait_for_offset(reply.offset, timeout).await;
        if broker.metadata.image().topic(OFFSETS_TOPIC).is_none() {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        tracing::info!(
            partitions = broker.config.offsets_topic_partitions,
            replication_factor,
            "created {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}

/// Runs `f` with the coordinator of `group_id`'s partition, on the shard that owns it.
///
/// `Err` is the error code to answer with: NOT_COORDINATOR when another node leads the
/// group's partition (the client looks the coordinator up again), COORDINATOR_NOT_AVAILABLE
/// when nobody does or its coordinator is not loaded (offline, loading, or stopping).
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
    let image = broker.metadata.image();
    let Some(tp) = GroupRouter::partition_of(&image, group_id) else {
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let leadership = image
        .topic(OFFSETS_TOPIC)
        .and_then(|t| t.partition(tp.partition))
        .map(|p| Leadership::of(p, broker.metadata.node_id()));
    match leadership {
        Some(Leadership::Local { .. }) => {}
        Some(Leadership::Remote { .. }) => return Err(ErrorCode::NotCoordinator),
        Some(Leadership::None { .. }) | None => return Err(ErrorCode::CoordinatorNotAvailable),
    }
    let engine = &broker.engine;
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
            .invoke_on(ShardId(shard), move |_| {
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

/// Loads the coordinators of the `__consumer_offsets` partitions this node leads in `image`
/// (replaying each from its log, on its owning shard, concurrently) and unloads the ones it
/// no longer leads. A partition whose leader epoch changed is reloaded: its log may have
/// changed under another leader.
pub async fn sync_coordinators(
    engine: &Engine,
    config: &CoordinatorConfig,
    image: &ClusterImage,
    node_id: spate_cluster::NodeId,
) {
    let led: BTreeSet<(i32, i32)> = image
        .topic(OFFSETS_TOPIC)
        .map(|topic| {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader == node_id)
                .map(|(i, p)| (i32::try_from(i).unwrap_or(i32::MAX), p.leader_epoch))
                .collect()
        })
        .unwrap_or_default();
    let mut loaded: BTreeSet<(i32, i32)> = BTreeSet::new();
    for shard in 0..engine.shard_count() {
        let keep = led.clone();
        let outcome = engine
            .invoke_on(ShardId(shard), move |_| {
                let unloaded = registry::retain(&keep);
                let kept = registry::loaded();
                Box::pin(async move { (unloaded, kept) })
            })
            .await;
        if let Ok((unloaded, kept)) = outcome {
            for partition in unloaded {
                tracing::info!(
                    partition,
                    "group coordinator unloaded: this node no longer leads its offsets partition"
                );
            }
            loaded.extend(kept);
        }
    }
    let to_load: Vec<(i32, i32)> = led.difference(&loaded).copied().collect();
    if to_load.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut loads = Vec::new();
    for (partition, epoch) in &to_load {
        let tp = TopicPartition::new(OFFSETS_TOPIC, *partition);
        let Some(shard) = engine.shard_for(&tp) else {
            tracing::error!(partition = %tp, "no shard holds this offsets partition; its groups are unavailable");
            continue;
        };
        let engine_for_shard = engine.clone();
        let group_config = config.clone();
        let epoch = *epoch;
        loads.push(engine.invoke_on(shard, move |ctx| {
            let ctx = ctx.clone();
            Box::pin(
                async move { registry::load(ctx, engine_for_shard, tp, group_config, epoch).await },
            )
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
        partitions = to_load.len(),
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "group coordinators loaded"
    );
}

/// The configs `__consumer_offsets` is created with: kept forever (its coordinators
/// compact it themselves, see `partition::snapshot`), in small segments.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("retention.ms".to_owned(), "-1".to_owned()),
        ("retention.bytes".to_owned(), "-1".to_owned()),
        (
            "segment.bytes".to_owned(),
            OFFSETS_TOPIC_SEGMENT_BYTES.to_owned(),
        ),
    ])
}
