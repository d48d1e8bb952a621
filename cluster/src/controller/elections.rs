//! Leader elections an operator asks for (ElectLeaders, KIP-460) and the periodic
//! preferred-leader rebalance (`auto.leader.rebalance.enable`).
//!
//! - **Preferred**: the first replica in assignment order leads, if it is live and in the
//!   ISR (`PREFERRED_LEADER_NOT_AVAILABLE` otherwise, `ELECTION_NOT_NEEDED` if it leads).
//! - **Unclean**: only for a leaderless partition. A live ISR member is taken if there is
//!   one (a clean election); otherwise the first live replica in assignment order leads,
//!   the ISR becomes that replica alone, and the partition is `Recovering` (KIP-704).
//!   Records acknowledged on the lost ISR may then be gone, and their offsets are reused;
//!   followers truncate to the new leader by epoch, and count it
//!   ([`crate::replication::FollowerReplica::truncations_below_high_watermark`]).
//!
//! Kafka's `ReplicationControlManager.electLeader` and the ZooKeeper controller's
//! `checkAndTriggerAutoLeaderRebalance` (the one that reads
//! `leader.imbalance.per.broker.percentage`).

use std::collections::{BTreeMap, BTreeSet};

use crate::image::{ClusterImage, TopicImage};
use crate::records::{LeaderRecoveryState, RecordBody};
use crate::topic_id::TopicId;
use crate::{NO_LEADER, NodeId};

use super::partition_change::{Target, is_live, partition_of};

/// Kafka's `leader.imbalance.per.broker.percentage` default: a broker whose preferred
/// partitions are led elsewhere for more than this share gets them back.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE: u32 = 10;

/// Elections one rebalance run makes at most (KRaft's `maxElectionsPerImbalance`): each is
/// a metadata record and a leadership change every client of the partition notices, so a
/// large cluster moves its leaders over several runs instead of one burst.
pub const REBALANCE_ELECTIONS_MAX: usize = 1000;

/// ElectLeaders' election type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    Preferred,
    Unclean,
}

/// Why a partition's election did not happen. Each maps to one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("the partition does not exist")]
    UnknownTopicOrPartition,
    #[error("the partition already has the leader asked for")]
    ElectionNotNeeded,
    #[error("the preferred replica is not live or not in the ISR")]
    PreferredLeaderNotAvailable,
    #[error("no live replica can lead")]
    EligibleLeadersNotAvailable,
}

/// The records of an ElectLeaders request, and each partition's result (the new leader).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ElectionOutcome {
    pub records: Vec<RecordBody>,
    pub results: Vec<(TopicId, i32, Result<NodeId, ElectionError>)>,
}

/// ElectLeaders for `partitions` (a partition listed twice is elected once).
pub fn elect_leaders(
    image: &ClusterImage,
    partitions: &[(TopicId, i32)],
    kind: ElectionKind,
) -> ElectionOutcome {
    let mut outcome = ElectionOutcome::default();
    let mut seen = BTreeSet::new();
    for &(topic_id, partition) in partitions {
        if !seen.insert((topic_id, partition)) {
            continue;
        }
        let result = match kind {
            ElectionKind::Preferred => elect_preferred(image, topic_id, partition),
            ElectionKind::Unclean => elect_unclean(image, topic_id, partition),
        };
        let result = result.map(|record| {
            let leader = match &record {
                RecordBody::PartitionChange {
                    leader: Some(leader),
                    ..
                } => *leader,
                _ => NO_LEADER,
            };
            outcome.records.push(record);
            leader
        });
        outcome.results.push((topic_id, partition, result));
    }
    outcome
}

fn elect_preferred(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
) -> Result<RecordBody, ElectionError> {
    let current =
        partition_of(image, topic_id, partition).ok_or(ElectionError::UnknownTopicOrPartition)?;
    let preferred = current
        .replicas
        .first()
        .copied()
        .ok_or(ElectionError::PreferredLeaderNotAvailable)?;
    if current.leader == preferred {
        return Err(ElectionError::ElectionNotNeeded);
    }
    if !current.isr.contains(&preferred) || !is_live(image)(preferred) {
        return Err(ElectionError::PreferredLeaderNotAvailable);
    }
    let target = Target {
        leader: preferred,
        ..Target::of(current)
    };
    target
        .record(topic_id, partition, current)
        .ok_or(ElectionError::ElectionNotNeeded)
}

fn elect_unclean(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
) -> Result<RecordBody, ElectionError> {
    let current =
        partition_of(image, topic_id, partition).ok_or(ElectionError::UnknownTopicOrPartition)?;
    if current.leader != NO_LEADER {
        return Err(ElectionError::ElectionNotNeeded);
    }
    let live = is_live(image);
    let mut target = Target::of(current);
    target.keep_or_elect_leader(&live);
    if target.leader == NO_LEADER {
        let chosen = current
            .replicas
            .iter()
            .copied()
            .find(|&r| live(r))
            .ok_or(ElectionError::EligibleLeadersNotAvailable)?;
        target.leader = chosen;
        target.isr = vec![chosen];
        target.recovery = LeaderRecoveryState::Recovering;
    }
    target
        .record(topic_id, partition, current)
        .ok_or(ElectionError::EligibleLeadersNotAvailable)
}

/// The unclean elections `unclean.leader.election.enable` allows: every leaderless
/// partition of a topic `enabled` says allows it, whose ISR has no live member but which has
/// a live replica, gets one as leader, alone in its ISR and `Recovering` (the controller runs
/// this when brokers are fenced or return, after the clean elections).
pub fn unclean_elections(
    image: &ClusterImage,
    enabled: &dyn Fn(&TopicImage) -> bool,
) -> Vec<RecordBody> {
    let mut records = Vec::new();
    for topic in image.topics().filter(|t| enabled(t)) {
        for (index, partition) in (0..).zip(&topic.partitions) {
            if partition.leader == NO_LEADER {
                records.extend(elect_unclean(image, topic.id, index).ok());
            }
        }
    }
    records
}

/// The preferred-leader elections `auto.leader.rebalance.enable` makes: for every broker
/// whose share of preferred partitions led by someone else is above `imbalance_percent`,
/// each such partition whose preferred replica is live and in the ISR gets it as leader.
/// Partitions being reassigned are left alone; at most [`REBALANCE_ELECTIONS_MAX`].
pub fn preferred_leader_rebalance(image: &ClusterImage, imbalance_percent: u32) -> Vec<RecordBody> {
    // preferred broker → (partitions it prefers, of which led by another)
    let mut by_broker: BTreeMap<NodeId, (u64, Vec<(TopicId, i32)>)> = BTreeMap::new();
    for topic in image.topics() {
        for (index, partition) in (0..).zip(&topic.partitions) {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let entry = by_broker.entry(preferred).or_default();
            entry.0 += 1;
            if partition.leader != preferred {
                entry.1.push((topic.id, index));
            }
        }
    }
    let mut records = Vec::new();
    for (total, elsewhere) in by_broker.into_values() {
        let imbalanced = (elsewhere.len() as u64) * 100 > total * u64::from(imbalance_percent);
        if !imbalanced {
            continue;
        }
        for (topic_id, partition) in elsewhere {
            if records.len() >= REBALANCE_ELECTIONS_MAX {
                return records;
            }
            let reassigning =
                partition_of(image, topic_id, partition).is_none_or(|p| p.is_reassigning());
            if reassigning {
                continue;
            }
            records.extend(elect_preferred(image, topic_id, partition).ok());
        }
    }
    records
}
