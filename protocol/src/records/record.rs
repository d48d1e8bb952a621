//! One record inside a v2 batch, and how to read it from the batch's (decompressed) body.
//!
//! Record layout (Kafka's `DefaultRecord`), after a zig-zag varint `length` that counts the
//! bytes that follow it:
//!
//! ```text
//! attributes: i8 (unused) | timestampDelta: varlong | offsetDelta: varint
//! keyLength: varint (-1 = null) | key | valueLength: varint (-1 = null) | value
//! headersCount: varint | [headerKeyLength: varint | headerKey: UTF-8
//!                        | headerValueLength: varint (-1 = null) | headerValue]
//! ```
//!
//! Every length is checked against the bytes that remain before anything is sliced or
//! allocated, and a record must use exactly the bytes its `length` declares.

use bytes::Bytes;

use super::error::RecordError;
use super::varint::{read_varint, read_varlong};

/// A record read from a batch, with its absolute offset and timestamp resolved.
///
/// Key, value and header values are slices of the batch's bytes (or of the decompressed
/// buffer), so reading a record copies no payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `baseOffset + offsetDelta`.
    pub offset: i64,
    /// `baseTimestamp + timestampDelta`, or the batch's `maxTimestamp` when the batch uses
    /// `LogAppendTime` (the broker's clock overrides what the producer wrote).
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Header keys in order; duplicates are allowed, as in Kafka.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The batch-level values a record's deltas are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordBase {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `Some(maxTimestamp)` for a `LogAppendTime` batch.
    pub log_append_time_ms: Option<i64>,
}

/// Smallest possible encoded header: a one-byte key length and a one-byte value length.
const HEADER_SIZE_MIN_BYTES: usize = 2;

/// A read position over a `Bytes` buffer that slices without copying.
pub(crate) struct Cursor {
    bytes: Bytes,
    position: usize,
}

impl Cursor {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self { bytes, position: 0 }
    }

    pub(crate) fn remaining_bytes(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.position..]
    }

    fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let (value, size_bytes) = read_varint(self.rest(), field)?;
        self.position += size_bytes;
        Ok(value)
    }

    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let (value, size_bytes) = read_varlong(self.rest(), field)?;
        self.position += size_bytes;
        Ok(value)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError> {
        let Some(&byte) = self.rest().first() else {
            return Err(RecordError::Truncated {
                field,
                needed_bytes: 1,
                available_bytes: 0,
            });
        };
        self.position += 1;
        Ok(byte)
    }

    /// Slices the next `length` bytes, checking first that they are there.
    fn take(&mut self, length: usize, field: &'static str) -> Result<Bytes, RecordError> {
        if length > self.remaining_bytes() {
            return Err(RecordError::Truncated {
                field,
                needed_bytes: length,
                available_bytes: self.remaining_bytes(),
            });
        }
        let slice = self.bytes.slice(self.position..self.position + length);
        self.position += length;
        Ok(slice)
    }

    /// A varint length followed by that many bytes; -1 means null, and other negatives are
    /// malformed.
    fn nullable_bytes(
        &mut self,
        length_field: &'static str,
        field: &'static str,
    ) -> Result<Option<Bytes>, RecordError> {
        let length = self.varint(length_field)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field: length_field,
            length: i64::from(length),
        })?;
        self.take(length, field).map(Some)
    }

    /// Reads the record at the cursor and advances past it.
    pub(crate) fn record(&mut self, base: &RecordBase) -> Result<Record, RecordError> {
        let length = self.varint("length")?;
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field: "length",
            length: i64::from(length),
        })?;
        let body = self.take(length, "record")?;
        let mut inner = Cursor::new(body);
        let record = inner.record_fields(base)?;
        if inner.remaining_bytes() != 0 {
            return Err(RecordError::RecordSizeMismatch {
                declared_bytes: length,
                consumed_bytes: inner.position,
            });
        }
        Ok(record)
    }

    fn record_fields(&mut self, base: &RecordBase) -> Result<Record, RecordError> {
        let _attributes = self.byte("attributes")?;
        let timestamp_delta_ms = self.varlong("timestampDelta")?;
        let offset_delta = self.varint("offsetDelta")?;
        let key = self.nullable_bytes("keyLength", "key")?;
        let value = self.nullable_bytes("valueLength", "value")?;
        let headers = self.headers()?;
        let offset = base.offset.checked_add(i64::from(offset_delta)).ok_or(
            RecordError::OffsetOverflow {
                base_offset: base.offset,
                offset_delta,
            },
        )?;
        // Java computes this with plain (wrapping) long arithmetic; so do we, so that any
        // delta a producer wrote round-trips.
        let timestamp_ms = base
            .log_append_time_ms
            .unwrap_or_else(|| base.timestamp_ms.wrapping_add(timestamp_delta_ms));
        Ok(Record {
            offset,
            timestamp_ms,
            key,
            value,
            headers,
        })
    }

    fn headers(&mut self) -> Result<Vec<(String, Option<Bytes>)>, RecordError> {
        let count = self.varint("headersCount")?;
        let count = usize::try_from(count).map_err(|_| RecordError::InvalidLength {
            field: "headersCount",
            length: i64::from(count),
        })?;
        // A count larger than the bytes could hold is caught by the reads below; it must not
        // size the allocation.
        let mut headers =
            Vec::with_capacity(count.min(self.remaining_bytes() / HEADER_SIZE_MIN_BYTES));
        for _ in 0..count {
            let key_length = self.varint("headerKeyLength")?;
            let key_length =
                usize::try_from(key_length).map_err(|_| RecordError::InvalidLength {
                    field: "headerKeyLength",
                    length: i64::from(key_length),
                })?;
            let key = self.take(key_length, "headerKey")?;
            let key = std::str::from_utf8(&key)
                .map_err(|_| RecordError::InvalidUtf8 { field: "headerKey" })?
                .to_owned();
            let value = self.nullable_bytes("headerValueLength", "headerValue")?;
            headers.push((key, value));
        }
        Ok(headers)
    }
}
