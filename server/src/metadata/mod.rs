//! Topic metadata as handlers see it: the cluster image this node has applied
//! ([`view::MetadataView`]), topic config validation, and the single-node releases' file,
//! read once to migrate it into the metadata log.

pub mod legacy;
pub mod topic_config;
pub mod view;

pub use spate_cluster::image::PARTITION_COUNT_MAX;
pub use spate_cluster::topic_id::{self, TopicId};
pub use spate_cluster::topic_name::{self, validate_topic_name};
pub use view::{Leadership, MetadataView};
