//! Each shard's replication state: a slot per local replica of a replicated partition, and
//! a fetch loop per leader node its followers fetch from. Shard-local (`thread_local!`): a
//! partition is only ever touched by its owning shard, so nothing here is shared or locked.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use spate_cluster::image::{PartitionState, TopicImage};
use spate_cluster::replication::{
    EpochCache, FollowerReplica, LeaderReplica, LeaderStart, Role, Transition,
};
use spate_cluster::{ClusterImage, NO_LEADER, NodeId};
use spate_engine::{HighWatermarkMode, ShardContext, TopicPartition};

use super::fetcher::{self, Fetcher, FollowerSlot};
use super::leader::{self, LeaderSlot, local_of};
use super::{ReplicationContext, is_replicated};

/// What this shard holds for one local replica.
#[derive(Clone)]
enum Slot {
    /// A replicated partition whose role waits until this node's own registration is in the
    /// image: until then it may still be named leader of an epoch it led before a restart,
    /// with a log that has since lost its unsynced tail. Its high watermark is the
    /// checkpointed one; nothing is appended or fetched.
    Waiting,
    Leader(Rc<LeaderSlot>),
    Follower(Rc<FollowerSlot>),
}

thread_local! {
    static SLOTS: RefCell<HashMap<TopicPartition, Slot>> = RefCell::new(HashMap::new());
    static FETCHERS: RefCell<HashMap<NodeId, Rc<Fetcher>>> = RefCell::new(HashMap::new());
}

/// The leader slot of `tp`, if this shard leads it.
pub(super) fn leader(tp: &TopicPartition) -> Option<Rc<LeaderSlot>> {
    SLOTS.with(|slots| match slots.borrow().get(tp) {
        Some(Slot::Leader(slot)) => Some(slot.clone()),
        _ => None,
    })
}

/// Where leadership of `tp` went after the slot `old` stopped.
pub(super) enum Successor {
    /// This node leads it again, in a newer tenure.
    Ready(Rc<LeaderSlot>),
    /// The next role is not taken yet (`old` is still in place, or the role waits).
    NotYet,
    /// This node follows it, or holds no replica of it, now.
    Gone,
}

pub(super) fn successor(tp: &TopicPartition, old: &Rc<LeaderSlot>) -> Successor {
    SLOTS.with(|slots| match slots.borrow().get(tp) {
        Some(Slot::Leader(slot)) if Rc::ptr_eq(slot, old) => Successor::NotYet,
        Some(Slot::Leader(slot)) if slot.stopped.get() => Successor::NotYet,
        Some(Slot::Leader(slot)) => Successor::Ready(slot.clone()),
        Some(Slot::Waiting) => Successor::NotYet,
        Some(Slot::Follower(_)) | None => Successor::Gone,
    })
}

/// Whether this shard treats `tp` as replicated (it has a slot of any kind for it).
pub(super) fn is_tracked(tp: &TopicPartition) -> bool {
    SLOTS.with(|slots| slots.borrow().contains_key(tp))
}

/// Forgets `fetcher` once its loop ends (unless another took its place).
pub(super) fn remove_fetcher(leader: NodeId, fetcher: &Rc<Fetcher>) {
    FETCHERS.with(|fetchers| {
        let mut fetchers = fetchers.borrow_mut();
        if fetchers
            .get(&leader)
            .is_some_and(|f| Rc::ptr_eq(f, fetcher))
        {
            fetchers.remove(&leader);
        }
    });
}

fn stop(slot: &Slot) {
    match slot {
        Slot::Leader(s) => s.stop(),
        Slot::Follower(s) => {
            s.stopped.set(true);
            wake_fetcher(s.state.borrow().leader());
        }
        Slot::Waiting => {}
    }
}

fn wake_fetcher(leader: NodeId) {
    FETCHERS.with(|fetchers| {
        if let Some(f) = fetchers.borrow().get(&leader) {
            f.wake.notify_one();
        }
    });
}

/// Makes this shard's slots match `image` (see [`super::apply_roles`]). `caught_up`: the
/// image holds this process's own registration, so the roles it names are safe to take.
pub(super) async fn apply_roles(
    shard: &ShardContext,
    context: &Arc<ReplicationContext>,
    image: &Arc<ClusterImage>,
    caught_up: bool,
) {
    let node = context.node_id;
    let local: Vec<TopicPartition> = context
        .engine
        .partitions()
        .into_iter()
        .filter(|(_, owner)| *owner == shard.shard_id())
        .map(|(tp, _)| tp)
        .collect();
    // Slots of partitions this shard no longer holds.
    let gone: Vec<(TopicPartition, Slot)> = SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let gone: Vec<TopicPartition> = slots
            .keys()
            .filter(|tp| !local.contains(tp))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|tp| slots.remove(&tp).map(|s| (tp, s)))
            .collect()
    });
    for (_, slot) in &gone {
        stop(slot);
    }
    for tp in local {
        let found = image.topic(&tp.topic).and_then(|topic| {
            topic
                .partition(tp.partition)
                .map(|state| (topic.clone(), state.clone()))
        });
        let current = SLOTS.with(|slots| slots.borrow().get(&tp).cloned());
        let Some((topic, state)) = found.filter(|(_, s)| s.replicas.contains(&node)) else {
            // Not a replica here any more (the reconciler deletes the log once it is safe).
            if let Some(slot) = SLOTS.with(|slots| slots.borrow_mut().remove(&tp)) {
                stop(&slot);
            }
            continue;
        };
        if !is_replicated(&state) {
            if let Some(slot) = SLOTS.with(|slots| slots.borrow_mut().remove(&tp)) {
                stop(&slot);
                set_mode(context, &tp, HighWatermarkMode::Local).await;
            }
            continue;
        }
        if current.is_none() {
            set_mode(context, &tp, HighWatermarkMode::Replicated).await;
        }
        if !caught_up {
            if current.is_none() {
                SLOTS.with(|slots| slots.borrow_mut().insert(tp.clone(), Slot::Waiting));
            }
            continue;
        }
        let next = update(context, image, &tp, &topic, &state, current).await;
        SLOTS.with(|slots| slots.borrow_mut().insert(tp, next));
    }
}

/// The slot `tp` should have now, reusing `current` when its role and tenure hold.
async fn update(
    context: &Arc<ReplicationContext>,
    image: &Arc<ClusterImage>,
    tp: &TopicPartition,
    topic: &TopicImage,
    state: &PartitionState,
    current: Option<Slot>,
) -> Slot {
    let now = Instant::now();
    let node = context.node_id;
    match (&current, Role::of(node, state)) {
        (Some(Slot::Leader(slot)), Role::Leader) => {
            let transition = {
                let mut replica = slot.state.borrow_mut();
                replica.set_min_insync_replicas(now, context.min_insync_replicas(topic));
                replica.on_partition_state(now, state, &**image)
            };
            if transition != Transition::Rebuild {
                slot.wake.notify_one();
                return Slot::Leader(slot.clone());
            }
        }
        (Some(Slot::Follower(slot)), Role::Follower { leader }) => {
            let before = slot.state.borrow().leader();
            let transition = slot.state.borrow_mut().on_partition_state(state);
            if transition != Transition::Rebuild {
                if before != leader {
                    move_follower(context, slot, before, leader);
                }
                wake_fetcher(leader);
                return Slot::Follower(slot.clone());
            }
        }
        _ => {}
    }
    if let Some(old) = &current {
        stop(old);
    }
    let built = match Role::of(node, state) {
        Role::Leader => build_leader(context, tp, topic, state).await,
        Role::Follower { leader } => build_follower(context, image, tp, topic, state, leader).await,
        Role::NotReplica => return Slot::Waiting,
    };
    built.unwrap_or_else(|e| {
        tracing::error!(partition = %tp, error = %e, "cannot take the replica's role; it stays idle until the next metadata change");
        Slot::Waiting
    })
}

async fn build_leader(
    context: &Arc<ReplicationContext>,
    tp: &TopicPartition,
    topic: &TopicImage,
    state: &PartitionState,
) -> Result<Slot, String> {
    let engine = &context.engine;
    // KAFKA-7415: the tenure's start goes into the epoch cache before anything is served.
    let epoch_start = engine
        .assign_leader_epoch(tp, state.leader_epoch)
        .await
        .map_err(|e| e.to_string())?;
    let offsets = engine.watch_offsets(tp).await.map_err(|e| e.to_string())?;
    let marks = *offsets.borrow();
    let epochs = epoch_cache(context, tp).await?;
    let replica = LeaderReplica::new(
        Instant::now(),
        context.node_id,
        state,
        LeaderStart {
            local: local_of(&marks),
            high_watermark: marks.high_watermark,
            epoch_start_offset: epoch_start,
            min_insync_replicas: context.min_insync_replicas(topic),
        },
        &context.settings.config,
        &epochs.view(marks.written_end),
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(partition = %tp, leader_epoch = state.leader_epoch, epoch_start, isr = ?state.isr, high_watermark = marks.high_watermark, "leading the partition");
    let slot = LeaderSlot::new(
        tp.clone(),
        topic.id,
        replica,
        epochs,
        offsets,
        context.clone(),
    );
    tokio::task::spawn_local(leader::run(slot.clone()));
    Ok(Slot::Leader(slot))
}

async fn build_follower(
    context: &Arc<ReplicationContext>,
    image: &Arc<ClusterImage>,
    tp: &TopicPartition,
    topic: &TopicImage,
    state: &PartitionState,
    leader: NodeId,
) -> Result<Slot, String> {
    let engine = &context.engine;
    let broker_epoch = image
        .broker(context.node_id)
        .map(|b| b.broker_epoch)
        .ok_or("this node is not registered")?;
    let offsets = engine.watch_offsets(tp).await.map_err(|e| e.to_string())?;
    let marks = *offsets.borrow();
    let epochs = epoch_cache(context, tp).await?;
    let replica = FollowerReplica::new(
        context.node_id,
        broker_epoch,
        state,
        local_of(&marks),
        marks.high_watermark,
        &context.settings.config,
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(partition = %tp, leader, leader_epoch = state.leader_epoch, log_end = marks.written_end, "following the partition");
    let slot = FollowerSlot::new(tp.clone(), topic.id, replica, epochs, offsets);
    if leader != NO_LEADER {
        join_fetcher(context, &slot, leader);
    }
    Ok(Slot::Follower(slot))
}

/// Moves a follower to the fetch loop of its new leader.
fn move_follower(
    context: &Arc<ReplicationContext>,
    slot: &Rc<FollowerSlot>,
    from: NodeId,
    to: NodeId,
) {
    FETCHERS.with(|fetchers| {
        if let Some(f) = fetchers.borrow().get(&from) {
            f.partitions.borrow_mut().remove(&slot.tp);
            f.wake.notify_one();
        }
    });
    if to != NO_LEADER {
        join_fetcher(context, slot, to);
    }
}

fn join_fetcher(context: &Arc<ReplicationContext>, slot: &Rc<FollowerSlot>, leader: NodeId) {
    let fetcher = FETCHERS.with(|fetchers| {
        let mut fetchers = fetchers.borrow_mut();
        if let Some(f) = fetchers.get(&leader) {
            return f.clone();
        }
        let f = Fetcher::new(leader, context.clone());
        fetchers.insert(leader, f.clone());
        f.partitions
            .borrow_mut()
            .insert(slot.tp.clone(), slot.clone());
        tokio::task::spawn_local(fetcher::run(f.clone()));
        f
    });
    fetcher
        .partitions
        .borrow_mut()
        .insert(slot.tp.clone(), slot.clone());
    fetcher.wake.notify_one();
}

/// A copy of the partition's epoch cache.
async fn epoch_cache(
    context: &ReplicationContext,
    tp: &TopicPartition,
) -> Result<EpochCache, String> {
    let entries = context
        .engine
        .epoch_entries(tp)
        .await
        .map_err(|e| e.to_string())?;
    let mut cache = EpochCache::new();
    for entry in entries {
        cache.assign(entry.epoch, entry.start_offset);
    }
    Ok(cache)
}

async fn set_mode(context: &ReplicationContext, tp: &TopicPartition, mode: HighWatermarkMode) {
    if let Err(e) = context.engine.set_high_watermark_mode(tp, mode).await {
        tracing::warn!(partition = %tp, ?mode, error = %e, "cannot switch the high watermark mode");
    }
}
