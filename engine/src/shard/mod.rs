//! The shard runtime: one pinned thread per core, each with its own tokio `current_thread`
//! runtime, io_uring driver and partitions; and the bounded cross-shard calls that are the
//! only way from one shard to another.
//!
//! A shard's state is `!Send` (`Rc`, `RefCell`) and never touched from another thread. The
//! data path takes no locks: a call to another shard is a message on that shard's bounded
//! queue and a oneshot reply. This module does not know about Kafka or about the log format.

mod affinity;
mod context;
pub(crate) mod group_commit;
mod panic_guard;
pub(crate) mod partition_table;
pub(crate) mod replication;
mod shard_set;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use affinity::{allowed_cpus, pin_current_thread};
pub use context::ShardContext;
pub use group_commit::{APPENDS_PER_ROUND_MAX, GroupCommitStats};
pub use shard_set::{
    CROSS_SHARD_QUEUE_DEPTH, SHUTDOWN_GRACE_MS, ShardInit, ShardSet, ShardSetConfig, current_shard,
};

/// A boxed future that stays on the shard that made it (`!Send` allowed).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Index of a shard, `0..shard_count`. Shard `i` is pinned to the `i`-th allowed CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// Errors of the shard runtime.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{0} has stopped (the engine is shutting down)")]
    Gone(ShardId),
    #[error("{shard} does not exist (there are {shard_count} shards)")]
    NoSuchShard { shard: ShardId, shard_count: usize },
    #[error("{0}'s call queue is full")]
    QueueFull(ShardId),
    #[error("a call on {0} panicked (logged on that shard)")]
    TaskPanicked(ShardId),
    #[error("could not start a shard thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("{shard} failed to start: {message}")]
    Init { shard: ShardId, message: String },
}
