//! Bad links rather than cut ones: 20% random loss on every cluster link (nft `numgen random`),
//! and every cluster datagram delayed 150 ms plus jitter (which reorders) by the harness's
//! userspace UDP relay, since this kernel has no netem. Replication must stay correct, only
//! slower.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::Nemesis;

#[test]
fn lossy_links_lose_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::Lossy], 41);
}

#[test]
fn slow_reordering_links_lose_no_acknowledged_record() {
    support::run_and_check(&[Nemesis::Slow], 42);
}
