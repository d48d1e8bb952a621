//! `spate topic create|list|describe|alter|delete` against a real broker, read back through
//! both of their outputs (the table people read and the JSON scripts parse), and the errors
//! a user meets first: an unknown topic, a broker that is not there, a malformed flag.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use spate_tests::cli::{run_spate, spate_command};
use spate_tests::{Broker, ProcessOutput, run_with_timeout};

/// Runs `spate args…` and insists it succeeded; returns stdout.
fn spate_ok(broker: &Broker, args: &[&str]) -> String {
    let output = run_spate(&broker.bootstrap(), args, None).unwrap();
    assert!(
        output.status.success(),
        "spate {args:?} failed: {}",
        output.describe()
    );
    output.stdout_text()
}

fn json(broker: &Broker, args: &[&str]) -> Value {
    let text = spate_ok(broker, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("spate {args:?}: {e}: {text}"))
}

fn describe(broker: &Broker, topic: &str) -> Value {
    json(broker, &["topic", "describe", topic, "--output", "json"])
}

fn listed_topics(broker: &Broker) -> Vec<(String, u64)> {
    json(broker, &["topic", "list", "--output", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["partitions"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn topic_lifecycle_through_the_cli() {
    let broker = Broker::start().unwrap();

    let created = spate_ok(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert_eq!(created, "created topic orders with 3 partitions\n");

    let table = spate_ok(&broker, &["topic", "list"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["TOPIC", "PARTITIONS"], "{table}");
    assert!(rows.contains(&vec!["orders", "3"]), "{table}");
    assert_eq!(listed_topics(&broker), [("orders".to_string(), 3)]);

    let described = describe(&broker, "orders");
    assert_eq!(described["name"], "orders");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (index, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], index as u64);
        assert!(p["leader"].as_i64().unwrap() >= 0, "{p}");
        assert_eq!(p["log_start_offset"], 0, "{p}");
        assert_eq!(p["log_end_offset"], 0, "{p}");
    }
    assert_eq!(
        described["configs"],
        serde_json::json!({ "retention.ms": "3600000" }),
        "only the configs set on the topic"
    );

    // Records move the end offsets that describe reports.
    let produced = run_spate(
        &broker.bootstrap(),
        &["produce", "orders", "--partition", "2"],
        Some(b"a\nb\n".to_vec()),
    )
    .unwrap();
    assert!(produced.status.success(), "{}", produced.describe());
    assert_eq!(
        describe(&broker, "orders")["partitions"][2]["log_end_offset"],
        2
    );

    let altered = spate_ok(
        &broker,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "segment.bytes=1048576",
            "--delete-config",
            "retention.ms",
        ],
    );
    assert!(altered.contains("grew from 3 to 5 partitions"), "{altered}");
    let described = describe(&broker, "orders");
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);
    assert_eq!(
        described["configs"],
        serde_json::json!({ "segment.bytes": "1048576" })
    );
    let table = spate_ok(&broker, &["topic", "describe", "orders"]);
    assert!(
        table.contains("segment.bytes  1048576 (1 MiB)"),
        "sizes read as sizes: {table}"
    );
    assert!(
        table.contains("START-OFFSET") && table.contains("END-OFFSET"),
        "{table}"
    );

    let again = run_spate(&broker.bootstrap(), &["topic", "create", "orders"], None).unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", again.describe());
    assert!(
        again.stderr_text().contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.describe()
    );
    let tolerated = spate_ok(&broker, &["topic", "create", "orders", "--if-not-exists"]);
    assert_eq!(tolerated, "topic orders already exists\n");

    assert_eq!(
        spate_ok(&broker, &["topic", "delete", "orders"]),
        "deleted topic orders\n"
    );
    assert!(listed_topics(&broker).is_empty());
    spate_ok(&broker, &["topic", "delete", "orders", "--if-exists"]);
}

fn assert_failed_with(output: &ProcessOutput, code: i32, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(code), "{}", output.describe());
    assert!(
        output.stdout.is_empty(),
        "errors go to stderr: {}",
        output.describe()
    );
    for needle in needles {
        assert!(
            output.stderr_text().contains(needle),
            "stderr lacks {needle:?}: {}",
            output.describe()
        );
    }
}

#[test]
fn errors_name_what_failed_and_exit_non_zero() {
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();

    let unknown = run_spate(&bootstrap, &["topic", "describe", "nope"], None).unwrap();
    assert_failed_with(
        &unknown,
        1,
        &[
            "spate topic describe:",
            "topic nope does not exist",
            &bootstrap,
        ],
    );

    let unknown = run_spate(&bootstrap, &["consume", "nope", "--from-beginning"], None).unwrap();
    assert_failed_with(&unknown, 1, &["topic nope does not exist"]);

    let malformed = run_spate(
        &bootstrap,
        &["topic", "create", "x", "--config", "retention.ms"],
        None,
    )
    .unwrap();
    assert_failed_with(
        &malformed,
        2,
        &["--config \"retention.ms\" is not key=value"],
    );

    // A port nobody listens on: bound, then released.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let unreachable = run_spate(
        &bootstrap,
        &[
            "topic",
            "list",
            "--bootstrap",
            &closed,
            "--timeout-ms",
            "1500",
        ],
        None,
    )
    .unwrap();
    assert_failed_with(
        &unreachable,
        3,
        &[&closed, "check that the broker is running"],
    );
    assert!(
        unreachable.elapsed < Duration::from_secs(15),
        "gave up only after {:?}",
        unreachable.elapsed
    );
    // A refused connection is retried for --timeout-ms (a broker may still be starting), and
    // the wait is announced, not silent.
    assert!(
        unreachable.elapsed >= Duration::from_millis(1200),
        "gave up after {:?}, before --timeout-ms 1500",
        unreachable.elapsed
    );
    assert!(
        unreachable
            .stderr_text()
            .contains(&format!("waiting up to 1500 ms for a broker at {closed}")),
        "{}",
        unreachable.describe()
    );

    // The flag beats the environment variable: SPATE_BOOTSTRAP names the closed port here.
    let mut command = spate_command(&closed).unwrap();
    command.args(["topic", "list", "--bootstrap", &bootstrap]);
    let flag_wins = run_with_timeout(&mut command, None, Duration::from_secs(60)).unwrap();
    assert!(flag_wins.status.success(), "{}", flag_wins.describe());
    assert_eq!(flag_wins.stdout_text(), "no topics\n");
}
