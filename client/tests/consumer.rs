//! The consumer against the real broker: reading what librdkafka wrote byte for byte,
//! seeking, pausing, resetting out-of-range offsets, and riding out a broker crash.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{KCAT_TIMEOUT, broker_with_partitions, kcat_consume};
use spate_client::{
    Consumer, ConsumerConfig, ConsumerRecord, Error, OffsetReset, Producer, ProducerConfig,
    ProducerRecord,
};
use spate_tests::clients::run_kcat;

/// Polls until `count` records arrived or `limit` passed.
async fn poll_until(consumer: &Consumer, count: usize, limit: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + limit;
    let mut records = Vec::new();
    while records.len() < count && Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    records
}

fn consumer_config(broker: &spate_tests::Broker) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(broker.bootstrap());
    config.auto_offset_reset = OffsetReset::Earliest;
    config.fetch_max_wait = Duration::from_millis(100);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_kcat_produced_are_read_byte_identical() {
    let broker = broker_with_partitions(2);
    let mut input = String::new();
    for index in 0..200 {
        input.push_str(&format!(
            "key-{}\tvalue {index}: ünïcode and spaces\n",
            index % 7
        ));
    }
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("from-kcat-{codec}");
        let produced = run_kcat(
            &broker.bootstrap(),
            &[
                "-P",
                "-t",
                &topic,
                "-K\t",
                "-H",
                "trace=abc",
                "-H",
                "empty=",
                "-z",
                codec,
            ],
            Some(input.clone().into_bytes()),
            KCAT_TIMEOUT,
        )
        .unwrap();
        assert!(produced.status.success(), "{}", produced.describe());
        let reference = kcat_consume(&broker, &topic);
        assert_eq!(reference.len(), 200);

        let consumer = Consumer::new(consumer_config(&broker)).await.unwrap();
        consumer.assign([(topic.clone(), 0), (topic.clone(), 1)]);
        let records = poll_until(&consumer, 200, Duration::from_secs(15)).await;
        assert_eq!(records.len(), 200, "codec {codec}");
        let by_position: HashMap<(i32, i64), &ConsumerRecord> = records
            .iter()
            .map(|r| ((r.partition, r.offset), r))
            .collect();
        for expected in &reference {
            let got = by_position[&(expected.partition, expected.offset)];
            assert_eq!(
                got.key.as_deref().map(<[u8]>::to_vec),
                expected.key,
                "codec {codec}"
            );
            assert_eq!(got.value.as_deref().map(<[u8]>::to_vec), expected.value);
            assert_eq!(got.timestamp_ms, expected.timestamp_ms);
            let headers: Vec<String> = got
                .headers
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        String::from_utf8_lossy(v.as_deref().unwrap_or(b""))
                    )
                })
                .collect();
            assert_eq!(headers.join(","), expected.headers);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_position_pause_and_resume() {
    let broker = broker_with_partitions(1);
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    // One batch per record (each awaited): Spate answers timestamp lookups at batch
    // granularity, as its engine documents, so this makes the expected offset exact.
    for index in 0..100i64 {
        let record =
            ProducerRecord::new("seeks", format!("{index}")).timestamp_ms(1_000_000 + index * 10);
        producer.send(record).await.unwrap().await.unwrap();
    }
    let consumer = Consumer::new(consumer_config(&broker)).await.unwrap();
    consumer.assign([("seeks".to_string(), 0)]);

    let first = poll_until(&consumer, 100, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 100, "auto.offset.reset=earliest starts at 0");
    assert_eq!(first[0].offset, 0);
    assert_eq!(consumer.position("seeks", 0).unwrap(), Some(100));

    consumer.seek("seeks", 0, 42).unwrap();
    assert_eq!(consumer.position("seeks", 0).unwrap(), Some(42));
    let from_42 = poll_until(&consumer, 58, Duration::from_secs(10)).await;
    assert_eq!(from_42.first().map(|r| r.offset), Some(42));
    assert_eq!(from_42.len(), 58);

    // Timestamp 1_000_505 falls between offsets 50 (…500) and 51 (…510).
    consumer.seek_to_timestamp("seeks", 0, 1_000_505).unwrap();
    let from_time = poll_until(&consumer, 49, Duration::from_secs(10)).await;
    assert_eq!(from_time.first().map(|r| r.offset), Some(51));

    consumer.seek_to_beginning("seeks", 0).unwrap();
    let again = poll_until(&consumer, 100, Duration::from_secs(10)).await;
    assert_eq!(again.first().map(|r| r.offset), Some(0));

    consumer.seek_to_end("seeks", 0).unwrap();
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(consumer.position("seeks", 0).unwrap(), Some(100));

    consumer.pause(&[("seeks".to_string(), 0)]);
    producer
        .send(ProducerRecord::new("seeks", "late"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        consumer
            .poll(Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty(),
        "paused"
    );
    consumer.resume(&[("seeks".to_string(), 0)]);
    let resumed = poll_until(&consumer, 1, Duration::from_secs(10)).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].value.as_deref(), Some(&b"late"[..]));
    assert_eq!(resumed[0].offset, 100);

    assert!(matches!(
        consumer.seek("other", 0, 0),
        Err(Error::NotAssigned { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_offsets_follow_auto_offset_reset() {
    let broker = broker_with_partitions(1);
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    for index in 0..10 {
        producer
            .send(ProducerRecord::new("range", format!("{index}")))
            .await
            .unwrap();
    }
    producer.flush().await;

    let consumer = Consumer::new(consumer_config(&broker)).await.unwrap();
    consumer.assign([("range".to_string(), 0)]);
    consumer.seek("range", 0, 5_000).unwrap();
    let records = poll_until(&consumer, 10, Duration::from_secs(10)).await;
    assert_eq!(
        records.first().map(|r| r.offset),
        Some(0),
        "earliest after out of range"
    );

    let mut strict = consumer_config(&broker);
    strict.auto_offset_reset = OffsetReset::None;
    let consumer = Consumer::new(strict).await.unwrap();
    consumer.assign([("range".to_string(), 0)]);
    let unplaced = consumer.poll(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(unplaced, Error::NoOffset { partition: 0, .. }),
        "{unplaced}"
    );
    consumer.seek("range", 0, 5_000).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        match consumer.poll(Duration::from_millis(200)).await {
            Err(error) => break error,
            Ok(records) => assert!(records.is_empty()),
        }
        assert!(Instant::now() < deadline, "no out-of-range error");
    };
    assert!(
        matches!(error, Error::OffsetOutOfRange { offset: 5_000, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("range-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reads_everything_across_a_broker_crash() {
    let mut broker = broker_with_partitions(2);
    let mut producer_config = ProducerConfig::new(broker.bootstrap());
    producer_config.client.request_timeout = Duration::from_secs(5);
    let producer = Producer::new(producer_config).await.unwrap();
    let mut config = consumer_config(&broker);
    config.client.request_timeout = Duration::from_secs(5);
    config.max_poll_records = 50;
    let consumer = Consumer::new(config).await.unwrap();
    consumer.assign([("crash".to_string(), 0), ("crash".to_string(), 1)]);

    let total = 2_000usize;
    let mut received: Vec<ConsumerRecord> = Vec::new();
    for index in 0..total / 2 {
        producer
            .send(ProducerRecord::new("crash", format!("{index:05}")).key(format!("{}", index % 5)))
            .await
            .unwrap();
    }
    producer.flush().await;
    received.extend(poll_until(&consumer, 300, Duration::from_secs(10)).await);
    assert!(received.len() < total / 2 + 1, "mid-stream");

    tokio::task::block_in_place(|| {
        broker.kill9().unwrap();
        broker.restart_on_same_ports().unwrap();
    });
    for index in total / 2..total {
        producer
            .send(ProducerRecord::new("crash", format!("{index:05}")).key(format!("{}", index % 5)))
            .await
            .unwrap();
    }
    producer.flush().await;
    let rest = poll_until(&consumer, total - received.len(), Duration::from_secs(25)).await;
    received.extend(rest);

    let mut values: Vec<String> = received
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    let mut per_partition: HashMap<i32, i64> = HashMap::new();
    for record in &received {
        if let Some(last) = per_partition.insert(record.partition, record.offset) {
            assert_eq!(
                record.offset,
                last + 1,
                "gap or repeat in partition {}",
                record.partition
            );
        }
    }
    values.sort();
    values.dedup();
    assert_eq!(values.len(), total, "every record exactly once");
    assert_eq!(received.len(), total);
}

/// Deleting and recreating a topic under a running consumer changes its topic id and empties
/// its log: the consumer must refresh metadata on the fetch error (Fetch v13+ names topics by
/// id), then find its old position out of range and reset to the new topic's beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_follows_a_topic_recreated_under_it() {
    let broker = broker_with_partitions(1);
    let admin = spate_client::Admin::new(spate_client::ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    for index in 0..20 {
        producer
            .send(ProducerRecord::new("reborn", format!("old {index}")))
            .await
            .unwrap();
    }
    producer.flush().await;
    let consumer = Consumer::new(consumer_config(&broker)).await.unwrap();
    consumer.assign([("reborn".to_string(), 0)]);
    assert_eq!(
        poll_until(&consumer, 20, Duration::from_secs(10))
            .await
            .len(),
        20
    );

    admin.delete_topic("reborn").await.unwrap();
    admin
        .create_topic(spate_client::NewTopic::new("reborn", 1))
        .await
        .unwrap();
    admin
        .wait_for_topic("reborn", Duration::from_secs(5))
        .await
        .unwrap();
    let fresh = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    for index in 0..5 {
        fresh
            .send(ProducerRecord::new("reborn", format!("new {index}")))
            .await
            .unwrap();
    }
    fresh.flush().await;
    let records = poll_until(&consumer, 5, Duration::from_secs(15)).await;
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..5).map(|i| format!("new {i}")).collect::<Vec<_>>()
    );
}
