//! What the consumer knows about each assigned partition: position, buffered records,
//! pause flag, and what to do about a missing position. Sans-IO; the fetcher and the
//! user-facing calls share it under one mutex.
//!
//! Two offsets per partition: `position` is the next offset handed to the user (what a
//! group would commit), `fetch_offset` the next offset to ask the broker for. Between them
//! sit buffered records, fetched ahead while the user processes the previous poll. A seek
//! bumps `epoch`, so an answer to a fetch sent before the seek is recognised and dropped.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::error::Error;
use crate::offsets::{OffsetSpec, TopicPartition};

/// A record handed to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl ConsumerRecord {
    /// Bytes this record holds in the prefetch buffer, counted against `fetch.max.bytes`.
    pub fn size_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

#[derive(Debug, Default)]
pub struct PartitionState {
    pub position: Option<i64>,
    pub fetch_offset: Option<i64>,
    /// Where to look up a position when there is none; `None` means `auto.offset.reset`.
    pub reset_to: Option<OffsetSpec>,
    pub paused: bool,
    pub buffered: VecDeque<ConsumerRecord>,
    pub buffered_bytes: usize,
    pub epoch: u64,
    pub in_flight: bool,
    pub high_watermark: Option<i64>,
}

impl PartitionState {
    fn clear_buffer(&mut self) -> usize {
        let freed = self.buffered_bytes;
        self.buffered.clear();
        self.buffered_bytes = 0;
        freed
    }
}

/// Every assigned partition, plus an error waiting for the next poll.
#[derive(Debug, Default)]
pub struct Subscription {
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    pub buffered_bytes: usize,
    pub error: Option<Error>,
    /// Where the round-robin over partitions resumes on the next poll, for fairness.
    next_poll_start: usize,
}

impl Subscription {
    /// Replaces the assignment. Partitions kept keep their state; new ones start with no
    /// position (so the reset policy, or later a group's committed offset, decides).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = self.partitions.remove(&tp).unwrap_or_default();
            next.insert(tp, state);
        }
        for state in self.partitions.values_mut() {
            self.buffered_bytes -= state.clear_buffer();
        }
        self.partitions = next;
    }

    /// The first unpaused partition with no position and nothing to look one up from,
    /// which with `auto.offset.reset=none` is the application's to fix.
    pub fn without_position(&self) -> Option<&TopicPartition> {
        self.partitions
            .iter()
            .find(|(_, p)| !p.paused && p.position.is_none() && p.reset_to.is_none())
            .map(|(tp, _)| tp)
    }

    /// Moves a partition's position, dropping what was prefetched from the old one.
    pub fn seek(&mut self, tp: &TopicPartition, to: SeekTarget) -> Result<(), Error> {
        let Some(state) = self.partitions.get_mut(tp) else {
            return Err(Error::NotAssigned {
                topic: tp.0.clone(),
                partition: tp.1,
            });
        };
        self.buffered_bytes -= state.clear_buffer();
        state.epoch += 1;
        match to {
            SeekTarget::Offset(offset) => {
                state.position = Some(offset);
                state.fetch_offset = Some(offset);
                state.reset_to = None;
            }
            SeekTarget::Lookup(spec) => {
                state.position = None;
                state.fetch_offset = None;
                state.reset_to = Some(spec);
            }
        }
        Ok(())
    }

    /// Sets a looked-up position, unless a seek happened since the lookup began.
    pub fn set_looked_up_position(&mut self, tp: &TopicPartition, epoch: u64, offset: i64) {
        if let Some(state) = self.partitions.get_mut(tp)
            && state.epoch == epoch
            && state.position.is_none()
        {
            state.position = Some(offset);
            state.fetch_offset = Some(offset);
            state.reset_to = None;
        }
    }

    /// Takes up to `max_records` buffered records, round-robin over unpaused partitions,
    /// and advances positions past them.
    pub fn take_records(&mut self, max_records: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let count = self.partitions.len();
        if count == 0 {
            return out;
        }
        let start = self.next_poll_start % count;
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for step in 0..count {
            if out.len() >= max_records {
                break;
            }
            let tp = &keys[(start + step) % count];
            let Some(state) = self.partitions.get_mut(tp) else {
                continue;
            };
            if state.paused {
                continue;
            }
            while out.len() < max_records {
                let Some(record) = state.buffered.pop_front() else {
                    break;
                };
                let size = record.size_bytes();
                state.buffered_bytes -= size;
                self.buffered_bytes -= size;
                state.position = Some(record.offset + 1);
                out.push(record);
            }
            self.next_poll_start = (start + step + 1) % count;
        }
        out
    }

    /// Appends fetched records if the fetch still matches the partition's state (same epoch,
    /// same fetch offset); returns whether they were taken.
    pub fn accept_fetched(
        &mut self,
        tp: &TopicPartition,
        epoch: u64,
        fetched_from: i64,
        records: Vec<ConsumerRecord>,
        next_fetch_offset: i64,
        high_watermark: i64,
    ) -> bool {
        let Some(state) = self.partitions.get_mut(tp) else {
            return false;
        };
        if state.epoch != epoch || state.fetch_offset != Some(fetched_from) {
            return false;
        }
        for record in records {
            let size = record.size_bytes();
            state.buffered_bytes += size;
            self.buffered_bytes += size;
            state.buffered.push_back(record);
        }
        state.fetch_offset = Some(next_fetch_offset);
        state.high_watermark = Some(high_watermark);
        true
    }
}

/// Where a seek goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTarget {
    Offset(i64),
    Lookup(OffsetSpec),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        ("t".into(), partition)
    }

    fn record(partition: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition,
            offset,
            timestamp_ms: 0,
            key: None,
            value: Some(Bytes::from_static(b"0123456789")),
            headers: vec![],
        }
    }

    #[test]
    fn poll_advances_position_and_round_robins_partitions() {
        let mut sub = Subscription::default();
        sub.assign([tp(0), tp(1)]);
        sub.seek(&tp(0), SeekTarget::Offset(5)).unwrap();
        sub.seek(&tp(1), SeekTarget::Offset(0)).unwrap();
        assert!(sub.accept_fetched(&tp(0), 1, 5, vec![record(0, 5), record(0, 6)], 7, 7));
        assert!(sub.accept_fetched(&tp(1), 1, 0, vec![record(1, 0)], 1, 1));
        assert_eq!(sub.buffered_bytes, 30);
        let first = sub.take_records(1);
        assert_eq!((first[0].partition, first[0].offset), (0, 5));
        let next = sub.take_records(10);
        assert_eq!(
            next.iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>(),
            vec![(1, 0), (0, 6)]
        );
        assert_eq!(sub.partitions[&tp(0)].position, Some(7));
        assert_eq!(sub.buffered_bytes, 0);
    }

    #[test]
    fn fetch_answer_from_before_a_seek_is_dropped() {
        let mut sub = Subscription::default();
        sub.assign([tp(0)]);
        sub.seek(&tp(0), SeekTarget::Offset(0)).unwrap();
        let epoch = sub.partitions[&tp(0)].epoch;
        sub.seek(&tp(0), SeekTarget::Offset(100)).unwrap();
        assert!(!sub.accept_fetched(&tp(0), epoch, 0, vec![record(0, 0)], 1, 1));
        assert_eq!(sub.partitions[&tp(0)].position, Some(100));
        assert!(sub.take_records(10).is_empty());
    }

    #[test]
    fn paused_partition_keeps_its_buffer_and_seek_to_lookup_clears_position() {
        let mut sub = Subscription::default();
        sub.assign([tp(0)]);
        sub.seek(&tp(0), SeekTarget::Offset(0)).unwrap();
        sub.accept_fetched(&tp(0), 1, 0, vec![record(0, 0)], 1, 1);
        sub.partitions.get_mut(&tp(0)).unwrap().paused = true;
        assert!(sub.take_records(10).is_empty());
        sub.partitions.get_mut(&tp(0)).unwrap().paused = false;
        assert_eq!(sub.take_records(10).len(), 1);
        sub.seek(&tp(0), SeekTarget::Lookup(OffsetSpec::Earliest))
            .unwrap();
        assert_eq!(sub.partitions[&tp(0)].position, None);
        assert!(sub.seek(&tp(9), SeekTarget::Offset(0)).is_err());
    }

    #[test]
    fn reassignment_keeps_kept_partitions_and_frees_dropped_buffers() {
        let mut sub = Subscription::default();
        sub.assign([tp(0), tp(1)]);
        sub.seek(&tp(1), SeekTarget::Offset(0)).unwrap();
        sub.accept_fetched(&tp(1), 1, 0, vec![record(1, 0)], 1, 1);
        sub.seek(&tp(0), SeekTarget::Offset(3)).unwrap();
        sub.assign([tp(0)]);
        assert_eq!(sub.buffered_bytes, 0);
        assert_eq!(sub.partitions[&tp(0)].position, Some(3));
    }
}
