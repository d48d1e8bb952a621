//! A bounded, seeded mini-fuzz over the wire: 10,000 mutations of valid requests (bytes flipped,
//! frames truncated or padded, length and array fields overwritten, versions changed across the
//! advertised range, flexible ones included) are thrown at the broker. It may answer or close
//! each connection as it likes, but it must not crash, hang, or grow without bound, and it must
//! keep serving a fresh client throughout, and never log a panic. The seed is printed, so a
//! failure replays exactly. For a longer campaign, set `SPATE_TESTS_FUZZ_SEED` and
//! `SPATE_TESTS_FUZZ_COUNT` (e.g. a new seed per night and a million mutations).
//!
//! CreateTopics and CreatePartitions are left out on purpose: a mutated partition count is a
//! legitimate (if huge) request, and honouring it would fill the disk rather than test decoding.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use spate_tests::Broker;
use spate_tests::admin_requests::{DELETE_TOPICS, DESCRIBE_CONFIGS};
use spate_tests::fetch_request::{FetchParams, fetch_v5_body};
use spate_tests::kafka_requests::{check_broker_serves, produce_v7_body};
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::{Encoder, api_key, request_frame};

/// About 2.5 s against a debug broker; longer campaigns set `SPATE_TESTS_FUZZ_COUNT`.
const MUTATION_COUNT_DEFAULT: usize = 10_000;
const FRAMES_PER_CONNECTION: usize = 10;
const CHECK_EVERY_FRAMES: usize = 500;
const SEED_DEFAULT: u64 = 0x05EE_D0F5_BA7E;
/// Growth of the broker's resident memory that would mean a length field was trusted.
const RSS_GROWTH_BYTES_MAX: u64 = 256 * 1024 * 1024;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Valid requests to start from: (api key, version, body).
fn seeds() -> Vec<(i16, i16, Vec<u8>)> {
    let batch = encode_batch(
        &[TestRecord::value("seed"), TestRecord::value("corpus")],
        1_700_000_000_000,
    );
    let mut metadata = Encoder::default();
    metadata.array_len(1).string("fuzzed").i8(1);
    let fetch = fetch_v5_body(&FetchParams {
        topic: "fuzzed",
        partition: 0,
        fetch_offset: 0,
        max_wait_ms: 10,
        min_bytes: 1,
        max_bytes: 1024 * 1024,
        partition_max_bytes: 1024 * 1024,
    });
    let mut describe = Encoder::default();
    describe.array_len(1).i8(2).string("fuzzed").i32(-1).i8(0);
    let mut delete = Encoder::default();
    delete.array_len(1).string("no-such-topic").i32(1_000);
    let mut init_producer = Encoder::default();
    init_producer.null_string().i32(60_000);
    vec![
        (api_key::API_VERSIONS, 0, Vec::new()),
        (api_key::METADATA, 4, metadata.bytes),
        (api_key::PRODUCE, 7, produce_v7_body("fuzzed", 0, &batch, 1)),
        (api_key::FETCH, 5, fetch),
        (DESCRIBE_CONFIGS, 1, describe.bytes),
        (DELETE_TOPICS, 1, delete.bytes),
        (api_key::INIT_PRODUCER_ID, 1, init_producer.bytes),
    ]
}

/// One mutated frame from a seed.
fn mutate(rng: &mut XorShift, key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let version = if rng.below(3) == 0 {
        (rng.below(16)) as i16 // anything from v0 to v15, flexible versions included
    } else {
        version
    };
    let mut frame = request_frame(key, version, rng.next() as i32, body);
    match rng.below(5) {
        0 => {
            for _ in 0..=rng.below(8) {
                let at = 4 + rng.below(frame.len() - 4);
                frame[at] ^= 1 << rng.below(8);
            }
        }
        1 => {
            // Overwrite four bytes in the body with an extreme length/count.
            let extremes = [i32::MAX, i32::MIN, -1, -2, 0x7fff, 0x1_0000];
            let value = extremes[rng.below(extremes.len())].to_be_bytes();
            if frame.len() > 12 {
                let at = 12 + rng.below(frame.len() - 12);
                let end = (at + 4).min(frame.len());
                frame[at..end].copy_from_slice(&value[..end - at]);
            }
        }
        2 => {
            // Truncate, keeping the frame length consistent: a short body.
            let keep = 10 + rng.below(frame.len() - 10);
            frame.truncate(keep);
            let length = (keep - 4) as i32;
            frame[..4].copy_from_slice(&length.to_be_bytes());
        }
        3 => {
            // Trailing garbage inside the frame.
            let extra = rng.below(64) + 1;
            frame.extend((0..extra).map(|_| rng.next() as u8));
            let length = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&length.to_be_bytes());
        }
        _ => {
            // Random compact-string/varint-looking bytes spliced into the header's tail.
            let at = 8.min(frame.len());
            let splice: Vec<u8> = (0..rng.below(6) + 1)
                .map(|_| 0x80 | rng.next() as u8)
                .collect();
            frame.splice(at..at, splice);
            let length = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&length.to_be_bytes());
        }
    }
    frame
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[test]
fn ten_thousand_mutated_requests_leave_the_broker_serving() {
    let seed = env_number("SPATE_TESTS_FUZZ_SEED").unwrap_or(SEED_DEFAULT);
    let mutation_count =
        env_number("SPATE_TESTS_FUZZ_COUNT").map_or(MUTATION_COUNT_DEFAULT, |count| count as usize);
    eprintln!("seed {seed:#x}, {mutation_count} mutations");
    let mut broker = Broker::start().unwrap();
    check_broker_serves(broker.kafka_addr()).unwrap();
    let pid = broker.pid().unwrap();
    let rss_before = rss_bytes(pid);
    let seeds = seeds();
    let mut rng = XorShift(seed | 1);
    let mut stream: Option<TcpStream> = None;
    for index in 0..mutation_count {
        if index % FRAMES_PER_CONNECTION == 0 {
            stream = TcpStream::connect(broker.kafka_addr()).ok();
        }
        let (key, version, body) = &seeds[rng.below(seeds.len())];
        let frame = mutate(&mut rng, *key, *version, body);
        if let Some(open) = stream.as_mut()
            && open.write_all(&frame).is_err()
        {
            // The broker closed this connection, as it may for a malformed frame.
            stream = TcpStream::connect(broker.kafka_addr()).ok();
        }
        if index % CHECK_EVERY_FRAMES == CHECK_EVERY_FRAMES - 1 {
            assert!(
                broker.is_running(),
                "broker died after mutation {index} (seed {seed:#x}):\n{}",
                broker.log_tail(8192)
            );
            if let Err(reason) = check_broker_serves(broker.kafka_addr()) {
                panic!("after mutation {index} (seed {seed:#x}): {reason}");
            }
        }
    }
    drop(stream);
    std::thread::sleep(Duration::from_millis(200));
    assert!(broker.is_running(), "{}", broker.log_tail(8192));
    check_broker_serves(broker.kafka_addr()).unwrap();
    let rss_growth = rss_bytes(pid).saturating_sub(rss_before);
    assert!(
        rss_growth < RSS_GROWTH_BYTES_MAX,
        "RSS grew by {rss_growth} bytes over {mutation_count} mutated requests"
    );
    if let Some(line) = broker.first_panic_line() {
        panic!("the broker panicked on mutated input (seed {seed:#x}): {line}");
    }
}
