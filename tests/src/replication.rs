//! What the replication tests look at besides the wire: each replica's log as it lies on disk,
//! the batches in it, whether the replicas of a partition hold the same bytes, and a client
//! that runs in the background while the test kills and pauses nodes.
//!
//! A partition's log is the folder `<data_dir>/<topic>-<partition>/` with one `<base>.log` per
//! segment (docs/segment-format.md). A follower appends the leader's stored batches unchanged
//! (same base offset, leader epoch and CRC), so once every replica is in the ISR and has caught
//! up, the concatenated `.log` files of all replicas are byte-identical. Comparing them is the
//! strongest check a black-box test can make that replication did not reorder, drop, duplicate
//! or alter anything.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster_requests::ClusterMetadata;
use crate::kafka_requests::{create_replicated_topic_v4, produce_v7};
use crate::process_run::tail_text;
use crate::record_batch::{TestRecord, encode_batch};
use crate::wire::KafkaConnection;
use crate::workspace::{python_script, venv_python};
use crate::{Cluster, HarnessError, NodeId, ProcessOutput};

/// Size of a RecordBatch v2 header (through `recordCount`).
const BATCH_HEADER_BYTES: usize = 61;

/// How much of a background client's output goes into a failure message.
const CLIENT_OUTPUT_TAIL_BYTES: usize = 8 * 1024;

/// How often [`wait_for_identical_replicas`] reads the logs again.
const COMPARE_INTERVAL_MS: u64 = 200;

/// Creates `topic` through node `via` with `configs` (CreateTopics v4, forwarded to the
/// active controller).
pub fn create_topic_with_configs(
    cluster: &Cluster,
    via: NodeId,
    topic: &str,
    partition_count: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> Result<(), HarnessError> {
    let mut connection = KafkaConnection::connect(cluster.node(via).kafka_addr())?;
    let code = create_replicated_topic_v4(
        &mut connection,
        topic,
        partition_count,
        replication_factor,
        configs,
        8_000,
    )?;
    if code == 0 {
        Ok(())
    } else {
        Err(HarnessError::MalformedResponse(format!(
            "CreateTopics {topic} ({partition_count} x RF {replication_factor}, {configs:?}) \
             via node {via}: error code {code}"
        )))
    }
}

/// Whether every partition of `topic` in `metadata` has `partition_count` partitions, each
/// with a leader and an ISR of exactly `isr_size` members.
pub fn topic_fully_in_sync(
    metadata: &ClusterMetadata,
    topic: &str,
    partition_count: usize,
    isr_size: usize,
) -> bool {
    metadata.topic(topic).is_some_and(|t| {
        t.error_code == 0
            && t.partitions.len() == partition_count
            && t.partitions
                .iter()
                .all(|p| p.leader >= 0 && p.isr.len() == isr_size)
    })
}

/// One RecordBatch as it lies in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub leader_epoch: i32,
    pub producer_id: i64,
    pub base_sequence: i32,
    /// Byte position in the concatenated log.
    pub position: usize,
    pub size_bytes: usize,
}

/// The partition folder of `topic`-`partition` in `data_dir`.
/// Produce v7 of one record holding `value` to node `to`, with `acks`; the partition's
/// error code. A fresh connection each time, so a test can aim at any node.
pub fn produce_value(
    cluster: &Cluster,
    to: NodeId,
    topic: &str,
    partition: i32,
    value: &str,
    acks: i16,
) -> Result<i16, HarnessError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let batch = encode_batch(&[TestRecord::value(value)], now_ms);
    let mut connection = KafkaConnection::connect(cluster.node(to).kafka_addr())?;
    Ok(produce_v7(&mut connection, topic, partition, &batch, acks)?.error_code)
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The `.log` files of a partition folder, concatenated in offset order (file names are
/// zero-padded base offsets, so they sort as offsets do). A missing folder is an empty log.
pub fn log_bytes(dir: &Path) -> Result<Vec<u8>, HarnessError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HarnessError::io(format!("list {}", dir.display()), e)),
    };
    let mut segments: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    let mut bytes = Vec::new();
    for segment in segments {
        let mut content = std::fs::read(&segment)
            .map_err(|e| HarnessError::io(format!("read {}", segment.display()), e))?;
        bytes.append(&mut content);
    }
    Ok(bytes)
}

/// Node `id`'s log of `topic`-`partition`, read from its data directory (the node may be
/// running: a torn last batch then shows as a difference until it completes).
pub fn replica_log(
    cluster: &Cluster,
    id: NodeId,
    topic: &str,
    partition: i32,
) -> Result<Vec<u8>, HarnessError> {
    log_bytes(&partition_dir(
        cluster.node(id).data_dir(),
        topic,
        partition,
    ))
}

/// The batches framed in `log`, in order; stops at the first header that does not frame a
/// whole batch (a torn tail).
pub fn stored_batches(log: &[u8]) -> Vec<StoredBatch> {
    let mut batches = Vec::new();
    let mut position = 0;
    while let Some(header) = log.get(position..position + BATCH_HEADER_BYTES) {
        let base_offset = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let length = i32::from_be_bytes(header[8..12].try_into().unwrap_or_default());
        let Some(size_bytes) = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|size| *size >= BATCH_HEADER_BYTES && position + size <= log.len())
        else {
            break;
        };
        let leader_epoch = i32::from_be_bytes(header[12..16].try_into().unwrap_or_default());
        let last_offset_delta = i32::from_be_bytes(header[23..27].try_into().unwrap_or_default());
        let producer_id = i64::from_be_bytes(header[43..51].try_into().unwrap_or_default());
        let base_sequence = i32::from_be_bytes(header[53..57].try_into().unwrap_or_default());
        batches.push(StoredBatch {
            base_offset,
            last_offset: base_offset + i64::from(last_offset_delta),
            leader_epoch,
            producer_id,
            base_sequence,
            position,
            size_bytes,
        });
        position += size_bytes;
    }
    batches
}

/// The (offset, value) of every record of the uncompressed batches in `log`; a compressed
/// batch's records are skipped (the tests' producers do not compress).
pub fn stored_records(log: &[u8]) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut records = Vec::new();
    for batch in stored_batches(log) {
        let bytes = &log[batch.position..batch.position + batch.size_bytes];
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]);
        if attributes & 0x7 != 0 {
            continue;
        }
        let mut reader = VarReader {
            bytes,
            position: BATCH_HEADER_BYTES,
        };
        let count = i32::from_be_bytes(bytes[57..61].try_into().unwrap_or_default());
        for _ in 0..count {
            match reader.record(batch.base_offset) {
                Some(record) => records.push(record),
                None => break,
            }
        }
    }
    records
}

struct VarReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl VarReader<'_> {
    fn varlong(&mut self) -> Option<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let signed = (value >> 1) as i64 ^ -((value & 1) as i64);
                return Some(signed);
            }
        }
        None
    }

    fn skip(&mut self, count: usize) -> Option<&[u8]> {
        let slice = self.bytes.get(self.position..self.position + count)?;
        self.position += count;
        Some(slice)
    }

    /// One record: length, attributes, timestamp delta, offset delta, key, value, headers.
    fn record(&mut self, base_offset: i64) -> Option<(i64, Option<Vec<u8>>)> {
        let length = usize::try_from(self.varlong()?).ok()?;
        let end = self.position + length;
        self.skip(1)?; // attributes
        self.varlong()?; // timestamp delta
        let offset_delta = self.varlong()?;
        let key_length = self.varlong()?;
        if key_length > 0 {
            self.skip(usize::try_from(key_length).ok()?)?;
        }
        let value_length = self.varlong()?;
        let value = if value_length >= 0 {
            Some(self.skip(usize::try_from(value_length).ok()?)?.to_vec())
        } else {
            None
        };
        self.position = end;
        Some((base_offset + offset_delta, value))
    }
}

/// Waits until the logs of `topic`-`partition` on every node in `nodes` are byte-identical
/// and non-empty-or-equal, and returns that log. The error describes where they differ: each
/// node's size and batches around the first differing byte.
pub fn wait_for_identical_replicas(
    cluster: &Cluster,
    nodes: &[NodeId],
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut logs = BTreeMap::new();
        for id in nodes {
            let log = replica_log(cluster, *id, topic, partition).map_err(|e| e.to_string())?;
            logs.insert(*id, log);
        }
        let first = logs.values().next().cloned().unwrap_or_default();
        if logs.values().all(|log| *log == first) {
            return Ok(first);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the replicas of {topic}-{partition} on nodes {nodes:?} were not byte-identical \
                 within {timeout:?}:\n{}",
                describe_divergence(&logs)
            ));
        }
        std::thread::sleep(Duration::from_millis(COMPARE_INTERVAL_MS));
    }
}

/// Each log's size and last batches, and the first byte where each differs from the longest.
pub fn describe_divergence(logs: &BTreeMap<NodeId, Vec<u8>>) -> String {
    let longest = logs
        .values()
        .max_by_key(|log| log.len())
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    for (id, log) in logs {
        let batches = stored_batches(log);
        let differs_at = log
            .iter()
            .zip(longest.iter())
            .position(|(a, b)| a != b)
            .or((log.len() != longest.len()).then_some(log.len().min(longest.len())));
        let around: Vec<String> = match differs_at {
            Some(at) => batches
                .iter()
                .filter(|b| b.position + b.size_bytes + 512 > at)
                .take(4)
                .map(describe_batch)
                .collect(),
            None => Vec::new(),
        };
        let last = batches.last().map(describe_batch).unwrap_or_default();
        out.push_str(&format!(
            "  node {id}: {} bytes, {} batches, last {last}; first difference from the longest \
             at byte {differs_at:?}, batches from there: {around:?}\n",
            log.len(),
            batches.len(),
        ));
    }
    out
}

fn describe_batch(batch: &StoredBatch) -> String {
    format!(
        "[{}..={} epoch {} pid {} seq {} @{}+{}]",
        batch.base_offset,
        batch.last_offset,
        batch.leader_epoch,
        batch.producer_id,
        batch.base_sequence,
        batch.position,
        batch.size_bytes
    )
}

/// Every node's first panic line, if any node panicked (across restarts).
pub fn panics(cluster: &Cluster) -> Vec<String> {
    cluster
        .node_ids()
        .into_iter()
        .filter_map(|id| {
            cluster
                .node(id)
                .first_panic_line()
                .map(|line| format!("node {id}: {line}"))
        })
        .collect()
}

/// The lines of node `id`'s whole stderr (across restarts) that contain `needle`.
pub fn log_lines_containing(cluster: &Cluster, id: NodeId, needle: &str) -> Vec<String> {
    cluster
        .node(id)
        .log_tail(usize::MAX)
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A `tests/python/` script running in the background (a producer that keeps producing while
/// the test kills nodes). Its stdout and stderr go to files in its own temp folder; it is
/// killed on drop if still running.
pub struct BackgroundClient {
    child: Option<Child>,
    dir: tempfile::TempDir,
    started: Instant,
    description: String,
}

impl BackgroundClient {
    /// Starts `python -u tests/python/<script> <args…> <dir>` with the venv's Python, where
    /// `<dir>` is [`BackgroundClient::dir`]: the folder the test and the client exchange
    /// files in (a stop file, progress, results).
    pub fn spawn(script: &str, args: &[&str]) -> Result<BackgroundClient, HarnessError> {
        let python = venv_python()?;
        let dir = tempfile::Builder::new()
            .prefix("spate-client-")
            .tempdir()
            .map_err(|e| HarnessError::io("create client dir", e))?;
        let stdout = File::create(dir.path().join("stdout"))
            .map_err(|e| HarnessError::io("create client stdout", e))?;
        let stderr = File::create(dir.path().join("stderr"))
            .map_err(|e| HarnessError::io("create client stderr", e))?;
        let mut command = Command::new(&python);
        // See clients.rs: cargo's LD_LIBRARY_PATH would load a librdkafka without zstd.
        command
            .env_remove("LD_LIBRARY_PATH")
            .arg("-u")
            .arg(python_script(script))
            .args(args)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let description = format!("{command:?}");
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {description}"), e))?;
        Ok(BackgroundClient {
            child: Some(child),
            dir,
            started: Instant::now(),
            description,
        })
    }

    /// The folder for files the test and the client exchange (it lives as long as `self`);
    /// the client's last argument.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the client is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The client's output so far, for messages.
    pub fn output_tail(&self) -> String {
        let read = |name: &str| std::fs::read(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- {} stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.description,
            tail_text(&read("stdout"), CLIENT_OUTPUT_TAIL_BYTES),
            tail_text(&read("stderr"), CLIENT_OUTPUT_TAIL_BYTES)
        )
    }

    /// Waits up to `timeout` for the client to exit; kills it past that. Its folder stays
    /// until `self` is dropped.
    pub fn wait(&mut self, timeout: Duration) -> Result<ProcessOutput, HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Err(HarnessError::io(
                "wait for the client",
                std::io::Error::other("already waited"),
            ));
        };
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => return Err(HarnessError::io("wait for the client", e)),
            }
        };
        let read = |name: &str| std::fs::read(self.dir.path().join(name)).unwrap_or_default();
        match status {
            Some(status) => Ok(ProcessOutput {
                status,
                stdout: read("stdout"),
                stderr: read("stderr"),
                elapsed: self.started.elapsed(),
            }),
            None => Err(HarnessError::Timeout {
                command: self.description.clone(),
                timeout_ms: timeout.as_millis(),
                stderr_tail: self.output_tail(),
            }),
        }
    }
}

impl Drop for BackgroundClient {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{TestRecord, encode_batch};

    #[test]
    fn stored_batches_and_records_are_read_back() {
        let mut log = encode_batch(
            &[
                TestRecord::value(b"a".to_vec()),
                TestRecord::value(b"bc".to_vec()),
            ],
            0,
        );
        let mut second = encode_batch(&[TestRecord::value(b"def".to_vec())], 0);
        second[0..8].copy_from_slice(&2i64.to_be_bytes());
        log.extend_from_slice(&second);
        log.extend_from_slice(&[0, 0, 0]); // a torn tail
        let batches = stored_batches(&log);
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[0].base_offset, batches[0].last_offset), (0, 1));
        assert_eq!((batches[1].base_offset, batches[1].last_offset), (2, 2));
        let records = stored_records(&log);
        assert_eq!(
            records,
            vec![
                (0, Some(b"a".to_vec())),
                (1, Some(b"bc".to_vec())),
                (2, Some(b"def".to_vec()))
            ]
        );
    }
}
