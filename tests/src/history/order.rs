//! Send order within a partition: when one producer's send b starts after its send a was
//! acknowledged, b must land at a higher offset. A log that puts b first reordered acknowledged
//! writes (Jepsen's nonmonotonic send, seen across operations rather than inside one).

use std::collections::BTreeMap;

use super::checker::Checker;
use super::event::Outcome;
use super::realtime::{Timed, highest_ended_before};
use super::report::{Anomalies, AnomalyKind, Example};

impl Checker {
    /// Finds acknowledged sends of one producer process to one partition that the log holds in
    /// the opposite of their real-time order. Sends without a known offset (no ack offset and
    /// never read in their partition) cannot be placed and are skipped.
    pub(super) fn check_send_order(&self, anomalies: &mut Anomalies) {
        // BTreeMap: ids follow first appearance in the history, so examples come in its order.
        let mut by_producer: BTreeMap<(usize, usize), (Vec<Timed>, Vec<Timed>)> = BTreeMap::new();
        for (index, send) in self.sends.iter().enumerate() {
            if send.result != Outcome::Ok {
                continue;
            }
            let Some(offset) = self.send_offset(index) else {
                continue;
            };
            let (ended, probes) = by_producer.entry((send.tp, send.process)).or_default();
            ended.push(Timed {
                at_ms: send.time_ms,
                offset,
                index,
            });
            if let Some(invoked_ms) = send.invoked_ms {
                probes.push(Timed {
                    at_ms: invoked_ms,
                    offset,
                    index,
                });
            }
        }
        for (ended, probes) in by_producer.into_values() {
            highest_ended_before(ended, probes, |later, earlier| {
                let Some(earlier) = earlier else {
                    return;
                };
                if earlier.offset <= later.offset || earlier.index == later.index {
                    return;
                }
                anomalies.record(AnomalyKind::OrderViolation, || {
                    self.order_example(earlier, later)
                });
            });
        }
    }

    /// Where a send's value sits in its partition: the acknowledged offset, or else the lowest
    /// offset it was read at there (a later copy would be a duplicate).
    fn send_offset(&self, send: usize) -> Option<i64> {
        let record = &self.sends[send];
        if record.offset.is_some() {
            return record.offset;
        }
        let read = self.value_states[record.value].lowest_read?;
        let read = &self.reads[read];
        (read.tp == record.tp).then_some(read.offset)
    }

    fn order_example(&self, earlier: Timed, later: Timed) -> Example {
        let first = &self.sends[earlier.index];
        let second = &self.sends[later.index];
        let (topic, partition) = self.tp_name(first.tp);
        Example {
            group: None,
            topic,
            partition,
            offset: Some(later.offset),
            value: Some(self.values.name(second.value).to_owned()),
            note: format!(
                "{} sent {} after {} was acknowledged at offset {}, but it sits at offset {}",
                self.names.name(second.process),
                self.values.name(second.value),
                self.values.name(first.value),
                earlier.offset,
                later.offset
            ),
            witnesses: vec![
                self.send_witness(earlier.index),
                self.send_witness(later.index),
            ],
        }
    }
}
