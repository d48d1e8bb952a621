//! Random schedules over the replication simulator (`common::sim`), VOPR style: produces,
//! lost, delayed, duplicated and reordered messages, symmetric and one-way partitions (the
//! controller's links too), power losses that lose or tear unsynced tails, failed
//! fdatasyncs, restarts, reassignments and controller failovers, with leader changes
//! through the real controller decisions. After every step the simulator checks
//! replication-notes §7's invariants (`common::sim::check`); after each schedule the
//! faults heal and the replicas must converge with every committed record.
//!
//! - CI runs [`SCHEDULES`] fixed seeds. A failure prints its seed, the invariant, and the
//!   schedule as an event list; `SPATE_SIM_SEED=<seed>` replays exactly that run
//!   (`replay_one_schedule_with_its_trace` prints its trace too), and
//!   `SPATE_SIM_SCHEDULES=<n>` runs more seeds.
//! - `scripts/simulate.sh [seeds]` runs the long campaign (`campaign`, ignored here): a
//!   million seeds by default, in a release build, on every core.
//! - With `--features bug-injection`, `injected_bugs` shows that the simulator finds each
//!   known bug of `spate_cluster::bugs`, and which invariant it breaks.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::sim::Failure;
use common::sim::schedule::{Outcome, run_seed};

/// Fixed seeds per CI run: enough to reach the rare interleavings (a crash during a pending
/// ISR change, a late answer across an epoch bump, a torn tail on a new leader) in a few
/// seconds of a debug build.
const SCHEDULES: u64 = 200;
const FIRST_SEED: u64 = 0x5ba7_e000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// Runs `seed`; on a failure, prints its report and fails the test.
fn run(seed: u64) -> Outcome {
    match run_seed(seed) {
        Ok(outcome) => outcome,
        Err(failure) => {
            eprintln!("{}", failure.report);
            panic!("{}", failure.summary());
        }
    }
}

#[test]
fn random_schedules_keep_every_replication_invariant_and_converge() {
    if let Some(seed) = env_u64("SPATE_SIM_SEED") {
        run(seed);
        return;
    }
    let schedules = env_u64("SPATE_SIM_SCHEDULES").unwrap_or(SCHEDULES);
    let mut stats: BTreeMap<&'static str, u64> = BTreeMap::new();
    let started = Instant::now();
    for seed in FIRST_SEED..FIRST_SEED + schedules {
        let outcome = run(seed);
        let mut add = |what: &'static str, n: u64| *stats.entry(what).or_insert(0) += n;
        add("commits", outcome.commits);
        add("ambiguous produces", outcome.ambiguous);
        add("steps", outcome.steps);
        for (what, n) in &outcome.stats {
            add(what, *n);
        }
    }
    eprintln!(
        "{schedules} schedules in {:?}: {stats:#?}",
        started.elapsed()
    );
    // The schedules must reach what they exist to test.
    for what in [
        "commits",
        "ambiguous produces",
        "leader epochs",
        "isr shrinks",
        "isr expansions",
        "diverging answers",
        "truncations",
        "late answers dropped",
        "fenced answers",
        "unknown epoch answers",
        "power losses with an unsynced tail",
        "torn batches cut by recovery",
        "failed syncs",
        "messages lost",
        "messages duplicated",
    ] {
        assert!(
            stats.get(what).copied().unwrap_or(0) > 0,
            "no {what}: {stats:#?}"
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [FIRST_SEED, FIRST_SEED + 7] {
        let first = run(seed);
        let again = run(seed);
        assert_eq!(first.fingerprint, again.fingerprint, "seed {seed}");
        assert_eq!(first.steps, again.steps, "seed {seed}");
    }
}

/// Replays `SPATE_SIM_SEED` and prints its schedule and counters, or for a failing seed
/// its failure report (schedule, recent trace, nodes): `SPATE_SIM_SEED=<seed> cargo test -p
/// spate-cluster --test replication_simulation replay -- --ignored --nocapture`.
#[test]
#[ignore = "a debugging aid: needs SPATE_SIM_SEED"]
fn replay_one_schedule_with_its_trace() {
    let Some(seed) = env_u64("SPATE_SIM_SEED") else {
        eprintln!("set SPATE_SIM_SEED");
        return;
    };
    match run_seed(seed) {
        Ok(outcome) => {
            let (config, ..) = common::sim::schedule::config_of(seed);
            eprintln!(
                "seed {seed} passed in {} steps; config {}; schedule:",
                outcome.steps,
                config.describe()
            );
            for event in &outcome.events {
                eprintln!("  {event}");
            }
            eprintln!("{:#?}", outcome.stats);
        }
        Err(failure) => {
            eprintln!("{}", failure.report);
            panic!("{}", failure.summary());
        }
    }
}

/// Seeds a campaign thread takes at a time.
const CAMPAIGN_CHUNK: u64 = 64;
/// A campaign stops early after this many failing seeds.
const CAMPAIGN_FAILURES_MAX: usize = 20;

/// The long campaign `scripts/simulate.sh` runs: `SPATE_SIM_SEEDS` seeds (a million by
/// default) from `SPATE_SIM_FIRST_SEED`, on `SPATE_SIM_THREADS` threads (every core by
/// default), which take seeds in chunks. Prints progress, seeds per second, and every
/// failing seed; fails if any seed did.
#[test]
#[ignore = "a long campaign: scripts/simulate.sh"]
fn campaign() {
    let seeds = env_u64("SPATE_SIM_SEEDS").unwrap_or(1_000_000);
    let first = env_u64("SPATE_SIM_FIRST_SEED").unwrap_or(FIRST_SEED);
    let threads = env_u64("SPATE_SIM_THREADS")
        .map(|n| n as usize)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    eprintln!("campaign: {seeds} seeds from {first} on {threads} threads");
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let start = next.fetch_add(CAMPAIGN_CHUNK, Ordering::Relaxed);
                    if start >= seeds || failures.lock().unwrap().len() >= CAMPAIGN_FAILURES_MAX {
                        break;
                    }
                    for offset in start..(start + CAMPAIGN_CHUNK).min(seeds) {
                        if let Err(failure) = run_seed(first + offset) {
                            eprintln!("FAILED {}", failure.summary());
                            failures.lock().unwrap().push(failure);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }
        let mut last_report = Instant::now();
        while finished.load(Ordering::Relaxed) < threads {
            std::thread::sleep(Duration::from_millis(200));
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                eprintln!("campaign: {n}/{seeds} seeds, {rate:.0} seeds/s");
            }
        }
    });
    let elapsed = started.elapsed();
    let n = done.load(Ordering::Relaxed);
    let failures = failures.into_inner().unwrap();
    println!(
        "campaign: {n} seeds in {:.1}s on {threads} threads: {:.0} seeds/s; {} failing",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    if let Some(first_failure) = failures.iter().min_by_key(|f| f.seed) {
        eprintln!("{}", first_failure.report);
        for failure in &failures {
            println!("failing seed: {}", failure.summary());
        }
        panic!("{} seeds failed", failures.len());
    }
}

/// Every injected bug of `spate_cluster::bugs` is found by the simulator within a few
/// seeds: `cargo test -p spate-cluster --features bug-injection --test
/// replication_simulation injected_bugs -- --nocapture` prints, per bug, the seed that found
/// it, how many seeds it took, and the invariant that broke.
#[cfg(feature = "bug-injection")]
mod injected_bugs {
    use spate_cluster::bugs::{self, Bug};

    use super::FIRST_SEED;
    use super::common::sim::report::replay_command;
    use super::common::sim::schedule::{RunOptions, run_seed_with};
    use super::common::sim::{Failure, Invariant};

    /// Seeds a bug test tries before it gives up (each bug is found well within this).
    const SEEDS_MAX: u64 = 200;

    /// Runs seeds from the CI's first seed with `bug` injected on this thread, `disabled`
    /// unchecked, until one fails (at most `seeds_max`); returns the failure and how many
    /// seeds it took.
    fn find(bug: Bug, disabled: &[Invariant], seeds_max: u64) -> Option<(Failure, u64)> {
        let _injected = bugs::inject_on_this_thread(&[bug]);
        let options = RunOptions {
            quiet: true,
            bugs: Some(bug.name()),
            disabled,
        };
        (1..=seeds_max).find_map(|tried| {
            let seed = FIRST_SEED + tried - 1;
            run_seed_with(seed, options)
                .err()
                .map(|failure| (failure, tried))
        })
    }

    fn assert_found(bug: Bug, expected: &[Invariant]) {
        let Some((failure, tried)) = find(bug, &[], SEEDS_MAX) else {
            panic!(
                "bug {} survived {SEEDS_MAX} seeds: the simulator does not find it",
                bug.name()
            );
        };
        eprintln!(
            "bug {}: found by the simulator after {tried} seeds: {}\nreplay: {}",
            bug.name(),
            failure.summary(),
            replay_command(failure.seed, bug.name())
        );
        assert!(
            expected.contains(&failure.invariant),
            "bug {} broke `{}`, not one of {expected:?}:\n{}",
            bug.name(),
            failure.invariant.name(),
            failure.report
        );
    }

    #[test]
    fn the_simulator_finds_the_hw_advancing_before_the_isr_has_the_data() {
        assert_found(
            Bug::HwBeforeIsr,
            &[
                Invariant::DurableBelowHw,
                Invariant::AckedNeverLost,
                Invariant::ExposedNeverLost,
            ],
        );
    }

    #[test]
    fn the_simulator_finds_a_follower_acknowledging_before_its_fdatasync() {
        assert_found(
            Bug::AckBeforeFsync,
            &[
                Invariant::DurableBelowHw,
                Invariant::AckedNeverLost,
                Invariant::ExposedNeverLost,
            ],
        );
    }

    #[test]
    fn the_simulator_finds_a_leader_elected_from_outside_the_isr() {
        assert_found(
            Bug::UncleanElection,
            &[
                Invariant::AckedNeverLost,
                Invariant::ExposedNeverLost,
                Invariant::NoTruncationBelowHw,
                Invariant::LatestOffsetMonotonic,
                Invariant::LogsAgreeBelowHw,
                Invariant::DurableBelowHw,
            ],
        );
    }

    #[test]
    fn the_simulator_finds_truncation_skipped_on_a_leader_change() {
        assert_found(
            Bug::SkipTruncation,
            &[
                Invariant::LogsAgreeBelowHw,
                Invariant::AckedNeverLost,
                Invariant::ExposedNeverLost,
                Invariant::WellFormedLog,
            ],
        );
    }

    /// Seeds the table's later rounds try: a consequence can take longer to show than the
    /// first check.
    const TABLE_SEEDS_MAX: u64 = 5_000;

    /// Not a test of the product: prints the table in docs/reliability.md. For each bug,
    /// the first invariant that breaks; then, with that check off, the next one, and so on
    /// (what else the bug does, if the first check were missing).
    #[test]
    #[ignore = "prints the table for docs/reliability.md"]
    fn bug_table() {
        println!(
            "| bug | found by | seeds until found | invariant that broke | with it unchecked, then |"
        );
        println!("|---|---|---|---|---|");
        for bug in Bug::ALL {
            let Some((first, tried)) = find(bug, &[], SEEDS_MAX) else {
                println!("| `{}` | not found | > {SEEDS_MAX} | | |", bug.name());
                continue;
            };
            let mut disabled = vec![first.invariant];
            let mut then = Vec::new();
            while disabled.len() <= 3 {
                let Some((next, tried)) = find(bug, &disabled, TABLE_SEEDS_MAX) else {
                    then.push(format!("nothing in {TABLE_SEEDS_MAX} seeds"));
                    break;
                };
                then.push(format!("`{}` ({tried} seeds)", next.invariant.name()));
                if !next.invariant.is_safety() {
                    break;
                }
                disabled.push(next.invariant);
            }
            println!(
                "| `{}` | simulator | {tried} (seed {}) | `{}`: {} | {} |",
                bug.name(),
                first.seed,
                first.invariant.name(),
                first.detail,
                then.join(", then ")
            );
        }
    }
}
