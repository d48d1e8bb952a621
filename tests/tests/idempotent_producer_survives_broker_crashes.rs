//! Exactly-once per producer session across broker crashes: an idempotent librdkafka producer
//! keeps producing while the broker is killed with `kill -9` twice and restarted on the same
//! port. Batches that were written but not acknowledged before a crash are retried by the
//! client; the broker must recognise them from the producer state it recovered from the log
//! (as Kafka does), so every record is delivered exactly once and in order per partition.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_tests::{Broker, BrokerOptions};

const RECORD_COUNT: u64 = 200_000;
const PARTITION_COUNT: u64 = 2;
const TOPIC: &str = "exactly-once";
/// Records sent between two pauses of the producer loop; with the pause, about 50k records/s,
/// so the stream lasts long enough to be crashed twice.
const SEND_BURST: u64 = 500;
const SEND_PAUSE: Duration = Duration::from_millis(10);
/// Crash the broker this long after the stream starts, and again after each restart.
const CRASH_AFTER: Duration = Duration::from_millis(800);
const CRASH_COUNT: usize = 2;
/// Covers two restarts of a debug build with room to spare; the producer retries meanwhile.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

struct DeliveryLog {
    offsets: Mutex<Vec<(i32, i64)>>,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sequence: Box<u64>) {
        match result {
            Ok(message) => {
                self.offsets.lock().unwrap()[*sequence as usize] =
                    (message.partition(), message.offset());
            }
            Err((error, _)) => self
                .errors
                .lock()
                .unwrap()
                .push(format!("record {sequence}: {error}")),
        }
    }
}

fn value_for(sequence: u64) -> Vec<u8> {
    let mut value = sequence.to_be_bytes().to_vec();
    value.extend_from_slice(&sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    value.extend_from_slice(&[0x5a; 48]);
    value
}

fn produce_through_crashes(broker: &mut Broker) -> Vec<(i32, i64)> {
    let producer: BaseProducer<DeliveryLog> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.ms", "50")
        .create_with_context(DeliveryLog {
            offsets: Mutex::new(vec![(-1, -1); RECORD_COUNT as usize]),
            errors: Mutex::new(Vec::new()),
        })
        .unwrap();
    let started = Instant::now();
    let mut crashes_done = 0;
    let mut last_crash = Instant::now();
    for sequence in 0..RECORD_COUNT {
        let value = value_for(sequence);
        let mut record: BaseRecord<'_, (), [u8], Box<u64>> =
            BaseRecord::with_opaque_to(TOPIC, Box::new(sequence))
                .partition((sequence % PARTITION_COUNT) as i32)
                .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("send {sequence}: {error}"),
            }
        }
        if sequence % SEND_BURST == SEND_BURST - 1 {
            producer.poll(SEND_PAUSE);
            if crashes_done < CRASH_COUNT && last_crash.elapsed() >= CRASH_AFTER {
                broker.kill9().unwrap();
                broker.restart_on_same_ports().unwrap();
                crashes_done += 1;
                last_crash = Instant::now();
                eprintln!(
                    "crash {crashes_done} at record {sequence}, {:?}",
                    started.elapsed()
                );
            }
        }
    }
    assert_eq!(
        crashes_done, CRASH_COUNT,
        "the stream ended before every crash; slow the producer down"
    );
    producer.flush(DELIVERY_TIMEOUT).unwrap();
    eprintln!(
        "{RECORD_COUNT} records delivered in {:?}",
        started.elapsed()
    );
    let context = producer.context();
    let errors = context.errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} delivery errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    context.offsets.lock().unwrap().clone()
}

#[test]
fn idempotent_producer_delivers_exactly_once_across_two_kill9_restarts() {
    let mut broker = Broker::start_with(BrokerOptions {
        num_partitions: Some(PARTITION_COUNT as u32),
        cores: Some(2),
        ..BrokerOptions::default()
    })
    .unwrap();
    let acked = produce_through_crashes(&mut broker);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "spate-interop-exactly-once")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITION_COUNT as i32 {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut last_sequence: HashMap<i32, u64> = HashMap::new();
    let mut seen = vec![false; RECORD_COUNT as usize];
    let mut consumed = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed < RECORD_COUNT {
        assert!(Instant::now() < deadline, "consumed only {consumed}");
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.unwrap();
        let value = message.payload().unwrap();
        let sequence = u64::from_be_bytes(value[..8].try_into().unwrap());
        assert!(sequence < RECORD_COUNT, "unknown record {sequence}");
        assert_eq!(
            value,
            &value_for(sequence)[..],
            "record {sequence} corrupted"
        );
        assert!(!seen[sequence as usize], "record {sequence} stored twice");
        seen[sequence as usize] = true;
        let partition = message.partition();
        if let Some(previous) = last_sequence.insert(partition, sequence) {
            assert!(
                previous < sequence,
                "partition {partition}: {sequence} after {previous}"
            );
        }
        assert_eq!(acked[sequence as usize], (partition, message.offset()));
        consumed += 1;
    }
    for partition in 0..PARTITION_COUNT as i32 {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            high as u64,
            RECORD_COUNT / PARTITION_COUNT,
            "partition {partition}: extra records"
        );
    }
}
