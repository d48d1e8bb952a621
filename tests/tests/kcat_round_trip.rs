//! kcat (librdkafka 2.x from Debian) talks to Spate unchanged: `-L` lists the broker and topics,
//! 100,000 keyed messages with headers come back byte-identical (uncompressed and once per
//! codec), and `-Q` finds offsets by timestamp.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spate_tests::clients::run_kcat;
use spate_tests::{Broker, BrokerOptions};

/// The issue asks for 100,000 messages per run.
const MESSAGE_COUNT: usize = 100_000;

/// Distinct keys: fewer than messages, so one key's messages must all land in one partition.
const KEY_COUNT: usize = 997;

/// Partitions of the auto-created topic, so ordering is checked per partition.
const PARTITION_COUNT: u32 = 3;

/// Generous for 100k messages through a debug-build broker on a loaded 2-core machine.
const KCAT_TIMEOUT: Duration = Duration::from_secs(180);

/// kcat's consumer output format: one line per message, fields that cannot contain spaces.
const CONSUME_FORMAT: &str = "P=%p O=%o K=%k V=%s H=%h\\n";

/// The headers every produced message carries (`-H` applies to each message).
const HEADERS: [(&str, &str); 2] = [("trace", "abc-123"), ("origin", "kcat")];

fn broker() -> Broker {
    broker_with_args(&[])
}

fn broker_with_args(extra_args: &[&str]) -> Broker {
    Broker::start_with(BrokerOptions {
        num_partitions: Some(PARTITION_COUNT),
        extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        ..BrokerOptions::default()
    })
    .unwrap()
}

/// A deterministic, printable value of varying length (1..=129 bytes), unique per index.
fn value_for(index: usize) -> String {
    let mut state = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let extra_len = (state % 120) as usize;
    let mut value = format!("v{index:06}-");
    for _ in 0..extra_len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(char::from(
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(state % 36) as usize],
        ));
    }
    value
}

fn key_for(index: usize) -> String {
    format!("key-{:04}", index % KEY_COUNT)
}

struct Consumed {
    partition: u32,
    offset: i64,
    key: String,
    value: String,
    headers: String,
}

fn parse_consumed_line(line: &str) -> Consumed {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for field in line.split(' ') {
        let (name, value) = field.split_once('=').unwrap_or((field, ""));
        fields.insert(name, value);
    }
    // Headers contain '=' themselves, so take everything after " H=".
    let headers = line.split_once(" H=").map(|(_, h)| h).unwrap_or("");
    Consumed {
        partition: fields["P"].parse().unwrap(),
        offset: fields["O"].parse().unwrap(),
        key: fields["K"].to_string(),
        value: fields["V"].to_string(),
        headers: headers.to_string(),
    }
}

/// Produces `message_count` keyed messages with headers through kcat (with `codec`, if any),
/// reads them back with kcat, and checks every byte, per-partition order and key placement.
fn produce_and_consume_byte_identical(broker: &Broker, codec: Option<&str>, message_count: usize) {
    let bootstrap = broker.bootstrap();
    let topic = format!("kcat-{}", codec.unwrap_or("none"));

    let mut input = String::with_capacity(message_count * 80);
    for index in 0..message_count {
        input.push_str(&key_for(index));
        input.push(':');
        input.push_str(&value_for(index));
        input.push('\n');
    }
    let mut produce_args = vec!["-P", "-t", &topic, "-K:", "-X", "linger.ms=20"];
    let header_args: Vec<String> = HEADERS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for header in &header_args {
        produce_args.extend(["-H", header.as_str()]);
    }
    if let Some(codec) = codec {
        produce_args.extend(["-z", codec]);
    }
    let started = Instant::now();
    let produced = run_kcat(
        &bootstrap,
        &produce_args,
        Some(input.into_bytes()),
        KCAT_TIMEOUT,
    )
    .unwrap();
    assert!(
        produced.status.success(),
        "kcat -P failed: {}\nbroker log:\n{}",
        produced.describe(),
        broker.log_tail(4096)
    );
    let produce_elapsed = started.elapsed();

    let started = Instant::now();
    let consumed = run_kcat(
        &bootstrap,
        &[
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            CONSUME_FORMAT,
        ],
        None,
        KCAT_TIMEOUT,
    )
    .unwrap();
    assert!(
        consumed.status.success(),
        "kcat -C failed: {}\nbroker log:\n{}",
        consumed.describe(),
        broker.log_tail(4096)
    );
    eprintln!(
        "codec {codec:?}: produced {message_count} in {produce_elapsed:?}, consumed in {:?}",
        started.elapsed()
    );

    let expected_headers = header_args.join(",");
    let mut seen = vec![false; message_count];
    let mut last_index_in_partition: HashMap<u32, (i64, usize)> = HashMap::new();
    let mut partition_of_key: HashMap<String, u32> = HashMap::new();
    let stdout = consumed.stdout_text();
    for line in stdout.lines() {
        let record = parse_consumed_line(line);
        let index: usize = record.value[1..7].parse().unwrap();
        assert!(index < message_count, "unknown value {line:?}");
        assert!(!seen[index], "message {index} consumed twice: {line:?}");
        seen[index] = true;
        assert_eq!(record.value, value_for(index), "value of message {index}");
        assert_eq!(record.key, key_for(index), "key of message {index}");
        assert_eq!(record.headers, expected_headers, "headers of {index}");
        if let Some((last_offset, last_index)) = last_index_in_partition.get(&record.partition) {
            assert!(
                record.offset > *last_offset && index > *last_index,
                "partition {} out of order: offset {} index {index} after offset {last_offset} index {last_index}",
                record.partition,
                record.offset
            );
        }
        last_index_in_partition.insert(record.partition, (record.offset, index));
        let placed = partition_of_key
            .entry(record.key.clone())
            .or_insert(record.partition);
        assert_eq!(
            *placed, record.partition,
            "key {} in two partitions",
            record.key
        );
    }
    let missing = seen.iter().filter(|seen| !**seen).count();
    assert_eq!(
        missing, 0,
        "{missing} of {MESSAGE_COUNT} messages never came back"
    );
}

#[test]
fn kcat_round_trips_100k_keyed_messages_with_headers_uncompressed() {
    produce_and_consume_byte_identical(&broker(), None, MESSAGE_COUNT);
}

#[test]
fn kcat_round_trips_100k_messages_gzip() {
    produce_and_consume_byte_identical(&broker(), Some("gzip"), MESSAGE_COUNT);
}

#[test]
fn kcat_round_trips_100k_messages_snappy() {
    produce_and_consume_byte_identical(&broker(), Some("snappy"), MESSAGE_COUNT);
}

#[test]
fn kcat_round_trips_100k_messages_lz4() {
    produce_and_consume_byte_identical(&broker(), Some("lz4"), MESSAGE_COUNT);
}

#[test]
fn kcat_round_trips_100k_messages_zstd() {
    produce_and_consume_byte_identical(&broker(), Some("zstd"), MESSAGE_COUNT);
}

/// The copying fetch path (kept for comparison with sendfile, and for TLS) serves the same bytes.
#[test]
fn kcat_round_trips_messages_on_the_copying_fetch_path() {
    produce_and_consume_byte_identical(&broker_with_args(&["--fetch-copy"]), None, 20_000);
}

#[test]
fn kcat_metadata_lists_the_broker_and_its_topics() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    for topic in ["listed-one", "listed-two"] {
        let produced = run_kcat(
            &bootstrap,
            &["-P", "-t", topic],
            Some(b"hello\n".to_vec()),
            KCAT_TIMEOUT,
        )
        .unwrap();
        assert!(produced.status.success(), "{}", produced.describe());
    }
    let listed = run_kcat(&bootstrap, &["-L", "-J"], None, KCAT_TIMEOUT).unwrap();
    assert!(listed.status.success(), "{}", listed.describe());
    let metadata: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let brokers = metadata["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "one node: {metadata}");
    assert_eq!(brokers[0]["name"].as_str().unwrap(), format!("{bootstrap}"));
    let topics = metadata["topics"].as_array().unwrap();
    for expected in ["listed-one", "listed-two"] {
        let topic = topics
            .iter()
            .find(|t| t["topic"] == expected)
            .unwrap_or_else(|| panic!("topic {expected} not listed: {metadata}"));
        let partitions = topic["partitions"].as_array().unwrap();
        assert_eq!(partitions.len(), PARTITION_COUNT as usize, "{topic}");
        for partition in partitions {
            assert_eq!(partition["leader"], brokers[0]["id"], "{partition}");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `kcat -Q -t topic:0:<ts>` prints `topic [0] offset N`; returns N.
fn query_offset(bootstrap: &str, topic: &str, timestamp_ms: i64) -> i64 {
    let spec = format!("{topic}:0:{timestamp_ms}");
    let queried = run_kcat(bootstrap, &["-Q", "-t", &spec], None, KCAT_TIMEOUT).unwrap();
    assert!(queried.status.success(), "{}", queried.describe());
    let stdout = queried.stdout_text();
    let offset = stdout
        .lines()
        .find_map(|line| {
            line.split_once(" offset ")
                .map(|(_, n)| n.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no offset in {stdout:?}"));
    offset.parse().unwrap()
}

#[test]
fn kcat_query_finds_offsets_by_timestamp() {
    const BATCH_COUNT: usize = 1_000;
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();
    let topic = "by-timestamp";
    let batch = |tag: &str| -> Vec<u8> {
        (0..BATCH_COUNT)
            .map(|i| format!("{tag}-{i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let produce = |bytes: Vec<u8>| {
        let produced = run_kcat(
            &bootstrap,
            &["-P", "-t", topic, "-p", "0"],
            Some(bytes),
            KCAT_TIMEOUT,
        )
        .unwrap();
        assert!(produced.status.success(), "{}", produced.describe());
    };
    let before_first_ms = now_ms() - 1;
    produce(batch("first"));
    std::thread::sleep(Duration::from_millis(50));
    let between_ms = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    produce(batch("second"));

    let first = BATCH_COUNT as i64;
    assert_eq!(query_offset(&bootstrap, topic, before_first_ms), 0);
    assert_eq!(query_offset(&bootstrap, topic, between_ms), first);
    assert_eq!(
        query_offset(&bootstrap, topic, now_ms() + 3_600_000),
        -1,
        "a timestamp after every record has no offset"
    );
    // The logical timestamps: -1 is the end of the log, -2 its start.
    assert_eq!(query_offset(&bootstrap, topic, -1), 2 * first);
    assert_eq!(query_offset(&bootstrap, topic, -2), 0);
}
