//! The results table of `scripts/nemesis.sh`: one row per nemesis, summed over its trials.

use super::trial::TrialOutcome;

/// The sums of one nemesis's trials.
#[derive(Debug, Clone, Default)]
pub struct MatrixRow {
    pub nemesis: String,
    pub trials: u32,
    /// Trials that did not produce an outcome (the harness failed), or failed outside the
    /// checker (a node panicked, the cluster never became whole).
    pub harness_failures: u32,
    pub acked: u64,
    pub lost: u64,
    pub divergent: u64,
    pub duplicated: u64,
    /// Every other anomaly the checker found, summed over kinds.
    pub other_anomalies: u64,
    /// Recovery times of every fault, ms.
    pub recoveries_ms: Vec<f64>,
    /// Faults after which some partition never acknowledged a new record.
    pub unrecovered: u32,
}

impl MatrixRow {
    /// A row with no trials yet.
    pub fn new(nemesis: &str) -> MatrixRow {
        MatrixRow {
            nemesis: nemesis.to_string(),
            ..MatrixRow::default()
        }
    }

    /// Adds one trial's outcome.
    pub fn add(&mut self, outcome: &TrialOutcome) {
        self.trials += 1;
        if !outcome.failures.is_empty() {
            self.harness_failures += 1;
        }
        let verdict = &outcome.verdict;
        self.acked += verdict.acked;
        self.lost += verdict.lost;
        self.divergent += verdict.divergent;
        self.duplicated += verdict.duplicated;
        self.other_anomalies += verdict.other.values().sum::<u64>();
        for fault in &outcome.faults {
            match fault.recovery_ms {
                Some(ms) => self.recoveries_ms.push(ms),
                None => self.unrecovered += 1,
            }
        }
    }

    /// Adds a trial that produced no outcome.
    pub fn add_error(&mut self) {
        self.trials += 1;
        self.harness_failures += 1;
    }

    fn recovery(&self) -> String {
        let mut sorted = self.recoveries_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let (Some(max), Some(median)) = (sorted.last(), sorted.get(sorted.len() / 2)) else {
            return "n/a".into();
        };
        let mut text = format!("{:.1} s / {:.1} s", median / 1000.0, max / 1000.0);
        if self.unrecovered > 0 {
            text.push_str(&format!(" ({} never)", self.unrecovered));
        }
        text
    }
}

/// The Markdown table of `rows`.
pub fn render_table(rows: &[MatrixRow]) -> String {
    let mut out = String::from(
        "| nemesis | trials | acknowledged | lost | divergent | duplicated (idempotent) | other anomalies | harness failures | recovery median / max |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.nemesis,
            row.trials,
            row.acked,
            row.lost,
            row.divergent,
            row.duplicated,
            row.other_anomalies,
            row.harness_failures,
            row.recovery()
        ));
    }
    out
}
