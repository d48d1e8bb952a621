//! The controller's replication decisions (AlterPartition, ElectLeaders, unclean
//! elections, the preferred leader rebalance), checked by applying their records to an
//! image. Reassignments are in `reassignment_decisions.rs`.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::decisions::{ORDERS, alter, apply, cluster_with, fence, partition, set_partition};
use common::{Cluster, topic_id};
use spate_cluster::controller::alter_partition::{
    AlterPartition, AlterPartitionError, alter_partition,
};
use spate_cluster::controller::elections::{
    ElectionError, ElectionKind, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE, elect_leaders,
    preferred_leader_rebalance, unclean_elections,
};
use spate_cluster::replication::IsrRefusal;
use spate_cluster::{LeaderRecoveryState, NO_LEADER, NodeId, RecordBody, TopicId};

// ----- AlterPartition -----

#[test]
fn an_isr_change_bumps_the_partition_epoch_but_not_the_leader_epoch() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2]]);
    let before = partition(&cluster, 0);
    let records = alter_partition(&cluster.image, &alter(&cluster, 0, &[0, 1])).unwrap();
    apply(&mut cluster, records);
    let shrunk = partition(&cluster, 0);
    assert_eq!(shrunk.isr, [0, 1]);
    assert_eq!(shrunk.leader_epoch, before.leader_epoch);
    assert_eq!(shrunk.partition_epoch, before.partition_epoch + 1);
    let records = alter_partition(&cluster.image, &alter(&cluster, 0, &[0, 1, 2])).unwrap();
    apply(&mut cluster, records);
    assert_eq!(partition(&cluster, 0).isr, [0, 1, 2]);
    // Asking for the ISR it has writes nothing: the leader gets the partition as it is.
    assert_eq!(
        alter_partition(&cluster.image, &alter(&cluster, 0, &[0, 1, 2])),
        Ok(vec![])
    );
}

#[test]
fn alter_partition_refuses_stale_and_foreign_requests_with_kafkas_errors() {
    let cluster = cluster_with(4, &[&[0, 1, 2]]);
    let ok = alter(&cluster, 0, &[0, 1]);
    let cases: Vec<(AlterPartition, AlterPartitionError, IsrRefusal)> = vec![
        (
            AlterPartition {
                broker_epoch: ok.broker_epoch - 1,
                ..ok.clone()
            },
            AlterPartitionError::StaleBrokerEpoch {
                broker: 0,
                broker_epoch: ok.broker_epoch - 1,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                broker: 9,
                ..ok.clone()
            },
            AlterPartitionError::StaleBrokerEpoch {
                broker: 9,
                broker_epoch: ok.broker_epoch,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                partition: 5,
                ..ok.clone()
            },
            AlterPartitionError::UnknownTopicOrPartition {
                topic_id: topic_id(ORDERS),
                partition: 5,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                topic_id: topic_id(77),
                ..ok.clone()
            },
            AlterPartitionError::UnknownTopicOrPartition {
                topic_id: topic_id(77),
                partition: 0,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                partition_epoch: ok.partition_epoch + 1,
                ..ok.clone()
            },
            AlterPartitionError::NotController,
            IsrRefusal::Retry,
        ),
        (
            AlterPartition {
                leader_epoch: ok.leader_epoch + 1,
                ..ok.clone()
            },
            AlterPartitionError::NotController,
            IsrRefusal::Retry,
        ),
        (
            AlterPartition {
                leader_epoch: ok.leader_epoch - 1,
                ..ok.clone()
            },
            AlterPartitionError::FencedLeaderEpoch {
                found: ok.leader_epoch - 1,
                current: ok.leader_epoch,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                partition_epoch: ok.partition_epoch - 1,
                ..ok.clone()
            },
            AlterPartitionError::InvalidUpdateVersion {
                found: ok.partition_epoch - 1,
                current: ok.partition_epoch,
            },
            IsrRefusal::AwaitMetadata,
        ),
        (
            AlterPartition {
                broker: 1,
                broker_epoch: cluster.epoch(1),
                ..ok.clone()
            },
            AlterPartitionError::NotLeaderOrFollower {
                broker: 1,
                leader: 0,
            },
            IsrRefusal::AwaitMetadata,
        ),
    ];
    for (request, error, refusal) in cases {
        let refused = alter_partition(&cluster.image, &request).unwrap_err();
        assert_eq!(refused, error, "{request:?}");
        assert_eq!(refused.refusal(), refusal);
    }
    // Shapes Kafka calls INVALID_REQUEST: a member that is no replica, a repeat, no leader.
    for isr in [&[0, 1, 3][..], &[0, 1, 1], &[1, 2]] {
        let refused = alter_partition(&cluster.image, &alter(&cluster, 0, isr)).unwrap_err();
        assert!(
            matches!(refused, AlterPartitionError::InvalidRequest(_)),
            "{isr:?}: {refused:?}"
        );
    }
}

#[test]
fn alter_partition_refuses_members_that_are_fenced_shutting_down_or_restarted() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2]]);
    let records = alter_partition(&cluster.image, &alter(&cluster, 0, &[0, 1])).unwrap();
    apply(&mut cluster, records);
    let grow = alter(&cluster, 0, &[0, 1, 2]);
    // Node 2 restarted since the leader saw it fetch (KIP-903).
    let mut restarted = grow.clone();
    restarted.new_isr[2].broker_epoch = Some(cluster.epoch(2) - 1);
    let refused = alter_partition(&cluster.image, &restarted).unwrap_err();
    assert!(matches!(
        refused,
        AlterPartitionError::IneligibleReplica { node: 2, .. }
    ));
    assert_eq!(refused.refusal(), IsrRefusal::Ineligible);
    for (fenced, shutting_down) in [(true, false), (false, true)] {
        let mut c = cluster.clone();
        fence(&mut c, 2, fenced, shutting_down);
        let refused = alter_partition(&c.image, &grow).unwrap_err();
        assert!(
            matches!(
                refused,
                AlterPartitionError::IneligibleReplica { node: 2, .. }
            ),
            "{refused:?}"
        );
    }
    // An unchecked epoch (the leader never heard from it) is no reason to refuse.
    let mut unchecked = grow.clone();
    unchecked.new_isr[2].broker_epoch = None;
    assert!(alter_partition(&cluster.image, &unchecked).is_ok());
}

#[test]
fn a_recovering_partition_grows_its_isr_only_when_its_leader_marks_it_recovered() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2]]);
    fence(&mut cluster, 0, true, false);
    fence(&mut cluster, 1, true, false);
    fence(&mut cluster, 2, true, false);
    set_partition(&mut cluster, NO_LEADER, &[0]);
    fence(&mut cluster, 1, false, false);
    fence(&mut cluster, 2, false, false);
    let outcome = elect_leaders(
        &cluster.image,
        &[(topic_id(ORDERS), 0)],
        ElectionKind::Unclean,
    );
    apply(&mut cluster, outcome.records);
    let p = partition(&cluster, 0);
    assert_eq!(
        (p.leader, p.isr.clone(), p.leader_recovery_state),
        (1, vec![1], LeaderRecoveryState::Recovering)
    );
    let mut still_recovering = alter(&cluster, 0, &[1, 2]);
    assert_eq!(
        still_recovering.leader_recovery_state,
        LeaderRecoveryState::Recovering
    );
    assert!(matches!(
        alter_partition(&cluster.image, &still_recovering),
        Err(AlterPartitionError::InvalidRequest(_))
    ));
    still_recovering.leader_recovery_state = LeaderRecoveryState::Recovered;
    let records = alter_partition(&cluster.image, &still_recovering).unwrap();
    apply(&mut cluster, records);
    let p = partition(&cluster, 0);
    assert_eq!(
        (p.isr.clone(), p.leader_recovery_state),
        (vec![1, 2], LeaderRecoveryState::Recovered)
    );
    let mut back = alter(&cluster, 0, &[1]);
    back.leader_recovery_state = LeaderRecoveryState::Recovering;
    assert!(matches!(
        alter_partition(&cluster.image, &back),
        Err(AlterPartitionError::InvalidRequest(_))
    ));
}

// ----- ElectLeaders and the rebalance -----

#[test]
fn a_preferred_election_moves_leadership_to_the_first_replica_only_if_it_is_live_and_in_sync() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2], &[1, 2, 0], &[2, 0, 1]]);
    let all: Vec<(TopicId, i32)> = (0..3).map(|p| (topic_id(ORDERS), p)).collect();
    let outcome = elect_leaders(&cluster.image, &all, ElectionKind::Preferred);
    assert!(outcome.records.is_empty());
    assert!(
        outcome
            .results
            .iter()
            .all(|(_, _, r)| *r == Err(ElectionError::ElectionNotNeeded))
    );
    // Partition 0 moves to node 1 (0 leaves the ISR), then 0 returns to the ISR.
    set_partition(&mut cluster, 1, &[1, 2]);
    let outcome = elect_leaders(&cluster.image, &all[..1], ElectionKind::Preferred);
    assert_eq!(
        outcome.results[0].2,
        Err(ElectionError::PreferredLeaderNotAvailable)
    );
    set_partition(&mut cluster, 1, &[1, 2, 0]);
    fence(&mut cluster, 0, false, true);
    let outcome = elect_leaders(&cluster.image, &all[..1], ElectionKind::Preferred);
    assert_eq!(
        outcome.results[0].2,
        Err(ElectionError::PreferredLeaderNotAvailable),
        "shutting down"
    );
    fence(&mut cluster, 0, false, false);
    let before = partition(&cluster, 0);
    let outcome = elect_leaders(&cluster.image, &[all[0], all[0]], ElectionKind::Preferred);
    assert_eq!(
        outcome.results.len(),
        1,
        "a partition listed twice is elected once"
    );
    assert_eq!(outcome.results[0].2, Ok(0));
    apply(&mut cluster, outcome.records);
    let after = partition(&cluster, 0);
    assert_eq!(after.leader, 0);
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    let unknown = elect_leaders(
        &cluster.image,
        &[(topic_id(ORDERS), 9)],
        ElectionKind::Preferred,
    );
    assert_eq!(
        unknown.results[0].2,
        Err(ElectionError::UnknownTopicOrPartition)
    );
}

#[test]
fn an_unclean_election_is_only_for_leaderless_partitions_and_prefers_a_clean_one() {
    let mut cluster = cluster_with(3, &[&[0, 1, 2]]);
    let p0 = [(topic_id(ORDERS), 0)];
    let led = elect_leaders(&cluster.image, &p0, ElectionKind::Unclean);
    assert_eq!(led.results[0].2, Err(ElectionError::ElectionNotNeeded));
    // Leaderless with a live ISR member (2): a clean election, nothing marked.
    set_partition(&mut cluster, NO_LEADER, &[0, 2]);
    fence(&mut cluster, 0, true, false);
    let clean = elect_leaders(&cluster.image, &p0, ElectionKind::Unclean);
    assert_eq!(clean.results[0].2, Ok(2));
    let mut c = cluster.clone();
    apply(&mut c, clean.records);
    assert_eq!(
        partition(&c, 0).leader_recovery_state,
        LeaderRecoveryState::Recovered
    );
    assert_eq!(partition(&c, 0).isr, [0, 2]);
    // No live ISR member: the first live replica leads alone, recovering.
    fence(&mut cluster, 2, true, false);
    let unclean = elect_leaders(&cluster.image, &p0, ElectionKind::Unclean);
    assert_eq!(unclean.results[0].2, Ok(1));
    let mut c = cluster.clone();
    apply(&mut c, unclean.records);
    let p = partition(&c, 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    assert_eq!(p.leader_recovery_state, LeaderRecoveryState::Recovering);
    // Nobody live at all.
    fence(&mut cluster, 1, true, false);
    let none = elect_leaders(&cluster.image, &p0, ElectionKind::Unclean);
    assert_eq!(
        none.results[0].2,
        Err(ElectionError::EligibleLeadersNotAvailable)
    );
    assert!(none.records.is_empty());
}

#[test]
fn automatic_unclean_elections_happen_only_for_topics_that_enable_them() {
    let mut cluster = cluster_with(3, &[&[0, 1], &[1, 2]]);
    for index in 0..2 {
        let p = partition(&cluster, index);
        let last = p.isr[0];
        apply(
            &mut cluster,
            vec![RecordBody::PartitionChange {
                topic_id: topic_id(ORDERS),
                partition: index as i32,
                expected_partition_epoch: p.partition_epoch,
                leader: Some(NO_LEADER),
                isr: Some(vec![last]),
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                leader_recovery_state: None,
            }],
        );
        fence(&mut cluster, last, true, false);
    }
    assert!(unclean_elections(&cluster.image, &|_| false).is_empty());
    let records = unclean_elections(&cluster.image, &|t| &*t.name == "orders");
    assert_eq!(
        records.len(),
        1,
        "partition 1 has a live replica (2); partition 0's (1) is fenced"
    );
    apply(&mut cluster, records);
    let p1 = partition(&cluster, 1);
    assert_eq!(
        (p1.leader, p1.isr.clone(), p1.leader_recovery_state),
        (2, vec![2], LeaderRecoveryState::Recovering)
    );
}

#[test]
fn the_preferred_rebalance_acts_only_for_brokers_above_the_imbalance_threshold() {
    // Node 0 prefers 10 partitions; node 1 leads one of them (10 %: not above).
    let assignments: Vec<&[NodeId]> = vec![&[0, 1]; 10];
    let mut cluster = cluster_with(2, &assignments);
    let move_to_1 = |cluster: &mut Cluster, index: i32| {
        let p = partition(cluster, index as usize);
        apply(
            cluster,
            vec![RecordBody::PartitionChange {
                topic_id: topic_id(ORDERS),
                partition: index,
                expected_partition_epoch: p.partition_epoch,
                leader: Some(1),
                isr: None,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                leader_recovery_state: None,
            }],
        );
    };
    move_to_1(&mut cluster, 3);
    assert!(
        preferred_leader_rebalance(&cluster.image, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE)
            .is_empty()
    );
    move_to_1(&mut cluster, 7);
    let records =
        preferred_leader_rebalance(&cluster.image, LEADER_IMBALANCE_PER_BROKER_PERCENTAGE);
    assert_eq!(records.len(), 2, "20 % is above 10 %: both move back");
    apply(&mut cluster, records);
    assert!((0..10).all(|i| partition(&cluster, i).leader == 0));
}
