//! Part of `cluster_admin_replication_apis.rs`: moving a partition to another broker while a
//! producer keeps writing (KIP-455), and DescribeLogDirs on the nodes it left and reached.
//!
//! The new replica, node 4, is stopped when the move starts, so the move is certainly still
//! under way when the test looks at it (ListPartitionReassignments, `spate topic describe`)
//! and cancels it; started again, node 4 copies the log while the producer writes, joins the
//! ISR, and the move completes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use spate_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use spate_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use spate_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use spate_tests::cli::run_spate;
use spate_tests::replication::{
    BackgroundClient, partition_dir, replica_log, wait_for_identical_replicas,
};
use spate_tests::{ClusterOptions, NodeRole};

use super::*;

const TOPIC: &str = "moving";
const ORIGINAL: [NodeId; 3] = [1, 2, 3];
const TARGET: [NodeId; 3] = [1, 2, 4];
/// The broker the partition moves to (not a controller voter, so stopping it leaves the
/// quorum alone) and the one it leaves.
const JOINING: NodeId = 4;
const LEAVING: NodeId = 3;
/// Acknowledged records to wait for before each step, so every step happens under load.
const ACKED_PER_STEP: u64 = 300;
/// The producer's flush at the end, and the reads back.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn partition_moves_to_a_new_broker_under_acks_all_load_without_losing_a_record() {
    let test_started = Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 4,
        roles: HashMap::from([(JOINING, NodeRole::Broker)]),
        ..ClusterOptions::default()
    })
    .unwrap();
    create_on(&cluster, &ORIGINAL);
    agreed_partition(&cluster, TOPIC, 0, "the topic on nodes 1, 2, 3", |p| {
        p.replicas == ORIGINAL && p.isr.len() == 3
    });
    let original_bootstrap: Vec<String> = ORIGINAL
        .iter()
        .map(|id| cluster.node(*id).bootstrap())
        .collect();
    let bootstrap = original_bootstrap.join(",");
    let mut producer = BackgroundClient::spawn(
        "replication_producer.py",
        &[&bootstrap, TOPIC, "1", "idempotent"],
    )
    .unwrap();
    wait_for_acks(&cluster, &mut producer, ACKED_PER_STEP);

    // The move starts while node 4 is down: it is accepted (node 4 is registered) and stays
    // under way, with 4 being added and 3 being removed.
    cluster.kill9(JOINING).unwrap();
    reassign_with_cli(&cluster, &bootstrap, &["--replicas", "1,2,4"]);
    wait_for_listing(&cluster, &[(0, vec![1, 2, 4, 3], vec![4], vec![3])]);
    let listed = run_spate(
        &bootstrap,
        &["topic", "reassignments", "--output", "json"],
        None,
    )
    .unwrap();
    assert!(listed.status.success(), "{}", listed.describe());
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout_text()).unwrap();
    assert_eq!(
        listed[0]["adding_replicas"],
        serde_json::json!([4]),
        "{listed}"
    );
    let described = run_spate(&bootstrap, &["topic", "describe", TOPIC], None).unwrap();
    assert!(
        described.stdout_text().contains("+4 -3"),
        "{}",
        described.describe()
    );

    // Cancelled, it is gone; cancelled again, there is nothing to cancel.
    reassign_with_cli(&cluster, &bootstrap, &["--cancel"]);
    wait_for_listing(&cluster, &[]);
    agreed_partition(&cluster, TOPIC, 0, "the cancelled move reverted", |p| {
        p.replicas == ORIGINAL
    });
    let again = alter_raw(&cluster, None);
    let refused = &again.responses[0].partitions[0];
    assert_eq!(again.error_code, code::NONE);
    assert_eq!(
        refused.error_code,
        code::NO_REASSIGNMENT_IN_PROGRESS,
        "{again:?}"
    );
    assert!(
        refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("{TOPIC}-0"))),
        "{again:?}"
    );

    // The move for real: node 4 comes back, copies the log under load, joins the ISR, and
    // node 3 leaves.
    reassign_with_cli(&cluster, &bootstrap, &["--replicas", "1,2,4"]);
    let started = Instant::now();
    cluster.restart(JOINING).unwrap();
    let moved = agreed_partition(&cluster, TOPIC, 0, "the partition on nodes 1, 2, 4", |p| {
        p.replicas == TARGET && p.isr.len() == 3
    });
    wait_for_listing(&cluster, &[]);
    eprintln!(
        "moved to {:?} (ISR {:?}, leader {}) {} ms after node {JOINING} restarted",
        moved.replicas,
        moved.isr,
        moved.leader,
        started.elapsed().as_millis()
    );
    let acked_at_move = acked_count(&producer);
    wait_for_acks(&cluster, &mut producer, acked_at_move + ACKED_PER_STEP);
    std::fs::write(producer.dir().join("stop"), b"").unwrap();
    let finished = producer.wait(CLIENT_TIMEOUT).unwrap();
    assert!(finished.status.success(), "{}", finished.describe());
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(producer.dir().join("result.json")).unwrap())
            .unwrap();
    eprintln!(
        "[{} ms] producer stopped: {}",
        test_started.elapsed().as_millis(),
        finished.stdout_text().lines().last().unwrap_or_default()
    );
    assert!(result["fatal"].is_null(), "producer: {result}");
    // The leader (node 1) never changed, so not even a retry should have failed.
    assert_eq!(
        result["errors"].as_array().map(Vec::len),
        Some(0),
        "delivery errors while the partition moved: {}",
        result["errors"]
    );

    // Every replica holds the same bytes; the left one holds none any more.
    let log = wait_for_identical_replicas(&cluster, &TARGET, TOPIC, 0, CONVERGE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(!log.is_empty());
    let leaving_dir = partition_dir(cluster.node(LEAVING).data_dir(), TOPIC, 0);
    cluster
        .wait_until(
            CONVERGE_TIMEOUT,
            "the left node's copy of the partition deleted",
            |_| !leaving_dir.exists(),
        )
        .unwrap();

    // Every acknowledged record is there, at the offset it was acknowledged with.
    let read = read_all(&cluster.bootstrap(), &cluster);
    let acked = result["acked"].as_array().unwrap();
    assert!(acked.len() as u64 >= 2 * ACKED_PER_STEP, "{}", acked.len());
    let mut lost = Vec::new();
    for entry in acked {
        let (Some(offset), Some(seq)) = (entry[1].as_i64(), entry[2].as_u64()) else {
            // librdkafka acknowledges a retried batch implicitly, without an offset, when a
            // later one is acknowledged first: the leader failed an acks=all wait it should
            // have kept (the move bumps the leader epoch; node 1 leads throughout).
            panic!("record acknowledged without an offset: {entry}");
        };
        let expected = format!("v{seq:09}").into_bytes();
        if read.get(&offset) != Some(&expected) {
            lost.push((
                seq,
                offset,
                read.get(&offset)
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged records are not where they were acknowledged (seq, offset, found): {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );

    // DescribeLogDirs: node 4 reports the partition with the size of its log, node 3 does not.
    let (log_dir, partitions, total, usable) = describe_log_dirs(&cluster, JOINING, None);
    assert_eq!(
        Path::new(&log_dir),
        cluster.node(JOINING).data_dir().canonicalize().unwrap()
    );
    let size = partitions.get(&(TOPIC.to_owned(), 0)).copied();
    let on_disk = replica_log(&cluster, JOINING, TOPIC, 0).unwrap().len() as i64;
    assert_eq!(size, Some(on_disk), "{partitions:?}");
    assert!(on_disk > 0);
    assert!(
        total > 0 && usable > 0 && usable <= total,
        "{total} {usable}"
    );
    let (_, on_leaving, _, _) = describe_log_dirs(&cluster, LEAVING, None);
    assert!(
        !on_leaving.contains_key(&(TOPIC.to_owned(), 0)),
        "{on_leaving:?}"
    );
    let (_, asked, _, _) = describe_log_dirs(&cluster, 1, Some(&[0, 7]));
    assert_eq!(
        asked.keys().collect::<Vec<_>>(),
        vec![&(TOPIC.to_owned(), 0)],
        "partition 7 does not exist"
    );
    assert_no_panics(&cluster);
}

/// Creates `TOPIC` with one partition on `replicas`, through node 1.
fn create_on(cluster: &Cluster, replicas: &[NodeId]) {
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: TOPIC.to_owned(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: vec![CreatableReplicaAssignment {
                partition_index: 0,
                broker_ids: replicas.to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        timeout_ms: ADMIN_TIMEOUT_MS,
        ..Default::default()
    };
    let response: CreateTopicsResponse = call(
        cluster.node(1).kafka_addr(),
        ApiKey::CreateTopics,
        7,
        &request,
    )
    .unwrap();
    assert_eq!(response.topics[0].error_code, code::NONE, "{response:?}");
}

/// `spate topic reassign TOPIC --partition 0 <args>`, which must succeed.
fn reassign_with_cli(cluster: &Cluster, bootstrap: &str, args: &[&str]) {
    let mut all = vec!["topic", "reassign", TOPIC, "--partition", "0"];
    all.extend_from_slice(args);
    let output = run_spate(bootstrap, &all, None).unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );
}

/// One partition's ongoing reassignment: (partition, replicas, adding, removing).
type Ongoing = (i32, Vec<NodeId>, Vec<NodeId>, Vec<NodeId>);

/// ListPartitionReassignments (all topics) as node `id` answers it, or `None` if it cannot.
fn try_list_reassignments(cluster: &Cluster, id: NodeId) -> Option<Vec<Ongoing>> {
    let request = ListPartitionReassignmentsRequest {
        timeout_ms: ADMIN_TIMEOUT_MS,
        topics: None,
        ..Default::default()
    };
    let response: ListPartitionReassignmentsResponse = call(
        cluster.node(id).kafka_addr(),
        ApiKey::ListPartitionReassignments,
        0,
        &request,
    )
    .ok()?;
    assert_eq!(response.error_code, code::NONE, "{response:?}");
    Some(
        response
            .topics
            .into_iter()
            .flat_map(|t| {
                assert_eq!(t.name, TOPIC);
                t.partitions.into_iter().map(|p| {
                    (
                        p.partition_index,
                        p.replicas,
                        p.adding_replicas,
                        p.removing_replicas,
                    )
                })
            })
            .collect(),
    )
}

/// Waits until every running node lists exactly `expected` (each answers from its own
/// metadata image, which may be a moment behind the node that took the change).
fn wait_for_listing(cluster: &Cluster, expected: &[Ongoing]) {
    let mut last = BTreeMap::new();
    let agreed = cluster.poll(CONVERGE_TIMEOUT, |c| {
        last = c
            .running_ids()
            .into_iter()
            .map(|id| (id, try_list_reassignments(c, id)))
            .collect();
        last.values()
            .all(|listed| listed.as_deref() == Some(expected))
            .then_some(())
    });
    assert!(
        agreed.is_some(),
        "ListPartitionReassignments never listed {expected:?} on every node; last: {last:?}\n{}",
        cluster.logs()
    );
}

/// AlterPartitionReassignments of `TOPIC`-0 to `replicas` (`None`: cancel), through node 2.
fn alter_raw(
    cluster: &Cluster,
    replicas: Option<Vec<NodeId>>,
) -> AlterPartitionReassignmentsResponse {
    let request = AlterPartitionReassignmentsRequest {
        timeout_ms: ADMIN_TIMEOUT_MS,
        topics: vec![ReassignableTopic {
            name: TOPIC.to_owned(),
            partitions: vec![ReassignablePartition {
                partition_index: 0,
                replicas,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    call(
        cluster.node(2).kafka_addr(),
        ApiKey::AlterPartitionReassignments,
        0,
        &request,
    )
    .unwrap()
}

/// DescribeLogDirs v4 from node `id`, for every partition or `TOPIC`'s `partitions`: the log
/// dir, each (topic, partition)'s size, and the volume's total and usable bytes.
fn describe_log_dirs(
    cluster: &Cluster,
    id: NodeId,
    partitions: Option<&[i32]>,
) -> (String, BTreeMap<(String, i32), i64>, i64, i64) {
    let request = DescribeLogDirsRequest {
        topics: partitions.map(|p| {
            vec![DescribableLogDirTopic {
                topic: TOPIC.to_owned(),
                partitions: p.to_vec(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let response: DescribeLogDirsResponse = call(
        cluster.node(id).kafka_addr(),
        ApiKey::DescribeLogDirs,
        4,
        &request,
    )
    .unwrap();
    assert_eq!(response.error_code, code::NONE, "{response:?}");
    assert_eq!(
        response.results.len(),
        1,
        "one log dir per node: {response:?}"
    );
    let dir = &response.results[0];
    assert_eq!(dir.error_code, code::NONE, "{response:?}");
    let mut sizes = BTreeMap::new();
    for topic in &dir.topics {
        for p in &topic.partitions {
            assert!(!p.is_future_key && p.offset_lag >= 0, "{p:?}");
            sizes.insert((topic.name.clone(), p.partition_index), p.partition_size);
        }
    }
    (
        dir.log_dir.clone(),
        sizes,
        dir.total_bytes,
        dir.usable_bytes,
    )
}

/// The count of records the background producer has had acknowledged so far.
fn acked_count(producer: &BackgroundClient) -> u64 {
    std::fs::read_to_string(producer.dir().join("progress"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn wait_for_acks(cluster: &Cluster, producer: &mut BackgroundClient, count: u64) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    while acked_count(producer) < count {
        assert!(
            producer.is_running() && Instant::now() < deadline,
            "the producer did not get {count} acknowledgements (has {})\n{}\n{}",
            acked_count(producer),
            producer.output_tail(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record of `TOPIC`-0 below the high watermark, by offset, read with librdkafka.
fn read_all(bootstrap: &str, cluster: &Cluster) -> BTreeMap<i64, Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka refuses assign() without a group id; it is never joined nor committed to.
        .set("group.id", "reassignment-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = BTreeMap::new();
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while read
        .last_key_value()
        .is_none_or(|(offset, _)| offset + 1 < high)
        && high > 0
    {
        assert!(
            Instant::now() < deadline,
            "read {TOPIC}-0 up to {:?}, not to the high watermark {high}\n{}",
            read.last_key_value().map(|(o, _)| *o),
            cluster.logs()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Ok(message)) => {
                let value = message.payload().unwrap_or_default().to_vec();
                assert!(
                    read.insert(message.offset(), value).is_none(),
                    "offset {} read twice",
                    message.offset()
                );
            }
            Some(Err(e)) => eprintln!("consumer: {e} (it retries)"),
        }
    }
    read
}
