//! A partition's log: segments, indexes, append, read, recovery and retention.
