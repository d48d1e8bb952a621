//! Verifies the batches of a segment file, in order, as recovery and truncation need.
//!
//! The scan reads the file sequentially through one bounded window, checks each batch's
//! framing, magic, CRC-32C, counts, codec id and offset, and hands every good batch to a
//! visitor. It stops at the first bad batch and says where and why; deciding whether that is
//! a torn tail or damaged acknowledged data is the caller's job. Lengths read from the file
//! never size an allocation: the window is at most [`SCAN_WINDOW_BYTES`], and the CRC of a
//! larger batch is computed window by window.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use spate_protocol::records::header::{BATCH_CRC_START, BATCH_LOG_OVERHEAD_BYTES, attributes};
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, BatchError, Compression, MAGIC_V2, RecordBatchHeader,
};
use zerocopy::FromBytes;

use super::error::Damage;
use super::segment::{SEGMENT_OFFSET_SPAN_MAX, SEGMENT_SIZE_BYTES_MAX};

/// Read size of the scan: large enough that a sequential scan runs near disk bandwidth,
/// small enough that many partitions may be recovered at once.
pub const SCAN_WINDOW_BYTES: usize = 1 << 20;

/// A batch the scan verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch {
    pub position: u64,
    pub size_bytes: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// `partitionLeaderEpoch`: the leader epoch that wrote the batch (not CRC-covered).
    pub partition_leader_epoch: i32,
}

/// Where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Position after the last good batch.
    pub position: u64,
    /// Offset after the last good batch.
    pub next_offset: i64,
    /// Why the scan stopped before the end of the file, if it did and not on request.
    pub damage: Option<Damage>,
}

/// What to verify and where to stop.
#[derive(Debug, Clone, Copy)]
pub struct ScanRequest {
    /// The segment's base offset (the name of the file).
    pub segment_base_offset: i64,
    /// Bytes of the file to scan, from position 0.
    pub file_len: u64,
    /// Stop cleanly before the first batch whose last offset reaches this (truncation).
    pub stop_at_offset: i64,
}

/// Scans `file` from position 0 and calls `visit` for every good batch.
pub fn scan_segment(
    file: &File,
    request: ScanRequest,
    mut visit: impl FnMut(&ScannedBatch),
) -> io::Result<ScanEnd> {
    let mut window = ScanWindow::new(file, request.file_len);
    let mut position = 0u64;
    let mut next_offset = request.segment_base_offset;
    while position < request.file_len {
        match check_batch_at(&mut window, position, next_offset, request)? {
            Ok(batch) if batch.last_offset >= request.stop_at_offset => break,
            Ok(batch) => {
                visit(&batch);
                position += batch.size_bytes;
                next_offset = batch.last_offset + 1;
            }
            Err(damage) => {
                return Ok(ScanEnd {
                    position,
                    next_offset,
                    damage: Some(damage),
                });
            }
        }
    }
    Ok(ScanEnd {
        position,
        next_offset,
        damage: None,
    })
}

/// The header fields the scan keeps, copied out of the window.
struct HeaderCopy {
    batch_length: i32,
    magic: i8,
    crc: u32,
    attributes: i16,
    base_offset: i64,
    last_offset_delta: i32,
    records_count: i32,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    partition_leader_epoch: i32,
}

/// Checks one batch in the same order as `spate_protocol::records::check_batch`, then its
/// offset. The outer `io::Result` is a failed read; the inner `Err` is damage.
fn check_batch_at(
    window: &mut ScanWindow<'_>,
    position: u64,
    expected_offset: i64,
    request: ScanRequest,
) -> io::Result<Result<ScannedBatch, Damage>> {
    let available_bytes = request.file_len - position;
    if available_bytes < BATCH_HEADER_SIZE_BYTES as u64 {
        return Ok(Err(Damage::Batch(BatchError::Truncated {
            needed_bytes: BATCH_HEADER_SIZE_BYTES,
            available_bytes: available_bytes as usize,
        })));
    }
    let header = {
        let bytes = window.bytes(position, BATCH_HEADER_SIZE_BYTES)?;
        let Ok((header, _)) = RecordBatchHeader::ref_from_prefix(bytes) else {
            unreachable!("the window returned a whole header");
        };
        HeaderCopy {
            batch_length: header.batch_length.get(),
            magic: header.magic,
            crc: header.crc.get(),
            attributes: header.attributes.get(),
            base_offset: header.base_offset.get(),
            last_offset_delta: header.last_offset_delta.get(),
            records_count: header.records_count.get(),
            max_timestamp_ms: header.max_timestamp.get(),
            producer_id: header.producer_id.get(),
            producer_epoch: header.producer_epoch.get(),
            base_sequence: header.base_sequence.get(),
            partition_leader_epoch: header.partition_leader_epoch.get(),
        }
    };
    let min_length = (BATCH_HEADER_SIZE_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32;
    if header.batch_length < min_length {
        return Ok(Err(Damage::Batch(BatchError::LengthTooSmall {
            batch_length: header.batch_length,
        })));
    }
    if header.magic != MAGIC_V2 {
        return Ok(Err(Damage::Batch(BatchError::UnsupportedMagic {
            magic: header.magic,
        })));
    }
    let size_bytes = header.batch_length as u64 + BATCH_LOG_OVERHEAD_BYTES as u64;
    if size_bytes > available_bytes {
        return Ok(Err(Damage::Batch(BatchError::Truncated {
            needed_bytes: size_bytes as usize,
            available_bytes: available_bytes as usize,
        })));
    }
    let computed = crc_of_range(
        window,
        position + BATCH_CRC_START as u64,
        position + size_bytes,
    )?;
    if computed != header.crc {
        return Ok(Err(Damage::Batch(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        })));
    }
    if header.records_count <= 0
        || header.last_offset_delta < 0
        || i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count)
    {
        return Ok(Err(Damage::Batch(BatchError::CountMismatch {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        })));
    }
    let codec_id = header.attributes & attributes::COMPRESSION_MASK;
    if Compression::from_id(codec_id).is_none() {
        return Ok(Err(Damage::Batch(BatchError::UnknownCompression {
            id: codec_id,
        })));
    }
    if header.base_offset != expected_offset {
        return Ok(Err(Damage::OffsetMismatch {
            expected: expected_offset,
            found: header.base_offset,
        }));
    }
    let last_offset = header.base_offset + i64::from(header.last_offset_delta);
    if last_offset - request.segment_base_offset > SEGMENT_OFFSET_SPAN_MAX
        || position + size_bytes > SEGMENT_SIZE_BYTES_MAX
    {
        return Ok(Err(Damage::SegmentTooLarge {
            limit_bytes: SEGMENT_SIZE_BYTES_MAX,
        }));
    }
    Ok(Ok(ScannedBatch {
        position,
        size_bytes,
        base_offset: header.base_offset,
        last_offset,
        max_timestamp_ms: header.max_timestamp_ms,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        partition_leader_epoch: header.partition_leader_epoch,
    }))
}

fn crc_of_range(window: &mut ScanWindow<'_>, start: u64, end: u64) -> io::Result<u32> {
    let mut crc = 0u32;
    let mut position = start;
    while position < end {
        let chunk_len = (end - position).min(SCAN_WINDOW_BYTES as u64) as usize;
        crc = crc32c::crc32c_append(crc, window.bytes(position, chunk_len)?);
        position += chunk_len as u64;
    }
    Ok(crc)
}

/// A read-ahead buffer over the file, at most [`SCAN_WINDOW_BYTES`] and never more than the
/// file holds.
struct ScanWindow<'f> {
    file: &'f File,
    file_len: u64,
    buffer: Vec<u8>,
    start: u64,
    filled: usize,
}

impl<'f> ScanWindow<'f> {
    fn new(file: &'f File, file_len: u64) -> Self {
        Self {
            file,
            file_len,
            buffer: Vec::new(),
            start: 0,
            filled: 0,
        }
    }

    /// `len` bytes at `position`; the caller keeps `len <= SCAN_WINDOW_BYTES` and the range
    /// inside the file.
    fn bytes(&mut self, position: u64, len: usize) -> io::Result<&[u8]> {
        assert!(len <= SCAN_WINDOW_BYTES && position + len as u64 <= self.file_len);
        let end = position + len as u64;
        if position < self.start || end > self.start + self.filled as u64 {
            let want = (self.file_len - position).min(SCAN_WINDOW_BYTES as u64) as usize;
            if self.buffer.len() < want {
                self.buffer.resize(want, 0);
            }
            self.file
                .read_exact_at(&mut self.buffer[..want], position)?;
            self.start = position;
            self.filled = want;
        }
        let from = (position - self.start) as usize;
        Ok(&self.buffer[from..from + len])
    }
}
