//! Spate's broker: the thin server between Kafka clients and the storage engine.
//!
//! It owns the listeners (one per shard, `SO_REUSEPORT`), the pipelined connection loop,
//! request dispatch to one handler per Kafka API, topic metadata, config loading and the
//! admin HTTP endpoint. It stores no records itself: every read and write of a partition goes
//! through `spate-engine`, which runs it on the partition's shard.

pub mod admin;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod groups;
pub mod handlers;
pub mod metadata;
pub mod net;
pub mod response;
pub mod topics;

pub use config::ServerConfig;

/// Runs the broker until SIGTERM/SIGINT (see [`broker::run`]).
pub fn run(config: ServerConfig) -> Result<(), error::ServerError> {
    broker::run(config)
}
