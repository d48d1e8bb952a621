//! Indexes of sealed segments, mostly left on disk.
//!
//! An open segment keeps its whole index in memory: about 5 MiB per GiB of log. For a broker
//! with terabytes of retained data that is too much, and old segments are rarely read. So once
//! a segment is sealed (not active, wholly below the high watermark, index files written),
//! only every [`SEALED_INDEX_STRIDE`]-th entry stays in memory; a lookup finds the stride in
//! that summary and reads that one stride (at most 768 bytes) from the index file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::offset_index::{OFFSET_INDEX_ENTRY_BYTES, OffsetIndexEntry};
use super::time_index::{TIME_INDEX_ENTRY_BYTES, TimeIndexEntry};

/// Entries per stride: one `pread` of at most 64 × 12 bytes per lookup, and 1/64 of the index
/// in memory (~80 KiB per GiB of log).
pub const SEALED_INDEX_STRIDE: usize = 64;

const STRIDE_BYTES_MAX: usize = SEALED_INDEX_STRIDE * TIME_INDEX_ENTRY_BYTES;
const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES <= TIME_INDEX_ENTRY_BYTES);

/// A fixed-size big-endian index entry.
pub trait IndexEntry: Copy {
    const BYTES: usize;
    /// Decodes `bytes`, which is exactly `BYTES` long.
    fn decode(bytes: &[u8]) -> Self;
}

impl IndexEntry for OffsetIndexEntry {
    const BYTES: usize = OFFSET_INDEX_ENTRY_BYTES;
    fn decode(bytes: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            position: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

impl IndexEntry for TimeIndexEntry {
    const BYTES: usize = TIME_INDEX_ENTRY_BYTES;
    fn decode(bytes: &[u8]) -> Self {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&bytes[..8]);
        Self {
            timestamp_ms: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        }
    }
}

/// A sealed index: its file and a summary of every [`SEALED_INDEX_STRIDE`]-th entry.
#[derive(Debug)]
pub struct SealedIndex<E> {
    path: PathBuf,
    summary: Vec<E>,
    entry_count: usize,
}

impl<E: IndexEntry> SealedIndex<E> {
    /// Seals `entries`, which the caller has just verified to equal the file at `path`.
    pub fn new(path: PathBuf, entries: &[E]) -> Self {
        Self {
            path,
            summary: entries
                .iter()
                .step_by(SEALED_INDEX_STRIDE)
                .copied()
                .collect(),
            entry_count: entries.len(),
        }
    }

    /// The last entry for which `at_or_before` holds, where `at_or_before` is true for a
    /// prefix of the entries (the same contract as `partition_point`).
    pub fn last_where(&self, at_or_before: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        let stride = self.summary.partition_point(&at_or_before);
        let Some(stride) = stride.checked_sub(1) else {
            return Ok(None);
        };
        let first = stride * SEALED_INDEX_STRIDE;
        let count = (self.entry_count - first).min(SEALED_INDEX_STRIDE);
        let mut buffer = [0u8; STRIDE_BYTES_MAX];
        let bytes = &mut buffer[..count * E::BYTES];
        File::open(&self.path)?.read_exact_at(bytes, (first * E::BYTES) as u64)?;
        let mut found = None;
        for chunk in bytes.chunks_exact(E::BYTES) {
            let entry = E::decode(chunk);
            if !at_or_before(&entry) {
                break;
            }
            found = Some(entry);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::offset_index::OffsetIndex;

    #[test]
    fn sealed_lookup_reads_the_right_stride_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let mut index = OffsetIndex::default();
        for i in 0..200u32 {
            index.push(OffsetIndexEntry {
                relative_offset: i * 10,
                position: i * 100,
            });
        }
        std::fs::write(&path, index.encode()).unwrap();
        let entries: Vec<_> = (0..200u32)
            .map(|i| OffsetIndexEntry {
                relative_offset: i * 10,
                position: i * 100,
            })
            .collect();
        let sealed = SealedIndex::new(path, &entries);
        for target in [0u32, 5, 639, 640, 1999, 5000] {
            assert_eq!(
                sealed.last_where(|e| e.relative_offset <= target).unwrap(),
                index.lookup(target),
                "target {target}"
            );
        }
        assert_eq!(
            sealed
                .last_where(|e| e.position < 100)
                .unwrap()
                .map(|e| e.position),
            Some(0)
        );
    }

    #[test]
    fn sealed_lookup_of_a_vanished_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [OffsetIndexEntry {
            relative_offset: 1,
            position: 2,
        }];
        let sealed = SealedIndex::new(dir.path().join("gone.index"), &entries);
        assert!(sealed.last_where(|_| true).is_err());
    }
}
