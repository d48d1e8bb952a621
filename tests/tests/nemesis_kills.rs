//! kill -9 of a node, of a partition's leader, and of the active controller, each on a fresh
//! 3-node cluster in network namespaces under the nemesis workload (RF 3,
//! `min.insync.replicas=2`, idempotent and plain `acks=all` producers, a committing group
//! member): no acknowledged record may be lost, no two reads may disagree on an offset, no
//! idempotent producer's record may appear twice. The killed node is restarted at the heal.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::Nemesis;

#[test]
fn kill9_of_a_node_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::KillNode], 11);
}

#[test]
fn kill9_of_a_partition_leader_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::KillLeader], 12);
}

#[test]
fn kill9_of_the_active_controller_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::KillController], 13);
}
