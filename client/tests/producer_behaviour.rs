//! Producer behaviour beyond the round trip: backpressure through `buffer.memory`, acks
//! levels, bootstrap fallback, metadata refresh by age, and errors that name the record's
//! destination.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use common::{broker_with_partitions, kcat_consume};
use spate_client::producer::partitioner::partition_for_key;
use spate_client::{Acks, Admin, ClientConfig, Error, Producer, ProducerConfig, ProducerRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_makes_send_wait_then_fail_after_max_block() {
    let mut broker = broker_with_partitions(1);
    let mut config = ProducerConfig::new(broker.bootstrap());
    config.buffer_memory_bytes = 4_096;
    config.max_block = Duration::from_millis(800);
    config.client.request_timeout = Duration::from_secs(2);
    let producer = Producer::new(config).await.unwrap();
    producer
        .send(ProducerRecord::new("bp", "warm"))
        .await
        .unwrap()
        .await
        .unwrap();

    tokio::task::block_in_place(|| broker.kill9().unwrap());
    let value = vec![b'x'; 900];
    let mut queued = Vec::new();
    let error = loop {
        let started = std::time::Instant::now();
        match producer
            .send(ProducerRecord::new("bp", value.clone()))
            .await
        {
            Ok(future) => queued.push(future),
            Err(error) => {
                assert!(
                    started.elapsed() >= Duration::from_millis(700),
                    "send waited for room"
                );
                break error;
            }
        }
        assert!(
            queued.len() < 10,
            "4 KiB of buffer cannot hold ten 900-byte records"
        );
    };
    assert!(matches!(error, Error::BufferExhausted { .. }), "{error}");
    assert!(error.to_string().contains("buffer.memory"));
    assert_eq!(queued.len(), 4, "four ~920-byte records fit in 4096 bytes");

    // The broker comes back: the queued records are delivered and free their memory, and a
    // send that waits for room now succeeds.
    tokio::task::block_in_place(|| broker.restart_on_same_ports().unwrap());
    let waiting = producer.send(ProducerRecord::new("bp", value.clone()));
    let metadata = tokio::time::timeout(Duration::from_secs(20), async {
        for future in queued {
            future.await.unwrap();
        }
        waiting.await
    })
    .await
    .unwrap();
    let delivered = metadata.unwrap().await.unwrap();
    assert_eq!(delivered.offset, 5);
    producer.flush().await;
    let consumed = kcat_consume(&broker, "bp");
    assert_eq!(
        consumed.len(),
        6,
        "warm-up, the four queued records, and the waiting one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_one_deliver_without_idempotence() {
    let broker = broker_with_partitions(1);
    for (acks, topic) in [(Acks::None, "acks0"), (Acks::Leader, "acks1")] {
        let mut config = ProducerConfig::new(broker.bootstrap());
        config.acks = acks;
        assert!(config.validate().is_err(), "idempotence needs acks=all");
        config.enable_idempotence = false;
        let producer = Producer::new(config).await.unwrap();
        let mut futures = Vec::new();
        for index in 0..50 {
            futures.push(
                producer
                    .send(ProducerRecord::new(topic, format!("{index}")))
                    .await
                    .unwrap(),
            );
        }
        let mut offsets = Vec::new();
        for future in futures {
            offsets.push(future.await.unwrap().offset);
        }
        if acks == Acks::None {
            assert!(offsets.iter().all(|o| *o == -1), "acks=0 learns no offsets");
        } else {
            assert_eq!(offsets, (0..50).collect::<Vec<i64>>());
        }
        producer.flush().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let count = kcat_consume(&broker, topic).len();
            if count == 50 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{topic}: {count} of 50 records"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_first_bootstrap_entry_is_skipped() {
    let broker = broker_with_partitions(1);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_address = dead.local_addr().unwrap().to_string();
    drop(dead);
    let bootstrap = format!("{dead_address},{}", broker.bootstrap());
    let producer = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let metadata = producer
        .send(ProducerRecord::new("boot", "v"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(metadata.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partitions_are_found_once_metadata_ages_out() {
    let broker = broker_with_partitions(3);
    let mut config = ProducerConfig::new(broker.bootstrap());
    config.client.metadata_max_age = Duration::from_millis(300);
    let producer = Producer::new(config).await.unwrap();
    let key = (0..100)
        .map(|i| format!("key-{i}"))
        .find(|k| partition_for_key(k.as_bytes(), 6) >= 3)
        .unwrap();
    let before = producer
        .send(ProducerRecord::new("grow", "a").key(key.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(before.partition, partition_for_key(key.as_bytes(), 3));

    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    admin.create_partitions("grow", 6).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = producer
        .send(ProducerRecord::new("grow", "b").key(key.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(after.partition, partition_for_key(key.as_bytes(), 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_refused_with_errors_naming_the_destination() {
    let broker = broker_with_partitions(2);
    let mut config = ProducerConfig::new(broker.bootstrap());
    config.max_request_size_bytes = 1_000;
    let producer = Producer::new(config).await.unwrap();
    let error = producer
        .send(ProducerRecord::new("bad", "v").partition(9))
        .await
        .err()
        .unwrap();
    assert_eq!(error.to_string(), "topic bad has no partition 9 (it has 2)");
    let error = producer
        .send(ProducerRecord::new("bad", vec![0u8; 2_000]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            Error::RecordTooLarge {
                limit_name: "max.request.size",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("topic bad"));
}
