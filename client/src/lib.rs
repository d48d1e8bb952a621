//! Spate's native async client for Kafka-compatible brokers, built on `spate-protocol`
//! rather than librdkafka, so the CLI and tests speak Kafka with code this project owns.
//!
//! Layers, bottom up:
//! - [`connection`]: one pipelined TCP connection per broker; correlation ids, a bounded
//!   in-flight map, `request.timeout.ms`, and per-API version negotiation (ApiVersions:
//!   the highest version both sides support).
//! - [`Client`]: the connection pool (reconnect with exponential backoff, which is what
//!   survives a broker restart) and the [`metadata`] cache (refreshed on leader/topic
//!   errors and after `metadata.max.age.ms`).
//! - [`Producer`]: batching by `linger.ms`/`batch.size`, the Java-compatible partitioner,
//!   acks, compression, idempotent retries, delivery futures, `buffer.memory` backpressure.
//! - [`Consumer`]: `assign`, seek (offset, beginning, end, timestamp), pause/resume, a
//!   prefetching fetch pipeline bounded by `fetch.max.bytes`, and `auto.offset.reset`.
//! - [`Admin`]: topics, partitions, configs, offsets.
//!
//! ## The seam for consumer groups
//!
//! The consumer does not know how its partitions were chosen. [`GroupConsumer`] sits
//! beside it: it joins and syncs through the group coordinator (`FindCoordinator`,
//! `JoinGroup`, `SyncGroup`, `Heartbeat`), runs the assignor ([`Assignor`]: range,
//! roundrobin, cooperative-sticky) when leader, and drives the consumer only through
//! [`Consumer::assign`] with the partitions it owns, [`Consumer::seek`] to each committed
//! offset from `OffsetFetch` (partitions without one fall back to `auto.offset.reset`,
//! which the fetcher already applies), and [`Consumer::positions`] for `OffsetCommit`.
//! Partitions are given up on the thread that polls, after a commit when auto-commit is
//! on, as in Kafka's consumer; under cooperative rebalancing only those the new
//! assignment leaves out. Fetching, positions and buffers stay as they are.
//!
//! Every error names the broker, topic or partition involved; see [`Error`].

pub mod admin;
/// The `spate` binary's client subcommands (feature `cli`).
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group_coordinator;
pub mod metadata;
pub mod offsets;
pub mod producer;

pub use admin::{Admin, NewTopic};
pub use client::Client;
pub use config::ClientConfig;
pub use consumer::group::{Assignor, GroupConsumer, GroupConsumerConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::Error;
pub use offsets::OffsetSpec;
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
