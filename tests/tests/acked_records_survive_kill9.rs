//! Durability: with acks=all (and the default `flush=always`), every record the broker
//! acknowledged is still there, byte for byte, after `kill -9` in the middle of a produce stream
//! and a restart on the same data directory. Repeated ten times on one data directory, so each
//! recovery also has to keep what the earlier ones recovered.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_tests::{Broker, BrokerOptions};

/// The issue asks for at least ten crash/restart cycles.
const CRASH_CYCLES: u64 = 10;

/// Kill once this many records of the cycle are acknowledged, while more are in flight.
const ACKS_BEFORE_KILL: usize = 3_000;

/// Upper bound on records sent per cycle, so the log (re-read every cycle) stays small.
const RECORDS_PER_CYCLE_MAX: u64 = 50_000;

/// If the broker acknowledges slowly, kill it anyway after this long.
const PRODUCE_BEFORE_KILL_MAX: Duration = Duration::from_secs(10);

const PARTITION_COUNT: i32 = 2;
const VALUE_SIZE_BYTES: usize = 100;
const TOPIC: &str = "durable";

/// Sequence numbers of different cycles never collide.
const SEQUENCES_PER_CYCLE: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Acked {
    partition: i32,
    offset: i64,
    sequence: u64,
}

#[derive(Clone, Default)]
struct AckLog {
    acked: Arc<Mutex<Vec<Acked>>>,
}

impl ClientContext for AckLog {}

impl ProducerContext for AckLog {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sequence: Box<u64>) {
        // Failures are expected once the broker is dead; only acknowledgements matter.
        if let Ok(message) = result
            && let Ok(mut acked) = self.acked.lock()
        {
            acked.push(Acked {
                partition: message.partition(),
                offset: message.offset(),
                sequence: *sequence,
            });
        }
    }
}

fn value_for(sequence: u64) -> Vec<u8> {
    let mut value = sequence.to_be_bytes().to_vec();
    let mut state = sequence | 1;
    while value.len() < VALUE_SIZE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(state as u8);
    }
    value
}

/// Produces until `stop` is set, on its own thread, recording acknowledgements in `log`.
fn spawn_producer(
    bootstrap: String,
    cycle: u64,
    log: AckLog,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let producer: BaseProducer<AckLog> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "3000")
            .set("reconnect.backoff.max.ms", "100")
            .create_with_context(log)
            .unwrap();
        let first = cycle * SEQUENCES_PER_CYCLE;
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) && sent < RECORDS_PER_CYCLE_MAX {
            let sequence = first + sent;
            let value = value_for(sequence);
            let partition = (sequence % PARTITION_COUNT as u64) as i32;
            let record: BaseRecord<'_, (), [u8], Box<u64>> =
                BaseRecord::with_opaque_to(TOPIC, Box::new(sequence))
                    .partition(partition)
                    .payload(&value[..]);
            match producer.send(record) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                Err((error, _)) => panic!("send failed: {error}"),
            }
            if sent.is_multiple_of(64) {
                // Paces the stream so the kill lands mid-stream, and serves callbacks.
                producer.poll(Duration::from_millis(1));
            }
        }
        // Give callbacks for records already acknowledged a moment to arrive.
        producer.poll(Duration::from_millis(200));
        sent
        // Dropping the producer purges whatever the dead broker never answered.
    })
}

/// Reads every partition from the start to its high watermark and checks each record.
fn read_and_verify(bootstrap: &str, acked: &[Acked]) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "spate-interop-durability")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut high_watermarks = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITION_COUNT {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(20))
            .unwrap();
        high_watermarks.push(high);
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut stored: HashMap<(i32, i64), u64> = HashMap::new();
    let mut next_offset = vec![0i64; PARTITION_COUNT as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_offset
        .iter()
        .zip(&high_watermarks)
        .any(|(next, high)| next < high)
    {
        assert!(
            Instant::now() < deadline,
            "read stalled at {next_offset:?} of {high_watermarks:?}"
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.unwrap();
        let partition = message.partition();
        let offset = message.offset();
        assert_eq!(
            offset, next_offset[partition as usize],
            "partition {partition}: hole or repeat in the recovered log"
        );
        next_offset[partition as usize] += 1;
        let value = message.payload().unwrap_or_default();
        assert!(
            value.len() >= 8,
            "partition {partition} offset {offset}: short record"
        );
        let sequence = u64::from_be_bytes(value[..8].try_into().unwrap());
        assert_eq!(
            value,
            &value_for(sequence)[..],
            "partition {partition} offset {offset}: corrupted record"
        );
        stored.insert((partition, offset), sequence);
    }
    for ack in acked {
        let found = stored.get(&(ack.partition, ack.offset));
        assert_eq!(
            found,
            Some(&ack.sequence),
            "acknowledged record {ack:?} lost or replaced after kill -9"
        );
    }
    stored.len()
}

#[test]
fn every_acknowledged_record_survives_ten_kill9_restarts() {
    let mut broker = Broker::start_with(BrokerOptions {
        num_partitions: Some(PARTITION_COUNT as u32),
        // Two shards on any machine, so some partitions live on another shard than the
        // connection and every request for them is forwarded.
        cores: Some(2),
        ..BrokerOptions::default()
    })
    .unwrap();
    let log = AckLog::default();
    for cycle in 0..CRASH_CYCLES {
        let started = Instant::now();
        let acked_before = log.acked.lock().unwrap().len();
        let stop = Arc::new(AtomicBool::new(false));
        let producer = spawn_producer(broker.bootstrap(), cycle, log.clone(), Arc::clone(&stop));
        while log.acked.lock().unwrap().len() - acked_before < ACKS_BEFORE_KILL
            && started.elapsed() < PRODUCE_BEFORE_KILL_MAX
            && !producer.is_finished()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        broker.kill9().unwrap();
        stop.store(true, Ordering::Relaxed);
        let sent = producer.join().unwrap();
        let acked: Vec<Acked> = log.acked.lock().unwrap().clone();
        let acked_this_cycle = acked.len() - acked_before;
        assert!(
            acked_this_cycle > 0,
            "cycle {cycle}: no record acknowledged in {PRODUCE_BEFORE_KILL_MAX:?}\n{}",
            broker.log_tail(4096)
        );

        broker.restart().unwrap();
        let stored = read_and_verify(&broker.bootstrap(), &acked);
        eprintln!(
            "cycle {cycle}: sent {sent}, acked {acked_this_cycle}, {stored} records stored, {} acked in total, {:?}",
            acked.len(),
            started.elapsed()
        );
    }
}
