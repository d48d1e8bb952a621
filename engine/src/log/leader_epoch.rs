//! The leader-epoch cache: the first offset each leader epoch wrote, persisted.
//!
//! Replication (KIP-101) asks "where does epoch E end?" to find where a follower's log
//! diverged from the leader's. The single-node broker only records epochs; the cache is here
//! so that replication can arrive without reshaping the log.

use std::io;
use std::path::{Path, PathBuf};

use super::checkpoint::{CHECKPOINT_VERSION, read_small_text, write_atomically};

/// File name, as in Kafka.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Epochs change on leader elections, a handful per day at worst; a file claiming more entries
/// than this is garbage and is not parsed.
pub const LEADER_EPOCH_ENTRIES_MAX: usize = 1 << 16;

/// Leader `epoch` began writing at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries strictly increasing in epoch and non-decreasing in start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the cache, or starts empty if the file is missing or garbled (with a warning:
    /// the cache is advisory until replication exists).
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let Some(text) = read_small_text(&path)? else {
            return Ok(Self::default());
        };
        match Self::decode(&text) {
            Some(cache) => Ok(cache),
            None => {
                tracing::warn!(file = %path.display(), "ignoring garbled leader epoch checkpoint");
                Ok(Self::default())
            }
        }
    }

    /// All entries, oldest epoch first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The epoch stamped on newly appended batches, if any epoch was assigned.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, dropping entries it contradicts (later
    /// or equal epochs, or entries starting at or after it). Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return false;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops entries wholly below `start_offset` and moves the one that spans it up to it.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if below == 0 {
            return false;
        }
        let spanning = below - 1;
        let changed = spanning > 0 || self.entries[spanning].start_offset != start_offset;
        self.entries.drain(..spanning);
        self.entries[0].start_offset = start_offset;
        changed
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`, the answer to `OffsetsForLeaderEpoch`
    /// (KIP-101, KIP-279) over a log ending at `log_end_offset`:
    /// - the latest epoch: `(epoch, log_end_offset)`;
    /// - an older epoch: the largest epoch at or below it and the start of the next one;
    /// - an epoch below every entry: `(epoch, first entry's start)`;
    /// - above the latest, negative, or an empty cache: `None` (Kafka's undefined answer).
    pub fn end_offset_for_epoch(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if latest.epoch == epoch {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let next_start = self.entries.get(higher)?.start_offset;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].epoch, next_start)),
            None => Some((epoch, next_start)),
        }
    }

    /// The largest epoch at or below `epoch` and the offset where it ended (the next epoch's
    /// start, or the log end for the latest epoch); `None` when the cache has no epoch at or
    /// below `epoch`. A floor lookup; replication answers with
    /// [`LeaderEpochCache::end_offset_for_epoch`], which follows Kafka at the edges.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let after = self.entries.partition_point(|e| e.epoch <= epoch);
        let found = self.entries.get(after.checked_sub(1)?)?;
        let end = self
            .entries
            .get(after)
            .map_or(log_end_offset, |next| next.start_offset);
        Some((found.epoch, end))
    }

    /// Replaces the checkpoint file atomically (temp file, fsync, rename, fsync dir).
    pub fn persist(&self, dir: &Path) -> io::Result<()> {
        write_atomically(dir, LEADER_EPOCH_FILE, &self.encode())
    }

    /// Where the cache of the partition in `dir` is persisted.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(LEADER_EPOCH_FILE)
    }

    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text.into_bytes()
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()?.trim().parse::<u32>().ok()? != CHECKPOINT_VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        if count > LEADER_EPOCH_ENTRIES_MAX {
            return None;
        }
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
        for _ in 0..count {
            let mut fields = lines.next()?.split_whitespace();
            let entry = EpochEntry {
                epoch: fields.next()?.parse().ok()?,
                start_offset: fields.next()?.parse().ok()?,
            };
            if fields.next().is_some() || entry.epoch < 0 || entry.start_offset < 0 {
                return None;
            }
            if let Some(last) = entries.last()
                && (entry.epoch <= last.epoch || entry.start_offset < last.start_offset)
            {
                return None;
            }
            entries.push(entry);
        }
        Some(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start_offset) in entries {
            cache.assign(epoch, start_offset);
        }
        cache
    }

    #[test]
    fn epoch_cache_survives_persist_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let written = cache(&[(0, 0), (3, 100), (4, 250)]);
        written.persist(dir.path()).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), written);
    }

    #[test]
    fn garbled_epoch_file_loads_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(LeaderEpochCache::path(dir.path()), "0\n2\n5 10\n4 20\n").unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries(), &[]);
        std::fs::write(LeaderEpochCache::path(dir.path()), "0\n999999999\n").unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries(), &[]);
    }

    #[test]
    fn assigning_an_older_start_drops_contradicted_entries() {
        let mut cache = cache(&[(1, 0), (2, 50), (3, 90)]);
        assert!(cache.assign(4, 60));
        assert_eq!(
            cache.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 50
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 60
                },
            ]
        );
        assert!(!cache.assign(4, 70), "same epoch again is a no-op");
    }

    #[test]
    fn truncation_from_end_drops_epochs_starting_past_it() {
        let mut cache = cache(&[(1, 0), (2, 50), (3, 90)]);
        assert!(cache.truncate_from_end(90));
        assert_eq!(cache.latest_epoch(), Some(2));
        assert!(!cache.truncate_from_end(100));
    }

    #[test]
    fn truncation_from_start_moves_spanning_epoch_up() {
        let mut cache = cache(&[(1, 0), (2, 50), (3, 90)]);
        assert!(cache.truncate_from_start(60));
        assert_eq!(
            cache.entries()[0],
            EpochEntry {
                epoch: 2,
                start_offset: 60
            }
        );
        assert_eq!(cache.entries().len(), 2);
    }

    #[test]
    fn end_offset_for_epoch_answers_as_kafkas_leader_epoch_file_cache() {
        let cache = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert_eq!(cache.end_offset_for_epoch(6, 40), Some((6, 40)));
        assert_eq!(cache.end_offset_for_epoch(3, 40), Some((3, 25)));
        assert_eq!(cache.end_offset_for_epoch(2, 40), Some((1, 10)));
        assert_eq!(cache.end_offset_for_epoch(5, 40), Some((3, 25)));
        assert_eq!(
            super::tests::cache(&[(4, 7)]).end_offset_for_epoch(2, 9),
            Some((2, 7)),
            "below every entry: the epoch asked, ending at the first start"
        );
        assert_eq!(cache.end_offset_for_epoch(7, 40), None, "above the latest");
        assert_eq!(cache.end_offset_for_epoch(-1, 40), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for_epoch(0, 5), None);
    }

    #[test]
    fn end_offset_for_epoch_is_next_epochs_start() {
        let cache = cache(&[(1, 0), (3, 50)]);
        assert_eq!(cache.end_offset_for(1, 80), Some((1, 50)));
        assert_eq!(cache.end_offset_for(2, 80), Some((1, 50)));
        assert_eq!(cache.end_offset_for(3, 80), Some((3, 80)));
        assert_eq!(cache.end_offset_for(0, 80), None);
    }
}
