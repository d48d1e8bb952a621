//! `spate group list|describe|delete|reset-offsets` against a group that librdkafka (the
//! `rdkafka` crate) runs on the real broker: describe shows the member, its assignment and
//! the lag per partition; reset-offsets refuses while the member is there, a dry run
//! changes nothing, and the real reset moves exactly the committed offsets asked for.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use spate_tests::cli::run_spate;
use spate_tests::{Broker, BrokerOptions};

/// A bound on "wait until the group settles" on a loaded 2-core machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker whose groups rebalance without the initial delay, holding `topic` with two
/// partitions filled (through the CLI) with the given lines.
fn broker_with_topic(topic: &str, partition0: &[u8], partition1: &[u8]) -> Broker {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    spate_ok(
        &broker,
        &["topic", "create", topic, "--partitions", "2"],
        None,
    );
    for (partition, lines) in [("0", partition0), ("1", partition1)] {
        spate_ok(
            &broker,
            &["produce", topic, "--partition", partition],
            Some(lines),
        );
    }
    broker
}

fn spate_ok(broker: &Broker, args: &[&str], stdin: Option<&[u8]>) -> String {
    let output = run_spate(&broker.bootstrap(), args, stdin.map(<[u8]>::to_vec)).unwrap();
    assert!(
        output.status.success(),
        "spate {args:?} failed: {}",
        output.describe()
    );
    output.stdout_text()
}

fn json(broker: &Broker, args: &[&str]) -> Value {
    let text = spate_ok(broker, args, None);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("spate {args:?}: {e}: {text}"))
}

fn describe(broker: &Broker, group: &str) -> Value {
    json(broker, &["group", "describe", group, "--output", "json"])
}

/// (partition, committed, log end, lag): one row of `group describe --output json`.
type OffsetRow = (i64, Option<i64>, Option<i64>, Option<i64>);

fn offsets(described: &Value) -> Vec<OffsetRow> {
    described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["committed_offset"].as_i64(),
                o["log_end_offset"].as_i64(),
                o["lag"].as_i64(),
            )
        })
        .collect()
}

fn wait_for(broker: &Broker, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; broker log:\n{}",
            broker.log_tail(4_000)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn describe_shows_lag_and_reset_offsets_moves_only_what_it_says() {
    let broker = broker_with_topic("events", b"a\nb\nc\nd\ne\nf\n", b"w\nx\ny\nz\n");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "billing")
        .set("client.id", "billing-worker")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["events"]).unwrap();
    wait_for(&broker, "the consumer's assignment", || {
        let _ = consumer.poll(Duration::from_millis(100));
        consumer.assignment().is_ok_and(|a| a.count() == 2)
    });
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("events", 0, Offset::Offset(4))
        .unwrap();
    commit
        .add_partition_offset("events", 1, Offset::Offset(1))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    let listed = json(&broker, &["group", "list", "--output", "json"]);
    assert_eq!(
        listed,
        serde_json::json!([{ "group": "billing", "state": "Stable", "protocol_type": "consumer" }])
    );
    let described = describe(&broker, "billing");
    assert_eq!(described["state"], "Stable");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(members[0]["client_id"], "billing-worker");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([
            { "topic": "events", "partition": 0 },
            { "topic": "events", "partition": 1 }
        ])
    );
    assert_eq!(
        offsets(&described),
        [
            (0, Some(4), Some(6), Some(2)),
            (1, Some(1), Some(4), Some(3))
        ]
    );
    assert_eq!(described["total_lag"], 5);
    let table = spate_ok(&broker, &["group", "describe", "billing"], None);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec![
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CLIENT-ID"
        ]),
        "{table}"
    );
    assert!(
        rows.contains(&vec![
            "billing",
            "events",
            "0",
            "4",
            "6",
            "2",
            "billing-worker"
        ]),
        "{table}"
    );
    assert!(rows.contains(&vec!["total", "lag", "5"]), "{table}");

    let refused = run_spate(
        &broker.bootstrap(),
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--to-earliest",
        ],
        None,
    )
    .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused
            .stderr_text()
            .contains("group billing has 1 active member"),
        "{}",
        refused.describe()
    );

    drop(consumer);
    wait_for(&broker, "the group to empty", || {
        describe(&broker, "billing")["state"] == "Empty"
    });

    let plan = spate_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--to-earliest",
            "--dry-run",
        ],
        None,
    );
    let rows: Vec<Vec<&str>> = plan
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[..3],
        [
            vec!["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
            vec!["events", "0", "4", "0"],
            vec!["events", "1", "1", "0"],
        ],
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing changed"), "{plan}");
    assert_eq!(
        offsets(&describe(&broker, "billing")),
        [
            (0, Some(4), Some(6), Some(2)),
            (1, Some(1), Some(4), Some(3))
        ],
        "a dry run changes nothing"
    );

    spate_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--partition",
            "0",
            "--to-offset",
            "2",
        ],
        None,
    );
    assert_eq!(
        offsets(&describe(&broker, "billing")),
        [
            (0, Some(2), Some(6), Some(4)),
            (1, Some(1), Some(4), Some(3))
        ],
        "only partition 0 moved"
    );
    spate_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--to-latest",
        ],
        None,
    );
    assert_eq!(
        offsets(&describe(&broker, "billing")),
        [
            (0, Some(6), Some(6), Some(0)),
            (1, Some(4), Some(4), Some(0))
        ]
    );
    let by_time = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--to-datetime",
            "2000-01-01T00:00:00Z",
            "--output",
            "json",
        ],
    );
    assert_eq!(by_time["dry_run"], false);
    assert_eq!(by_time["partitions"][0]["current_offset"], 6);
    assert_eq!(by_time["partitions"][0]["new_offset"], 0);
    assert_eq!(
        offsets(&describe(&broker, "billing")),
        [
            (0, Some(0), Some(6), Some(6)),
            (1, Some(0), Some(4), Some(4))
        ]
    );

    assert_eq!(
        spate_ok(&broker, &["group", "delete", "billing"], None),
        "deleted group billing\n"
    );
    assert_eq!(spate_ok(&broker, &["group", "list"], None), "no groups\n");
    let gone = run_spate(&broker.bootstrap(), &["group", "describe", "billing"], None).unwrap();
    assert_eq!(gone.status.code(), Some(1), "{}", gone.describe());
    assert!(
        gone.stderr_text().contains("group billing does not exist"),
        "{}",
        gone.describe()
    );
}

fn consume(broker: &Broker, args: &[&str]) -> Vec<String> {
    let mut full = vec!["consume"];
    full.extend_from_slice(args);
    spate_ok(broker, &full, None)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn consume_in_a_group_commits_exactly_what_it_printed() {
    let broker = broker_with_topic("jobs", b"p0-a\np0-b\np0-c\np0-d\n", b"p1-a\np1-b\n");

    let first = consume(
        &broker,
        &[
            "jobs",
            "--group",
            "workers",
            "--from-beginning",
            "--count",
            "4",
        ],
    );
    assert_eq!(first.len(), 4, "{first:?}");
    let described = describe(&broker, "workers");
    assert_eq!(
        described["total_lag"], 2,
        "committed right after the 4 printed records: {described}"
    );
    assert_eq!(
        described["offsets"].as_array().unwrap().len(),
        2,
        "both partitions committed, the unread one at its start: {described}"
    );

    // The group has offsets now, so without --count or --follow the run reads to the end
    // offsets of its start and exits.
    let second = consume(&broker, &["jobs", "--group", "workers"]);
    let mut all: Vec<String> = first.iter().chain(&second).cloned().collect();
    all.sort();
    assert_eq!(
        all,
        ["p0-a", "p0-b", "p0-c", "p0-d", "p1-a", "p1-b"],
        "every record exactly once across the two runs: {first:?} then {second:?}"
    );
    assert_eq!(describe(&broker, "workers")["total_lag"], 0);

    spate_ok(
        &broker,
        &["produce", "jobs", "--partition", "1"],
        Some(b"p1-c\n"),
    );
    assert_eq!(consume(&broker, &["jobs", "--group", "workers"]), ["p1-c"]);
    assert_eq!(
        consume(&broker, &["jobs", "--group", "workers", "--from-beginning"]),
        Vec::<String>::new(),
        "--from-beginning only applies where the group has no offset"
    );
}
