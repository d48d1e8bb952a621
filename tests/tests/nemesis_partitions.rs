//! Network partitions made with nft rules inside the nodes' namespaces, while every client
//! still reaches every node: a minority node cut from the majority, a partition's leader cut
//! from its followers (clients keep talking to it), a bridge (two nodes cut from each other,
//! the third sees both), and one-way loss (the leader hears nothing, its peers still hear it).
//! None may lose an acknowledged record, diverge, or duplicate an idempotent record.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::Nemesis;

#[test]
fn minority_cut_from_the_majority_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::PartitionMajority], 31);
}

#[test]
fn isolated_leader_acknowledges_nothing_that_is_lost() {
    support::run_and_check(&[Nemesis::PartitionLeader], 32);
}

#[test]
fn bridge_partition_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::PartitionBridge], 33);
}

#[test]
fn one_way_loss_at_the_leader_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::OneWayLoss], 34);
}
