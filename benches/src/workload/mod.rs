//! The workloads, modelled on the OpenMessaging Benchmark, driven by `spate-client`.
//!
//! The client speaks plain Kafka, so every workload runs against any broker. What is
//! Spate-specific (the `flush` topic config) is tried and, when refused, reported as not
//! applied rather than silently dropped.

pub mod consume;
pub mod latency;
pub mod produce;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spate_client::{Acks, Admin, ClientConfig, NewTopic, ProducerConfig, ProducerRecord};
use spate_protocol::records::Compression;

use crate::BenchError;
use crate::args::{AcksArg, CompressionArg, LoadArgs, SizeSpec};

/// Bytes at the front of each latency record's value: its scheduled send time.
pub const STAMP_BYTES: usize = 8;

/// How long a new topic may take to get leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The topics a run writes to, and what became of the flush setting.
#[derive(Debug, Clone)]
pub struct Topics {
    pub names: Vec<String>,
    pub partitions: u32,
    /// Whether the broker accepted `flush`, in words for the report.
    pub flush_note: String,
}

impl Topics {
    /// Every (topic, partition) pair.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.names
            .iter()
            .flat_map(|name| (0..self.partitions as i32).map(move |p| (name.clone(), p)))
            .collect()
    }
}

/// Creates `load.topics` fresh topics named after `tag`, with `flush` when the broker takes it.
pub async fn create_topics(
    bootstrap: &str,
    load: &LoadArgs,
    tag: &str,
) -> Result<Topics, BenchError> {
    let mut config = ClientConfig::new(bootstrap);
    // Thousands of partitions take a broker a while to create; the default 30 s
    // request.timeout.ms would call that a dead broker.
    config.request_timeout = TOPIC_READY_TIMEOUT * 5;
    let admin = Admin::new(config).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000_000);
    let mut names = Vec::new();
    let mut refusals = Vec::new();
    for index in 0..load.topics.max(1) {
        let name = format!(
            "{}-{tag}-{}-{stamp}-{index}",
            load.topic,
            std::process::id()
        );
        let partitions = load.partitions.max(1) as i32;
        let topic = NewTopic {
            replication_factor: load.replication_factor,
            ..NewTopic::new(&name, partitions)
        };
        let with_flush = topic.clone().config("flush", &load.flush);
        if let Err(e) = admin.create_topic(with_flush).await {
            refusals.push(e.to_string());
            admin.create_topic(topic).await?;
        }
        admin.wait_for_topic(&name, TOPIC_READY_TIMEOUT).await?;
        names.push(name);
    }
    let flush_note = match refusals.first() {
        None => format!("flush={} set on the bench's topics", load.flush),
        Some(reason) => format!(
            "flush={} NOT applied: the broker refused the config ({reason}); its default holds",
            load.flush
        ),
    };
    Ok(Topics {
        names,
        partitions: load.partitions.max(1),
        flush_note,
    })
}

/// Deletes the run's topics, so a long suite does not fill the broker's disk. Best
/// effort: a broker that refuses keeps them, and the report says so.
pub async fn delete_topics(bootstrap: &str, topics: &Topics) -> Option<String> {
    let admin = match Admin::new(ClientConfig::new(bootstrap)).await {
        Ok(admin) => admin,
        Err(e) => return Some(format!("topics not deleted: {e}")),
    };
    let names: Vec<&str> = topics.names.iter().map(String::as_str).collect();
    match admin.delete_topics(&names).await {
        Ok(results) => results
            .into_iter()
            .find_map(|(name, r)| r.err().map(|e| format!("topic {name} not deleted: {e}"))),
        Err(e) => Some(format!("topics not deleted: {e}")),
    }
}

/// Producer settings from the command line.
pub fn producer_config(bootstrap: &str, load: &LoadArgs) -> ProducerConfig {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = match load.acks {
        AcksArg::Zero => Acks::None,
        AcksArg::One => Acks::Leader,
        AcksArg::All => Acks::All,
    };
    config.enable_idempotence = config.acks == Acks::All;
    config.linger = Duration::from_millis(load.linger_ms);
    config.batch_size_bytes = load.batch_size.max(1);
    config.max_in_flight = load.max_in_flight.max(1);
    config.max_request_size_bytes = config
        .max_request_size_bytes
        .max(load.record_size.max_bytes + 1024);
    config.compression = match load.compression {
        CompressionArg::None => Compression::None,
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Snappy => Compression::Snappy,
        CompressionArg::Lz4 => Compression::Lz4,
        CompressionArg::Zstd => Compression::Zstd,
    };
    config
}

/// Makes records: values sliced from one shared pool (no per-record allocation for the
/// throughput workloads), sizes drawn from the size spec, optional 8-byte keys.
pub struct RecordSource {
    pool: Bytes,
    sizes: SizeSpec,
    keys: bool,
    random: u64,
    count: u64,
}

impl RecordSource {
    pub fn new(sizes: SizeSpec, keys: bool, seed: u64) -> Self {
        // Bytes that compress about as well as text would, not all zeroes.
        let pool: Vec<u8> = (0..sizes.max_bytes)
            .map(|i| b"spate bench payload 0123456789"[i % 30])
            .collect();
        Self {
            pool: Bytes::from(pool),
            sizes,
            keys,
            random: seed | 1,
            count: 0,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough to spread sizes and keys; not for anything else.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    /// The next record for `topic`, and its size in bytes (key plus value).
    pub fn next(&mut self, topic: &str) -> (ProducerRecord, u64) {
        let random = self.next_random();
        let size = self.sizes.pick(random);
        self.count += 1;
        let mut record = ProducerRecord::new(topic, self.pool.slice(..size));
        let mut bytes = size as u64;
        if self.keys {
            record = record.key(Bytes::copy_from_slice(&self.count.to_be_bytes()));
            bytes += 8;
        }
        (record, bytes)
    }

    /// Like [`RecordSource::next`], with `stamp_ns` in the value's first [`STAMP_BYTES`].
    pub fn next_stamped(&mut self, topic: &str, stamp_ns: u64) -> (ProducerRecord, u64) {
        let random = self.next_random();
        let size = self.sizes.pick(random).max(STAMP_BYTES);
        self.count += 1;
        let mut value = BytesMut::with_capacity(size);
        value.extend_from_slice(&stamp_ns.to_le_bytes());
        value.extend_from_slice(&self.pool[..size - STAMP_BYTES]);
        let mut record = ProducerRecord::new(topic, value.freeze());
        let mut bytes = size as u64;
        if self.keys {
            record = record.key(Bytes::copy_from_slice(&self.count.to_be_bytes()));
            bytes += 8;
        }
        (record, bytes)
    }
}

/// The stamp at the front of a latency record's value, if it has one.
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_values_carry_their_time_and_size() {
        let mut source = RecordSource::new("16..64".parse().unwrap(), true, 7);
        for stamp in [0u64, 1, u64::MAX] {
            let (record, bytes) = source.next_stamped("t", stamp);
            let value = record.value.unwrap();
            assert_eq!(read_stamp(&value), Some(stamp));
            assert!((16..64).contains(&value.len()));
            assert_eq!(bytes, value.len() as u64 + 8);
        }
        assert_eq!(read_stamp(&[1, 2]), None);
    }
}
