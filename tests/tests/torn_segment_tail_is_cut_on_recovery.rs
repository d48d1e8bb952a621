//! Recovery from bytes on disk that a crash can leave behind: after `kill -9`, the active
//! segment's tail is damaged the way a torn write would (half a batch header, a whole batch
//! with a bad CRC, random bytes) or its index is garbage. On restart the broker must cut the
//! damaged tail, keep every acknowledged batch at its offset, append after it, and not crash.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use spate_tests::Broker;
use spate_tests::fetch_request::{FetchParams, fetch_v5};
use spate_tests::kafka_requests::{metadata_v4, produce_v7};
use spate_tests::record_batch::{CRC_OFFSET, TestRecord, encode_batch};
use spate_tests::wire::{KafkaConnection, error_code};

const TOPIC: &str = "torn";
const BATCH_COUNT: i64 = 10;
const RECORDS_PER_BATCH: i64 = 4;

fn batch(tag: i64) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord::value(format!("batch-{tag}-record-{i}")))
        .collect();
    encode_batch(&records, 1_700_000_000_000)
}

fn ensure_topic(connection: &mut KafkaConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metadata_v4(connection, Some(&[TOPIC]), true)
        .unwrap()
        .topics
        .iter()
        .any(|t| t.name == TOPIC && t.error_code == 0 && t.partition_count > 0)
    {
        assert!(Instant::now() < deadline, "topic not created");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partition folder, `<data>/<topic>-0`, as in Kafka's layout.
fn partition_dir(broker: &Broker) -> PathBuf {
    broker.data_dir().join(format!("{TOPIC}-0"))
}

fn file_with_extension(broker: &Broker, extension: &str) -> PathBuf {
    let dir = partition_dir(broker);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
        .pop()
        .unwrap_or_else(|| panic!("no .{extension} file in {}", dir.display()))
}

/// Produces acknowledged batches, kills the broker, lets `damage` corrupt the files, restarts,
/// and checks the acknowledged batches and the next append.
fn survives_damage(damage: impl FnOnce(&Broker)) {
    let mut broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    ensure_topic(&mut connection);
    for index in 0..BATCH_COUNT {
        let reply = produce_v7(&mut connection, TOPIC, 0, &batch(index), -1).unwrap();
        assert_eq!(reply.error_code, error_code::NONE);
        assert_eq!(reply.base_offset, index * RECORDS_PER_BATCH);
    }
    broker.kill9().unwrap();
    damage(&broker);
    broker
        .restart()
        .unwrap_or_else(|e| panic!("restart after damage failed: {e}"));

    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let end_offset = BATCH_COUNT * RECORDS_PER_BATCH;
    let params = FetchParams {
        topic: TOPIC,
        partition: 0,
        fetch_offset: 0,
        max_wait_ms: 100,
        min_bytes: 1,
        max_bytes: 8 * 1024 * 1024,
        partition_max_bytes: 8 * 1024 * 1024,
    };
    let reply = fetch_v5(&mut connection, &params).unwrap();
    assert_eq!(reply.error_code, error_code::NONE);
    assert_eq!(reply.high_watermark, end_offset, "{reply:?}");
    let bases: Vec<i64> = reply.batches.iter().map(|b| b.base_offset).collect();
    let expected: Vec<i64> = (0..BATCH_COUNT).map(|i| i * RECORDS_PER_BATCH).collect();
    assert_eq!(bases, expected, "acknowledged batches after recovery");
    assert_eq!(reply.trailing_partial_bytes, 0, "the torn tail is served");

    let next = produce_v7(&mut connection, TOPIC, 0, &batch(BATCH_COUNT), -1).unwrap();
    assert_eq!(
        (next.error_code, next.base_offset),
        (error_code::NONE, end_offset)
    );
    assert!(broker.is_running(), "{}", broker.log_tail(4096));
}

fn append_to_log(broker: &Broker, bytes: &[u8]) {
    let path = file_with_extension(broker, "log");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn half_written_batch_header_is_cut() {
    survives_damage(|broker| append_to_log(broker, &batch(99)[..30]));
}

#[test]
fn whole_batch_with_a_bad_crc_is_cut() {
    survives_damage(|broker| {
        let mut corrupt = batch(99);
        corrupt[0..8].copy_from_slice(&(BATCH_COUNT * RECORDS_PER_BATCH).to_be_bytes());
        corrupt[CRC_OFFSET] ^= 0xff;
        append_to_log(broker, &corrupt);
    });
}

#[test]
fn random_bytes_after_the_last_batch_are_cut() {
    survives_damage(|broker| {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        append_to_log(broker, &garbage);
    });
}

#[test]
fn garbage_offset_index_is_rebuilt() {
    survives_damage(|broker| {
        let path = file_with_extension(broker, "index");
        std::fs::write(&path, [0xa5u8; 1000]).unwrap();
    });
}
