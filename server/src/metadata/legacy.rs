//! The single-node releases' topic metadata file, `spate-metadata.toml`: read once, when a
//! node with such a data dir starts its first cluster, so its topics (with their ids,
//! partition counts and configs) and its producer-id reservation move into the metadata
//! log. The file is then renamed `spate-metadata.toml.migrated`, kept for the operator.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spate_cluster::image::PARTITION_COUNT_MAX;
use spate_cluster::topic_id::TopicId;
use spate_cluster::topic_name::validate_topic_name;

/// File name of the legacy metadata under the data dir.
pub const METADATA_FILE_NAME: &str = "spate-metadata.toml";
/// What the legacy file is renamed to once its contents are in the metadata log.
pub const MIGRATED_FILE_NAME: &str = "spate-metadata.toml.migrated";
/// Format version the single-node releases wrote.
const METADATA_FORMAT_VERSION: u32 = 1;

/// Errors reading the legacy file.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("metadata file {path} is not valid: {reason}; restore it or move it away")]
    Corrupt { path: PathBuf, reason: String },
}

/// One topic as the single-node release stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyTopic {
    pub name: String,
    pub id: TopicId,
    pub partition_count: i32,
    pub configs: BTreeMap<String, String>,
}

/// The legacy file's contents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LegacyMetadata {
    pub topics: Vec<LegacyTopic>,
    /// Producer ids below this may have been handed out.
    pub producer_id_reserved_until: i64,
}

#[derive(Deserialize)]
struct MetadataFile {
    format_version: u32,
    producer_id_reserved_until: i64,
    #[serde(default)]
    topics: Vec<TopicRecord>,
}

#[derive(Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// Reads the legacy file, if the data dir has one.
pub fn read(data_dir: &Path) -> Result<Option<LegacyMetadata>, MetadataError> {
    let path = data_dir.join(METADATA_FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetadataError::Io { path, source }),
    };
    parse(&path, &text).map(Some)
}

/// Renames the legacy file once its contents are in the metadata log.
pub fn mark_migrated(data_dir: &Path) -> Result<(), MetadataError> {
    let from = data_dir.join(METADATA_FILE_NAME);
    fs::rename(&from, data_dir.join(MIGRATED_FILE_NAME))
        .map_err(|source| MetadataError::Io { path: from, source })
}

fn parse(path: &Path, text: &str) -> Result<LegacyMetadata, MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file: MetadataFile = toml::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if file.format_version != METADATA_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this build reads {METADATA_FORMAT_VERSION})",
            file.format_version
        )));
    }
    let mut topics = Vec::with_capacity(file.topics.len());
    for record in file.topics {
        let id: TopicId = record
            .id
            .parse()
            .ok()
            .filter(|id| *id != TopicId::ZERO)
            .ok_or_else(|| corrupt(format!("topic '{}' has a bad id", record.name)))?;
        validate_topic_name(&record.name).map_err(|e| corrupt(e.to_string()))?;
        if !(1..=PARTITION_COUNT_MAX).contains(&record.partitions) {
            return Err(corrupt(format!(
                "topic '{}' has {} partitions",
                record.name, record.partitions
            )));
        }
        topics.push(LegacyTopic {
            name: record.name,
            id,
            partition_count: record.partitions,
            configs: record.configs,
        });
    }
    Ok(LegacyMetadata {
        topics,
        producer_id_reserved_until: file.producer_id_reserved_until.max(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_file_is_read_and_renamed_once_migrated() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(METADATA_FILE_NAME),
            "format_version = 1\nproducer_id_reserved_until = 2000\n\n[[topics]]\nname = \"orders\"\nid = \"0f6a2c1e-9b1d-4c3e-8a7f-2d4b6c8e0a1b\"\npartitions = 3\n\n[topics.configs]\n\"retention.ms\" = \"5000\"\n",
        )
        .unwrap();
        let legacy = read(dir.path()).unwrap().unwrap();
        assert_eq!(legacy.producer_id_reserved_until, 2000);
        assert_eq!(legacy.topics.len(), 1);
        assert_eq!(legacy.topics[0].name, "orders");
        assert_eq!(legacy.topics[0].partition_count, 3);
        assert_eq!(legacy.topics[0].configs["retention.ms"], "5000");
        mark_migrated(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        assert!(dir.path().join(MIGRATED_FILE_NAME).exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "\u{ff} not toml [[[",
            "format_version = 9\nproducer_id_reserved_until = 0\n",
        ] {
            fs::write(dir.path().join(METADATA_FILE_NAME), text).unwrap();
            assert!(
                matches!(read(dir.path()), Err(MetadataError::Corrupt { .. })),
                "{text}"
            );
        }
    }
}
