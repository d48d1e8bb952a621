//! The idempotent producer keeps going through a broker crash (kill -9 and restart on the
//! same port) and its retries leave no duplicates: batches the broker appended before dying
//! and then saw again are recognised by their sequence numbers.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{broker_with_partitions, kcat_consume};
use spate_client::{Producer, ProducerConfig, ProducerRecord};

const RECORD_COUNT: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_each_record_once_across_a_broker_crash() {
    let mut broker = broker_with_partitions(2);
    let mut config = ProducerConfig::new(broker.bootstrap());
    config.linger = Duration::from_millis(2);
    config.batch_size_bytes = 2_048;
    // Fail fast on the dead socket so the test exercises retries, not timeouts.
    config.client.request_timeout = Duration::from_secs(5);
    config.delivery_timeout = Duration::from_secs(60);
    let producer = Producer::new(config).await.unwrap();

    let sending = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut futures = Vec::new();
            for index in 0..RECORD_COUNT {
                let record = ProducerRecord::new("crash", format!("{index:06}"))
                    .key(format!("k{}", index % 11));
                futures.push(producer.send(record).await.unwrap());
                if index % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let mut delivered = Vec::new();
            for future in futures {
                delivered.push(future.await.expect("every record is delivered"));
            }
            delivered
        })
    };
    // Crash the broker once some records are acknowledged, mid-stream.
    let first = producer
        .send(ProducerRecord::new("crash-marker", "m"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.offset, 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!sending.is_finished(), "the crash must come mid-stream");
    tokio::task::block_in_place(|| {
        broker.kill9().unwrap();
        broker.restart_on_same_ports().unwrap();
    });
    let delivered = tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("producer finishes after the restart")
        .unwrap();
    assert_eq!(delivered.len(), RECORD_COUNT);

    let consumed = kcat_consume(&broker, "crash");
    let mut seen = vec![0u32; RECORD_COUNT];
    for record in &consumed {
        let value = String::from_utf8(record.value.clone().unwrap()).unwrap();
        let index: usize = value.parse().unwrap();
        seen[index] += 1;
    }
    let missing: Vec<usize> = (0..RECORD_COUNT).filter(|i| seen[*i] == 0).collect();
    let duplicated: Vec<usize> = (0..RECORD_COUNT).filter(|i| seen[*i] > 1).collect();
    assert!(missing.is_empty(), "records lost: {missing:?}");
    assert!(duplicated.is_empty(), "records duplicated: {duplicated:?}");
    // Per-key order holds: within a partition, values of one key only increase.
    let mut last_by_key = std::collections::HashMap::new();
    for record in &consumed {
        let value: usize = String::from_utf8(record.value.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let key = record.key.clone().unwrap();
        if let Some(previous) = last_by_key.insert(key, value) {
            assert!(previous < value, "order broken: {previous} then {value}");
        }
    }
}
