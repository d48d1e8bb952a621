//! Part of `cluster_admin_replication_apis.rs`: preferred leader elections on request, with
//! the automatic rebalance off.

use std::time::Duration;

use spate_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use spate_tests::ClusterOptions;
use spate_tests::cli::run_spate;
use spate_tests::clients::run_python_script;

use super::*;

const TOPIC: &str = "preferred";
const PARTITIONS: i32 = 3;
/// The Python client connects, looks up the controller and waits for the election.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn elect_leaders_gives_leadership_back_to_the_preferred_replica_only_when_asked() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(ClusterOptions {
        extra_args: vec!["--auto-leader-rebalance-enable".into(), "false".into()],
        ..ClusterOptions::default()
    })
    .unwrap();
    cluster.create_topic(1, TOPIC, PARTITIONS, 3).unwrap();
    let initial = cluster
        .agreed_metadata(
            CONVERGE_TIMEOUT,
            "every partition led by its preferred replica",
            |m| {
                m.topic(TOPIC).is_some_and(|t| {
                    t.partitions.len() == PARTITIONS as usize
                        && t.partitions
                            .iter()
                            .all(|p| p.isr.len() == 3 && p.replicas.first() == Some(&p.leader))
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    // A partition whose preferred replica is not the active controller, so that stopping it
    // does not also start a controller election.
    let controller = cluster.controller_leader().unwrap();
    let moved = initial
        .topic(TOPIC)
        .unwrap()
        .partitions
        .iter()
        .find(|p| p.replicas[0] != controller)
        .cloned()
        .unwrap();
    let (index, preferred) = (moved.index, moved.replicas[0]);
    let observer = others(&moved.replicas, preferred)[0];

    // The preferred replica dies: leadership moves to another ISR member.
    cluster.kill9(preferred).unwrap();
    let away = cluster
        .poll(CONVERGE_TIMEOUT, |c| {
            let metadata = c.metadata(observer).ok()?;
            let p = metadata.topic(TOPIC)?.partition(index)?.clone();
            (p.leader >= 0 && p.leader != preferred).then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "{TOPIC}-{index} kept leader {preferred}\n{}",
                cluster.logs()
            )
        });
    eprintln!(
        "[{} ms] node {preferred} killed: {TOPIC}-{index} led by {} in epoch {}",
        started.elapsed().as_millis(),
        away.leader,
        away.leader_epoch
    );

    // Asking now cannot work, and the CLI says why and what to do.
    let elect = run_spate(
        &cluster.bootstrap(),
        &[
            "topic",
            "elect-leaders",
            TOPIC,
            "--partition",
            &index.to_string(),
        ],
        None,
    )
    .unwrap();
    assert_eq!(elect.status.code(), Some(1), "{}", elect.describe());
    let stderr = elect.stderr_text();
    assert!(
        stderr.contains("PREFERRED_LEADER_NOT_AVAILABLE")
            && stderr.contains(&format!("{TOPIC}-{index}"))
            && stderr.contains("start the preferred replica"),
        "{}",
        elect.describe()
    );
    assert!(
        elect.stdout_text().contains("failed"),
        "{}",
        elect.describe()
    );

    // It comes back and catches up; with the rebalance off, it stays a follower.
    cluster.restart(preferred).unwrap();
    let rejoined = agreed_partition(
        &cluster,
        TOPIC,
        index,
        "the restarted preferred replica back in the ISR",
        |p| p.isr.contains(&preferred) && p.isr.len() == 3,
    );
    eprintln!(
        "[{} ms] node {preferred} back in the ISR of {TOPIC}-{index}: {rejoined:?}",
        started.elapsed().as_millis()
    );
    assert_ne!(
        rejoined.leader, preferred,
        "leadership came back with auto.leader.rebalance.enable=false, before anyone asked"
    );

    // confluent-kafka asks for every partition: the moved one is elected, the others are
    // already led by their preferred replicas.
    let output = run_python_script(
        "cluster_elect_leaders.py",
        &cluster.bootstrap(),
        &[TOPIC, &PARTITIONS.to_string()],
        PYTHON_TIMEOUT,
    )
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );
    let stdout = output.stdout_text();
    let answered: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    for partition in 0..PARTITIONS {
        let result = &answered[partition.to_string()];
        if partition == index {
            assert!(result.is_null(), "{TOPIC}-{partition}: {result}");
        } else {
            assert_eq!(
                result["name"], "ELECTION_NOT_NEEDED",
                "{TOPIC}-{partition}: {result}"
            );
        }
    }
    let back = agreed_partition(&cluster, TOPIC, index, "the preferred leader back", |p| {
        p.leader == preferred
    });
    assert!(
        back.leader_epoch > rejoined.leader_epoch,
        "{back:?} after {rejoined:?}"
    );
    eprintln!(
        "[{} ms] elected through confluent-kafka: {back:?}",
        started.elapsed().as_millis()
    );

    // Nothing left to elect: "all partitions" lists none, and a listed one needs none.
    let all = elect_raw(&cluster, None);
    assert_eq!(all.error_code, code::NONE);
    assert!(
        all.replica_election_results
            .iter()
            .all(|t| t.partition_result.is_empty()),
        "{all:?}"
    );
    let one = elect_raw(&cluster, Some(index));
    let result = &one.replica_election_results[0].partition_result[0];
    assert_eq!(
        (result.partition_id, result.error_code),
        (index, code::ELECTION_NOT_NEEDED),
        "{one:?}"
    );
    assert_no_panics(&cluster);
}

/// ElectLeaders v2 (preferred) of `TOPIC`-`partition`, or of every partition, through node 1.
fn elect_raw(cluster: &Cluster, partition: Option<i32>) -> ElectLeadersResponse {
    use spate_protocol::messages::elect_leaders_request::TopicPartitions;
    let request = ElectLeadersRequest {
        election_type: 0,
        topic_partitions: partition.map(|p| {
            vec![TopicPartitions {
                topic: TOPIC.to_owned(),
                partitions: vec![p],
                ..Default::default()
            }]
        }),
        timeout_ms: ADMIN_TIMEOUT_MS,
        ..Default::default()
    };
    call(
        cluster.node(1).kafka_addr(),
        ApiKey::ElectLeaders,
        2,
        &request,
    )
    .unwrap()
}
