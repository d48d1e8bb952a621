//! Consumer groups as librdkafka (through the `rdkafka` crate) runs them against Spate's group
//! coordinator: a cooperative-sticky rebalance revokes only the partitions that change owner and
//! a clean leave hands them back at once; the eager `range` and `roundrobin` assignors split a
//! topic between two members; and a consumer that only `assign()`s never creates its group.
//! Group state is cross-checked with hand-encoded ListGroups, DescribeGroups and OffsetFetch,
//! so a client quirk cannot hide a broker bug.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_tests::group_requests::FetchedOffset;
use spate_tests::kafka_requests::{create_topic_v4, offset_fetch_v3};
use spate_tests::wire::{Decoder, Encoder, KafkaConnection, error_code};
use spate_tests::{Broker, BrokerOptions};

/// Long enough that a member which did not leave cleanly is still "alive" when the test checks
/// how fast its partitions came back, yet inside the broker's default 6 s..30 min window.
const SESSION_TIMEOUT_MS: u64 = 20_000;

/// Frequent heartbeats, so members learn of a rebalance within half a second.
const HEARTBEAT_INTERVAL_MS: u64 = 500;

/// A bound on any one "wait until the group settles" step on a loaded 2-core machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much broker log a failure message carries.
const LOG_TAIL_BYTES: usize = 6_000;

/// Kafka's code for DescribeGroups of a group the coordinator does not know (newer brokers).
const GROUP_ID_NOT_FOUND: i16 = 69;

const API_DESCRIBE_GROUPS: i16 = 15;
const API_LIST_GROUPS: i16 = 16;

fn start_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..BrokerOptions::default()
    })
    .unwrap()
}

fn create_topic(broker: &Broker, topic: &str, partition_count: i32) {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let code = create_topic_v4(&mut connection, topic, partition_count, &[]).unwrap();
    assert_eq!(code, error_code::NONE, "CreateTopics {topic}");
}

fn all_partitions(count: i32) -> BTreeSet<i32> {
    (0..count).collect()
}

fn partitions_of(list: &TopicPartitionList) -> BTreeSet<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

/// Polls `condition` every 50 ms until it holds; on timeout fails with `describe()` and the
/// broker's log, so a hung rebalance explains itself.
fn wait_until(
    broker: &Broker,
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}\n--- broker log ---\n{}",
            describe(),
            broker.log_tail(LOG_TAIL_BYTES)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Members: each consumer runs on its own thread and records what librdkafka tells it.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Assign,
    Revoke,
    Error(String),
}

/// One rebalance callback as the member saw it.
#[derive(Debug, Clone)]
struct RebalanceEvent {
    at: Instant,
    change: Change,
    partitions: BTreeSet<i32>,
    assignment_before: BTreeSet<i32>,
    assignment_after: BTreeSet<i32>,
    cooperative: bool,
}

#[derive(Default)]
struct MemberLog {
    events: Mutex<Vec<RebalanceEvent>>,
    before: Mutex<BTreeSet<i32>>,
    /// (partition, offset) of every record received, in order of arrival.
    consumed: Mutex<Vec<(i32, i64, Instant)>>,
    poll_errors: Mutex<Vec<String>>,
}

/// The custom context: snapshots the assignment around every rebalance callback.
struct Recorder {
    log: Arc<MemberLog>,
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let before = consumer
            .assignment()
            .map(|l| partitions_of(&l))
            .unwrap_or_default();
        *self.log.before.lock().unwrap() = before;
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (change, partitions) = match rebalance {
            Rebalance::Assign(list) => (Change::Assign, partitions_of(list)),
            Rebalance::Revoke(list) => (Change::Revoke, partitions_of(list)),
            Rebalance::Error(error) => (Change::Error(error.to_string()), BTreeSet::new()),
        };
        let event = RebalanceEvent {
            at: Instant::now(),
            change,
            partitions,
            assignment_before: self.log.before.lock().unwrap().clone(),
            assignment_after: consumer
                .assignment()
                .map(|l| partitions_of(&l))
                .unwrap_or_default(),
            cooperative: matches!(
                consumer.rebalance_protocol(),
                RebalanceProtocol::Cooperative
            ),
        };
        self.log.events.lock().unwrap().push(event);
    }
}

fn member_config(bootstrap: &str, group: &str, client_id: &str, strategy: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("partition.assignment.strategy", strategy)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS.to_string())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("fetch.wait.max.ms", "100");
    config
}

impl MemberLog {
    fn assignment(&self) -> BTreeSet<i32> {
        self.events
            .lock()
            .unwrap()
            .last()
            .map(|e| e.assignment_after.clone())
            .unwrap_or_default()
    }

    fn events(&self) -> Vec<RebalanceEvent> {
        self.events.lock().unwrap().clone()
    }

    fn consumed(&self) -> Vec<(i32, i64, Instant)> {
        self.consumed.lock().unwrap().clone()
    }

    fn summary(&self) -> String {
        let consumed = self.consumed.lock().unwrap();
        format!(
            "events {:#?}\nconsumed {} records\npoll errors {:?}",
            self.events.lock().unwrap(),
            consumed.len(),
            self.poll_errors.lock().unwrap()
        )
    }
}

/// A subscribed consumer polling on its own thread until told to stop; it then closes cleanly
/// (dropping a `BaseConsumer` with a group commits, revokes and sends LeaveGroup).
struct Member {
    log: Arc<MemberLog>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Member {
    fn spawn(config: ClientConfig, topic: &str) -> Member {
        let log = Arc::new(MemberLog::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop, topic) = (log.clone(), stop.clone(), topic.to_string());
        let thread = thread::spawn(move || {
            let context = Recorder {
                log: thread_log.clone(),
            };
            let consumer: BaseConsumer<Recorder> = config.create_with_context(context).unwrap();
            consumer.subscribe(&[&topic]).unwrap();
            while !thread_stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => thread_log.consumed.lock().unwrap().push((
                        message.partition(),
                        message.offset(),
                        Instant::now(),
                    )),
                    Some(Err(error)) => thread_log
                        .poll_errors
                        .lock()
                        .unwrap()
                        .push(error.to_string()),
                    None => {}
                }
            }
            drop(consumer);
        });
        Member { log, stop, thread }
    }

    /// Closes the consumer and waits for the close (LeaveGroup) to finish.
    fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// A producer that keeps writing during the rebalances, so the test can prove nothing is skipped.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct AckLog {
    acked: Mutex<BTreeSet<(i32, i64)>>,
    failures: Mutex<Vec<String>>,
}

impl ClientContext for AckLog {}

impl ProducerContext for AckLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(message) => {
                let key = (message.partition(), message.offset());
                self.acked.lock().unwrap().insert(key);
            }
            Err((error, _)) => self.failures.lock().unwrap().push(error.to_string()),
        }
    }
}

/// Produces one record every 5 ms, round-robin over the partitions, until `stop`; returns
/// the (partition, offset) of every acknowledged record.
fn spawn_producer(
    bootstrap: &str,
    topic: &str,
    partition_count: i32,
    stop: Arc<AtomicBool>,
) -> JoinHandle<BTreeSet<(i32, i64)>> {
    let producer: BaseProducer<AckLog> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create_with_context(AckLog::default())
        .unwrap();
    let topic = topic.to_string();
    thread::spawn(move || {
        let mut sequence = 0i32;
        while !stop.load(Ordering::Relaxed) {
            let value = format!("record-{sequence}");
            let record: BaseRecord<'_, (), str> = BaseRecord::to(&topic)
                .partition(sequence % partition_count)
                .payload(&value);
            producer.send(record).map_err(|(e, _)| e).unwrap();
            sequence += 1;
            producer.poll(Duration::from_millis(5));
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        let context = producer.context();
        let failures = context.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "produce failures: {failures:?}");
        let acked = context.acked.lock().unwrap().clone();
        assert_eq!(acked.len(), sequence as usize, "every send acknowledged");
        acked
    })
}

// ---------------------------------------------------------------------------------------------
// Hand-encoded group requests (non-flexible versions), independent of any client library.
// ---------------------------------------------------------------------------------------------

/// ListGroups v0: (group id, protocol type) of every group.
fn list_groups(broker: &Broker) -> Vec<(String, String)> {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let body = connection.round_trip(API_LIST_GROUPS, 0, &[]).unwrap();
    let mut decoder = Decoder::new(&body);
    assert_eq!(decoder.i16().unwrap(), error_code::NONE, "ListGroups error");
    let count = decoder.array_len(4).unwrap();
    (0..count)
        .map(|_| (decoder.string().unwrap(), decoder.string().unwrap()))
        .collect()
}

#[derive(Debug)]
struct DescribedGroup {
    error_code: i16,
    state: String,
    protocol_type: String,
    protocol: String,
    /// (client id, partitions of the test topic in its assignment).
    members: Vec<(String, BTreeSet<i32>)>,
}

/// DescribeGroups v0 of one group; member assignments decoded as ConsumerProtocolAssignment.
fn describe_group(broker: &Broker, group: &str) -> DescribedGroup {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let mut request = Encoder::default();
    request.array_len(1).string(group);
    let body = connection
        .round_trip(API_DESCRIBE_GROUPS, 0, &request.bytes)
        .unwrap();
    let mut decoder = Decoder::new(&body);
    assert_eq!(decoder.array_len(12).unwrap(), 1, "one group described");
    let error_code = decoder.i16().unwrap();
    assert_eq!(decoder.string().unwrap(), group);
    let state = decoder.string().unwrap();
    let protocol_type = decoder.string().unwrap();
    let protocol = decoder.string().unwrap();
    let member_count = decoder.array_len(14).unwrap();
    let mut members = Vec::with_capacity(member_count);
    for _ in 0..member_count {
        let _member_id = decoder.string().unwrap();
        let client_id = decoder.string().unwrap();
        let _client_host = decoder.string().unwrap();
        let metadata_len = usize::try_from(decoder.i32().unwrap()).unwrap();
        decoder.take(metadata_len).unwrap();
        let assignment_len = usize::try_from(decoder.i32().unwrap()).unwrap();
        let assignment = decoder.take(assignment_len).unwrap();
        members.push((client_id, assigned_partitions(assignment)));
    }
    DescribedGroup {
        error_code,
        state,
        protocol_type,
        protocol,
        members,
    }
}

/// The partitions in a ConsumerProtocolAssignment (any version: the prefix is the same).
fn assigned_partitions(bytes: &[u8]) -> BTreeSet<i32> {
    let mut partitions = BTreeSet::new();
    if bytes.is_empty() {
        return partitions;
    }
    let mut decoder = Decoder::new(bytes);
    let _version = decoder.i16().unwrap();
    for _ in 0..decoder.array_len(6).unwrap() {
        let _topic = decoder.string().unwrap();
        for _ in 0..decoder.array_len(4).unwrap() {
            partitions.insert(decoder.i32().unwrap());
        }
    }
    partitions
}

/// OffsetFetch v3 (`topics = None` asks for every topic): top-level error and
/// (topic, partition, offset, metadata, error) per partition.
fn offset_fetch(
    broker: &Broker,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> (i16, Vec<FetchedOffset>) {
    offset_fetch_v3(broker.kafka_addr(), group, topic).unwrap()
}

#[path = "consumer_groups_librdkafka/cooperative_sticky.rs"]
mod cooperative_sticky;
#[path = "consumer_groups_librdkafka/eager_and_assign.rs"]
mod eager_and_assign;
