//! RecordBatch v2: the header view, structural checks, and (for tools and clients) records.

pub mod header;
pub mod validate;

pub use header::{
    BATCH_HEADER_SIZE_BYTES, Compression, MAGIC_V2, RecordBatchHeader, TimestampType,
    compute_batch_crc,
};
pub use validate::{BatchError, BatchSummary, Batches, check_batch};
