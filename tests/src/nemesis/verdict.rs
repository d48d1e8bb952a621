//! The checker's verdict on a trial's history, reduced to what the matrix table reports.
//!
//! The checking itself is [`crate::history`]'s; this only reads the file and keeps the counts
//! (acknowledged, lost, divergent, idempotent duplicates) and the checker's printed report,
//! whose examples name the offending records.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

use crate::history::{AnomalyKind, check_reader};

/// The numbers of one history.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Whether the checker found no anomaly at all.
    pub valid: bool,
    /// Sends acknowledged (`ok`).
    pub acked: u64,
    pub lost: u64,
    pub divergent: u64,
    /// Duplicates of idempotent producers (a plain producer's are allowed and not counted).
    pub duplicated: u64,
    /// Every other anomaly kind found, by name.
    pub other: BTreeMap<String, u64>,
    /// The checker's report, with examples.
    pub summary: String,
}

/// Runs the checker over the history at `path`. `Err` only for a history the checker cannot
/// read (the workload's bug, not the cluster's).
pub fn check_history(path: &Path) -> Result<Verdict, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let report =
        check_reader(BufReader::new(file)).map_err(|e| format!("check {}: {e}", path.display()))?;
    let mut other = BTreeMap::new();
    for kind in report.kinds() {
        if ![
            AnomalyKind::LostWrite,
            AnomalyKind::Divergence,
            AnomalyKind::Duplicate,
        ]
        .contains(&kind)
        {
            other.insert(kind.name().to_string(), report.count(kind));
        }
    }
    Ok(Verdict {
        valid: report.valid,
        acked: report.counts.sends_ok,
        lost: report.count(AnomalyKind::LostWrite),
        divergent: report.count(AnomalyKind::Divergence),
        duplicated: report.count(AnomalyKind::Duplicate),
        other,
        summary: report.to_string(),
    })
}
