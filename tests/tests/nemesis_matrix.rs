//! The long nemesis matrix behind `scripts/nemesis.sh`: TRIALS trials of each nemesis (and of
//! the seeded mix), each on a fresh 3-node cluster (RF 3, `min.insync.replicas=2`), summed
//! into the table of docs/reliability.md. Ignored in the ordinary suite (100 trials of 12
//! nemeses take hours); the CI's short matrix is the other `nemesis_*` tests.
//!
//! Settings (environment): `SPATE_NEMESIS_TRIALS` (default 100), `SPATE_NEMESIS_ONLY`
//! (comma-separated names, `mix` for the mix; default all), `SPATE_NEMESIS_TABLE` (a file the
//! Markdown table is written to), `SPATE_NEMESIS_SEED` (the first seed, default 1). The
//! histories of trials with anomalies are kept and their paths printed. The test fails if any
//! trial showed an anomaly.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a harness failure should fail the run loudly"
)]

use spate_tests::nemesis::trial::{SplitMix, mixed_schedule};
use spate_tests::nemesis::{MatrixRow, Nemesis, TrialError, TrialOptions, render_table, run_trial};

const MIX_FAULTS: usize = 3;

#[test]
#[ignore = "hours long: run by scripts/nemesis.sh"]
fn nemesis_matrix() {
    let trials: u32 = env_or("SPATE_NEMESIS_TRIALS", "100").parse().unwrap();
    let first_seed: u64 = env_or("SPATE_NEMESIS_SEED", "1").parse().unwrap();
    let mut names: Vec<String> = Nemesis::ALL.iter().map(|n| n.name().to_string()).collect();
    names.push("mix".into());
    if let Ok(only) = std::env::var("SPATE_NEMESIS_ONLY") {
        names.retain(|name| only.split(',').any(|wanted| wanted.trim() == name));
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for name in &names {
        let mut row = MatrixRow::new(name);
        for trial in 0..trials {
            let seed = first_seed + u64::from(trial);
            let schedule = if name == "mix" {
                mixed_schedule(&mut SplitMix(seed), MIX_FAULTS)
            } else {
                vec![name.parse::<Nemesis>().unwrap()]
            };
            let options = TrialOptions {
                schedule: schedule.clone(),
                ..TrialOptions::short(schedule[0], seed)
            };
            match run_trial(&options) {
                Ok(outcome) => {
                    row.add(&outcome);
                    eprintln!(
                        "{name} trial {trial} seed {seed}: {} s, {}",
                        outcome.elapsed.as_secs(),
                        if outcome.passed() {
                            "ok"
                        } else {
                            "ANOMALY OR FAILURE"
                        }
                    );
                    if outcome.passed() {
                        let _ = std::fs::remove_dir_all(outcome.history.parent().unwrap());
                    } else {
                        eprintln!("{}", outcome.describe());
                        bad.push(format!("{name} seed {seed}: {}", outcome.history.display()));
                    }
                }
                Err(TrialError::Unsupported(reason)) => {
                    eprintln!("skipping: cannot make network namespaces here: {reason}");
                    return;
                }
                Err(TrialError::Failed(reason)) => {
                    row.add_error();
                    eprintln!("{name} trial {trial} seed {seed}: harness failure: {reason}");
                    bad.push(format!("{name} seed {seed}: harness failure"));
                }
            }
        }
        eprintln!("{}", render_table(std::slice::from_ref(&row)));
        rows.push(row);
    }
    let table = render_table(&rows);
    println!("{table}");
    if let Ok(path) = std::env::var("SPATE_NEMESIS_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    assert!(
        bad.is_empty(),
        "trials with anomalies or failures:\n{}",
        bad.join("\n")
    );
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}
