//! A seeded mix: three faults drawn from every nemesis but the slow link (whose relay hides
//! the peers' addresses from the partition rules), one after the other on one cluster under
//! one workload. A failure names the seed, and the same seed replays the same schedule and
//! targets.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::trial::{SplitMix, mixed_schedule};

#[test]
fn seeded_mix_of_faults_loses_no_acknowledged_record() {
    let seed = 61;
    let schedule = mixed_schedule(&mut SplitMix(seed), 3);
    support::run_and_check(&schedule, seed);
}
