//! A partition with a small `segment.bytes` rolls into many segment files, and reading is
//! seamless across them: fetching from the start walks every batch in order, a fetch offset in a
//! later segment finds its batch, and after `kill -9` and restart every segment is recovered and
//! appends continue at the right offset.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use spate_tests::Broker;
use spate_tests::fetch_request::{FetchParams, FetchedBatch, fetch_v5};
use spate_tests::kafka_requests::{create_topic_v4, produce_v7};
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::{KafkaConnection, error_code};

const TOPIC: &str = "rolling";
const SEGMENT_SIZE_BYTES: usize = 4096;
const BATCH_COUNT: i64 = 60;
const RECORDS_PER_BATCH: i64 = 5;
/// About 500 bytes per batch, so a segment holds about eight.
const VALUE_SIZE_BYTES: usize = 90;

fn batch(index: i64) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord::value(vec![(index * 7 + i) as u8; VALUE_SIZE_BYTES]))
        .collect();
    encode_batch(&records, 1_700_000_000_000 + index)
}

/// Fetches from `start` until the high watermark, one answer at a time; returns every batch.
fn read_all(connection: &mut KafkaConnection, start: i64) -> Vec<FetchedBatch> {
    let mut batches: Vec<FetchedBatch> = Vec::new();
    let mut next = start;
    for _ in 0..1_000 {
        let reply = fetch_v5(
            connection,
            &FetchParams {
                topic: TOPIC,
                partition: 0,
                fetch_offset: next,
                max_wait_ms: 50,
                min_bytes: 1,
                max_bytes: 1024 * 1024,
                partition_max_bytes: 1024 * 1024,
            },
        )
        .unwrap();
        assert_eq!(reply.error_code, error_code::NONE, "fetch at {next}");
        if next >= reply.high_watermark {
            return batches;
        }
        assert!(
            !reply.batches.is_empty(),
            "no batch at {next} < {}",
            reply.high_watermark
        );
        for fetched in reply.batches {
            if fetched.last_offset >= next {
                batches.push(fetched);
                next = fetched.last_offset + 1;
            }
        }
    }
    panic!("reading never reached the high watermark");
}

fn assert_all_batches(batches: &[FetchedBatch], first_index: i64) {
    let bases: Vec<i64> = batches.iter().map(|b| b.base_offset).collect();
    let expected: Vec<i64> = (first_index..BATCH_COUNT)
        .map(|i| i * RECORDS_PER_BATCH)
        .collect();
    assert_eq!(bases, expected);
}

#[test]
fn small_segments_roll_and_reads_cross_them_before_and_after_a_crash() {
    let mut broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let segment_bytes = SEGMENT_SIZE_BYTES.to_string();
    let created = create_topic_v4(
        &mut connection,
        TOPIC,
        1,
        &[("segment.bytes", &segment_bytes)],
    )
    .unwrap();
    assert_eq!(created, error_code::NONE);
    for index in 0..BATCH_COUNT {
        let reply = produce_v7(&mut connection, TOPIC, 0, &batch(index), -1).unwrap();
        assert_eq!(
            (reply.error_code, reply.base_offset),
            (error_code::NONE, index * RECORDS_PER_BATCH)
        );
    }
    let segment_count = std::fs::read_dir(broker.data_dir().join(format!("{TOPIC}-0")))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "log")
        })
        .count();
    assert!(
        segment_count >= 5,
        "{segment_count} segments for ~30 kB with segment.bytes={SEGMENT_SIZE_BYTES}"
    );

    assert_all_batches(&read_all(&mut connection, 0), 0);
    let late_offset = 47 * RECORDS_PER_BATCH + 2;
    let from_late = read_all(&mut connection, late_offset);
    assert_eq!(from_late[0].base_offset, 47 * RECORDS_PER_BATCH);
    assert_all_batches(&from_late, 47);

    broker.kill9().unwrap();
    broker.restart().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    assert_all_batches(&read_all(&mut connection, 0), 0);
    let next = produce_v7(&mut connection, TOPIC, 0, &batch(BATCH_COUNT), -1).unwrap();
    assert_eq!(
        (next.error_code, next.base_offset),
        (error_code::NONE, BATCH_COUNT * RECORDS_PER_BATCH)
    );
}
