//! The coordinators that live on this shard, and the timer that drives their deadlines.
//!
//! Thread-local on purpose: a coordinator belongs to its shard's thread and is only reached
//! through `invoke_on`, so it needs neither `Send` nor a lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use spate_coordinator::{Coordinator, CoordinatorConfig, ErrorCode};
use spate_engine::{Engine, ShardContext, TopicPartition};

use super::offsets_log;
use super::partition::{PartitionCoordinator, now_ms};

/// How often each shard fires its coordinators' due deadlines (session and rebalance
/// timeouts). Timeouts are seconds long; 100 ms keeps them accurate to a few percent.
const TICK_INTERVAL_MS: u64 = 100;

/// A loaded coordinator and the leader epoch of its partition when it was loaded.
struct Loaded {
    leader_epoch: i32,
    coordinator: Rc<PartitionCoordinator>,
}

thread_local! {
    static COORDINATORS: RefCell<BTreeMap<i32, Loaded>> = const { RefCell::new(BTreeMap::new()) };
    /// Whether this shard's tick task runs (started with the first coordinator, once).
    static TICKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This shard's coordinator for `partition` of `__consumer_offsets`.
pub(super) fn lookup(partition: i32) -> Result<Rc<PartitionCoordinator>, ErrorCode> {
    COORDINATORS
        .with(|c| c.borrow().get(&partition).map(|l| l.coordinator.clone()))
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// Every coordinator on this shard.
pub(super) fn all() -> Vec<Rc<PartitionCoordinator>> {
    COORDINATORS.with(|c| c.borrow().values().map(|l| l.coordinator.clone()).collect())
}

/// The (partition, leader epoch) of every coordinator loaded on this shard.
pub(super) fn loaded() -> Vec<(i32, i32)> {
    COORDINATORS.with(|c| {
        c.borrow()
            .iter()
            .map(|(p, l)| (*p, l.leader_epoch))
            .collect()
    })
}

/// Unloads every coordinator whose (partition, leader epoch) is not in `keep`; returns the
/// partitions unloaded. Requests already running keep their `Rc` until they finish; waiting
/// members get COORDINATOR_NOT_AVAILABLE and look the coordinator up again.
pub(super) fn retain(keep: &BTreeSet<(i32, i32)>) -> Vec<i32> {
    COORDINATORS.with(|c| {
        let mut map = c.borrow_mut();
        let gone: Vec<i32> = map
            .iter()
            .filter(|(p, l)| !keep.contains(&(**p, l.leader_epoch)))
            .map(|(p, _)| *p)
            .collect();
        for partition in &gone {
            map.remove(partition);
        }
        gone
    })
}

/// Reads `tp` back into a fresh coordinator and registers it on this shard; starts the
/// shard's timer with the first one. Returns the number of records replayed.
pub(super) async fn load(
    context: ShardContext,
    engine: Engine,
    tp: TopicPartition,
    config: CoordinatorConfig,
    leader_epoch: i32,
) -> Result<u64, String> {
    let mut coordinator = Coordinator::new(config);
    let replayed =
        offsets_log::replay(&engine, &tp, |record| coordinator.load_record(record)).await?;
    coordinator.finish_loading(now_ms());
    let partition = tp.partition;
    let entry = Rc::new(PartitionCoordinator::new(
        tp,
        engine,
        context.clone(),
        coordinator,
        replayed,
    ));
    COORDINATORS.with(|c| {
        c.borrow_mut().insert(
            partition,
            Loaded {
                leader_epoch,
                coordinator: entry,
            },
        )
    });
    let first = !TICKING.with(|t| t.replace(true));
    if first {
        context.spawn(tick_forever(context.clone()));
    }
    Ok(replayed)
}

async fn tick_forever(context: ShardContext) {
    let mut shutdown = context.shutdown_signal();
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        for coordinator in all() {
            coordinator.with(|c, now| c.tick(now));
        }
    }
}
