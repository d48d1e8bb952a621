//! `spate produce` and `spate consume` against a real broker: keys split at the separator,
//! headers on every record, checked byte for byte by kcat as well as by `consume --format
//! json`; the starting points (beginning, offset, timestamp, end), `--count`, the default
//! stop at the end offsets of the start, and the default follow when starting at the end.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use spate_tests::Broker;
use spate_tests::cli::{RunningSpate, run_spate};
use spate_tests::clients::run_kcat;

/// Runs `spate args…` with `stdin` and insists it succeeded; returns (stdout, stderr).
fn spate_ok(broker: &Broker, args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
    let output = run_spate(&broker.bootstrap(), args, stdin.map(<[u8]>::to_vec)).unwrap();
    assert!(
        output.status.success(),
        "spate {args:?} failed: {}",
        output.describe()
    );
    (output.stdout_text(), output.stderr_text())
}

fn consume_lines(broker: &Broker, args: &[&str]) -> Vec<String> {
    let mut full = vec!["consume"];
    full.extend_from_slice(args);
    let (stdout, _) = spate_ok(broker, &full, None);
    stdout.lines().map(str::to_string).collect()
}

/// (key, value, headers) of a `--format json` line.
fn parsed(line: &str) -> (Value, Value, Vec<(String, Value)>) {
    let record: Value = serde_json::from_str(line).unwrap();
    let headers = record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["key"].as_str().unwrap().to_string(), h["value"].clone()))
        .collect();
    (record["key"].clone(), record["value"].clone(), headers)
}

#[test]
fn keys_and_headers_survive_the_round_trip_byte_for_byte() {
    let broker = Broker::start().unwrap();
    spate_ok(
        &broker,
        &["topic", "create", "keyed", "--partitions", "2"],
        None,
    );
    // A value holding the separator again, a line without one, an empty value, a CRLF line.
    let input = b"k1:v1\nk2:v:2\nno key here\nk3:\nk4:crlf\r\n";
    let (stdout, stderr) = spate_ok(
        &broker,
        &[
            "produce",
            "keyed",
            "--key-separator",
            ":",
            "--header",
            "trace=abc",
            "--header",
            "origin=cli",
        ],
        Some(input),
    );
    assert_eq!(stdout, "", "nothing on stdout when piped");
    assert_eq!(stderr, "produced 5 records to keyed\n");

    let lines = consume_lines(&broker, &["keyed", "--from-beginning", "--format", "json"]);
    let mut records: Vec<_> = lines.iter().map(|l| parsed(l)).collect();
    records.sort_by_key(|(key, value, _)| (key.to_string(), value.to_string()));
    let expected_headers = vec![
        ("trace".to_string(), Value::from("abc")),
        ("origin".to_string(), Value::from("cli")),
    ];
    let mut expected = vec![
        (Value::Null, Value::from("no key here")),
        (Value::from("k1"), Value::from("v1")),
        (Value::from("k2"), Value::from("v:2")),
        (Value::from("k3"), Value::from("")),
        (Value::from("k4"), Value::from("crlf")),
    ];
    expected.sort_by_key(|(key, value)| (key.to_string(), value.to_string()));
    assert_eq!(
        records
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect::<Vec<_>>(),
        expected,
        "{lines:?}"
    );
    for (_, _, headers) in &records {
        assert_eq!(headers, &expected_headers, "{lines:?}");
    }

    // kcat, an independent reader, sees the same bytes: key length and value length too.
    let kcat = run_kcat(
        &broker.bootstrap(),
        &[
            "-C",
            "-t",
            "keyed",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%K|%k|%S|%s|%h\n",
        ],
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(kcat.status.success(), "{}", kcat.describe());
    let mut seen: Vec<String> = kcat.stdout_text().lines().map(str::to_string).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "-1||11|no key here|trace=abc,origin=cli",
            "2|k1|2|v1|trace=abc,origin=cli",
            "2|k2|3|v:2|trace=abc,origin=cli",
            "2|k3|0||trace=abc,origin=cli",
            "2|k4|4|crlf|trace=abc,origin=cli",
        ]
    );

    // --partition pins every record; detailed output shows where each landed.
    spate_ok(
        &broker,
        &["produce", "keyed", "--partition", "1"],
        Some(b"pinned-a\npinned-b\n"),
    );
    let detailed = consume_lines(
        &broker,
        &[
            "keyed",
            "--partition",
            "1",
            "--from-beginning",
            "--format",
            "detailed",
        ],
    );
    let pinned: Vec<&String> = detailed.iter().filter(|l| l.contains("pinned")).collect();
    assert_eq!(pinned.len(), 2, "{detailed:?}");
    for line in pinned {
        assert!(line.starts_with("partition=1 offset="), "{line}");
        assert!(
            line.contains(" key=(null) headers=[] value=pinned-"),
            "{line}"
        );
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn consume_starts_where_asked_and_stops_where_documented() {
    let broker = Broker::start().unwrap();
    spate_ok(
        &broker,
        &["topic", "create", "lines", "--partitions", "1"],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.txt");
    let early: String = (1..=10).map(|i| format!("line-{i}\n")).collect();
    std::fs::write(&file, &early).unwrap();
    let (_, stderr) = spate_ok(
        &broker,
        &["produce", "lines", "--file", file.to_str().unwrap()],
        None,
    );
    assert_eq!(stderr, "produced 10 records to lines\n");

    // Every later record gets a create time after `boundary_ms`.
    let boundary_ms = now_ms();
    while now_ms() <= boundary_ms {
        std::thread::yield_now();
    }
    spate_ok(
        &broker,
        &["produce", "lines"],
        Some(b"late-1\nlate-2\nlate-3\n"),
    );

    let all: Vec<String> = (1..=10)
        .map(|i| format!("line-{i}"))
        .chain((1..=3).map(|i| format!("late-{i}")))
        .collect();
    assert_eq!(
        consume_lines(&broker, &["lines", "--from-beginning"]),
        all,
        "reads to the end offsets of the start and exits"
    );
    assert_eq!(
        consume_lines(&broker, &["lines", "--from-beginning", "--count", "3"]),
        all[..3]
    );
    assert_eq!(
        consume_lines(&broker, &["lines", "--offset", "7", "--partition", "0"]),
        all[7..]
    );
    assert_eq!(
        consume_lines(&broker, &["lines", "--offset", "12"]),
        all[12..]
    );
    assert_eq!(
        consume_lines(&broker, &["lines", "--offset", "99"]),
        Vec::<String>::new(),
        "past the end: nothing to read, and it still exits"
    );
    let after_boundary = (boundary_ms + 1).to_string();
    assert_eq!(
        consume_lines(&broker, &["lines", "--from-timestamp", &after_boundary]),
        all[10..]
    );
    assert_eq!(
        consume_lines(
            &broker,
            &["lines", "--from-timestamp", "2000-01-01T02:00:00+02:00"]
        ),
        all
    );
    assert_eq!(
        consume_lines(
            &broker,
            &["lines", "--from-timestamp", "2999-01-01T00:00:00Z"]
        ),
        Vec::<String>::new()
    );
    let bad = run_spate(
        &broker.bootstrap(),
        &["consume", "lines", "--from-timestamp", "last tuesday"],
        None,
    )
    .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", bad.describe());
    assert!(bad.stderr_text().contains("RFC 3339"), "{}", bad.describe());
}

#[test]
fn consume_without_a_start_follows_new_records_only() {
    let broker = Broker::start().unwrap();
    spate_ok(
        &broker,
        &["topic", "create", "tail", "--partitions", "2"],
        None,
    );
    spate_ok(&broker, &["produce", "tail"], Some(b"old\n"));

    let mut follower = RunningSpate::start(&broker.bootstrap(), &["consume", "tail"]).unwrap();
    // The follower looks the end up after it starts; records produced before that are
    // behind it, so keep producing until one shows, then check that "old" never did.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    let mut seen = Vec::new();
    while Instant::now() < deadline && !seen.iter().any(|l: &String| l.starts_with("new-")) {
        attempt += 1;
        spate_ok(
            &broker,
            &["produce", "tail"],
            Some(format!("new-{attempt}\n").as_bytes()),
        );
        seen.extend(
            follower.lines_until(Instant::now() + Duration::from_millis(500), |s| {
                !s.is_empty()
            }),
        );
    }
    assert!(
        seen.iter().any(|l| l.starts_with("new-")),
        "nothing followed: {seen:?}"
    );
    assert!(
        !seen.contains(&"old".to_string()),
        "started at the end: {seen:?}"
    );
    assert!(follower.is_running(), "it follows rather than exits");
}

#[test]
fn produce_failures_exit_non_zero_with_the_reason() {
    let broker = Broker::start_with(spate_tests::BrokerOptions {
        extra_args: vec!["--auto-create-topics".into(), "false".into()],
        ..Default::default()
    })
    .unwrap();
    let bootstrap = broker.bootstrap();
    spate_ok(
        &broker,
        &[
            "topic",
            "create",
            "small",
            "--partitions",
            "1",
            "--config",
            "max.message.bytes=200",
        ],
        None,
    );

    // The broker refuses the batch: the delivery fails, and says why.
    spate_ok(&broker, &["produce", "small"], Some(b"fits\n"));
    let big = format!("{}\n", "x".repeat(1_000));
    let output = run_spate(&bootstrap, &["produce", "small"], Some(big.into_bytes())).unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    let stderr = output.stderr_text();
    assert!(
        stderr.starts_with("spate produce: produced 0 records to small, but 1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("small-0: MESSAGE_TOO_LARGE"), "{stderr}");
    assert_eq!(
        consume_lines(&broker, &["small", "--from-beginning"]),
        ["fits"]
    );

    let output = run_spate(
        &bootstrap,
        &["produce", "small", "--partition", "3"],
        Some(b"x\n".to_vec()),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert!(
        output
            .stderr_text()
            .contains("produced 0 records to small, then stopped: topic small has no partition 3"),
        "{}",
        output.describe()
    );

    let output = run_spate(
        &bootstrap,
        &["produce", "missing", "--timeout-ms", "1000"],
        Some(b"x\n".to_vec()),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert!(
        output
            .stderr_text()
            .contains("topic missing does not exist and the broker does not create topics"),
        "{}",
        output.describe()
    );

    let missing_file = run_spate(
        &bootstrap,
        &["produce", "small", "--file", "/nonexistent/input.txt"],
        None,
    )
    .unwrap();
    assert_eq!(
        missing_file.status.code(),
        Some(1),
        "{}",
        missing_file.describe()
    );
    assert!(
        missing_file
            .stderr_text()
            .contains("opening /nonexistent/input.txt"),
        "{}",
        missing_file.describe()
    );
}
