//! Committed offsets never go backwards: once a commit for a group's partition is acknowledged,
//! or a committed offset is observed, an observation started afterwards must show at least that
//! offset. A lower one means the coordinator lost or rolled back a commit, and a consumer
//! resuming from it would read records again (or, rolled forward elsewhere, skip them).
//!
//! Only observations (`committed` events) are judged. A commit of a lower offset is the
//! client's choice, not the broker's fault, but it does not lower the bar either: the workload
//! is expected to commit only forward, as a group consumer does.

use std::collections::BTreeMap;

use super::checker::Checker;
use super::event::Outcome;
use super::realtime::{Timed, highest_ended_before};
use super::report::{Anomalies, AnomalyKind, Example, Witness, WitnessEvent};

/// The offset an observation of "no committed offset" stands for: below every real one.
const OFFSET_NONE: i64 = -1;

impl Checker {
    /// Finds observed committed offsets below an earlier acknowledged commit or observation of
    /// the same group and partition.
    pub(super) fn check_commits(&self, anomalies: &mut Anomalies) {
        let mut by_partition: BTreeMap<(usize, usize), (Vec<Timed>, Vec<Timed>)> = BTreeMap::new();
        for (index, commit) in self.commits.iter().enumerate() {
            let observation = commit.result.is_none();
            if !observation && commit.result != Some(Outcome::Ok) {
                continue;
            }
            let offset = commit.offset.unwrap_or(OFFSET_NONE);
            let (ended, probes) = by_partition.entry((commit.group, commit.tp)).or_default();
            ended.push(Timed {
                at_ms: commit.time_ms,
                offset,
                index,
            });
            if observation {
                probes.push(Timed {
                    at_ms: commit.invoked_ms.unwrap_or(commit.time_ms),
                    offset,
                    index,
                });
            }
        }
        for (ended, probes) in by_partition.into_values() {
            highest_ended_before(ended, probes, |seen, earlier| {
                let Some(earlier) = earlier else {
                    return;
                };
                if earlier.offset <= seen.offset {
                    return;
                }
                anomalies.record(AnomalyKind::CommittedOffsetBackwards, || {
                    self.commit_example(earlier, seen)
                });
            });
        }
    }

    fn commit_example(&self, earlier: Timed, seen: Timed) -> Example {
        let record = &self.commits[seen.index];
        let (topic, partition) = self.tp_name(record.tp);
        let shown = record.offset.map_or_else(
            || "no committed offset".to_owned(),
            |offset| offset.to_string(),
        );
        let before = match self.commits[earlier.index].result {
            Some(_) => "was committed",
            None => "was observed",
        };
        Example {
            group: Some(self.names.name(record.group).to_owned()),
            topic,
            partition,
            offset: record.offset,
            value: None,
            note: format!(
                "observed {shown}, but offset {} {before} before this observation started",
                earlier.offset
            ),
            witnesses: vec![
                self.commit_witness(earlier.index),
                self.commit_witness(seen.index),
            ],
        }
    }

    fn commit_witness(&self, index: usize) -> Witness {
        let commit = &self.commits[index];
        let event = match commit.result {
            Some(_) => WitnessEvent::Commit,
            None => WitnessEvent::Committed,
        };
        Witness {
            event,
            line: commit.line,
            process: Some(self.names.name(commit.process).to_owned()),
            invoked_ms: commit.invoked_ms,
            time_ms: Some(commit.time_ms),
            offset: commit.offset,
            value: None,
            result: commit.result,
        }
    }
}
