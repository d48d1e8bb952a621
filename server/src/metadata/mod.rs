//! Topic metadata: names, ids, partition counts and config overrides, persisted under the
//! data dir. The broker reconciles this with the engine's partitions at start.

pub mod store;
pub mod topic_config;
pub mod topic_id;
pub mod topic_name;

pub use store::{MetadataError, MetadataImage, MetadataStore, Topic};
pub use topic_id::TopicId;
pub use topic_name::validate_topic_name;

/// Partitions per topic a client may ask for. Each partition holds open files and a slot on a
/// shard, so a typo like 1,000,000 must not exhaust the host; Kafka has no hard limit.
pub const PARTITION_COUNT_MAX: i32 = 10_000;

/// Partitions the whole broker may hold. Each is a folder with open segment files and a slot
/// on a shard; without a cap, one CreateTopics request (1,000 topics × 10,000 partitions)
/// could exhaust file descriptors and memory.
pub const BROKER_PARTITION_COUNT_MAX: i64 = 100_000;
