//! The io_uring driver each shard owns.
