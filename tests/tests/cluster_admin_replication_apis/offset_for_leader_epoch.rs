//! Part of `cluster_admin_replication_apis.rs`: OffsetForLeaderEpoch after a `kill -9` of the
//! leader, asked by hand and by librdkafka's consumer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use spate_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::*;

const TOPIC: &str = "epochs";
/// Records produced under the first leader, then as many under its successor.
const RECORDS_PER_LEADER: i64 = 40;
/// How long librdkafka has to read the records of one leader (it has to find the new leader
/// and validate its position with it first after the kill).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn new_leader_answers_where_the_old_epoch_ended_and_librdkafka_reads_across_the_change() {
    let started = Instant::now();
    let mut cluster = Cluster::start(spate_tests::ClusterOptions::default()).unwrap();
    cluster.create_topic(1, TOPIC, 1, 3).unwrap();
    let first = agreed_partition(&cluster, TOPIC, 0, "the topic fully in sync", |p| {
        p.leader >= 0 && p.isr.len() == 3
    });
    let old_epoch = first.leader_epoch;
    let offsets = produce(&cluster.bootstrap(), 0..RECORDS_PER_LEADER);
    assert_eq!(offsets, (0..RECORDS_PER_LEADER).collect::<Vec<_>>());

    // The consumer reads everything the first leader wrote, so its position carries the
    // first leader epoch.
    let consumer = epoch_aware_consumer(&cluster.bootstrap());
    let mut read = read_records(&consumer, RECORDS_PER_LEADER, &cluster);

    let old_leader = first.leader;
    cluster.kill9(old_leader).unwrap();
    let survivor = others(&first.replicas, old_leader)[0];
    let moved = cluster
        .poll(CONVERGE_TIMEOUT, |c| {
            let metadata = c.metadata(survivor).ok()?;
            let p = metadata.topic(TOPIC)?.partition(0)?.clone();
            (p.leader >= 0 && p.leader != old_leader && p.leader_epoch > old_epoch).then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "no new leader for {TOPIC}-0 after the kill of node {old_leader}\n{}",
                cluster.logs()
            )
        });
    let (new_leader, new_epoch) = (moved.leader, moved.leader_epoch);
    eprintln!(
        "[{} ms] node {old_leader} (epoch {old_epoch}) killed; node {new_leader} leads in epoch \
         {new_epoch}",
        started.elapsed().as_millis()
    );
    let end = 2 * RECORDS_PER_LEADER;
    let offsets = produce(&cluster.bootstrap(), RECORDS_PER_LEADER..end);
    assert_eq!(
        offsets,
        (RECORDS_PER_LEADER..end).collect::<Vec<_>>(),
        "the new leader's first record is where the old epoch ended"
    );
    read.extend(read_records(&consumer, RECORDS_PER_LEADER, &cluster));
    eprintln!(
        "[{} ms] librdkafka read across the change",
        started.elapsed().as_millis()
    );

    // librdkafka read every record once, in order, across the leader change…
    let expected: Vec<(i64, Vec<u8>)> = (0..end).map(|i| (i, value_of(i))).collect();
    assert_eq!(
        read, expected,
        "records read by librdkafka across the leader change"
    );
    // …after validating its position with the new leader, successfully.
    let lines = consumer.context().lines.lock().unwrap().clone();
    eprintln!("librdkafka's validation: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("validation succeeded")),
        "librdkafka did not validate its position with OffsetForLeaderEpoch after the leader \
         change; its VALIDATE/OFFSETVALID log lines: {lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.to_lowercase().contains("truncation")),
        "librdkafka saw a log truncation: {lines:#?}"
    );

    // By hand: the old epoch ends where the new one began, at every version.
    let leader_addr = cluster.node(new_leader).kafka_addr();
    for version in 1..=4 {
        assert_eq!(
            offset_for_epoch(leader_addr, version, TOPIC, new_epoch, old_epoch),
            (code::NONE, old_epoch, RECORDS_PER_LEADER),
            "v{version}: end of epoch {old_epoch} on node {new_leader}"
        );
    }
    let (code_v0, _, end_v0) = offset_for_epoch(leader_addr, 0, TOPIC, -1, old_epoch);
    assert_eq!((code_v0, end_v0), (code::NONE, RECORDS_PER_LEADER), "v0");
    // The latest epoch ends at the log end; no check of the client's epoch with -1.
    assert_eq!(
        offset_for_epoch(leader_addr, 4, TOPIC, -1, new_epoch),
        (code::NONE, new_epoch, end)
    );
    // An epoch past every one the leader has: Kafka's UNDEFINED.
    assert_eq!(
        offset_for_epoch(leader_addr, 4, TOPIC, new_epoch, new_epoch + 5),
        (code::NONE, -1, -1)
    );
    // The leader checks the client's epoch as Fetch does.
    assert_eq!(
        offset_for_epoch(leader_addr, 4, TOPIC, old_epoch, old_epoch).0,
        code::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        offset_for_epoch(leader_addr, 4, TOPIC, new_epoch + 1, old_epoch).0,
        code::UNKNOWN_LEADER_EPOCH
    );
    // Only the leader answers; an unknown partition is said to be one.
    let follower = others(&moved.replicas, new_leader)
        .into_iter()
        .find(|n| *n != old_leader)
        .unwrap();
    let follower_addr = cluster.node(follower).kafka_addr();
    assert_eq!(
        offset_for_epoch(follower_addr, 4, TOPIC, new_epoch, old_epoch).0,
        code::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        offset_for_epoch(leader_addr, 4, "no-such-topic", -1, 0).0,
        code::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_no_panics(&cluster);
}

/// OffsetForLeaderEpoch for `topic`-0: (error code, leader epoch, end offset).
fn offset_for_epoch(
    addr: SocketAddr,
    version: i16,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest {
        // A consumer's: Kafka's followers send their own id.
        replica_id: -1,
        topics: vec![OffsetForLeaderTopic {
            topic: topic.to_owned(),
            partitions: vec![OffsetForLeaderPartition {
                partition: 0,
                current_leader_epoch,
                leader_epoch,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: OffsetForLeaderEpochResponse =
        call(addr, ApiKey::OffsetForLeaderEpoch, version, &request).unwrap();
    let answer = &response.topics[0].partitions[0];
    assert_eq!(
        (response.topics[0].topic.as_str(), answer.partition),
        (topic, 0)
    );
    (answer.error_code, answer.leader_epoch, answer.end_offset)
}

fn value_of(index: i64) -> Vec<u8> {
    format!("epoch-record-{index:05}").into_bytes()
}

/// Delivery reports of [`produce`], by record index.
#[derive(Default)]
struct Acks {
    offsets: Mutex<Vec<(i64, Result<i64, String>)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<i64>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<i64>) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.to_string()),
        };
        self.offsets.lock().unwrap().push((*index, outcome));
    }
}

/// Produces records `indexes` to partition 0 with an idempotent `acks=all` producer (so a
/// retry across the leader change cannot duplicate) and returns their offsets, in order.
fn produce(bootstrap: &str, indexes: std::ops::Range<i64>) -> Vec<i64> {
    let producer: BaseProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create_with_context(Acks::default())
        .unwrap();
    for index in indexes.clone() {
        let value = value_of(index);
        producer
            .send(
                BaseRecord::<(), _, _>::with_opaque_to(TOPIC, Box::new(index))
                    .partition(0)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let mut acks = producer.context().offsets.lock().unwrap().clone();
    acks.sort_by_key(|(index, _)| *index);
    assert_eq!(
        acks.len(),
        indexes.clone().count(),
        "delivery reports: {acks:?}"
    );
    acks.into_iter()
        .map(|(index, outcome)| {
            outcome.unwrap_or_else(|e| panic!("record {index} was not delivered: {e}"))
        })
        .collect()
}

/// librdkafka's position-validation log lines (facilities VALIDATE and OFFSETVALID, with
/// `debug=fetch`), and any about log truncation.
#[derive(Default)]
struct ValidationLog {
    lines: Mutex<Vec<String>>,
}

impl ClientContext for ValidationLog {
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        let wanted = facility.contains("VALID") || message.to_lowercase().contains("truncation");
        if wanted {
            self.lines
                .lock()
                .unwrap()
                .push(format!("{facility}: {message}"));
        }
    }
}

impl ConsumerContext for ValidationLog {}

/// An assign() consumer of partition 0 from the beginning, logging its validations.
fn epoch_aware_consumer(bootstrap: &str) -> BaseConsumer<ValidationLog> {
    let consumer: BaseConsumer<ValidationLog> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "epoch-validation")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("debug", "fetch")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(ValidationLog::default())
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Polls `consumer` until it has returned `count` more records; (offset, value) each.
fn read_records(
    consumer: &BaseConsumer<ValidationLog>,
    count: i64,
    cluster: &Cluster,
) -> Vec<(i64, Vec<u8>)> {
    let mut read = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while i64::try_from(read.len()).unwrap() < count {
        assert!(
            Instant::now() < deadline,
            "librdkafka read {} of {count} records within {READ_TIMEOUT:?}: {read:?}\n{}",
            read.len(),
            cluster.logs()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Ok(message)) => read.push((
                message.offset(),
                message.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(e)) => eprintln!("consumer: {e} (it retries)"),
        }
    }
    read
}
