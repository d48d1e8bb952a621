//! A full disk on one node: its data directory is a 64 MB tmpfs that the nemesis fills to the
//! last byte, then frees at the heal. Writes the node cannot persist must not be acknowledged
//! as persisted, and once space returns the node must rejoin with a log that agrees. A node
//! whose metadata log fails exits for its supervisor; the heal restarts it, as systemd would.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::Nemesis;

/// Also the regression test of the first bug the nemeses found: a node whose metadata log hit
/// ENOSPC kept running with its quorum member stopped, and never rejoined (docs/reliability.md).
#[test]
fn full_disk_on_one_node_loses_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::DiskFull], 51);
}
