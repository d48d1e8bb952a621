//! `DescribeLogDirs` (key 35): the partitions this node stores, their size on disk, and the
//! room left on the volume (KIP-113, KIP-827).
//!
//! Spate has one log dir per node, its data dir, so the answer always has one entry. Each
//! partition's `partition_size` is the bytes of its segment files, read on its owning shard;
//! `offset_lag` is Kafka's `max(high watermark - log end, 0)` of the local log (0 on a leader,
//! and on a follower whose log holds everything the leader has committed); `is_future_key` is
//! always false, as there are no AlterReplicaLogDirs moves. Unlike most APIs this one is about
//! the node that answers, not the cluster: admin clients send it to every broker.
//!
//! `topics: null` lists every local partition; a list names the partitions wanted, and those
//! not stored here are left out, as Kafka does. A partition that cannot be read (offline) is
//! left out too, with a warning in the log.

use std::ops::RangeInclusive;
use std::path::Path;

use bytes::Bytes;
use spate_engine::{EngineError, TopicPartition};
use spate_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use spate_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use spate_protocol::wire::Decode;

use super::{RequestContext, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

/// Kafka 4.0's range; v4 adds the volume's total and usable bytes.
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Kafka's `DescribeLogDirsResponse.INVALID_OFFSET_LAG`, and the "unknown" of the v4 volume
/// sizes.
const UNKNOWN: i64 = -1;

pub async fn handle(broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    let request = match DescribeLogDirsRequest::decode(&mut body, ctx.version) {
        Ok(request) => request,
        Err(e) => return ctx.malformed(e),
    };
    let wanted = |tp: &TopicPartition| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| *t.topic == *tp.topic && t.partitions.contains(&tp.partition)),
    };
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for (tp, _shard) in broker.engine.partitions() {
        if !wanted(&tp) {
            continue;
        }
        let Some(partition) = describe_partition(broker, &tp).await else {
            continue;
        };
        match topics.last_mut() {
            Some(topic) if *topic.name == *tp.topic => topic.partitions.push(partition),
            _ => topics.push(DescribeLogDirsTopic {
                name: tp.topic.to_string(),
                partitions: vec![partition],
                ..Default::default()
            }),
        }
    }
    let (total_bytes, usable_bytes) = match broker.engine.data_dir_space() {
        Ok(space) => (
            i64::try_from(space.total_bytes).unwrap_or(i64::MAX),
            i64::try_from(space.usable_bytes).unwrap_or(i64::MAX),
        ),
        Err(error) => {
            tracing::warn!(data_dir = %broker.config.data_dir.display(), %error, "cannot read the data dir's volume size (statvfs); DescribeLogDirs reports -1");
            (UNKNOWN, UNKNOWN)
        }
    };
    ctx.respond(&DescribeLogDirsResponse {
        error_code: error_code::NONE,
        results: vec![DescribeLogDirsResult {
            error_code: error_code::NONE,
            log_dir: absolute(&broker.config.data_dir),
            topics,
            total_bytes,
            usable_bytes,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// One local partition's entry, or `None` if the engine cannot read it (offline, or deleted
/// since it was listed).
async fn describe_partition(
    broker: &Broker,
    tp: &TopicPartition,
) -> Option<DescribeLogDirsPartition> {
    let sizes = async {
        let size_bytes = broker.engine.partition_size_bytes(tp).await?;
        let offsets = broker.engine.offsets(tp).await?;
        Ok::<_, EngineError>((size_bytes, offsets))
    };
    match sizes.await {
        Ok((size_bytes, offsets)) => Some(DescribeLogDirsPartition {
            partition_index: tp.partition,
            partition_size: i64::try_from(size_bytes).unwrap_or(i64::MAX),
            offset_lag: (offsets.high_watermark - offsets.log_end_offset).max(0),
            is_future_key: false,
            ..Default::default()
        }),
        // Offline (failed to open at start, already logged then) or deleted since listed.
        Err(error @ (EngineError::PartitionOffline { .. } | EngineError::UnknownPartition(_))) => {
            tracing::debug!(partition = %tp, %error, "partition left out of DescribeLogDirs");
            None
        }
        Err(error) => {
            tracing::warn!(partition = %tp, %error, "partition left out of DescribeLogDirs: its size cannot be read");
            None
        }
    }
}

/// The data dir as Kafka reports a log dir: an absolute path (the configured one if it
/// cannot be resolved, which only happens if it vanished under the running node).
fn absolute(data_dir: &Path) -> String {
    std::fs::canonicalize(data_dir)
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .display()
        .to_string()
}
