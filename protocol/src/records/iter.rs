//! Iterating over the records of a v2 batch, for tools, clients and tests.
//!
//! The broker's append path never comes here: it checks headers only (see `validate`). This
//! module decodes records, decompressing first when the batch is compressed, with a bounded
//! output size so that a decompression bomb fails cleanly.

use bytes::Bytes;
use zerocopy::FromBytes;

use super::error::RecordError;
use super::header::{
    BATCH_HEADER_SIZE_BYTES, Compression, MAGIC_V2, RecordBatchHeader, TimestampType, attributes,
    compute_batch_crc,
};
use super::record::{Cursor, Record, RecordBase};
use super::validate::BatchError;
use crate::compression::{DEFAULT_DECOMPRESSED_SIZE_MAX_BYTES, codec_for};

/// Decompresses the records section of a batch (`body`: the bytes after the 61-byte header).
///
/// An uncompressed body is returned as is (a cheap clone of the same buffer). Output larger
/// than `max_output_bytes` is an error, never an allocation.
pub fn decompress_records(
    header: &RecordBatchHeader,
    body: &Bytes,
    max_output_bytes: usize,
) -> Result<Bytes, RecordError> {
    let Some(compression) = header.compression() else {
        return Err(RecordError::UnknownCompression {
            id: header.attributes.get() & attributes::COMPRESSION_MASK,
        });
    };
    match codec_for(compression) {
        None => Ok(body.clone()),
        Some(codec) => Ok(Bytes::from(codec.decompress(body, max_output_bytes)?)),
    }
}

/// The records of one batch, in order.
///
/// Yields at most the header's `recordsCount` records. After the first error it yields
/// nothing more: once a length is wrong, where the next record starts is unknown.
pub struct BatchRecords {
    cursor: Cursor,
    base: RecordBase,
    records_count: i32,
    records_read: i32,
    compression: Compression,
    size_bytes: usize,
    finished: bool,
}

impl BatchRecords {
    /// Checks the batch at the start of `batch` (magic, length, CRC, codec) and prepares to
    /// read its records, decompressing with [`DEFAULT_DECOMPRESSED_SIZE_MAX_BYTES`].
    ///
    /// `batch` may continue past this batch; the rest is ignored. Unlike the append path this
    /// accepts a batch with zero records, which log compaction can leave behind.
    pub fn new(batch: Bytes) -> Result<Self, RecordError> {
        Self::with_limit(batch, DEFAULT_DECOMPRESSED_SIZE_MAX_BYTES)
    }

    /// As [`BatchRecords::new`], with a caller-chosen cap on decompressed bytes.
    pub fn with_limit(batch: Bytes, max_decompressed_bytes: usize) -> Result<Self, RecordError> {
        let Ok((header, _)) = RecordBatchHeader::ref_from_prefix(&batch) else {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_SIZE_BYTES,
                available_bytes: batch.len(),
            }
            .into());
        };
        if header.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic {
                magic: header.magic,
            }
            .into());
        }
        let batch_length = header.batch_length.get();
        let size_bytes = match header.total_size_bytes() {
            Some(size_bytes) if size_bytes >= BATCH_HEADER_SIZE_BYTES => size_bytes,
            _ => return Err(BatchError::LengthTooSmall { batch_length }.into()),
        };
        if size_bytes > batch.len() {
            return Err(BatchError::Truncated {
                needed_bytes: size_bytes,
                available_bytes: batch.len(),
            }
            .into());
        }
        let stored = header.crc.get();
        let computed = compute_batch_crc(&batch[..size_bytes]).unwrap_or(0);
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed }.into());
        }
        let records_count = header.records_count.get();
        if records_count < 0 {
            return Err(BatchError::CountMismatch {
                records_count,
                last_offset_delta: header.last_offset_delta.get(),
            }
            .into());
        }
        let body = batch.slice(BATCH_HEADER_SIZE_BYTES..size_bytes);
        let records = decompress_records(header, &body, max_decompressed_bytes)?;
        let log_append_time_ms = match header.timestamp_type() {
            TimestampType::LogAppendTime => Some(header.max_timestamp.get()),
            TimestampType::CreateTime => None,
        };
        Ok(Self {
            cursor: Cursor::new(records),
            base: RecordBase {
                offset: header.base_offset.get(),
                timestamp_ms: header.base_timestamp.get(),
                log_append_time_ms,
            },
            records_count,
            records_read: 0,
            compression: header.compression().unwrap_or(Compression::None),
            size_bytes,
            finished: false,
        })
    }

    /// The count the batch header declares.
    pub fn records_count(&self) -> i32 {
        self.records_count
    }

    /// Bytes the batch occupies in its buffer, header included: where the next batch starts.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// The codec the batch was compressed with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    fn fail(&mut self, error: RecordError) -> Option<Result<Record, RecordError>> {
        self.finished = true;
        Some(Err(error))
    }
}

impl Iterator for BatchRecords {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.records_read == self.records_count {
            self.finished = true;
            let remaining_bytes = self.cursor.remaining_bytes();
            if remaining_bytes != 0 {
                return Some(Err(RecordError::TrailingBytes {
                    records_count: self.records_count,
                    remaining_bytes,
                }));
            }
            return None;
        }
        if self.cursor.remaining_bytes() == 0 {
            let error = RecordError::MissingRecords {
                records_count: self.records_count,
                records_read: self.records_read,
            };
            return self.fail(error);
        }
        match self.cursor.record(&self.base) {
            Ok(record) => {
                self.records_read += 1;
                Some(Ok(record))
            }
            Err(error) => self.fail(error),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.records_count - self.records_read).unwrap_or(0);
        (0, Some(left.saturating_add(1)))
    }
}

/// Every record of every batch in `buffer` (concatenated batches, as in a Produce request's
/// or a Fetch response's `records`), each batch decompressed within `max_decompressed_bytes`.
///
/// Strict: a trailing partial batch is an error. (Consumers reading fetch responses should
/// stop at a partial batch instead; brokers may cut the last one at `max_bytes`.)
pub fn read_all_records(
    buffer: &Bytes,
    max_decompressed_bytes: usize,
) -> Result<Vec<Record>, RecordError> {
    let mut records = Vec::new();
    let mut position = 0;
    while position < buffer.len() {
        let batch_records =
            BatchRecords::with_limit(buffer.slice(position..), max_decompressed_bytes)?;
        // At least a header's worth: with_limit refuses shorter lengths, so this terminates.
        position += batch_records.size_bytes();
        for record in batch_records {
            records.push(record?);
        }
    }
    Ok(records)
}
