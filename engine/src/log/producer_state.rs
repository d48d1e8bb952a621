//! Idempotent-producer state: per producer id, its epoch and its last few batches.
//!
//! Kafka's idempotence works per partition: a producer numbers its batches, and the broker
//! refuses gaps, recognises retries of batches it already has (and answers them with the
//! original offsets), and fences producers with an older epoch. This table is that memory. It
//! is rebuilt from batch headers at open, and never decodes records.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: Kafka's `NUM_BATCHES_TO_RETAIN`, matching the Java
/// producer's `max.in.flight.requests.per.connection` limit of 5 for idempotence. A retry of
/// any in-flight batch is still recognised as a duplicate.
pub const PRODUCER_BATCHES_CACHED: usize = 5;

/// Producer id of a non-idempotent batch.
pub const NO_PRODUCER_ID: i64 = -1;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What the partition remembers about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; never empty, at most [`PRODUCER_BATCHES_CACHED`].
    pub batches: VecDeque<BatchMetadata>,
}

/// Why an idempotent batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {found_sequence} does not follow {last_sequence:?}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        found_sequence: i32,
        last_sequence: Option<i32>,
    },
    /// Kafka: INVALID_PRODUCER_EPOCH (the producer was fenced by a newer instance).
    #[error(
        "producer {producer_id}: epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
}

/// The outcome of checking a batch against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it; this is the producer's entry afterwards.
    Accept(ProducerEntry),
    /// A retry of a batch already in the log, at these offsets.
    Duplicate(BatchMetadata),
}

/// The last sequence of a batch, wrapping past `i32::MAX` to 0 as producers do.
pub fn last_sequence(first_sequence: i32, last_offset_delta: i32) -> i32 {
    if first_sequence > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - first_sequence) - 1
    } else {
        first_sequence + last_offset_delta
    }
}

fn follows(last_sequence: i32, next_sequence: i32) -> bool {
    if last_sequence == i32::MAX {
        next_sequence == 0
    } else {
        next_sequence == last_sequence + 1
    }
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks a batch of `producer_id` against `current` (its entry, if known) with Kafka's
    /// rules. A producer with no entry may start at any sequence: its state may have been
    /// removed with the segments that held it (KIP-360).
    pub fn check(
        producer_id: i64,
        current: Option<&ProducerEntry>,
        epoch: i16,
        batch: BatchMetadata,
    ) -> Result<SequenceCheck, ProducerError> {
        let out_of_order = |last_sequence| ProducerError::OutOfOrderSequence {
            producer_id,
            epoch,
            found_sequence: batch.first_sequence,
            last_sequence,
        };
        if batch.first_sequence < 0 {
            return Err(out_of_order(None));
        }
        let Some(current) = current else {
            return Ok(SequenceCheck::Accept(ProducerEntry {
                epoch,
                batches: VecDeque::from([batch]),
            }));
        };
        if epoch < current.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch: current.epoch,
            });
        }
        let mut next = if epoch > current.epoch {
            if batch.first_sequence != 0 {
                return Err(out_of_order(None));
            }
            ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            }
        } else {
            if let Some(original) = current.batches.iter().find(|cached| {
                cached.first_sequence == batch.first_sequence
                    && cached.last_sequence == batch.last_sequence
            }) {
                return Ok(SequenceCheck::Duplicate(*original));
            }
            let last = current.batches.back().map(|b| b.last_sequence);
            if !last.is_some_and(|last| follows(last, batch.first_sequence)) {
                return Err(out_of_order(last));
            }
            current.clone()
        };
        next.batches.push_back(batch);
        while next.batches.len() > PRODUCER_BATCHES_CACHED {
            next.batches.pop_front();
        }
        Ok(SequenceCheck::Accept(next))
    }

    /// Stores `entry` and returns the one it replaced, so an aborted append can put it back.
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) -> Option<ProducerEntry> {
        self.producers.insert(producer_id, entry)
    }

    /// Puts back what [`ProducerStateTable::insert`] returned.
    pub fn restore(&mut self, producer_id: i64, previous: Option<ProducerEntry>) {
        match previous {
            Some(entry) => self.producers.insert(producer_id, entry),
            None => self.producers.remove(&producer_id),
        };
    }

    /// Replays a batch found in the log (recovery). Batches written by the log already passed
    /// the checks, so this only records them; an epoch change resets the producer's history.
    pub fn replay(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        if producer_id < 0 || batch.first_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(batch);
        while entry.batches.len() > PRODUCER_BATCHES_CACHED {
            entry.batches.pop_front();
        }
    }

    /// Forgets batches at or after `end_offset` (the log was truncated there). Producers left
    /// with no batch are forgotten entirely, so their next batch is accepted at any sequence.
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.last_offset < end_offset);
            !entry.batches.is_empty()
        });
    }

    /// Forgets producers whose last batch lies wholly below the new log start, as Kafka does
    /// when the log start moves.
    pub fn remove_before(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, entry| {
            entry
                .batches
                .back()
                .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_sequence: i32, count: i32, base_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_sequence,
            last_sequence: last_sequence(first_sequence, count - 1),
            base_offset,
            last_offset: base_offset + i64::from(count) - 1,
        }
    }

    fn accept(table: &mut ProducerStateTable, id: i64, epoch: i16, batch: BatchMetadata) {
        match ProducerStateTable::check(id, table.get(id), epoch, batch).unwrap() {
            SequenceCheck::Accept(entry) => {
                table.insert(id, entry);
            }
            SequenceCheck::Duplicate(_) => panic!("unexpected duplicate"),
        }
    }

    #[test]
    fn retry_of_a_cached_batch_is_a_duplicate_with_original_offsets() {
        let mut table = ProducerStateTable::default();
        accept(&mut table, 7, 0, meta(0, 3, 100));
        accept(&mut table, 7, 0, meta(3, 2, 103));
        let retry = meta(0, 3, 999);
        assert_eq!(
            ProducerStateTable::check(7, table.get(7), 0, retry),
            Ok(SequenceCheck::Duplicate(meta(0, 3, 100)))
        );
    }

    #[test]
    fn only_the_last_five_batches_are_recognised_as_duplicates() {
        let mut table = ProducerStateTable::default();
        for i in 0..6 {
            accept(&mut table, 7, 0, meta(i, 1, i64::from(i)));
        }
        let oldest = meta(0, 1, 0);
        assert!(matches!(
            ProducerStateTable::check(7, table.get(7), 0, oldest),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            ProducerStateTable::check(7, table.get(7), 0, meta(1, 1, 1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn sequence_gap_is_out_of_order() {
        let mut table = ProducerStateTable::default();
        accept(&mut table, 7, 0, meta(0, 3, 0));
        assert_eq!(
            ProducerStateTable::check(7, table.get(7), 0, meta(4, 1, 3)),
            Err(ProducerError::OutOfOrderSequence {
                producer_id: 7,
                epoch: 0,
                found_sequence: 4,
                last_sequence: Some(2),
            })
        );
    }

    #[test]
    fn older_epoch_is_fenced() {
        let mut table = ProducerStateTable::default();
        accept(&mut table, 7, 3, meta(0, 1, 0));
        assert!(matches!(
            ProducerStateTable::check(7, table.get(7), 2, meta(1, 1, 1)),
            Err(ProducerError::InvalidProducerEpoch {
                current_epoch: 3,
                ..
            })
        ));
    }

    #[test]
    fn new_epoch_must_start_at_sequence_zero() {
        let mut table = ProducerStateTable::default();
        accept(&mut table, 7, 0, meta(0, 5, 0));
        assert!(ProducerStateTable::check(7, table.get(7), 1, meta(5, 1, 5)).is_err());
        accept(&mut table, 7, 1, meta(0, 1, 5));
        assert_eq!(table.get(7).unwrap().epoch, 1);
        assert_eq!(table.get(7).unwrap().batches.len(), 1);
    }

    #[test]
    fn unknown_producer_may_start_at_any_sequence() {
        let table = ProducerStateTable::default();
        assert!(ProducerStateTable::check(9, table.get(9), 0, meta(42, 1, 0)).is_ok());
    }

    #[test]
    fn sequence_wraps_after_i32_max() {
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut table = ProducerStateTable::default();
        accept(&mut table, 7, 0, meta(i32::MAX, 1, 0));
        accept(&mut table, 7, 0, meta(0, 1, 1));
    }

    #[test]
    fn truncation_forgets_later_batches_and_empty_producers() {
        let mut table = ProducerStateTable::default();
        accept(&mut table, 1, 0, meta(0, 1, 0));
        accept(&mut table, 1, 0, meta(1, 1, 5));
        accept(&mut table, 2, 0, meta(0, 1, 6));
        table.truncate_from_end(5);
        assert_eq!(table.get(1).unwrap().batches.len(), 1);
        assert!(table.get(2).is_none());
    }
}
