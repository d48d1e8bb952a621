//! The name of one partition of one topic.

use std::fmt;
use std::sync::Arc;

/// A topic and partition index. Cheap to clone: the topic name is shared.
///
/// Displays as `topic-3`, the same way Kafka names partition folders and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// Folder name under the data dir, `<topic>-<partition>` as Kafka lays it out. Topic
    /// names are validated by the server (`[a-zA-Z0-9._-]`, at most 249 chars), so the
    /// folder name is a single safe path component.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a folder name made by [`TopicPartition::dir_name`]; the partition is the digits
    /// after the last `-`, since topic names may themselves contain `-`.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Self::new(topic, partition.parse().ok()?))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_round_trips_topics_with_dashes() {
        let tp = TopicPartition::new("orders-eu-west", 12);
        assert_eq!(tp.dir_name(), "orders-eu-west-12");
        assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
    }

    #[test]
    fn dir_name_without_partition_is_rejected() {
        assert_eq!(TopicPartition::from_dir_name("orders"), None);
        assert_eq!(TopicPartition::from_dir_name("orders-"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("orders-x1"), None);
    }
}
