//! librdkafka, through the `rdkafka` crate: an idempotent producer (acks=all) and a consumer
//! that uses assign() without a group round-trip 1,000,000 records across several partitions.
//! Every partition comes back in order, contiguous from offset 0, with nothing missing and
//! nothing duplicated, and every delivery report's offset matches what the consumer reads there.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_tests::{Broker, BrokerOptions};

/// The issue asks for a million records.
const RECORD_COUNT: u64 = 1_000_000;

/// Several partitions, so ordering is per partition and produce batches interleave.
const PARTITION_COUNT: u64 = 4;

/// Bytes per record value: an 8-byte sequence number plus filler derived from it.
const VALUE_SIZE_BYTES: usize = 32;

/// The whole produce or consume phase must finish inside this, even on a debug broker.
const PHASE_TIMEOUT: Duration = Duration::from_secs(240);

const TOPIC: &str = "million";

/// Records the offset of each acknowledged sequence number, and the first failure.
struct DeliveryLog {
    offsets: Mutex<Vec<i64>>,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sequence: Box<u64>) {
        match result {
            Ok(message) => {
                if let Ok(mut offsets) = self.offsets.lock() {
                    offsets[*sequence as usize] = message.offset();
                }
            }
            Err((error, _)) => {
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| format!("record {sequence}: {error}"));
                }
            }
        }
    }
}

fn value_for(sequence: u64) -> [u8; VALUE_SIZE_BYTES] {
    let mut value = [0u8; VALUE_SIZE_BYTES];
    value[..8].copy_from_slice(&sequence.to_be_bytes());
    let filler = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    for (index, byte) in value[8..].iter_mut().enumerate() {
        *byte = filler[index % 8] ^ (index as u8);
    }
    value
}

fn produce_all(bootstrap: &str) -> Vec<i64> {
    let context = DeliveryLog {
        offsets: Mutex::new(vec![-1; RECORD_COUNT as usize]),
        first_error: Mutex::new(None),
    };
    let producer: BaseProducer<DeliveryLog> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "200000")
        .create_with_context(context)
        .unwrap();
    let started = Instant::now();
    for sequence in 0..RECORD_COUNT {
        let value = value_for(sequence);
        let partition = (sequence % PARTITION_COUNT) as i32;
        let mut record: BaseRecord<'_, (), [u8], Box<u64>> =
            BaseRecord::with_opaque_to(TOPIC, Box::new(sequence))
                .partition(partition)
                .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(10));
                    assert!(started.elapsed() < PHASE_TIMEOUT, "produce timed out");
                }
                Err((error, _)) => panic!("send of record {sequence} failed: {error}"),
            }
        }
        if sequence.is_multiple_of(10_000) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(PHASE_TIMEOUT).unwrap();
    eprintln!(
        "produced {RECORD_COUNT} records (idempotent, acks=all) in {:?}",
        started.elapsed()
    );
    let context = producer.context();
    if let Some(error) = context.first_error.lock().unwrap().take() {
        panic!("delivery failed: {error}");
    }
    let offsets = context.offsets.lock().unwrap().clone();
    let unacked = offsets.iter().filter(|offset| **offset < 0).count();
    assert_eq!(unacked, 0, "{unacked} records never acknowledged");
    offsets
}

fn consume_and_check(bootstrap: &str, acked_offsets: &[i64]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "spate-interop-million")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "4194304")
        .set("fetch.max.bytes", "16777216")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITION_COUNT as i32 {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let per_partition = RECORD_COUNT / PARTITION_COUNT;
    let mut next_offset = vec![0i64; PARTITION_COUNT as usize];
    let mut consumed = 0u64;
    let started = Instant::now();
    while consumed < RECORD_COUNT {
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "consumed only {consumed} of {RECORD_COUNT}; next offsets {next_offset:?}"
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.unwrap();
        let partition = message.partition() as usize;
        let offset = message.offset();
        assert_eq!(
            offset, next_offset[partition],
            "partition {partition}: offset gap or repeat"
        );
        let expected_sequence = offset as u64 * PARTITION_COUNT + partition as u64;
        let value = message.payload().unwrap();
        assert_eq!(
            value,
            &value_for(expected_sequence)[..],
            "partition {partition} offset {offset}: wrong record (order, loss or duplicate)"
        );
        assert_eq!(acked_offsets[expected_sequence as usize], offset);
        next_offset[partition] += 1;
        consumed += 1;
    }
    eprintln!(
        "consumed {consumed} records with assign() in {:?}",
        started.elapsed()
    );
    for (partition, next) in next_offset.iter().enumerate() {
        assert_eq!(*next as u64, per_partition, "partition {partition}");
    }
    // Nothing beyond the million: the log end is exactly where we stopped.
    for partition in 0..PARTITION_COUNT as i32 {
        let (low, high) = consumer
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            (low, high as u64),
            (0, per_partition),
            "partition {partition}"
        );
    }
}

#[test]
fn idempotent_producer_and_assigned_consumer_round_trip_a_million_records_in_order() {
    let broker = Broker::start_with(BrokerOptions {
        num_partitions: Some(PARTITION_COUNT as u32),
        // Two shards on any machine, so some partitions live on another shard than the
        // connection and every request for them is forwarded.
        cores: Some(2),
        ..BrokerOptions::default()
    })
    .unwrap();
    let bootstrap = broker.bootstrap();
    let acked_offsets = produce_all(&bootstrap);
    consume_and_check(&bootstrap, &acked_offsets);
}
