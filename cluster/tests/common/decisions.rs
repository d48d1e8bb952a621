//! Fixtures for the controller's replication decisions: a cluster of live brokers with
//! topic `orders`, and requests as the partition's leader would send them.

use std::collections::BTreeMap;

use spate_cluster::controller::alter_partition::AlterPartition;
use spate_cluster::controller::topics::{self, CreateTopic, TopicDefaults};
use spate_cluster::replication::IsrMember;
use spate_cluster::{NodeId, PartitionState, RecordBody};

use super::{Cluster, any_configs, check_invariants, topic_id};

pub const ORDERS: u8 = 1;

/// Live brokers `0..brokers` and topic `orders` with one partition per assignment.
pub fn cluster_with(brokers: NodeId, assignments: &[&[NodeId]]) -> Cluster {
    let mut cluster = Cluster::new();
    for id in 0..brokers {
        cluster.add_live_broker(id, None);
    }
    let request = CreateTopic {
        name: "orders".into(),
        partition_count: -1,
        replication_factor: -1,
        assignments: Some(assignments.iter().map(|a| a.to_vec()).collect()),
        configs: BTreeMap::new(),
    };
    let defaults = TopicDefaults {
        partition_count: 1,
        replication_factor: None,
    };
    let records = topics::create_topic(
        &cluster.image,
        &request,
        &defaults,
        topic_id(ORDERS),
        &any_configs,
    )
    .unwrap();
    cluster.apply(records).unwrap();
    cluster
}

pub fn partition(cluster: &Cluster, index: usize) -> PartitionState {
    cluster.partition("orders", index)
}

pub fn apply(cluster: &mut Cluster, records: Vec<RecordBody>) {
    cluster.apply(records).unwrap();
    check_invariants(&cluster.image).unwrap();
}

/// An AlterPartition from partition `index`'s leader at its current epochs.
pub fn alter(cluster: &Cluster, index: i32, isr: &[NodeId]) -> AlterPartition {
    let p = partition(cluster, index as usize);
    AlterPartition {
        broker: p.leader,
        broker_epoch: cluster.epoch(p.leader),
        topic_id: topic_id(ORDERS),
        partition: index,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr
            .iter()
            .map(|&node| IsrMember {
                node,
                broker_epoch: Some(cluster.epoch(node)),
            })
            .collect(),
        leader_recovery_state: p.leader_recovery_state,
    }
}

pub fn fence(cluster: &mut Cluster, node: NodeId, fenced: bool, shutting_down: bool) {
    let broker_epoch = cluster.epoch(node);
    cluster
        .apply(vec![RecordBody::BrokerChange {
            node_id: node,
            broker_epoch,
            fenced: Some(fenced),
            in_controlled_shutdown: Some(shutting_down),
        }])
        .unwrap();
}

/// Sets partition 0's leader and ISR directly (what earlier decisions would have done).
pub fn set_partition(cluster: &mut Cluster, leader: NodeId, isr: &[NodeId]) {
    let p = partition(cluster, 0);
    apply(
        cluster,
        vec![RecordBody::PartitionChange {
            topic_id: topic_id(ORDERS),
            partition: 0,
            expected_partition_epoch: p.partition_epoch,
            leader: Some(leader),
            isr: Some(isr.to_vec()),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            leader_recovery_state: None,
        }],
    );
}
