//! The shard runtime: one pinned thread per core, and cross-shard calls.
