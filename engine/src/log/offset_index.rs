//! The sparse offset index of one segment: relative offset of a batch → its byte position.
//!
//! It is kept in memory while the segment is open and written to `<base>.index` at roll,
//! checkpoint and close. It is only a hint that shortens scans: recovery rebuilds it from the
//! log, so a missing or damaged file costs time, never data.

/// Bytes per entry on disk: u32 relative offset, u32 position, both big-endian.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

/// One entry: the batch whose base offset is `base_offset + relative_offset` starts at
/// `position` in the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Entries strictly increasing in both fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[OffsetIndexEntry] {
        &self.entries
    }

    pub fn push(&mut self, entry: OffsetIndexEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries must increase"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry at or below `relative_offset`: where to start scanning for it.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetIndexEntry> {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry whose position is at or below `position`: a batch boundary there.
    pub fn lookup_position(&self, position: u64) -> Option<OffsetIndexEntry> {
        let after = self
            .entries
            .partition_point(|e| u64::from(e.position) <= position);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// Keeps the first `len` entries (used to undo an aborted append).
    pub fn truncate_len(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
            bytes.extend_from_slice(&entry.position.to_be_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(OffsetIndexEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_finds_last_entry_at_or_below_target() {
        let index = index(&[(10, 4096), (20, 8192), (30, 12288)]);
        assert_eq!(index.lookup(5), None);
        assert_eq!(index.lookup(10).map(|e| e.position), Some(4096));
        assert_eq!(index.lookup(29).map(|e| e.position), Some(8192));
        assert_eq!(index.lookup(u32::MAX).map(|e| e.position), Some(12288));
    }

    #[test]
    fn lookup_position_finds_boundary_at_or_below() {
        let index = index(&[(10, 4096), (20, 8192)]);
        assert_eq!(index.lookup_position(4095), None);
        assert_eq!(
            index.lookup_position(8191).map(|e| e.relative_offset),
            Some(10)
        );
        assert_eq!(
            index.lookup_position(9000).map(|e| e.relative_offset),
            Some(20)
        );
    }

    #[test]
    fn encoding_is_eight_big_endian_bytes_per_entry() {
        let bytes = index(&[(1, 2)]).encode();
        assert_eq!(bytes, [0, 0, 0, 1, 0, 0, 0, 2]);
    }

    #[test]
    #[should_panic(expected = "must increase")]
    fn decreasing_entry_is_a_bug() {
        index(&[(10, 100), (9, 200)]);
    }
}
