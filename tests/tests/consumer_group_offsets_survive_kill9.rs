//! Committed consumer-group offsets are as durable as records: once OffsetCommit is answered,
//! `kill -9` and a restart do not lose the offset or its metadata. A librdkafka consumer commits,
//! the broker is killed, and after the restart OffsetFetch (hand-encoded and through the client)
//! returns the same offsets and metadata, a new member of the group resumes exactly there, and
//! committing more works. A second test kills the broker while a consumer commits every few
//! records: every commit the client saw acknowledged is still there afterwards.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_tests::kafka_requests::{create_topic_v4, offset_fetch_v3};
use spate_tests::wire::{KafkaConnection, error_code};
use spate_tests::{Broker, BrokerOptions};

/// A bound on any one wait (assignment, consumption, commits) on a loaded 2-core machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How much broker log a failure message carries.
const LOG_TAIL_BYTES: usize = 6_000;

/// Kafka's retriable "still reading __consumer_offsets" answer, expected right after a restart.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// One committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Committed {
    offset: i64,
    metadata: Option<String>,
    error_code: i16,
}

fn start_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..BrokerOptions::default()
    })
    .unwrap()
}

fn create_topic_with_records(broker: &Broker, topic: &str, partitions: i32, per_partition: i32) {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let code = create_topic_v4(&mut connection, topic, partitions, &[]).unwrap();
    assert_eq!(code, error_code::NONE, "CreateTopics {topic}");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for sequence in 0..partitions * per_partition {
        let value = format!("record-{sequence}");
        let record: BaseRecord<'_, (), str> = BaseRecord::to(topic)
            .partition(sequence % partitions)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(STEP_TIMEOUT).unwrap();
}

/// OffsetFetch v3 of `partitions` of `topic` in `group`, hand-encoded so that the check does not
/// depend on the client that committed. Retries while the coordinator is still loading, as a
/// client would; returns the top-level error and one entry per partition.
fn offset_fetch(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> (i16, BTreeMap<i32, Committed>) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let (code, committed) = offset_fetch_once(broker, group, topic, partitions);
        let loading = code == COORDINATOR_LOAD_IN_PROGRESS
            || committed
                .values()
                .any(|c| c.error_code == COORDINATOR_LOAD_IN_PROGRESS);
        if !loading {
            return (code, committed);
        }
        assert!(
            Instant::now() < deadline,
            "coordinator still loading after {STEP_TIMEOUT:?}\n{}",
            broker.log_tail(LOG_TAIL_BYTES)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn offset_fetch_once(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> (i16, BTreeMap<i32, Committed>) {
    let (code, fetched) =
        offset_fetch_v3(broker.kafka_addr(), group, Some((topic, partitions))).unwrap();
    let committed = fetched
        .into_iter()
        .map(|entry| {
            assert_eq!(entry.topic, topic);
            let committed = Committed {
                offset: entry.offset,
                metadata: entry.metadata,
                error_code: entry.error_code,
            };
            (entry.partition, committed)
        })
        .collect();
    (code, committed)
}

fn group_consumer_config(broker: &Broker, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    config
}

fn group_consumer(broker: &Broker, group: &str) -> BaseConsumer {
    group_consumer_config(broker, group).create().unwrap()
}

/// Polls `consumer` until the group has assigned it every partition of the topic, handing any
/// record it receives meanwhile to `on_record`.
fn await_full_assignment(
    broker: &Broker,
    consumer: &BaseConsumer,
    partition_count: usize,
    mut on_record: impl FnMut(i32, i64),
) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while consumer.assignment().unwrap().count() < partition_count {
        assert!(
            Instant::now() < deadline,
            "never assigned all {partition_count} partitions\n{}",
            broker.log_tail(LOG_TAIL_BYTES)
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            on_record(message.partition(), message.offset());
        }
    }
}

/// What the commits of part one store: (partition, offset, metadata).
const FIRST_COMMITS: [(i32, i64, &str); 3] =
    [(0, 3, "first-p0 {\"k\":1}"), (1, 5, "first-p1"), (2, 7, "")];

fn commit_list(topic: &str, commits: &[(i32, i64, &str)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (partition, offset, metadata) in commits {
        let mut element = list.add_partition(topic, *partition);
        element.set_offset(Offset::Offset(*offset)).unwrap();
        element.set_metadata(metadata);
    }
    list
}

/// Checks both OffsetFetch and the client's `committed_offsets` report exactly `expected`.
fn assert_committed(broker: &Broker, group: &str, topic: &str, expected: &[(i32, i64, &str)]) {
    let partitions: Vec<i32> = expected.iter().map(|c| c.0).collect();
    let (code, fetched) = offset_fetch(broker, group, topic, &partitions);
    assert_eq!(code, error_code::NONE, "OffsetFetch error");
    for (partition, offset, metadata) in expected {
        let want = Committed {
            offset: *offset,
            metadata: Some(metadata.to_string()),
            error_code: error_code::NONE,
        };
        assert_eq!(
            fetched.get(partition),
            Some(&want),
            "OffsetFetch partition {partition}: {fetched:?}\n{}",
            broker.log_tail(LOG_TAIL_BYTES)
        );
    }
    let reader = group_consumer(broker, group);
    let mut query = TopicPartitionList::new();
    for partition in &partitions {
        query.add_partition(topic, *partition);
    }
    let committed = reader.committed_offsets(query, STEP_TIMEOUT).unwrap();
    for (partition, offset, metadata) in expected {
        let element = committed.find_partition(topic, *partition).unwrap();
        assert_eq!(
            element.offset(),
            Offset::Offset(*offset),
            "rdkafka p{partition}"
        );
        assert_eq!(
            element.metadata(),
            *metadata,
            "rdkafka metadata p{partition}"
        );
    }
}

#[test]
fn committed_offsets_and_metadata_survive_kill9_and_a_new_member_resumes_there() {
    const TOPIC: &str = "durable";
    const GROUP: &str = "durable-group";
    let mut broker = start_broker();
    create_topic_with_records(&broker, TOPIC, 3, 10);

    let first = group_consumer(&broker, GROUP);
    first.subscribe(&[TOPIC]).unwrap();
    await_full_assignment(&broker, &first, 3, |_, _| {});
    first
        .commit(&commit_list(TOPIC, &FIRST_COMMITS), CommitMode::Sync)
        .unwrap();
    drop(first);
    assert_committed(&broker, GROUP, TOPIC, &FIRST_COMMITS);

    broker.kill9().unwrap();
    broker.restart_on_same_ports().unwrap();
    assert_committed(&broker, GROUP, TOPIC, &FIRST_COMMITS);

    // A new member starts each partition at the committed offset, not at the beginning.
    let second = group_consumer(&broker, GROUP);
    second.subscribe(&[TOPIC]).unwrap();
    let mut first_read = BTreeMap::new();
    await_full_assignment(&broker, &second, 3, |partition, offset| {
        first_read.entry(partition).or_insert(offset);
    });
    let deadline = Instant::now() + STEP_TIMEOUT;
    while first_read.len() < 3 {
        assert!(Instant::now() < deadline, "read only {first_read:?}");
        if let Some(result) = second.poll(Duration::from_millis(100)) {
            let message = result.unwrap();
            first_read
                .entry(message.partition())
                .or_insert(message.offset());
        }
    }
    let resumed_at: BTreeMap<i32, i64> = FIRST_COMMITS.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(first_read, resumed_at, "first offset read per partition");

    // Committing more works after the restart, and is itself durable.
    let more = [(0, 9, "more-p0"), (1, 10, "more-p1"), (2, 8, "more-p2")];
    second
        .commit(&commit_list(TOPIC, &more), CommitMode::Sync)
        .unwrap();
    drop(second);
    assert_committed(&broker, GROUP, TOPIC, &more);
    broker.kill9().unwrap();
    broker.restart_on_same_ports().unwrap();
    assert_committed(&broker, GROUP, TOPIC, &more);
}

/// What the committing consumer saw: every offset it asked to commit, and the highest offset
/// per partition of a commit the broker acknowledged.
#[derive(Default)]
struct CommitLog {
    attempted: Mutex<BTreeMap<i32, BTreeSet<i64>>>,
    acked: Mutex<BTreeMap<i32, i64>>,
    acked_count: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

#[test]
fn commits_acknowledged_before_a_kill9_are_never_lost() {
    const TOPIC: &str = "busy";
    const GROUP: &str = "busy-group";
    const PARTITIONS: i32 = 3;
    const PER_PARTITION: i32 = 2_000;
    /// The consumer commits its position after every this many records.
    const COMMIT_EVERY_RECORDS: usize = 5;
    /// Enough acknowledged commits that the kill lands mid-stream, not before the first one.
    const ACKED_BEFORE_KILL: usize = 20;
    let mut broker = start_broker();
    create_topic_with_records(&broker, TOPIC, PARTITIONS, PER_PARTITION);

    let log = Arc::new(CommitLog::default());
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicUsize::new(0));
    let (stopped_sender, stopped) = mpsc::channel();
    // Small fetches, so the consumer moves between partitions batch by batch and commits
    // positions on all of them before the kill.
    let consumer: BaseConsumer = group_consumer_config(&broker, GROUP)
        .set("max.partition.fetch.bytes", "512")
        .create()
        .unwrap();
    let (thread_log, thread_stop, thread_consumed) = (log.clone(), stop.clone(), consumed.clone());
    // Synchronous commits: `Ok` is the broker's acknowledgement. (librdkafka reports the outcome
    // of a manual asynchronous commit only to a commit queue, which the crate does not expose.)
    // Once the broker is dead a commit may block until its coordinator returns, which it never
    // does on these ports, so nobody joins this thread.
    thread::spawn(move || {
        consumer.subscribe(&[TOPIC]).unwrap();
        let mut positions = BTreeMap::new();
        while !thread_stop.load(Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            positions.insert(message.partition(), message.offset() + 1);
            let count = thread_consumed.fetch_add(1, Ordering::Relaxed) + 1;
            if count % COMMIT_EVERY_RECORDS == 0 {
                let mut list = TopicPartitionList::new();
                let mut attempted = thread_log.attempted.lock().unwrap();
                for (partition, offset) in &positions {
                    list.add_partition_offset(TOPIC, *partition, Offset::Offset(*offset))
                        .unwrap();
                    attempted.entry(*partition).or_default().insert(*offset);
                }
                drop(attempted);
                match consumer.commit(&list, CommitMode::Sync) {
                    Ok(()) => {
                        let mut acked = thread_log.acked.lock().unwrap();
                        for (partition, offset) in &positions {
                            let entry = acked.entry(*partition).or_insert(*offset);
                            *entry = (*entry).max(*offset);
                        }
                        thread_log.acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => thread_log.failures.lock().unwrap().push(error.to_string()),
                }
            }
        }
        let _ = stopped_sender.send(());
        drop(consumer);
    });

    let deadline = Instant::now() + STEP_TIMEOUT;
    while log.acked_count.load(Ordering::Relaxed) < ACKED_BEFORE_KILL
        || log.acked.lock().unwrap().len() < PARTITIONS as usize
    {
        assert!(
            Instant::now() < deadline,
            "only {} commits acknowledged after {} records; failures {:?}\n{}",
            log.acked_count.load(Ordering::Relaxed),
            consumed.load(Ordering::Relaxed),
            log.failures.lock().unwrap(),
            broker.log_tail(LOG_TAIL_BYTES)
        );
        thread::sleep(Duration::from_millis(5));
    }
    broker.kill9().unwrap();
    let consumed_at_kill = consumed.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // Let a commit whose answer arrived before the kill be recorded; a commit still waiting for
    // the dead broker keeps the thread blocked, and was never acknowledged.
    let _ = stopped.recv_timeout(Duration::from_secs(2));
    let acked = log.acked.lock().unwrap().clone();
    let attempted = log.attempted.lock().unwrap().clone();
    let acked_count = log.acked_count.load(Ordering::Relaxed);
    eprintln!(
        "killed after {consumed_at_kill} records, {acked_count} acknowledged commits: {acked:?}"
    );
    assert!(
        consumed_at_kill < (PARTITIONS * PER_PARTITION) as usize,
        "the consumer had finished before the kill; the test needs more records"
    );

    // New ports: the old consumer cannot reach the restarted broker and commit anything more.
    broker.restart().unwrap();
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let (code, committed) = offset_fetch(&broker, GROUP, TOPIC, &all);
    assert_eq!(code, error_code::NONE);
    for (partition, acked_offset) in &acked {
        let entry = committed.get(partition).unwrap();
        assert_eq!(entry.error_code, error_code::NONE, "partition {partition}");
        assert!(
            entry.offset >= *acked_offset,
            "partition {partition}: acknowledged commit of {acked_offset} lost, broker has {}\n{}",
            entry.offset,
            broker.log_tail(LOG_TAIL_BYTES)
        );
        assert!(
            attempted[partition].contains(&entry.offset),
            "partition {partition}: committed {} was never asked for",
            entry.offset
        );
    }
    assert_eq!(
        acked.len(),
        PARTITIONS as usize,
        "every partition had a commit acknowledged"
    );
}
