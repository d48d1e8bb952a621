//! The consumer-group coordinator, sans-IO.
//!
//! One [`Coordinator`] owns the groups that hash to one partition of `__consumer_offsets`;
//! the server keeps it on the shard that owns that partition. It never reads a clock, a file
//! or a socket: every call takes `now` (wall-clock milliseconds), answers what it can at
//! once, and queues [`Effect`]s for the rest — records to append to the log and replies to
//! requests that had to wait (JoinGroup and SyncGroup wait for the rebalance). That is what
//! lets the unit tests drive every transition and timeout with a fake clock and no sleeps.
//!
//! Durability follows Kafka: the log is the source of truth. Offsets become visible to
//! OffsetFetch only after their records were appended ([`Coordinator::commit_written`]);
//! on startup the server replays the partition through [`Coordinator::load_record`].

mod api;
pub mod consumer_protocol;
mod coordinator;
pub mod records;

pub use api::*;
pub use coordinator::Coordinator;
pub use spate_protocol::ErrorCode;
