//! A minimal Kafka consumer for measuring the broker's fetch path, not the client's.
//!
//! It sends Fetch v12 requests for one partition with large limits, reads each response
//! frame, finds the next offset from the last batch header and counts bytes. It never
//! decompresses or parses records, so a single client core can pull far more than a real
//! consumer (kcat) and the broker side (sendfile vs copy) becomes the bottleneck.
//!
//! Usage: `cargo run --release -p spate-server --example fetch_load -- HOST:PORT TOPIC [ROUNDS]`
//! Reads the partition from offset 0 to its high watermark ROUNDS times (default 5) and
//! prints MB/s per round. Produce the data first (for example with kcat).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use spate_protocol::api_key::ApiKey;
use spate_protocol::header::{RequestHeader, ResponseHeader};
use spate_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use spate_protocol::messages::{FetchRequest, FetchResponse};
use spate_protocol::wire::{Decode, Encode};

const FETCH_VERSION: i16 = 12;
const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).expect("HOST:PORT");
    let topic = args.get(2).expect("TOPIC");
    let rounds: usize = args.get(3).map_or(5, |r| r.parse().unwrap());
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    for round in 0..rounds {
        let started = Instant::now();
        let (mut offset, mut bytes_total, mut high_watermark) = (0i64, 0u64, i64::MAX);
        let mut correlation_id = 0;
        while offset < high_watermark {
            correlation_id += 1;
            let (records, hw) = fetch(&mut stream, topic, offset, correlation_id);
            high_watermark = hw;
            bytes_total += records.len() as u64;
            match next_offset(&records) {
                Some(next) => offset = next,
                None if offset < high_watermark => panic!("no progress at offset {offset}"),
                None => {}
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "round {round}: {bytes_total} bytes, {offset} records in {seconds:.3} s = {:.1} MB/s",
            bytes_total as f64 / seconds / 1e6
        );
    }
}

fn fetch(stream: &mut TcpStream, topic: &str, offset: i64, correlation_id: i32) -> (Bytes, i64) {
    let header = RequestHeader {
        request_api_key: ApiKey::Fetch.id(),
        request_api_version: FETCH_VERSION,
        correlation_id,
        client_id: Some("fetch_load".into()),
        ..Default::default()
    };
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: FETCH_MAX_BYTES,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: FETCH_MAX_BYTES,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut frame = BytesMut::from(&[0u8; 4][..]);
    header
        .encode(
            &mut frame,
            ApiKey::Fetch.request_header_version(FETCH_VERSION),
        )
        .unwrap();
    request.encode(&mut frame, FETCH_VERSION).unwrap();
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).unwrap();

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut payload).unwrap();
    let mut payload = Bytes::from(payload);
    ResponseHeader::decode(&mut payload, 1).unwrap();
    let response = FetchResponse::decode(&mut payload, FETCH_VERSION).unwrap();
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    (
        partition.records.clone().unwrap_or_default(),
        partition.high_watermark,
    )
}

/// The offset after the last whole batch in `records`.
fn next_offset(records: &[u8]) -> Option<i64> {
    let mut position = 0;
    let mut next = None;
    while records.len() >= position + 27 {
        let base = i64::from_be_bytes(records[position..position + 8].try_into().unwrap());
        let length = i32::from_be_bytes(records[position + 8..position + 12].try_into().unwrap());
        let end = position + 12 + length as usize;
        if end > records.len() {
            break;
        }
        let delta = i32::from_be_bytes(records[position + 23..position + 27].try_into().unwrap());
        next = Some(base + i64::from(delta) + 1);
        position = end;
    }
    next
}
