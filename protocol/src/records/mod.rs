//! RecordBatch v2: the header view, structural checks, and (for tools and clients) records.
//!
//! The broker uses only [`header`] and [`validate`]. [`BatchRecords`] and [`BatchBuilder`]
//! decode and build the records inside a batch, for clients, tools, tests and benchmarks.

pub mod builder;
pub mod error;
pub mod header;
pub mod iter;
pub mod record;
pub mod validate;
pub mod varint;

pub use builder::{BatchBuilder, NewRecord};
pub use error::{BuildError, RecordError};
pub use header::{
    BATCH_HEADER_SIZE_BYTES, Compression, MAGIC_V2, RecordBatchHeader, TimestampType,
    compute_batch_crc,
};
pub use iter::{BatchRecords, decompress_records, read_all_records};
pub use record::Record;
pub use validate::{BatchError, BatchSummary, Batches, check_batch};
