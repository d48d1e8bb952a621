//! Kafka's ordering contract on one connection: requests may be pipelined and the answers come
//! back in request order, whatever mix of APIs is in flight; and a Produce with `acks = 0` gets
//! no answer at all (an answer would be read as the reply to the next request), yet is stored.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::{Duration, Instant};

use spate_tests::Broker;
use spate_tests::kafka_requests::{
    decode_api_versions_v0, decode_produce_v7, metadata_v4, produce_v7, produce_v7_body,
};
use spate_tests::record_batch::{TestRecord, encode_batch};
use spate_tests::wire::{Decoder, FrameRead, KafkaConnection, api_key, error_code};

/// Requests written before the first answer is read.
const PIPELINE_DEPTH: usize = 90;

const RECORDS_PER_BATCH: i64 = 3;

fn batch(tag: usize) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord::value(format!("{tag}-{i}")))
        .collect();
    encode_batch(&records, 1_700_000_000_000)
}

fn ensure_topic(connection: &mut KafkaConnection, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = metadata_v4(connection, Some(&[topic]), true).unwrap();
        if metadata
            .topics
            .iter()
            .any(|t| t.name == topic && t.error_code == 0 && t.partition_count > 0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not created: {metadata:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_answer(connection: &mut KafkaConnection) -> (i32, Vec<u8>) {
    match connection.read_frame().unwrap() {
        FrameRead::Frame(frame) => {
            let correlation_id = Decoder::new(&frame).i32().unwrap();
            (correlation_id, frame[4..].to_vec())
        }
        FrameRead::Closed => panic!("broker closed a healthy pipelined connection"),
    }
}

#[test]
fn pipelined_requests_of_mixed_apis_are_answered_in_request_order() {
    let broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    ensure_topic(&mut connection, "pipelined");

    // Produce (disk and possibly another core), ApiVersions and Metadata (no I/O) interleaved,
    // so a broker that answered whatever finished first would reorder them.
    let mut sent = Vec::new();
    for index in 0..PIPELINE_DEPTH {
        let (key, id) = match index % 3 {
            0 => {
                let body = produce_v7_body("pipelined", 0, &batch(index), -1);
                (
                    api_key::PRODUCE,
                    connection.send_request(api_key::PRODUCE, 7, &body),
                )
            }
            1 => (
                api_key::API_VERSIONS,
                connection.send_request(api_key::API_VERSIONS, 0, &[]),
            ),
            _ => (
                api_key::METADATA,
                connection.send_request(api_key::METADATA, 4, &[255, 255, 255, 255, 0]),
            ),
        };
        sent.push((key, id.unwrap()));
    }
    let mut next_base_offset = 0;
    for (key, correlation_id) in sent {
        let (answered_id, body) = read_answer(&mut connection);
        assert_eq!(answered_id, correlation_id, "answer out of order");
        match key {
            api_key::PRODUCE => {
                let reply = decode_produce_v7(&body).unwrap();
                assert_eq!(reply.error_code, error_code::NONE);
                assert_eq!(
                    reply.base_offset, next_base_offset,
                    "batches appended in order"
                );
                next_base_offset += RECORDS_PER_BATCH;
            }
            api_key::API_VERSIONS => {
                assert_eq!(decode_api_versions_v0(&body).unwrap().error_code, 0);
            }
            _ => {}
        }
    }
}

#[test]
fn produce_with_acks_zero_gets_no_answer_and_is_still_stored() {
    let broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    ensure_topic(&mut connection, "fire-and-forget");

    let body = produce_v7_body("fire-and-forget", 0, &batch(0), 0);
    connection.send_request(api_key::PRODUCE, 7, &body).unwrap();
    let versions_id = connection
        .send_request(api_key::API_VERSIONS, 0, &[])
        .unwrap();
    let (answered_id, _) = read_answer(&mut connection);
    assert_eq!(
        answered_id, versions_id,
        "the first answer must be ApiVersions': acks=0 is never answered"
    );

    let after = produce_v7(&mut connection, "fire-and-forget", 0, &batch(1), 1).unwrap();
    assert_eq!(after.error_code, error_code::NONE);
    assert_eq!(
        after.base_offset, RECORDS_PER_BATCH,
        "the acks=0 batch was stored before the next one"
    );
}
