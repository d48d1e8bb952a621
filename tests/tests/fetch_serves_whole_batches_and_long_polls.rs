//! Fetch semantics clients depend on, checked with hand-built Fetch v5 requests: a fetch on an
//! empty partition waits `max_wait_ms`, but returns as soon as data arrives; a fetch offset inside
//! a batch returns that whole batch; a partition max bytes smaller than the first batch still
//! returns it (KIP-74) and otherwise the answer stays within the limit; the high watermark and
//! log start offset are reported; offsets past the log end are OFFSET_OUT_OF_RANGE.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::{Duration, Instant};

use spate_tests::Broker;
use spate_tests::fetch_request::{FetchParams, FetchReply, fetch_v5};
use spate_tests::kafka_requests::{metadata_v4, produce_v7};
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::{KafkaConnection, error_code};

const TOPIC: &str = "fetched";

fn connect(broker: &Broker) -> KafkaConnection {
    KafkaConnection::connect(broker.kafka_addr()).unwrap()
}

fn ensure_topic(connection: &mut KafkaConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = metadata_v4(connection, Some(&[TOPIC]), true).unwrap();
        if metadata
            .topics
            .iter()
            .any(|t| t.name == TOPIC && t.error_code == 0 && t.partition_count > 0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{metadata:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Appends one batch of `record_count` records of `value_size_bytes` each; returns its base.
fn produce(connection: &mut KafkaConnection, record_count: usize, value_size_bytes: usize) -> i64 {
    let records: Vec<TestRecord> = (0..record_count)
        .map(|i| TestRecord::value(vec![b'a' + (i % 26) as u8; value_size_bytes]))
        .collect();
    let reply = produce_v7(
        connection,
        TOPIC,
        0,
        &encode_batch(&records, 1_700_000_000_000),
        -1,
    )
    .unwrap();
    assert_eq!(reply.error_code, error_code::NONE);
    reply.base_offset
}

fn params(fetch_offset: i64, max_wait_ms: i32, partition_max_bytes: i32) -> FetchParams<'static> {
    FetchParams {
        topic: TOPIC,
        partition: 0,
        fetch_offset,
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 50 * 1024 * 1024,
        partition_max_bytes,
    }
}

fn fetch(connection: &mut KafkaConnection, params: &FetchParams<'_>) -> FetchReply {
    let reply = fetch_v5(connection, params).unwrap();
    assert_eq!(
        reply.trailing_partial_bytes, 0,
        "a batch was cut: {reply:?}"
    );
    reply
}

#[test]
fn fetch_on_an_empty_partition_waits_for_max_wait() {
    let broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    ensure_topic(&mut connection);
    let started = Instant::now();
    let reply = fetch(&mut connection, &params(0, 500, 1024 * 1024));
    let waited = started.elapsed();
    assert_eq!(reply.error_code, error_code::NONE);
    assert!(reply.batches.is_empty(), "{reply:?}");
    assert_eq!(reply.high_watermark, 0);
    assert!(
        waited >= Duration::from_millis(400),
        "answered after {waited:?}; min_bytes=1 should hold it ~500 ms"
    );
    assert!(waited < Duration::from_secs(5), "held for {waited:?}");
}

#[test]
fn fetch_long_poll_returns_as_soon_as_data_arrives() {
    let broker = Broker::start().unwrap();
    let mut producer = connect(&broker);
    ensure_topic(&mut producer);
    let addr = broker.kafka_addr();
    let waiter = std::thread::spawn(move || {
        let mut consumer = KafkaConnection::connect(addr).unwrap();
        let started = Instant::now();
        let reply = fetch_v5(&mut consumer, &params(0, 20_000, 1024 * 1024)).unwrap();
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    produce(&mut producer, 4, 10);
    let (reply, waited) = waiter.join().unwrap();
    assert_eq!(reply.error_code, error_code::NONE);
    assert_eq!(reply.batches.len(), 1, "{reply:?}");
    assert!(
        waited < Duration::from_secs(5),
        "the long poll ignored new data for {waited:?} (max wait 20 s)"
    );
}

#[test]
fn fetch_offset_inside_a_batch_returns_the_whole_batch_and_the_watermarks() {
    let broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    ensure_topic(&mut connection);
    assert_eq!(produce(&mut connection, 5, 10), 0);
    assert_eq!(produce(&mut connection, 5, 10), 5);

    let reply = fetch(&mut connection, &params(7, 100, 1024 * 1024));
    assert_eq!(reply.error_code, error_code::NONE);
    assert_eq!(reply.high_watermark, 10);
    assert_eq!(reply.log_start_offset, 0);
    let first = reply.batches.first().copied().unwrap();
    assert_eq!((first.base_offset, first.last_offset), (5, 9), "{reply:?}");

    let reply = fetch(&mut connection, &params(2, 100, 1024 * 1024));
    let offsets: Vec<(i64, i64)> = reply
        .batches
        .iter()
        .map(|b| (b.base_offset, b.last_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 4), (5, 9)]);

    let at_end = fetch(&mut connection, &params(10, 100, 1024 * 1024));
    assert_eq!(at_end.error_code, error_code::NONE);
    assert!(at_end.batches.is_empty());
    let past_end = fetch_v5(&mut connection, &params(11, 100, 1024 * 1024)).unwrap();
    assert_eq!(past_end.error_code, error_code::OFFSET_OUT_OF_RANGE);
}

#[test]
fn partition_max_bytes_is_honoured_but_never_starves_a_large_first_batch() {
    let broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    ensure_topic(&mut connection);
    for _ in 0..4 {
        produce(&mut connection, 10, 200);
    }

    // Smaller than one batch: that first batch still comes back whole (KIP-74).
    let tiny = fetch(&mut connection, &params(0, 100, 100));
    assert_eq!(tiny.error_code, error_code::NONE);
    assert_eq!(tiny.batches.len(), 1, "{tiny:?}");
    assert_eq!(tiny.batches[0].base_offset, 0);

    // Room for two and a half batches: never more than the limit, and never a cut batch.
    let batch_size_bytes = tiny.batches[0].size_bytes;
    let limit_bytes = batch_size_bytes * 5 / 2;
    let bounded = fetch(&mut connection, &params(0, 100, limit_bytes as i32));
    assert!(!bounded.batches.is_empty());
    assert!(
        bounded.records_size_bytes <= limit_bytes,
        "{} bytes returned for a limit of {limit_bytes}",
        bounded.records_size_bytes
    );
    let all = fetch(&mut connection, &params(0, 100, 1024 * 1024));
    assert_eq!(all.batches.len(), 4);
}
