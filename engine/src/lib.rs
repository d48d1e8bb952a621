//! Spate's storage engine, usable as a library with no network.
//!
//! It owns the shard runtime (one pinned thread per core), the io_uring driver, segmented
//! partition logs with their indexes, recovery, retention, and batch validation and offset
//! assignment. It knows nothing about sockets or the Kafka wire protocol beyond the
//! RecordBatch v2 bytes it stores.
