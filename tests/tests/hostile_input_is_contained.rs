//! Hostile input is contained: each malformed or malicious request gets the Kafka error a real
//! broker sends, or closes only its own connection, and never crashes the broker, hangs it, or
//! makes it allocate what a length field claims. Every test ends by proving the broker still
//! serves a fresh client (ApiVersions and Metadata round trips) and is still running.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use spate_tests::Broker;
use spate_tests::kafka_requests::{
    api_versions_v0, check_broker_serves, decode_api_versions_v0, metadata_v4, produce_v7,
};
use spate_tests::record_batch::{CRC_OFFSET, TestRecord, encode_batch};
use spate_tests::wire::{FrameRead, KafkaConnection, api_key, error_code, request_frame};

/// A broker may grow a little while serving; growing by this much means it allocated what a
/// hostile length field asked for.
const RSS_GROWTH_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Kafka's default `max.message.bytes` is 1,048,588; this value is comfortably over it.
const OVERSIZED_VALUE_BYTES: usize = 1_572_864;

fn assert_still_serving(broker: &mut Broker) {
    assert!(
        broker.is_running(),
        "broker died:\n{}",
        broker.log_tail(8192)
    );
    if let Err(reason) = check_broker_serves(broker.kafka_addr()) {
        panic!(
            "broker no longer serves a fresh client: {reason}\n{}",
            broker.log_tail(8192)
        );
    }
    if let Some(line) = broker.first_panic_line() {
        panic!("the broker panicked on hostile input: {line}");
    }
}

fn rss_bytes(broker: &Broker) -> u64 {
    let pid = broker.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kilobytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap();
    kilobytes * 1024
}

/// Reads what the broker does with a bad frame: it must close the connection or answer; a
/// broker that does neither within the read timeout fails the test.
fn closed_or_answered(connection: &mut KafkaConnection) -> FrameRead {
    connection
        .read_frame()
        .unwrap_or_else(|error| panic!("broker neither answered nor closed: {error}"))
}

fn assert_closed(connection: &mut KafkaConnection, what: &str) {
    match closed_or_answered(connection) {
        FrameRead::Closed => {}
        FrameRead::Frame(frame) => panic!("{what}: expected the connection closed, got {frame:?}"),
    }
}

fn connect(broker: &Broker) -> KafkaConnection {
    KafkaConnection::connect(broker.kafka_addr()).unwrap()
}

/// Makes sure `topic` exists (Metadata with auto-creation) before producing to it.
fn ensure_topic(broker: &Broker, topic: &str) {
    let mut connection = connect(broker);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = metadata_v4(&mut connection, Some(&[topic]), true).unwrap();
        let ready = metadata
            .topics
            .iter()
            .any(|t| t.name == topic && t.error_code == 0 && t.partition_count > 0);
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} not created: {metadata:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn small_batch(tag: &str) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..3)
        .map(|i| TestRecord::value(format!("{tag}-{i}")))
        .collect();
    encode_batch(&records, 1_700_000_000_000)
}

#[test]
fn garbage_bytes_close_only_their_own_connection() {
    let mut broker = Broker::start().unwrap();
    let mut bystander = connect(&broker);
    assert_eq!(api_versions_v0(&mut bystander).unwrap().error_code, 0);

    // Text where a frame length belongs: "GET " reads as a 1.2 GB frame.
    let mut http = connect(&broker);
    http.send_raw(b"GET /metrics HTTP/1.1\r\nHost: spate\r\n\r\n")
        .unwrap();
    assert_closed(&mut http, "HTTP request on the Kafka port");

    // A plausible frame length followed by pseudo-random bytes.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut garbage = 4092i32.to_be_bytes().to_vec();
    while garbage.len() < 4096 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        garbage.push(state as u8);
    }
    let mut random = connect(&broker);
    random.send_raw(&garbage).unwrap();
    closed_or_answered(&mut random);

    // The connection opened before the garbage is unaffected.
    assert_eq!(api_versions_v0(&mut bystander).unwrap().error_code, 0);
    assert_still_serving(&mut broker);
}

#[test]
fn negative_frame_length_closes_the_connection() {
    let mut broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    connection.send_raw(&(-1i32).to_be_bytes()).unwrap();
    connection.send_raw(&[0u8; 16]).unwrap();
    assert_closed(&mut connection, "frame length -1");
    assert_still_serving(&mut broker);
}

#[test]
fn oversized_frame_length_closes_the_connection_without_allocating_it() {
    let mut broker = Broker::start().unwrap();
    let rss_before = rss_bytes(&broker);
    let mut connection = connect(&broker);
    connection.send_raw(&0x7fff_fff0i32.to_be_bytes()).unwrap();
    connection.send_raw(&[0u8; 64]).unwrap();
    assert_closed(&mut connection, "frame length 2 GiB");
    let rss_growth = rss_bytes(&broker).saturating_sub(rss_before);
    assert!(
        rss_growth < RSS_GROWTH_BYTES_MAX,
        "RSS grew by {rss_growth} bytes after a 2 GiB frame length"
    );
    assert_still_serving(&mut broker);
}

#[test]
fn unknown_api_key_is_refused_without_harm() {
    let mut broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    connection.send_request(32_000, 0, &[0u8; 8]).unwrap();
    // Kafka closes the connection; an error answer is also acceptable. A hang is not.
    closed_or_answered(&mut connection);
    assert_still_serving(&mut broker);
}

#[test]
fn unsupported_api_versions_version_gets_the_v0_unsupported_version_reply() {
    let mut broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    // Version 127 of ApiVersions, with a body no version defines: only the header matters.
    let body = connection
        .round_trip(api_key::API_VERSIONS, 127, &[0u8; 4])
        .unwrap();
    let reply = decode_api_versions_v0(&body).unwrap();
    assert_eq!(reply.error_code, error_code::UNSUPPORTED_VERSION);
    let range = reply
        .range(api_key::API_VERSIONS)
        .unwrap_or_else(|| panic!("the reply must list ApiVersions' own range: {reply:?}"));
    assert_eq!(range.min_version, 0);
    assert!(range.max_version >= 3, "{range:?}");
    let produce = reply.range(api_key::PRODUCE).unwrap();
    assert_eq!(produce.min_version, 0, "Produce is advertised from v0");
    // Clients such as franz-go retry on the same connection with a version from the list.
    let retried = api_versions_v0(&mut connection).unwrap();
    assert_eq!(retried.error_code, error_code::NONE);
    assert_still_serving(&mut broker);
}

#[test]
fn metadata_with_array_length_i32_max_is_refused_without_allocating() {
    let mut broker = Broker::start().unwrap();
    let rss_before = rss_bytes(&broker);
    let mut connection = connect(&broker);
    // The 4-byte Metadata v1 body that aborts kafka-protocol 0.18: topics array of i32::MAX.
    connection
        .send_request(api_key::METADATA, 1, &i32::MAX.to_be_bytes())
        .unwrap();
    closed_or_answered(&mut connection);
    let rss_growth = rss_bytes(&broker).saturating_sub(rss_before);
    assert!(
        rss_growth < RSS_GROWTH_BYTES_MAX,
        "RSS grew by {rss_growth} bytes"
    );
    assert_still_serving(&mut broker);
}

#[test]
fn produce_with_bad_crc_is_refused_with_corrupt_message() {
    let mut broker = Broker::start().unwrap();
    ensure_topic(&broker, "crc");
    let mut connection = connect(&broker);
    let good = produce_v7(&mut connection, "crc", 0, &small_batch("good"), 1).unwrap();
    assert_eq!(
        good.error_code,
        error_code::NONE,
        "a correct batch is accepted"
    );
    assert_eq!(good.base_offset, 0);

    let mut corrupt = small_batch("bad");
    corrupt[CRC_OFFSET] ^= 0x5a;
    let refused = produce_v7(&mut connection, "crc", 0, &corrupt, 1).unwrap();
    assert_eq!(refused.error_code, error_code::CORRUPT_MESSAGE);

    // Payload bytes flipped under an intact CRC are caught too.
    let mut flipped = small_batch("flip");
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let refused = produce_v7(&mut connection, "crc", 0, &flipped, 1).unwrap();
    assert_eq!(refused.error_code, error_code::CORRUPT_MESSAGE);

    let after = produce_v7(&mut connection, "crc", 0, &small_batch("after"), 1).unwrap();
    assert_eq!(after.error_code, error_code::NONE);
    assert_eq!(
        after.base_offset, 3,
        "the refused batches were not appended"
    );
    assert_still_serving(&mut broker);
}

#[test]
fn oversized_batch_is_refused_with_message_too_large() {
    let mut broker = Broker::start().unwrap();
    ensure_topic(&broker, "big");
    let mut connection = connect(&broker);
    let oversized = encode_batch(&[TestRecord::value(vec![7u8; OVERSIZED_VALUE_BYTES])], 0);
    let refused = produce_v7(&mut connection, "big", 0, &oversized, 1).unwrap();
    assert_eq!(refused.error_code, error_code::MESSAGE_TOO_LARGE);
    let after = produce_v7(&mut connection, "big", 0, &small_batch("fits"), 1).unwrap();
    assert_eq!(after.error_code, error_code::NONE);
    assert_eq!(after.base_offset, 0, "the oversized batch was not appended");
    assert_still_serving(&mut broker);
}

#[test]
fn invalid_topic_names_are_refused_with_invalid_topic_exception() {
    let mut broker = Broker::start().unwrap();
    let mut connection = connect(&broker);
    let too_long = "x".repeat(250);
    let names = ["bad topic!", "..", "slash/name", too_long.as_str()];
    let metadata = metadata_v4(&mut connection, Some(&names), true).unwrap();
    for name in names {
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no answer for {name:?}: {metadata:?}"));
        assert_eq!(
            topic.error_code,
            error_code::INVALID_TOPIC_EXCEPTION,
            "topic {name:?}"
        );
    }
    let all = metadata_v4(&mut connection, None, false).unwrap();
    assert!(
        all.topics.iter().all(|t| !names.contains(&t.name.as_str())),
        "an invalid topic was created: {all:?}"
    );
    assert_still_serving(&mut broker);
}

fn open_fd_count(broker: &Broker) -> usize {
    let pid = broker.pid().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_thousand_connections_opened_and_dropped_leave_no_trace() {
    const CONNECTION_COUNT: usize = 1_000;
    /// Connections held open at once; stays under a default 1024 `ulimit -n`.
    const WAVE_SIZE: usize = 100;
    /// File descriptors the broker may legitimately have gained (segments, timers).
    const FD_SLACK: usize = 16;

    let mut broker = Broker::start().unwrap();
    assert_still_serving(&mut broker);
    let fds_before = open_fd_count(&broker);
    let addr = broker.kafka_addr();
    let api_versions = request_frame(api_key::API_VERSIONS, 0, 1, &[]);
    let mut opened = 0;
    while opened < CONNECTION_COUNT {
        let mut wave = Vec::with_capacity(WAVE_SIZE);
        for index in opened..(opened + WAVE_SIZE).min(CONNECTION_COUNT) {
            let mut stream = TcpStream::connect(addr).unwrap();
            // A mix: silent, a partial frame, and a full request whose answer is never read.
            match index % 3 {
                0 => {}
                1 => stream.write_all(&[0, 0, 0, 100, 0, 18]).unwrap(),
                _ => stream.write_all(&api_versions).unwrap(),
            }
            wave.push(stream);
        }
        opened += wave.len();
        drop(wave);
    }
    assert_still_serving(&mut broker);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fds_now = open_fd_count(&broker);
        if fds_now <= fds_before + FD_SLACK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker holds {fds_now} fds after {CONNECTION_COUNT} dropped connections (was {fds_before})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
