//! Structural checks of RecordBatch v2 bytes, without decoding the records.
//!
//! This is what the append path runs on every batch a producer sends and what recovery runs on
//! every batch it finds on disk. It checks the framing (lengths), the magic byte, the CRC and
//! the header's own consistency. It does not look inside the records and never decompresses;
//! limits that are policy (such as `max.message.bytes`) belong to the caller.

use zerocopy::FromBytes;

use super::header::{
    BATCH_HEADER_SIZE_BYTES, BATCH_LOG_OVERHEAD_BYTES, MAGIC_V2, RecordBatchHeader,
    compute_batch_crc,
};

/// Why a batch was refused. Each variant maps to Kafka's `CORRUPT_MESSAGE` or
/// `INVALID_RECORD`, except `Truncated`, which at the end of a log means a torn write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: {needed_bytes} bytes needed, {available_bytes} available")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("batch length {batch_length} is below the v2 header size")]
    LengthTooSmall { batch_length: i32 },
    #[error("unsupported record batch magic {magic}; only v2 (magic 2) is accepted")]
    UnsupportedMagic { magic: i8 },
    #[error("batch CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error(
        "records count {records_count} is negative or does not match lastOffsetDelta {last_offset_delta}"
    )]
    CountMismatch {
        records_count: i32,
        last_offset_delta: i32,
    },
    #[error("reserved compression codec id {id}")]
    UnknownCompression { id: i16 },
}

/// What the append path and recovery need to know about a checked batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Bytes the batch occupies, header included.
    pub size_bytes: usize,
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub max_timestamp: i64,
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub is_transactional: bool,
    pub is_control: bool,
}

/// Checks the batch at the start of `bytes` and returns its summary.
///
/// `bytes` may continue past the batch; the summary's `size_bytes` says where the next one
/// starts. An empty batch (zero records) is refused, as Kafka refuses it from producers.
pub fn check_batch(bytes: &[u8]) -> Result<BatchSummary, BatchError> {
    let Ok((header, _)) = RecordBatchHeader::ref_from_prefix(bytes) else {
        return Err(BatchError::Truncated {
            needed_bytes: BATCH_HEADER_SIZE_BYTES,
            available_bytes: bytes.len(),
        });
    };
    let batch_length = header.batch_length.get();
    let min_length = (BATCH_HEADER_SIZE_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32;
    if batch_length < min_length {
        return Err(BatchError::LengthTooSmall { batch_length });
    }
    // batch_length >= 49, so the conversion and addition cannot fail on 64-bit targets.
    let size_bytes = batch_length as usize + BATCH_LOG_OVERHEAD_BYTES;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    if size_bytes > bytes.len() {
        return Err(BatchError::Truncated {
            needed_bytes: size_bytes,
            available_bytes: bytes.len(),
        });
    }
    let batch = &bytes[..size_bytes];
    let stored = header.crc.get();
    let computed = compute_batch_crc(batch).unwrap_or(0);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    let records_count = header.records_count.get();
    let last_offset_delta = header.last_offset_delta.get();
    if records_count <= 0
        || last_offset_delta < 0
        || i64::from(last_offset_delta) + 1 != i64::from(records_count)
    {
        return Err(BatchError::CountMismatch {
            records_count,
            last_offset_delta,
        });
    }
    if header.compression().is_none() {
        return Err(BatchError::UnknownCompression {
            id: header.attributes.get() & super::header::attributes::COMPRESSION_MASK,
        });
    }
    Ok(BatchSummary {
        size_bytes,
        base_offset: header.base_offset.get(),
        last_offset_delta,
        records_count,
        max_timestamp: header.max_timestamp.get(),
        base_timestamp: header.base_timestamp.get(),
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
        is_transactional: header.is_transactional(),
        is_control: header.is_control(),
    })
}

/// Iterates over the whole batches in a buffer of concatenated batches (a Produce request's
/// `records` field, or a segment file read from disk), checking each.
///
/// The iterator yields `Err` once, for the first bad batch, then stops: after a bad length the
/// position of the next batch is unknown.
pub struct Batches<'a> {
    bytes: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            position: 0,
            failed: false,
        }
    }

    /// Byte position of the next batch within the buffer.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for Batches<'_> {
    /// The batch's start position in the buffer and its summary.
    type Item = Result<(usize, BatchSummary), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.bytes.len() {
            return None;
        }
        let start = self.position;
        match check_batch(&self.bytes[start..]) {
            Ok(summary) => {
                self.position = start + summary.size_bytes;
                Some(Ok((start, summary)))
            }
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}
