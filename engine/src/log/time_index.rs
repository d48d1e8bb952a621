//! The sparse time index of one segment: largest timestamp so far → the batch that has it.
//!
//! Written to `<base>.timeindex` alongside the offset index, and, like it, rebuilt from the log
//! whenever the file is missing or disagrees with the log.

/// Bytes per entry on disk: i64 timestamp, u32 relative offset, both big-endian.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// Up to the batch at `base_offset + relative_offset`, no batch has a timestamp above
/// `timestamp_ms`, and that batch is the first to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

/// Entries strictly increasing in timestamp and in offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    pub fn push(&mut self, entry: TimeIndexEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.timestamp_ms > last.timestamp_ms
                    && entry.relative_offset > last.relative_offset,
                "time index entries must increase"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry whose timestamp is below `timestamp_ms`: every batch up to it is older
    /// than the target, so a search for the first batch at or after the target may start there.
    pub fn lookup_before(&self, timestamp_ms: i64) -> Option<TimeIndexEntry> {
        let after = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn truncate_len(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.timestamp_ms.to_be_bytes());
            bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_before_skips_entries_at_or_after_target() {
        let mut index = TimeIndex::default();
        for (timestamp_ms, relative_offset) in [(100, 0), (200, 5), (300, 9)] {
            index.push(TimeIndexEntry {
                timestamp_ms,
                relative_offset,
            });
        }
        assert_eq!(index.lookup_before(100), None);
        assert_eq!(index.lookup_before(101).map(|e| e.relative_offset), Some(0));
        assert_eq!(index.lookup_before(300).map(|e| e.relative_offset), Some(5));
        assert_eq!(
            index.lookup_before(i64::MAX).map(|e| e.relative_offset),
            Some(9)
        );
    }

    #[test]
    fn encoding_is_twelve_big_endian_bytes_per_entry() {
        let mut index = TimeIndex::default();
        index.push(TimeIndexEntry {
            timestamp_ms: 1,
            relative_offset: 2,
        });
        assert_eq!(index.encode(), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
}
