//! Three `spate serve` processes form one cluster, and a replicated topic created through one
//! node is the same topic on all three: a 6-partition, replication-factor-3 topic created with
//! confluent-kafka's AdminClient through node 2 alone gets the same leaders, leader epochs,
//! replicas and ISR in every node's Metadata answer (with the same brokers and controller id),
//! its leaderships are spread (no node leads more than 3 of the 6), kcat and the AdminClient's
//! describe_cluster/describe_topics see three brokers, the controller and replication factor 3,
//! and DescribeQuorum (asked of a broker, forwarded to the controller) shows three voters and
//! the leader that `/cluster` names, at every version the broker advertises (0 to 2). A fourth,
//! broker-only node registers and is unfenced like the others, but stays out of the quorum.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use spate_tests::clients::{run_kcat, run_python_script};
use spate_tests::cluster::{is_unfenced_in, leader_in};
use spate_tests::cluster_requests::{
    ClusterMetadata, DESCRIBE_QUORUM_VERSION_MAX, describe_quorum,
};
use spate_tests::{Cluster, ClusterOptions, NodeRole};

const TOPIC: &str = "spread";
const PARTITION_COUNT: usize = 6;
const REPLICATION_FACTOR: usize = 3;
/// The bound: with three brokers, no node leads more than half of six partitions.
const LEADERSHIPS_PER_NODE_MAX: usize = 3;
/// A debug broker on a loaded 2-core machine answers an admin round in a few seconds.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// A few heartbeat intervals (500 ms here).
const BROKER_LEADER_HINT_TIMEOUT: Duration = Duration::from_secs(5);
/// Nodes apply a change at their own pace; they agree within a few heartbeats.
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn replicated_topic_created_through_one_node_is_spread_and_agreed_by_all() {
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let via = cluster.node(2).bootstrap();

    let output = run_python_script(
        "cluster_admin.py",
        &via,
        &[TOPIC, "6", "3", "3"],
        CLIENT_TIMEOUT,
    )
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );
    let admin_view: serde_json::Value =
        serde_json::from_str(output.stdout_text().lines().last().unwrap()).unwrap();

    let metadata = cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "the new topic", topic_is_whole)
        .unwrap();
    assert_eq!(metadata.broker_ids(), vec![1, 2, 3], "{metadata:#?}");
    let topic = metadata.topic(TOPIC).unwrap();
    for partition in &topic.partitions {
        assert_eq!(
            partition.replicas.len(),
            REPLICATION_FACTOR,
            "{partition:?}"
        );
        let distinct: BTreeSet<i32> = partition.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), REPLICATION_FACTOR, "{partition:?}");
        assert_eq!(
            sorted(&partition.isr),
            sorted(&partition.replicas),
            "all three are live, so all are in sync: {partition:?}"
        );
        assert!(partition.offline.is_empty(), "{partition:?}");
        assert!(partition.leader_epoch >= 0, "{partition:?}");
        let from_admin = &admin_view["partitions"][partition.index.to_string()];
        assert_eq!(
            from_admin["leader"].as_i64(),
            Some(i64::from(partition.leader)),
            "describe_topics and Metadata disagree on partition {}: {admin_view}",
            partition.index
        );
    }

    let leader_counts = topic.leader_counts();
    eprintln!("leaderships per node: {leader_counts:?}");
    assert_eq!(leader_counts.values().sum::<usize>(), PARTITION_COUNT);
    for (node, count) in &leader_counts {
        assert!(
            *count <= LEADERSHIPS_PER_NODE_MAX,
            "node {node} leads {count} of {PARTITION_COUNT}: {leader_counts:?}"
        );
    }

    let controller = cluster.controller_leader().unwrap();
    assert_eq!(metadata.controller_id, controller, "{metadata:#?}");
    assert_eq!(
        admin_view["controller"].as_i64(),
        Some(i64::from(controller)),
        "describe_cluster's controller: {admin_view}"
    );
    assert_eq!(admin_view["nodes"], serde_json::json!([1, 2, 3]));

    let listed = run_kcat(&via, &["-L", "-J"], None, CLIENT_TIMEOUT).unwrap();
    assert!(listed.status.success(), "{}", listed.describe());
    let kcat_view: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        kcat_view["brokers"].as_array().unwrap().len(),
        3,
        "kcat -L: {kcat_view}"
    );
    let kcat_topic = kcat_view["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == TOPIC)
        .unwrap_or_else(|| panic!("kcat -L does not list {TOPIC}: {kcat_view}"));
    let kcat_partitions = kcat_topic["partitions"].as_array().unwrap();
    assert_eq!(kcat_partitions.len(), PARTITION_COUNT, "{kcat_topic}");
    for partition in kcat_partitions {
        assert_eq!(
            partition["replicas"].as_array().unwrap().len(),
            REPLICATION_FACTOR,
            "{partition}"
        );
    }

    for id in cluster.node_ids() {
        let quorum = describe_quorum(cluster.node(id).kafka_addr(), DESCRIBE_QUORUM_VERSION_MAX)
            .unwrap_or_else(|e| panic!("DescribeQuorum via node {id}: {e}\n{}", cluster.logs()));
        assert_eq!(
            quorum.error_code, 0,
            "DescribeQuorum via node {id}: {quorum:?}"
        );
        let voters: Vec<i32> = quorum.voters.iter().map(|(voter, _)| *voter).collect();
        assert_eq!(
            voters,
            vec![1, 2, 3],
            "DescribeQuorum via node {id}: {quorum:?}"
        );
        assert_eq!(
            quorum.leader_id, controller,
            "DescribeQuorum via node {id}: {quorum:?}"
        );
        assert!(quorum.leader_epoch >= 1, "{quorum:?}");
        let status = cluster.status(id).unwrap();
        assert_eq!(leader_in(&status), Some(controller), "node {id}: {status}");
        assert_eq!(
            status["controller"]["epoch"].as_i64(),
            Some(i64::from(quorum.leader_epoch)),
            "the Raft term in /cluster is the quorum's epoch: {status}"
        );
    }
}

#[test]
fn describe_quorum_of_a_cluster_is_answered_at_every_advertised_version() {
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let controller = cluster.controller_leader().unwrap();
    for id in cluster.node_ids() {
        for version in 0..=DESCRIBE_QUORUM_VERSION_MAX {
            let quorum =
                describe_quorum(cluster.node(id).kafka_addr(), version).unwrap_or_else(|e| {
                    panic!(
                        "DescribeQuorum v{version} via node {id}: {e}\n{}",
                        cluster.logs()
                    )
                });
            assert_eq!(quorum.error_code, 0, "v{version} via {id}: {quorum:?}");
            assert_eq!(
                quorum.leader_id, controller,
                "v{version} via {id}: {quorum:?}"
            );
            let voters: Vec<i32> = quorum.voters.iter().map(|(voter, _)| *voter).collect();
            assert_eq!(voters, vec![1, 2, 3], "v{version} via {id}: {quorum:?}");
        }
    }
}

#[test]
fn broker_only_node_joins_as_an_unfenced_broker_outside_the_quorum() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 4,
        roles: HashMap::from([(4, NodeRole::Broker)]),
        ..ClusterOptions::default()
    })
    .unwrap();
    let controller = cluster.controller_leader().unwrap();
    assert_ne!(controller, 4, "a broker-only node cannot lead the quorum");
    // A broker-only node learns the leader from the voters it talks to, so right after it
    // starts it may name another voter for up to a heartbeat or so.
    let learned = cluster
        .wait_until(
            BROKER_LEADER_HINT_TIMEOUT,
            "the broker-only node to name the quorum leader",
            |c| {
                c.status(4)
                    .is_ok_and(|own| leader_in(&own) == Some(controller))
            },
        )
        .unwrap();
    eprintln!(
        "the broker-only node named leader {controller} after {} ms",
        learned.as_millis()
    );
    let own = cluster.status(4).unwrap();
    assert_eq!(own["roles"], serde_json::json!(["broker"]), "{own}");
    assert_eq!(leader_in(&own), Some(controller), "{own}");
    assert!(own["controller"]["epoch"].is_null(), "not a voter: {own}");
    let voters: Vec<i64> = own["controller"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["node_id"].as_i64())
        .collect();
    assert_eq!(voters, vec![1, 2, 3], "{own}");
    // Each node learns of the unfencing when its copy of the metadata log does.
    for id in cluster.node_ids() {
        let seen = cluster.wait_until(
            AGREEMENT_TIMEOUT,
            &format!("node {id} to see node 4 unfenced"),
            |c| c.status(id).is_ok_and(|status| is_unfenced_in(&status, 4)),
        );
        if let Err(e) = seen {
            panic!("{e}: node {id}: {:?}", cluster.status(id));
        }
    }
    let metadata = cluster
        .agreed_metadata(AGREEMENT_TIMEOUT, "four brokers", |m| {
            m.broker_ids() == [1, 2, 3, 4]
        })
        .unwrap();
    assert_eq!(metadata.controller_id, controller);
    let quorum = describe_quorum(cluster.node(4).kafka_addr(), DESCRIBE_QUORUM_VERSION_MAX)
        .unwrap_or_else(|e| {
            panic!(
                "DescribeQuorum via the broker-only node: {e}\n{}",
                cluster.logs()
            )
        });
    let quorum_voters: Vec<i32> = quorum.voters.iter().map(|(voter, _)| *voter).collect();
    assert_eq!(quorum_voters, vec![1, 2, 3], "{quorum:?}");
    assert_eq!(quorum.leader_id, controller, "{quorum:?}");
}

/// The topic is listed with every partition led and fully replicated.
fn topic_is_whole(metadata: &ClusterMetadata) -> bool {
    metadata.broker_ids().len() == 3
        && metadata.topic(TOPIC).is_some_and(|topic| {
            topic.error_code == 0
                && topic.partitions.len() == PARTITION_COUNT
                && topic.partitions.iter().all(|p| {
                    p.leader >= 0 && p.replicas.len() == REPLICATION_FACTOR && p.isr.len() == 3
                })
        })
}

fn sorted(ids: &[i32]) -> Vec<i32> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}
