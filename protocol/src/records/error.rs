//! Errors from decoding and building records inside a v2 batch.

use crate::compression::CompressionError;

use super::validate::BatchError;

/// Why the records of a batch could not be read. Every variant names the record field that
/// was bad, so a tool can say where a batch is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(
        "record field {field} truncated: {needed_bytes} bytes needed, {available_bytes} available"
    )]
    Truncated {
        field: &'static str,
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("record field {field} is a varint longer than its type allows")]
    VarintOverflow { field: &'static str },
    #[error("record field {field} has invalid length {length}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("record field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("record declared {declared_bytes} bytes but its fields used {consumed_bytes}")]
    RecordSizeMismatch {
        declared_bytes: usize,
        consumed_bytes: usize,
    },
    #[error("{remaining_bytes} bytes remain after the batch's {records_count} declared records")]
    TrailingBytes {
        records_count: i32,
        remaining_bytes: usize,
    },
    #[error("batch declares {records_count} records but its bytes ended after {records_read}")]
    MissingRecords {
        records_count: i32,
        records_read: i32,
    },
    #[error("record offset overflows: base offset {base_offset} + delta {offset_delta}")]
    OffsetOverflow { base_offset: i64, offset_delta: i32 },
    #[error("reserved compression codec id {id}")]
    UnknownCompression { id: i16 },
    #[error("decompressing records: {0}")]
    Decompress(#[from] CompressionError),
}

/// Why a batch could not be built. These are caller errors (too much data for one batch), not
/// malformed input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("a batch holds at most {limit} records")]
    TooManyRecords { limit: usize },
    #[error("batch of {size_bytes} bytes exceeds the {limit_bytes}-byte v2 limit")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("record field {field} of {size_bytes} bytes exceeds the varint length limit")]
    FieldTooLarge {
        field: &'static str,
        size_bytes: usize,
    },
    #[error("compressing records: {0}")]
    Compress(#[from] CompressionError),
}
