//! The 61-byte RecordBatch v2 header, viewed in place.
//!
//! Kafka stores and sends record batches as the same bytes, so the broker never needs to decode
//! the records: it reads and rewrites a handful of header fields where they lie. This module is
//! that view. It does not decode records (see `records::iter`) and does no I/O.
//!
//! Layout (all big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! | offset | field                | type  |
//! |-------:|----------------------|-------|
//! |      0 | baseOffset           | i64   |
//! |      8 | batchLength          | i32   |
//! |     12 | partitionLeaderEpoch | i32   |
//! |     16 | magic                | i8    |
//! |     17 | crc                  | u32   |
//! |     21 | attributes           | i16   |
//! |     23 | lastOffsetDelta      | i32   |
//! |     27 | baseTimestamp        | i64   |
//! |     35 | maxTimestamp         | i64   |
//! |     43 | producerId           | i64   |
//! |     51 | producerEpoch        | i16   |
//! |     53 | baseSequence         | i32   |
//! |     57 | recordsCount         | i32   |
//!
//! `batchLength` counts the bytes after itself, so a batch occupies `12 + batchLength` bytes.
//! The CRC-32C covers `[21, 12 + batchLength)`: everything from `attributes` on, which is why
//! the broker may rewrite `baseOffset` and `partitionLeaderEpoch` without recomputing it.

use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed part of a v2 batch, before the first record.
pub const BATCH_HEADER_SIZE_BYTES: usize = 61;
/// Bytes before `partitionLeaderEpoch`: `baseOffset` and `batchLength` are not counted by
/// `batchLength`.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
/// Where the CRC-covered region begins (the `attributes` field).
pub const BATCH_CRC_START: usize = 21;
/// The only batch format Spate accepts on the wire and stores on disk.
pub const MAGIC_V2: i8 = 2;

const _: () = assert!(core::mem::size_of::<RecordBatchHeader>() == BATCH_HEADER_SIZE_BYTES);

/// Compression codec in bits 0..=2 of `attributes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The attribute bits for this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for attribute bits, or `None` for the reserved values 5..=7.
    pub fn from_id(id: i16) -> Option<Self> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

/// Which clock a batch's timestamps come from (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appends (`message.timestamp.type=LogAppendTime`).
    LogAppendTime,
}

/// Attribute bit masks, as in Kafka's `DefaultRecordBatch`.
pub mod attributes {
    pub const COMPRESSION_MASK: i16 = 0x07;
    pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
    pub const TRANSACTIONAL_MASK: i16 = 0x10;
    pub const CONTROL_MASK: i16 = 0x20;
    pub const DELETE_HORIZON_MASK: i16 = 0x40;
}

/// The fixed header of a RecordBatch v2, laid over the batch's own bytes.
///
/// Obtain one with [`RecordBatchHeader::ref_from_prefix`] or
/// [`RecordBatchHeader::mut_from_prefix`]; neither copies.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordBatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

impl RecordBatchHeader {
    /// Total bytes the batch occupies, `12 + batchLength`, or `None` if `batchLength` is
    /// negative.
    pub fn total_size_bytes(&self) -> Option<usize> {
        let length = usize::try_from(self.batch_length.get()).ok()?;
        length.checked_add(BATCH_LOG_OVERHEAD_BYTES)
    }

    /// The codec, or `None` for a reserved codec id.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes.get() & attributes::COMPRESSION_MASK)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes.get() & attributes::TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.get() & attributes::TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes.get() & attributes::CONTROL_MASK != 0
    }

    /// Offset of the last record: `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .get()
            .saturating_add(i64::from(self.last_offset_delta.get()))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
}

/// CRC-32C (Castagnoli) of the region a v2 batch's `crc` field covers.
///
/// `batch` must hold exactly one whole batch; returns `None` if it is shorter than a header.
pub fn compute_batch_crc(batch: &[u8]) -> Option<u32> {
    let covered = batch.get(BATCH_CRC_START..)?;
    if batch.len() < BATCH_HEADER_SIZE_BYTES {
        return None;
    }
    Some(crc32c::crc32c(covered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_batch() -> Vec<u8> {
        let mut bytes = vec![0u8; BATCH_HEADER_SIZE_BYTES];
        let (header, _) = RecordBatchHeader::mut_from_prefix(&mut bytes).expect("61 bytes");
        header
            .batch_length
            .set((BATCH_HEADER_SIZE_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32);
        header.magic = MAGIC_V2;
        header.attributes.set(attributes::TIMESTAMP_TYPE_MASK | 3);
        header.last_offset_delta.set(4);
        header.base_offset.set(100);
        bytes
    }

    #[test]
    fn header_fields_sit_at_kafka_offsets() {
        let bytes = empty_batch();
        assert_eq!(&bytes[8..12], &49i32.to_be_bytes());
        assert_eq!(bytes[16], 2);
        assert_eq!(&bytes[0..8], &100i64.to_be_bytes());
        assert_eq!(&bytes[23..27], &4i32.to_be_bytes());
    }

    #[test]
    fn attributes_decode() {
        let bytes = empty_batch();
        let (header, _) = RecordBatchHeader::ref_from_prefix(&bytes).expect("61 bytes");
        assert_eq!(header.compression(), Some(Compression::Lz4));
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert!(!header.is_transactional());
        assert_eq!(header.total_size_bytes(), Some(61));
        assert_eq!(header.last_offset(), 104);
        assert_eq!(header.next_offset(), 105);
    }

    #[test]
    fn crc_ignores_base_offset_and_epoch() {
        let mut bytes = empty_batch();
        let before = compute_batch_crc(&bytes);
        bytes[0..8].copy_from_slice(&7i64.to_be_bytes());
        bytes[12..16].copy_from_slice(&9i32.to_be_bytes());
        assert_eq!(compute_batch_crc(&bytes), before);
        bytes[30] ^= 1;
        assert_ne!(compute_batch_crc(&bytes), before);
    }

    #[test]
    fn short_input_has_no_crc() {
        assert_eq!(compute_batch_crc(&[0u8; 60]), None);
    }
}
