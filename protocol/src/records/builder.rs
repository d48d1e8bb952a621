//! Building a v2 record batch from records, for clients, tests and benchmarks.
//!
//! The output is exactly what a Kafka producer sends: a 61-byte header, the records
//! (compressed as one block when a codec is chosen) and a CRC-32C over everything from
//! `attributes` on. [`super::BatchRecords`] reads it back.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::BuildError;
use super::header::{
    BATCH_CRC_START, BATCH_HEADER_SIZE_BYTES, BATCH_LOG_OVERHEAD_BYTES, Compression, MAGIC_V2,
    attributes,
};
use super::varint::{put_varint, put_varlong};
use crate::compression::codec_for;

/// Kafka's "no timestamp" value, used for an empty batch's timestamps.
const NO_TIMESTAMP: i64 = -1;
/// Largest batch whose `batchLength` (an `i32` counting bytes after itself) can describe it.
const BATCH_SIZE_MAX_BYTES: usize = i32::MAX as usize + BATCH_LOG_OVERHEAD_BYTES;

/// A record to put into a batch. Its offset is its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Accumulates records and produces one v2 batch.
///
/// Defaults match a non-idempotent Java producer: no producer id (-1), epoch -1, base
/// sequence -1, no compression, `CreateTime`, base offset 0 (the broker assigns offsets).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    compression: Compression,
    attribute_flags: i16,
    records: BytesMut,
    records_count: i32,
    base_timestamp_ms: Option<i64>,
    max_timestamp_ms: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder with the defaults above.
    pub fn new() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            attribute_flags: 0,
            records: BytesMut::new(),
            records_count: 0,
            base_timestamp_ms: None,
            max_timestamp_ms: NO_TIMESTAMP,
        }
    }

    /// Offset of the first record; brokers overwrite it, logs and fetch responses carry it.
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Leader epoch stamped by the broker that appended the batch; producers leave it -1.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent/transactional producer identity: the broker deduplicates on these.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Codec for the records section; the header and CRC stay uncompressed.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Marks records as part of a transaction, hidden from `read_committed` consumers until
    /// the transaction's commit marker.
    pub fn transactional(self, on: bool) -> Self {
        self.flag(attributes::TRANSACTIONAL_MASK, on)
    }

    /// Marks a control batch (transaction markers); its records' keys name the control type.
    pub fn control(self, on: bool) -> Self {
        self.flag(attributes::CONTROL_MASK, on)
    }

    /// Marks the batch `LogAppendTime`: readers take every record's timestamp from the
    /// batch's `maxTimestamp`, as a broker with that topic setting would have written it.
    pub fn log_append_time(self, on: bool) -> Self {
        self.flag(attributes::TIMESTAMP_TYPE_MASK, on)
    }

    fn flag(mut self, mask: i16, on: bool) -> Self {
        if on {
            self.attribute_flags |= mask;
        } else {
            self.attribute_flags &= !mask;
        }
        self
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        // records_count only grows and never goes negative.
        self.records_count as usize
    }

    /// Whether no record has been pushed; building now gives a zero-record batch.
    pub fn is_empty(&self) -> bool {
        self.records_count == 0
    }

    /// Appends a record; its offset delta is the number of records before it.
    pub fn push(&mut self, record: &NewRecord) -> Result<(), BuildError> {
        if self.records_count == i32::MAX {
            return Err(BuildError::TooManyRecords {
                limit: i32::MAX as usize,
            });
        }
        let base_timestamp_ms = *self.base_timestamp_ms.get_or_insert(record.timestamp_ms);
        let mut body = BytesMut::new();
        body.put_i8(0);
        put_varlong(
            &mut body,
            record.timestamp_ms.wrapping_sub(base_timestamp_ms),
        );
        put_varint(&mut body, self.records_count);
        put_nullable(&mut body, record.key.as_deref(), "key")?;
        put_nullable(&mut body, record.value.as_deref(), "value")?;
        put_varint(&mut body, length_i32(record.headers.len(), "headersCount")?);
        for (key, value) in &record.headers {
            put_nullable(&mut body, Some(key.as_bytes()), "headerKey")?;
            put_nullable(&mut body, value.as_deref(), "headerValue")?;
        }
        let length = length_i32(body.len(), "record")?;
        put_varint(&mut self.records, length);
        self.records.extend_from_slice(&body);
        self.records_count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
        if self.records_count == 1 {
            self.max_timestamp_ms = record.timestamp_ms;
        }
        Ok(())
    }

    /// Finishes the batch: compresses the records if asked, writes the header, and computes
    /// the CRC. An empty builder gives a zero-record batch, which brokers refuse.
    pub fn build(self) -> Result<Bytes, BuildError> {
        let records: Bytes = match codec_for(self.compression) {
            None => self.records.freeze(),
            Some(codec) => Bytes::from(codec.compress(&self.records)?),
        };
        let size_bytes = BATCH_HEADER_SIZE_BYTES + records.len();
        if size_bytes > BATCH_SIZE_MAX_BYTES {
            return Err(BuildError::TooLarge {
                size_bytes,
                limit_bytes: BATCH_SIZE_MAX_BYTES,
            });
        }
        let batch_length = (size_bytes - BATCH_LOG_OVERHEAD_BYTES) as i32;
        let attributes = self.compression.id() | self.attribute_flags;
        let mut out = BytesMut::with_capacity(size_bytes);
        out.put_i64(self.base_offset);
        out.put_i32(batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, filled in below once the covered bytes exist.
        out.put_i16(attributes);
        out.put_i32(self.records_count - 1);
        out.put_i64(self.base_timestamp_ms.unwrap_or(NO_TIMESTAMP));
        out.put_i64(self.max_timestamp_ms);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.records_count);
        out.extend_from_slice(&records);
        let crc = crc32c::crc32c(&out[BATCH_CRC_START..]);
        out[17..BATCH_CRC_START].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}

fn length_i32(length: usize, field: &'static str) -> Result<i32, BuildError> {
    i32::try_from(length).map_err(|_| BuildError::FieldTooLarge {
        field,
        size_bytes: length,
    })
}

fn put_nullable(
    out: &mut BytesMut,
    bytes: Option<&[u8]>,
    field: &'static str,
) -> Result<(), BuildError> {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, length_i32(bytes.len(), field)?);
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}
