//! What every nemesis test does with a trial: run it, skip where namespaces cannot be made,
//! and fail on any anomaly or harness failure with the checker's examples and the node logs.

use spate_tests::nemesis::{Nemesis, TrialError, TrialOptions, run_trial};

/// Runs `schedule` once with the CI's short timings. Returns without failing (after saying
/// why) where namespaces cannot be made.
pub fn run_and_check(schedule: &[Nemesis], seed: u64) {
    let options = TrialOptions {
        schedule: schedule.to_vec(),
        ..TrialOptions::short(schedule[0], seed)
    };
    let outcome = match run_trial(&options) {
        Ok(outcome) => outcome,
        Err(TrialError::Unsupported(reason)) => {
            eprintln!("skipping: cannot make network namespaces here: {reason}");
            return;
        }
        Err(TrialError::Failed(reason)) => panic!("the trial could not run: {reason}"),
    };
    eprintln!(
        "trial {schedule:?} seed {seed}: {} s\n{}",
        outcome.elapsed.as_secs(),
        outcome.describe()
    );
    assert!(
        outcome.passed(),
        "anomalies or failures under {schedule:?} (seed {seed}):\n{}",
        outcome.describe()
    );
    let _ = std::fs::remove_dir_all(outcome.history.parent().unwrap_or(&outcome.history));
}
