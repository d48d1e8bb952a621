//! Idempotent produce, by hand: InitProducerId hands out a producer id; a batch resent with the
//! same producer id, epoch and sequence (a retry after a lost answer) is acknowledged without
//! being appended twice; a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::{Duration, Instant};

use spate_tests::Broker;
use spate_tests::kafka_requests::{init_producer_id_v1, metadata_v4, produce_v7};
use spate_tests::record_batch::{BatchProducer, TestRecord, encode_batch, encode_producer_batch};
use spate_tests::wire::{KafkaConnection, error_code};

const TOPIC: &str = "idempotent";
const RECORDS_PER_BATCH: i32 = 3;

fn records(tag: &str) -> Vec<TestRecord> {
    (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord::value(format!("{tag}-{i}")))
        .collect()
}

#[test]
fn resent_batch_is_acknowledged_once_and_sequence_gaps_are_refused() {
    let broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metadata_v4(&mut connection, Some(&[TOPIC]), true)
        .unwrap()
        .topics
        .iter()
        .any(|t| t.name == TOPIC && t.error_code == 0 && t.partition_count > 0)
    {
        assert!(Instant::now() < deadline, "topic not created");
        std::thread::sleep(Duration::from_millis(100));
    }

    let producer = init_producer_id_v1(&mut connection).unwrap();
    assert_eq!(producer.error_code, error_code::NONE);
    assert!(
        producer.producer_id >= 0 && producer.producer_epoch >= 0,
        "{producer:?}"
    );
    let batch_at = |base_sequence: i32, tag: &str| {
        encode_producer_batch(
            &records(tag),
            1_700_000_000_000,
            BatchProducer {
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                base_sequence,
            },
        )
    };

    let first = batch_at(0, "first");
    let reply = produce_v7(&mut connection, TOPIC, 0, &first, -1).unwrap();
    assert_eq!((reply.error_code, reply.base_offset), (error_code::NONE, 0));

    // The retry of a batch whose answer was lost: acknowledged, not appended again.
    let retry = produce_v7(&mut connection, TOPIC, 0, &first, -1).unwrap();
    assert!(
        retry.error_code == error_code::NONE
            || retry.error_code == error_code::DUPLICATE_SEQUENCE_NUMBER,
        "duplicate answered with error {}",
        retry.error_code
    );
    if retry.error_code == error_code::NONE {
        assert_eq!(
            retry.base_offset, 0,
            "a duplicate reports the original offset"
        );
    }

    let second = produce_v7(
        &mut connection,
        TOPIC,
        0,
        &batch_at(RECORDS_PER_BATCH, "second"),
        -1,
    )
    .unwrap();
    assert_eq!(
        (second.error_code, second.base_offset),
        (error_code::NONE, 3)
    );

    let gap = produce_v7(&mut connection, TOPIC, 0, &batch_at(100, "gap"), -1).unwrap();
    assert_eq!(gap.error_code, error_code::OUT_OF_ORDER_SEQUENCE_NUMBER);

    // Exactly two batches were appended: a plain batch lands at offset 6.
    let plain = produce_v7(
        &mut connection,
        TOPIC,
        0,
        &encode_batch(&records("plain"), 0),
        -1,
    )
    .unwrap();
    assert_eq!((plain.error_code, plain.base_offset), (error_code::NONE, 6));
}
