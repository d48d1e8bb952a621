//! `retention.bytes` and `retention.ms` delete whole old segments on the broker's retention
//! timer (`--log-retention-check-interval-ms`), advance the log start offset that Fetch reports,
//! answer a fetch below it with OFFSET_OUT_OF_RANGE, and never touch the active segment; the
//! newest data stays readable, and the advanced start survives a restart.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use spate_tests::fetch_request::{FetchParams, FetchReply, fetch_v5};
use spate_tests::kafka_requests::{create_topic_v4, produce_v7};
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::{KafkaConnection, error_code};
use spate_tests::{Broker, BrokerOptions};

const SEGMENT_SIZE_BYTES: usize = 4096;
const BATCH_COUNT: i64 = 60;
const RECORDS_PER_BATCH: i64 = 5;
/// About 500 bytes per batch, so a segment holds about eight.
const VALUE_SIZE_BYTES: usize = 90;
/// How long the test waits for the retention timer (which runs every 100 ms here).
const RETENTION_WAIT_MS: u64 = 15_000;

fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec!["--log-retention-check-interval-ms".into(), "100".into()],
        ..BrokerOptions::default()
    })
    .unwrap()
}

fn batch(index: i64, timestamp_ms: i64) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord::value(vec![(index * 7 + i) as u8; VALUE_SIZE_BYTES]))
        .collect();
    encode_batch(&records, timestamp_ms)
}

fn fetch(connection: &mut KafkaConnection, topic: &str, offset: i64) -> FetchReply {
    fetch_v5(
        connection,
        &FetchParams {
            topic,
            partition: 0,
            fetch_offset: offset,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        },
    )
    .unwrap()
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            let path = entry.as_ref().unwrap().path();
            path.extension().is_some_and(|ext| ext == "log")
        })
        .count()
}

/// Creates `topic` with small segments and `config`, then appends `BATCH_COUNT` batches.
fn fill(connection: &mut KafkaConnection, topic: &str, config: (&str, &str), timestamp_ms: i64) {
    let segment_bytes = SEGMENT_SIZE_BYTES.to_string();
    let created = create_topic_v4(
        connection,
        topic,
        1,
        &[("segment.bytes", &segment_bytes), config],
    )
    .unwrap();
    assert_eq!(created, error_code::NONE, "create {topic}");
    for index in 0..BATCH_COUNT {
        let reply = produce_v7(connection, topic, 0, &batch(index, timestamp_ms), -1).unwrap();
        assert_eq!(
            reply.error_code,
            error_code::NONE,
            "produce batch {index} to {topic}"
        );
    }
}

/// Polls Fetch until the log start offset moves past 0; returns it.
fn wait_for_log_start(connection: &mut KafkaConnection, topic: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_millis(RETENTION_WAIT_MS);
    loop {
        let high_watermark = BATCH_COUNT * RECORDS_PER_BATCH;
        let reply = fetch(connection, topic, high_watermark);
        assert_eq!(reply.high_watermark, high_watermark);
        if reply.log_start_offset > 0 {
            return reply.log_start_offset;
        }
        assert!(
            Instant::now() < deadline,
            "retention never advanced the log start of {topic}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What must hold after retention ran: the start is a batch boundary below the end, a fetch
/// below it is out of range, and a fetch at it returns the batches from there on.
fn assert_trimmed(connection: &mut KafkaConnection, topic: &str, log_start: i64) {
    let end = BATCH_COUNT * RECORDS_PER_BATCH;
    assert!(log_start > 0 && log_start < end, "log start {log_start}");
    assert_eq!(
        log_start % RECORDS_PER_BATCH,
        0,
        "start {log_start} splits a batch"
    );
    let below = fetch(connection, topic, 0);
    assert_eq!(
        below.error_code,
        error_code::OFFSET_OUT_OF_RANGE,
        "fetch at 0 below start {log_start}"
    );
    let at_start = fetch(connection, topic, log_start);
    assert_eq!(at_start.error_code, error_code::NONE);
    assert_eq!(
        at_start.batches.first().map(|b| b.base_offset),
        Some(log_start)
    );
}

#[test]
fn retention_bytes_deletes_the_oldest_segments_and_keeps_the_newest() {
    let mut broker = broker();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let topic = "retained-by-size";
    fill(
        &mut connection,
        topic,
        ("retention.bytes", "8192"),
        1_900_000_000_000,
    );
    let dir = broker.data_dir().join(format!("{topic}-0"));
    // ~30 kB of batches with an 8 KiB limit leaves the active segment and at most two more,
    // once the retention timer has had its pass.
    let deadline = Instant::now() + Duration::from_millis(RETENTION_WAIT_MS);
    while segment_count(&dir) > 3 {
        let kept = segment_count(&dir);
        assert!(
            Instant::now() < deadline,
            "{kept} segments kept under retention.bytes=8192"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log_start = wait_for_log_start(&mut connection, topic);
    assert_trimmed(&mut connection, topic, log_start);

    broker.restart().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let after = fetch(&mut connection, topic, BATCH_COUNT * RECORDS_PER_BATCH);
    assert!(
        after.log_start_offset >= log_start,
        "log start went back from {log_start} to {} after a restart",
        after.log_start_offset
    );
}

#[test]
fn retention_ms_deletes_segments_whose_records_are_older_but_never_the_active_one() {
    let broker = broker();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let topic = "retained-by-age";
    // Timestamps from 2023, one minute of retention: every closed segment is expired.
    fill(
        &mut connection,
        topic,
        ("retention.ms", "60000"),
        1_700_000_000_000,
    );
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let log_start = wait_for_log_start(&mut connection, topic);
    assert_trimmed(&mut connection, topic, log_start);
    let deadline = Instant::now() + Duration::from_millis(RETENTION_WAIT_MS);
    while segment_count(&dir) > 1 {
        assert!(
            Instant::now() < deadline,
            "expired closed segments were kept"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The active segment stays, with the newest batch in it.
    let last = fetch(
        &mut connection,
        topic,
        (BATCH_COUNT - 1) * RECORDS_PER_BATCH,
    );
    assert_eq!(last.error_code, error_code::NONE);
    assert_eq!(
        last.batches.first().map(|b| b.base_offset),
        Some((BATCH_COUNT - 1) * RECORDS_PER_BATCH)
    );
}
