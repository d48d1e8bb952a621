//! What spate-client's producer writes, librdkafka (kcat) reads byte for byte: keys, values,
//! headers, timestamps, and the partition the Java partitioner picks for each key.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use bytes::Bytes;
use common::{broker_with_partitions, kcat_consume};
use spate_client::producer::partitioner::partition_for_key;
use spate_client::{Producer, ProducerConfig, ProducerRecord};
use spate_protocol::records::Compression;

fn value_for(index: usize) -> Vec<u8> {
    // Spaces, colons, UTF-8 and a tab: anything but a newline, which kcat's format uses.
    format!("value {index}: héllo\twörld {}", "x".repeat(index % 50)).into_bytes()
}

async fn round_trip(compression: Compression) {
    let broker = broker_with_partitions(3);
    let topic = format!("produced-{compression:?}").to_lowercase();
    let mut config = ProducerConfig::new(broker.bootstrap());
    config.compression = compression;
    let producer = Producer::new(config).await.unwrap();
    let base_timestamp_ms = 1_700_000_000_000;
    let mut futures = Vec::new();
    for index in 0..300usize {
        let mut record = ProducerRecord::new(&topic, value_for(index))
            .timestamp_ms(base_timestamp_ms + index as i64)
            .header("index", index.to_string())
            .header("kind", "round-trip");
        if index % 5 != 0 {
            record = record.key(format!("key-{}", index % 17));
        }
        futures.push((index, record.clone(), producer.send(record).await.unwrap()));
    }
    producer.flush().await;
    let mut delivered = Vec::new();
    for (index, record, future) in futures {
        let metadata = future.await.unwrap();
        assert_eq!(metadata.timestamp_ms, base_timestamp_ms + index as i64);
        if let Some(key) = &record.key {
            assert_eq!(
                metadata.partition,
                partition_for_key(key, 3),
                "record {index}"
            );
        }
        delivered.push((index, record, metadata));
    }
    let consumed = kcat_consume(&broker, &topic);
    assert_eq!(consumed.len(), 300);
    for (index, record, metadata) in delivered {
        let seen = consumed
            .iter()
            .find(|c| c.partition == metadata.partition && c.offset == metadata.offset)
            .unwrap_or_else(|| panic!("record {index} not at its reported offset"));
        assert_eq!(seen.value.as_deref(), Some(&value_for(index)[..]));
        assert_eq!(seen.key, record.key.as_ref().map(|k| k.to_vec()));
        assert_eq!(seen.timestamp_ms, base_timestamp_ms + index as i64);
        assert_eq!(seen.headers, format!("index={index},kind=round-trip"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncompressed_records_reach_kcat_byte_identical() {
    round_trip(Compression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_records_reach_kcat_byte_identical_with_every_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        round_trip(codec).await;
    }
}

/// Kafka's `UtilsTest.testMurmur2` keys, and the partitions out of seven that
/// `toPositive(murmur2(key)) % 7` gives in Java (computed from Kafka's published hashes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_the_java_partitioner_puts_them() {
    let broker = broker_with_partitions(7);
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let expected: &[(&str, i32)] = &[
        ("21", 3),
        ("foobar", 0),
        ("a-little-bit-long-string", 1),
        ("a-little-bit-longer-string", 0),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 3),
        ("abc", 4),
    ];
    for (key, partition) in expected {
        let record = ProducerRecord::new("java-keys", "v").key(Bytes::from(key.to_string()));
        let metadata = producer.send(record).await.unwrap().await.unwrap();
        assert_eq!(metadata.partition, *partition, "key {key}");
    }
    let consumed = kcat_consume(&broker, "java-keys");
    eprintln!(
        "{:?}",
        consumed
            .iter()
            .map(|c| (
                c.partition,
                c.offset,
                String::from_utf8_lossy(c.key.as_deref().unwrap_or(b"")).to_string()
            ))
            .collect::<Vec<_>>()
    );
    for (key, partition) in expected {
        let seen = consumed
            .iter()
            .find(|c| c.key.as_deref() == Some(key.as_bytes()))
            .unwrap();
        assert_eq!(seen.partition, *partition, "key {key} as kcat saw it");
    }
}
