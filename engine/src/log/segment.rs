//! One segment's in-memory state: its file, where the next batch goes, and its indexes.
//!
//! Appends and recovery both describe each batch to [`Segment::note_batch`], so an index built
//! while appending is byte-identical to one rebuilt from the log. That is what lets recovery
//! compare the index files against the log and rewrite only the ones that disagree.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use spate_protocol::records::{BATCH_HEADER_SIZE_BYTES, BatchError, MAGIC_V2, RecordBatchHeader};
use zerocopy::FromBytes;

use super::error::Damage;
use super::offset_index::{OffsetIndex, OffsetIndexEntry};
use super::sealed_index::SealedIndex;
use super::segment_file::SegmentFile;
use super::time_index::{TimeIndex, TimeIndexEntry};

/// Positions in the offset index are u32, so no segment may grow past this. Kafka has the
/// same bound (`segment.bytes` is an int).
pub const SEGMENT_SIZE_BYTES_MAX: u64 = u32::MAX as u64;

/// Relative offsets in both indexes are u32. The log rolls once half of that span is used, so
/// a single append (whose batches may claim up to 2^31 offsets each) cannot overflow it.
pub const SEGMENT_OFFSET_SPAN_MAX: i64 = u32::MAX as i64;

/// Where a batch sits and what the indexes need from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlacement {
    pub position: u64,
    pub size_bytes: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// The mutable counters of a segment. Copying it before an append and putting it back is how
/// an aborted append is undone without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCursor {
    /// Bytes staged into the file (the next batch goes here).
    pub size_bytes: u64,
    /// The offset the next batch in this segment will get.
    pub next_offset: i64,
    /// Largest batch max timestamp so far; `i64::MIN` while the segment is empty.
    pub max_timestamp_ms: i64,
    /// Base offset of the first batch that reached `max_timestamp_ms`.
    pub offset_of_max_timestamp: i64,
    pub bytes_since_index_entry: u64,
    pub index_len: usize,
    pub time_index_len: usize,
}

/// A segment of a partition log. Lives on the shard that owns the partition.
#[derive(Debug)]
pub struct Segment {
    pub file: Arc<SegmentFile>,
    pub cursor: SegmentCursor,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Wall-clock base for `segment.ms`: creation time, or the first batch's timestamp for a
    /// segment found at open.
    pub created_ms: i64,
    /// The in-memory indexes have entries the index files lack.
    pub indexes_dirty: bool,
    /// Set once the segment is sealed: `index` and `time_index` are then empty and lookups
    /// go through the files.
    pub sealed: Option<SealedIndexes>,
}

/// The on-disk indexes of a sealed segment.
#[derive(Debug)]
pub struct SealedIndexes {
    offsets: SealedIndex<OffsetIndexEntry>,
    times: SealedIndex<TimeIndexEntry>,
}

impl Segment {
    pub fn new(file: Arc<SegmentFile>, created_ms: i64) -> Self {
        let base_offset = file.base_offset();
        Self {
            file,
            cursor: SegmentCursor {
                size_bytes: 0,
                next_offset: base_offset,
                max_timestamp_ms: i64::MIN,
                offset_of_max_timestamp: base_offset,
                bytes_since_index_entry: 0,
                index_len: 0,
                time_index_len: 0,
            },
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            created_ms,
            indexes_dirty: true,
            sealed: None,
        }
    }

    /// Drops the in-memory indexes, keeping a summary; the index files must be up to date.
    /// Only for segments that will not change again (not active, below the high watermark).
    pub fn seal(&mut self) {
        assert!(!self.indexes_dirty, "sealing needs written index files");
        if self.sealed.is_some() {
            return;
        }
        self.sealed = Some(SealedIndexes {
            offsets: SealedIndex::new(self.file.index_path(), self.index.entries()),
            times: SealedIndex::new(self.file.time_index_path(), self.time_index.entries()),
        });
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
    }

    /// The last offset index entry at or below `relative_offset`.
    pub fn offset_entry_at_or_before(
        &self,
        relative_offset: u32,
    ) -> io::Result<Option<OffsetIndexEntry>> {
        match &self.sealed {
            Some(sealed) => sealed
                .offsets
                .last_where(|e| e.relative_offset <= relative_offset),
            None => Ok(self.index.lookup(relative_offset)),
        }
    }

    /// The last offset index entry whose position is at or below `position`.
    pub fn offset_entry_at_or_before_position(
        &self,
        position: u64,
    ) -> io::Result<Option<OffsetIndexEntry>> {
        match &self.sealed {
            Some(sealed) => sealed
                .offsets
                .last_where(|e| u64::from(e.position) <= position),
            None => Ok(self.index.lookup_position(position)),
        }
    }

    /// The last time index entry with a timestamp below `timestamp_ms`.
    pub fn time_entry_before(&self, timestamp_ms: i64) -> io::Result<Option<TimeIndexEntry>> {
        match &self.sealed {
            Some(sealed) => sealed.times.last_where(|e| e.timestamp_ms < timestamp_ms),
            None => Ok(self.time_index.lookup_before(timestamp_ms)),
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.file.base_offset()
    }

    pub fn is_empty(&self) -> bool {
        self.cursor.size_bytes == 0
    }

    /// Records a batch appended at the end of the segment, adding index entries every
    /// `index_interval_bytes` as Kafka does.
    pub fn note_batch(&mut self, batch: &BatchPlacement, index_interval_bytes: u32) {
        assert!(self.sealed.is_none(), "sealed segments are immutable");
        assert_eq!(
            batch.position, self.cursor.size_bytes,
            "batches are appended in order"
        );
        assert_eq!(
            batch.base_offset, self.cursor.next_offset,
            "offsets are dense"
        );
        let segment_base = self.base_offset();
        let relative_offset = |offset: i64| -> u32 {
            let relative = offset - segment_base;
            assert!(
                (0..=SEGMENT_OFFSET_SPAN_MAX).contains(&relative),
                "rolled too late"
            );
            relative as u32
        };
        if batch.max_timestamp_ms > self.cursor.max_timestamp_ms {
            self.cursor.max_timestamp_ms = batch.max_timestamp_ms;
            self.cursor.offset_of_max_timestamp = batch.base_offset;
        }
        if self.cursor.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            assert!(batch.position <= SEGMENT_SIZE_BYTES_MAX, "rolled too late");
            self.index.push(OffsetIndexEntry {
                relative_offset: relative_offset(batch.base_offset),
                position: batch.position as u32,
            });
            let max_timestamp_ms = self.cursor.max_timestamp_ms;
            let newer = self
                .time_index
                .last()
                .is_none_or(|last| max_timestamp_ms > last.timestamp_ms);
            let offset_of_max = relative_offset(self.cursor.offset_of_max_timestamp);
            let later = self
                .time_index
                .last()
                .is_none_or(|last| offset_of_max > last.relative_offset);
            if newer && later {
                self.time_index.push(TimeIndexEntry {
                    timestamp_ms: max_timestamp_ms,
                    relative_offset: offset_of_max,
                });
            }
            self.cursor.bytes_since_index_entry = 0;
        }
        self.cursor.bytes_since_index_entry += batch.size_bytes;
        self.cursor.size_bytes += batch.size_bytes;
        self.cursor.next_offset = batch.last_offset + 1;
        self.cursor.index_len = self.index.len();
        self.cursor.time_index_len = self.time_index.len();
        self.indexes_dirty = true;
    }

    /// Puts back counters saved before an append, dropping the index entries it added.
    pub fn restore(&mut self, saved: SegmentCursor) {
        assert!(self.sealed.is_none(), "sealed segments are immutable");
        self.index.truncate_len(saved.index_len);
        self.time_index.truncate_len(saved.time_index_len);
        self.cursor = saved;
        self.indexes_dirty = true;
    }

    /// Writes both index files. They need no fsync or atomic rename: recovery checks them
    /// against the log and rebuilds any that disagree.
    pub fn write_indexes(&mut self) -> io::Result<()> {
        assert!(
            self.sealed.is_none(),
            "a sealed segment's index files are final"
        );
        fs::write(self.file.index_path(), self.index.encode())?;
        fs::write(self.file.time_index_path(), self.time_index.encode())?;
        self.indexes_dirty = false;
        Ok(())
    }

    /// Whether both index files hold exactly the in-memory indexes. Reads at most as many bytes
    /// as the in-memory indexes encode to, whatever the files' sizes.
    pub fn index_files_match(&self) -> io::Result<bool> {
        Ok(file_equals(&self.file.index_path(), &self.index.encode())?
            && file_equals(&self.file.time_index_path(), &self.time_index.encode())?)
    }
}

fn file_equals(path: &std::path::Path, expected: &[u8]) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    if file.metadata()?.len() != expected.len() as u64 {
        return Ok(false);
    }
    let mut actual = vec![0u8; expected.len()];
    file.read_exact_at(&mut actual, 0)?;
    Ok(actual == expected)
}

/// The header fields the read path and header walks need, read with one `pread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    pub size_bytes: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Why a header could not be read.
#[derive(Debug)]
pub enum HeaderReadError {
    Io(io::Error),
    Damage(Damage),
}

/// Reads the batch header at `position`, checking that the batch ends by `end_position`.
///
/// Used on bytes recovery already verified, so a failure here means the file changed under
/// the log; it is reported, never trusted.
pub fn read_header_at(
    file: &File,
    position: u64,
    end_position: u64,
) -> Result<HeaderFields, HeaderReadError> {
    let available_bytes = end_position.saturating_sub(position);
    if available_bytes < BATCH_HEADER_SIZE_BYTES as u64 {
        return Err(HeaderReadError::Damage(Damage::Batch(
            BatchError::Truncated {
                needed_bytes: BATCH_HEADER_SIZE_BYTES,
                available_bytes: available_bytes as usize,
            },
        )));
    }
    let mut bytes = [0u8; BATCH_HEADER_SIZE_BYTES];
    file.read_exact_at(&mut bytes, position)
        .map_err(HeaderReadError::Io)?;
    let Ok(header) = RecordBatchHeader::ref_from_bytes(&bytes[..]) else {
        unreachable!("the array is exactly one header long");
    };
    if header.magic != MAGIC_V2 {
        return Err(HeaderReadError::Damage(Damage::Batch(
            BatchError::UnsupportedMagic {
                magic: header.magic,
            },
        )));
    }
    let batch_length = header.batch_length.get();
    let size_bytes = match header.total_size_bytes() {
        Some(size) if size >= BATCH_HEADER_SIZE_BYTES => size as u64,
        _ => {
            return Err(HeaderReadError::Damage(Damage::Batch(
                BatchError::LengthTooSmall { batch_length },
            )));
        }
    };
    if size_bytes > available_bytes {
        return Err(HeaderReadError::Damage(Damage::Batch(
            BatchError::Truncated {
                needed_bytes: size_bytes as usize,
                available_bytes: available_bytes as usize,
            },
        )));
    }
    Ok(HeaderFields {
        size_bytes,
        base_offset: header.base_offset.get(),
        last_offset: header.last_offset(),
        max_timestamp_ms: header.max_timestamp.get(),
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
    })
}
