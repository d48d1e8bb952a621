//! Reads: segment slices of whole batches below a bound (the high watermark for consumers,
//! the written end for followers), and timestamp lookup.
//!
//! A read costs a binary search over segments, one over the sparse index, and a few header
//! `pread`s (at most about `index.interval.bytes` worth of batches on each end). It never
//! copies record bytes: the slices are sent from the file.

use super::error::ReadError;
use super::partition_log::{BatchBoundary, PartitionLog};
use super::segment::{HeaderFields, HeaderReadError, Segment, read_header_at};
use super::segment_file::FileSlice;

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadBound {
    /// Consumers: whole batches below the high watermark.
    #[default]
    HighWatermark,
    /// Followers fetching from the leader: whole batches below the written end, i.e. every
    /// byte in the files (under `flush=always` possibly not fsynced yet), never staged bytes
    /// that are not written.
    WrittenEnd,
}

/// What a read found, with the offsets a Fetch response reports.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub slices: Vec<FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl ReadResult {
    pub fn size_bytes(&self) -> u64 {
        self.slices.iter().map(|s| u64::from(s.len)).sum()
    }
}

impl PartitionLog {
    /// Returns whole batches from the one containing `offset`, up to the high watermark and
    /// `max_bytes`, except that the first batch is returned whole even if it alone is larger
    /// (KIP-74), so a consumer always makes progress.
    pub fn read(&self, offset: i64, max_bytes: u32) -> Result<ReadResult, ReadError> {
        self.read_bounded(offset, max_bytes, ReadBound::HighWatermark)
    }

    /// [`PartitionLog::read`] up to `bound` instead of the high watermark. An offset at or
    /// above the bound but not past the log end gets an empty answer; past the log end (or
    /// below its start), `OffsetOutOfRange`. The result's `high_watermark` is always the high
    /// watermark, whatever the bound.
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: u32,
        bound: ReadBound,
    ) -> Result<ReadResult, ReadError> {
        let mark = match bound {
            ReadBound::HighWatermark => &self.high_watermark,
            ReadBound::WrittenEnd => &self.written_end,
        };
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.next_offset,
            });
        }
        let mut result = ReadResult {
            slices: Vec::new(),
            high_watermark: self.high_watermark.offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.next_offset,
        };
        if offset >= mark.offset {
            return Ok(result);
        }
        let first = self.segment_index_for(offset);
        let mut remaining_bytes = u64::from(max_bytes);
        for segment in &self.segments[first..] {
            let readable_end = self.readable_end(segment, mark);
            let start = if result.slices.is_empty() {
                self.locate(segment, offset, readable_end)?
            } else {
                0
            };
            if start >= readable_end {
                break;
            }
            let end = self.slice_end(
                segment,
                start,
                readable_end,
                remaining_bytes,
                result.slices.is_empty(),
            )?;
            if end <= start {
                break;
            }
            result.slices.push(FileSlice {
                segment: segment.file.clone(),
                position: start,
                len: (end - start) as u32,
            });
            remaining_bytes = remaining_bytes.saturating_sub(end - start);
            if end < readable_end || remaining_bytes == 0 {
                break;
            }
        }
        Ok(result)
    }

    /// Kafka's ListOffsets by timestamp, at batch granularity: the base offset and max
    /// timestamp of the first batch below the high watermark whose max timestamp is at or
    /// after `timestamp_ms` (never below the log start offset). Records are not decoded, so
    /// the offset may be that of an earlier record in the same batch.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, ReadError> {
        for segment in &self.segments {
            let readable_end = self.readable_end(segment, &self.high_watermark);
            if readable_end == 0 {
                break;
            }
            if segment.cursor.max_timestamp_ms < timestamp_ms {
                continue;
            }
            let time_entry = segment
                .time_entry_before(timestamp_ms)
                .map_err(|source| self.index_io(segment, source))?;
            let mut position = match time_entry {
                Some(entry) => segment
                    .offset_entry_at_or_before(entry.relative_offset)
                    .map_err(|source| self.index_io(segment, source))?
                    .map_or(0, |entry| u64::from(entry.position)),
                None => 0,
            };
            while position < readable_end {
                let header = self.header(segment, position, readable_end)?;
                if header.max_timestamp_ms >= timestamp_ms
                    && header.last_offset >= self.log_start_offset
                {
                    let offset = header.base_offset.max(self.log_start_offset);
                    return Ok(Some((offset, header.max_timestamp_ms)));
                }
                position += header.size_bytes;
            }
        }
        Ok(None)
    }

    /// The segment whose offsets include `offset` (the last one starting at or below it).
    pub(crate) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// Bytes of `segment` below `mark` (the high watermark, or another of the log's marks).
    pub(crate) fn readable_end(&self, segment: &Segment, mark: &BatchBoundary) -> u64 {
        let base = segment.base_offset();
        if base < mark.segment_base_offset {
            segment.cursor.size_bytes
        } else if base == mark.segment_base_offset {
            mark.position
        } else {
            0
        }
    }

    /// Position of the batch containing `offset`, or `readable_end` if none below it does.
    fn locate(&self, segment: &Segment, offset: i64, readable_end: u64) -> Result<u64, ReadError> {
        Ok(self
            .locate_batch(segment, offset, readable_end)?
            .map_or(readable_end, |(position, _)| position))
    }

    /// Position and base offset of the batch containing `offset`, among the batches of
    /// `segment` that end by `readable_end`: a recent append boundary when `offset` is one (a
    /// tail consumer's next fetch), else the sparse index, then a header walk.
    pub(crate) fn locate_batch(
        &self,
        segment: &Segment,
        offset: i64,
        readable_end: u64,
    ) -> Result<Option<(u64, i64)>, ReadError> {
        let remembered = self.recent_boundaries.iter().rev().find(|boundary| {
            boundary.offset == offset
                && boundary.segment_base_offset == segment.base_offset()
                && boundary.position <= readable_end
        });
        if let Some(boundary) = remembered {
            return Ok(Some((boundary.position, boundary.offset)));
        }
        let relative = u32::try_from(offset - segment.base_offset()).unwrap_or(u32::MAX);
        let mut position = segment
            .offset_entry_at_or_before(relative)
            .map_err(|source| self.index_io(segment, source))?
            .map_or(0, |entry| u64::from(entry.position));
        while position < readable_end {
            let header = self.header(segment, position, readable_end)?;
            if header.last_offset >= offset {
                return Ok(Some((position, header.base_offset)));
            }
            position += header.size_bytes;
        }
        Ok(None)
    }

    /// The last batch boundary at or below `start + remaining_bytes` (and `readable_end`), or
    /// the end of the first batch when `whole_first_batch` and it alone is too large.
    fn slice_end(
        &self,
        segment: &Segment,
        start: u64,
        readable_end: u64,
        remaining_bytes: u64,
        whole_first_batch: bool,
    ) -> Result<u64, ReadError> {
        let limit = start.saturating_add(remaining_bytes);
        if limit >= readable_end {
            return Ok(readable_end);
        }
        let mut end = segment
            .offset_entry_at_or_before_position(limit)
            .map_err(|source| self.index_io(segment, source))?
            .map_or(start, |entry| u64::from(entry.position).max(start));
        loop {
            let header = self.header(segment, end, readable_end)?;
            if end + header.size_bytes > limit {
                if end == start && whole_first_batch {
                    return Ok(start + header.size_bytes);
                }
                return Ok(end);
            }
            end += header.size_bytes;
        }
    }

    fn index_io(&self, segment: &Segment, source: std::io::Error) -> ReadError {
        ReadError::Io {
            partition: self.name.clone(),
            path: segment.file.index_path(),
            source,
        }
    }

    fn header(
        &self,
        segment: &Segment,
        position: u64,
        end_position: u64,
    ) -> Result<HeaderFields, ReadError> {
        read_header_at(segment.file.file(), position, end_position).map_err(|error| match error {
            HeaderReadError::Io(source) => ReadError::Io {
                partition: self.name.clone(),
                path: segment.file.path().to_path_buf(),
                source,
            },
            HeaderReadError::Damage(damage) => ReadError::Corrupt {
                partition: self.name.clone(),
                file: segment.file.path().to_path_buf(),
                position,
                damage,
            },
        })
    }
}
