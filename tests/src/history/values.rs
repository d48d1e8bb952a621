//! The checks that follow each value from its send to its reads: lost writes, duplicates,
//! phantom reads and reads of failed writes. They run once, at the end, over every value.

use std::collections::HashMap;

use super::checker::{Checker, Position, Source, ValueState};
use super::event::{Outcome, Producer};
use super::report::{Anomalies, AnomalyKind, Example, Witness, WitnessEvent};

impl Checker {
    /// Judges every value by its send and its reads.
    pub(super) fn check_values(&mut self, anomalies: &mut Anomalies) {
        let latest_read_sends = self.latest_read_sends();
        for value in 0..self.value_states.len() {
            let state = &self.value_states[value];
            if state.first_read.is_some() {
                self.counts.values_read += 1;
            }
            let Some(send) = state.send else {
                if let Some(read) = state.first_read {
                    anomalies.record(AnomalyKind::PhantomRead, || {
                        self.value_example(
                            value,
                            "read, but no send carried this value",
                            &[self.read_witness(read)],
                        )
                    });
                }
                continue;
            };
            match (self.sends[send].result, state.first_read) {
                (Outcome::Ok, None) => self.check_lost(send, &latest_read_sends, anomalies),
                (Outcome::Info, Some(_)) => self.counts.info_sends_read += 1,
                (Outcome::Fail, Some(read)) => {
                    anomalies.record(AnomalyKind::FailedWriteRead, || {
                        self.value_example(
                            value,
                            "the send failed, yet the value was read",
                            &[self.send_witness(send), self.read_witness(read)],
                        )
                    });
                }
                _ => {}
            }
            if let ValueState {
                first_position: Some(first),
                other_position: Some(other),
                ..
            } = *state
            {
                match self.sends[send].producer {
                    Producer::Idempotent => anomalies.record(AnomalyKind::Duplicate, || {
                        self.duplicate_example(value, first, other)
                    }),
                    Producer::Plain => self.counts.plain_duplicates += 1,
                }
            }
        }
    }

    /// For each topic-partition, the send started last among those whose value was read there
    /// (ignoring failed sends, which are anomalies of their own). An acknowledged send that
    /// ended before it started must sit at a lower offset, so if reads reached it, they passed
    /// the acknowledged one too: this judges sends acknowledged without an offset.
    fn latest_read_sends(&self) -> HashMap<usize, usize> {
        let mut latest: HashMap<usize, usize> = HashMap::new();
        for state in &self.value_states {
            let (Some(send), Some(read)) = (state.send, state.first_read) else {
                continue;
            };
            let record = &self.sends[send];
            let Some(invoked_ms) = record.invoked_ms else {
                continue;
            };
            if record.result == Outcome::Fail {
                continue;
            }
            let tp = self.reads[read].tp;
            let later = match latest.get(&tp) {
                Some(&best) => self.sends[best]
                    .invoked_ms
                    .is_some_and(|best| invoked_ms > best),
                None => true,
            };
            if later {
                latest.insert(tp, send);
            }
        }
        latest
    }

    /// An acknowledged send that no read saw is lost when some read proves the readers went
    /// past it: a read at a higher offset, a read of a send started after this one's ack, or
    /// a final read that covered the whole partition.
    fn check_lost(
        &self,
        send: usize,
        latest_read_sends: &HashMap<usize, usize>,
        anomalies: &mut Anomalies,
    ) {
        let record = &self.sends[send];
        let final_read = self.final_reads.get(&record.tp);
        let evidence = match record.offset {
            Some(offset) => {
                let past = self
                    .read_highest
                    .get(&record.tp)
                    .copied()
                    .filter(|&read| self.reads[read].offset > offset);
                if let Some(read) = past {
                    let note = format!(
                        "acknowledged at offset {offset} but never read, \
                         though reads reached offset {}",
                        self.reads[read].offset
                    );
                    Some((note, vec![self.read_witness(read)]))
                } else {
                    final_read
                        .filter(|final_read| final_read.log_start <= offset)
                        .map(|final_read| {
                            let note = format!(
                                "acknowledged at offset {offset} but never read, \
                                 though the final read covered offsets {}..{}",
                                final_read.log_start, final_read.log_end
                            );
                            (note, vec![self.final_read_witness(record.tp)])
                        })
                }
            }
            None => {
                let after = latest_read_sends.get(&record.tp).copied().filter(|&later| {
                    self.sends[later]
                        .invoked_ms
                        .is_some_and(|invoked_ms| invoked_ms > record.time_ms)
                });
                let first_read = after.and_then(|later| {
                    let value = self.sends[later].value;
                    self.value_states[value]
                        .first_read
                        .map(|read| (later, read))
                });
                if let Some((later, read)) = first_read {
                    let note = format!(
                        "acknowledged without an offset and never read, though {} was sent \
                         after this ack and read at offset {}",
                        self.values.name(self.sends[later].value),
                        self.reads[read].offset
                    );
                    let witnesses = vec![self.send_witness(later), self.read_witness(read)];
                    Some((note, witnesses))
                } else {
                    final_read
                        .filter(|final_read| final_read.log_start == 0)
                        .map(|final_read| {
                            let note = format!(
                                "acknowledged without an offset and never read, \
                                 though the final read covered offsets 0..{}",
                                final_read.log_end
                            );
                            (note, vec![self.final_read_witness(record.tp)])
                        })
                }
            }
        };
        let Some((note, mut witnesses)) = evidence else {
            return;
        };
        anomalies.record(AnomalyKind::LostWrite, || {
            witnesses.insert(0, self.send_witness(send));
            let mut example = self.value_example(record.value, &note, &witnesses);
            example.offset = record.offset;
            example
        });
    }

    fn duplicate_example(&self, value: usize, first: Position, other: Position) -> Example {
        let (topic, partition) = self.tp_name(first.tp);
        let at_other = if other.tp == first.tp {
            format!("{}", other.offset)
        } else {
            let (topic, partition) = self.tp_name(other.tp);
            format!("{} of {topic}/{partition}", other.offset)
        };
        let how = |source: Source| match source {
            Source::Read(_) => "read",
            Source::Ack(_) => "acknowledged",
        };
        Example {
            group: None,
            topic,
            partition,
            offset: Some(first.offset),
            value: Some(self.values.name(value).to_owned()),
            note: format!(
                "an idempotent producer's value, {} at offset {} and {} at offset {at_other}",
                how(first.source),
                first.offset,
                how(other.source)
            ),
            witnesses: vec![
                self.source_witness(first.source),
                self.source_witness(other.source),
            ],
        }
    }

    /// An example about one value, located at its send's partition (or its first read's).
    fn value_example(&self, value: usize, note: &str, witnesses: &[Witness]) -> Example {
        let state = &self.value_states[value];
        let tp = match (state.send, state.first_read) {
            (Some(send), _) => self.sends[send].tp,
            (None, Some(read)) => self.reads[read].tp,
            (None, None) => unreachable!("examples are only made for values sent or read"),
        };
        let (topic, partition) = self.tp_name(tp);
        let offset = state.first_read.map(|read| self.reads[read].offset);
        Example {
            group: None,
            topic,
            partition,
            offset,
            value: Some(self.values.name(value).to_owned()),
            note: note.to_owned(),
            witnesses: witnesses.to_vec(),
        }
    }

    fn final_read_witness(&self, tp: usize) -> Witness {
        let final_read = self.final_reads.get(&tp);
        Witness {
            event: WitnessEvent::FinalRead,
            line: final_read.map_or(0, |final_read| final_read.line),
            process: None,
            invoked_ms: None,
            time_ms: final_read.and_then(|final_read| final_read.time_ms),
            offset: final_read.map(|final_read| final_read.log_end),
            value: None,
            result: None,
        }
    }
}
