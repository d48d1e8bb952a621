//! The io_uring driver each shard owns.
//!
//! One `io_uring` instance per shard thread (io-uring 0.7, not tokio-uring: we need linked
//! ops). Completions wake the shard's tokio runtime through a registered eventfd. The driver
//! only moves bytes: it writes chains of buffers and fdatasyncs, and reports per-chain results.
//! Group commit, flush policy and the log's bookkeeping live in `shard/`.
//!
//! `ring.rs` and `blocking.rs` hold all of its `unsafe`; `op_table.rs` keeps the memory the
//! kernel reads alive until the kernel is done with it.

mod blocking;
mod chain;
mod driver;
mod op_table;
mod repair;
mod ring;

pub use chain::{IOVECS_PER_WRITE_MAX, WRITE_SIZE_BYTES_MAX, WriteChain};
pub use driver::{
    DriverKind, FORCE_BLOCKING_ENV, IN_FLIGHT_OPS_MAX, IoDriver, IoStats, STALLED_RETRIES_MAX,
};
pub use op_table::SharedFile;

#[cfg(test)]
mod driver_tests;
