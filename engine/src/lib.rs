//! Spate's storage engine, usable as a library with no network.
//!
//! It owns the shard runtime (one pinned thread per core), the io_uring driver, segmented
//! partition logs with their indexes, recovery, retention, and batch validation and offset
//! assignment. It knows nothing about sockets or the Kafka wire protocol beyond the
//! RecordBatch v2 bytes it stores. `docs/engine-api.md` is the contract the server uses.

pub mod config;
pub mod log;
pub mod shard;
pub mod topic_partition;
pub mod uring;

pub use config::{FlushPolicy, LogConfig};
pub use topic_partition::TopicPartition;
pub mod engine;
pub mod placement;
pub use engine::{
    AppendError, AppendOutcome, Engine, EngineConfig, EngineError, PartitionOffsets, ReadError,
    ReadOutcome,
};
pub use log::{HighWatermarkMode, ReadBound};
pub use shard::{LocalBoxFuture, ShardContext, ShardId};
