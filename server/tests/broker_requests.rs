//! The broker answering raw Kafka requests in-process: produce/fetch round trips, long
//! polls, admin operations, and hostile input that must close only the offending connection.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, TestBroker, batch, create_topic, fetch, metadata_for, produce};
use spate_protocol::api_key::ApiKey;
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::*;
use spate_protocol::records::read_all_records;
use spate_protocol::wire::Encode;

#[test]
fn produced_batches_are_fetched_back_byte_identical_with_assigned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    let meta = metadata_for(&mut client, "orders");
    assert_eq!(meta.topics[0].error_code, 0, "auto-created");
    assert_eq!(produce(&mut client, "orders", 0, batch(3)), (0, 0));
    assert_eq!(produce(&mut client, "orders", 0, batch(2)), (0, 3));
    // Offset 4 is inside the second batch: the whole batch comes back.
    let (code, high_watermark, records) = fetch(&mut client, "orders", 4, 0);
    assert_eq!((code, high_watermark), (0, 5));
    let got = read_all_records(&records, 1 << 20).unwrap();
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [3, 4]);
    assert_eq!(got[1].value.as_deref(), Some(&b"value-1"[..]));
}

#[test]
fn fetch_long_polls_until_data_arrives_or_max_wait_passes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "quiet", 1, &[]), 0);
    let started = Instant::now();
    let (code, _, records) = fetch(&mut client, "quiet", 0, 300);
    assert_eq!(code, 0);
    assert!(records.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(290));

    let addr = broker.kafka;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        produce(&mut Client::connect(addr), "quiet", 0, batch(1));
    });
    let started = Instant::now();
    let (_, _, records) = fetch(&mut client, "quiet", 0, 10_000);
    assert!(!records.is_empty(), "woken by the append");
    assert!(started.elapsed() < Duration::from_secs(5));
    producer.join().unwrap();
}

#[test]
fn fetch_past_the_log_end_is_offset_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    produce_to_new_topic(&mut client, "short");
    let (code, _, _) = fetch(&mut client, "short", 1000, 0);
    assert_eq!(code, 1);
}

fn produce_to_new_topic(client: &mut Client, topic: &str) {
    assert_eq!(create_topic(client, topic, 1, &[]), 0);
    assert_eq!(produce(client, topic, 0, batch(1)).0, 0);
}

#[test]
fn bad_crc_is_corrupt_message_and_oversize_batch_is_message_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(
        create_topic(&mut client, "small", 1, &[("max.message.bytes", "200")]),
        0
    );
    let mut corrupt = batch(2).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(produce(&mut client, "small", 0, Bytes::from(corrupt)).0, 2);
    assert_eq!(produce(&mut client, "small", 0, batch(50)).0, 10);
    assert_eq!(produce(&mut client, "small", 0, batch(1)), (0, 0));
}

#[test]
fn invalid_topic_names_and_configs_get_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "bad/name", 1, &[]), 17);
    assert_eq!(create_topic(&mut client, "ok", 1, &[("no.such", "1")]), 40);
    assert_eq!(
        create_topic(&mut client, "ok", 1, &[("retention.ms", "x")]),
        40
    );
    assert_eq!(create_topic(&mut client, "ok", 0, &[]), 37);
    assert_eq!(create_topic(&mut client, "ok", 1, &[]), 0);
    assert_eq!(create_topic(&mut client, "ok", 1, &[]), 36);
    let meta = metadata_for(&mut client, "bad name");
    assert_eq!(meta.topics[0].error_code, 17);
    assert_eq!(produce(&mut client, "bad:name", 0, batch(1)).0, 17);
}

#[test]
fn unsupported_api_versions_version_gets_the_v0_reply_listing_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    // ApiVersions v99, header v2 (what a newer client would send).
    let mut frame = vec![0, 18, 0, 99, 0, 0, 0, 7, 0, 0, 0];
    frame.extend_from_slice(&[0; 3]);
    client.send_frame(&frame);
    let response = client.read_frame().unwrap();
    assert_eq!(&response[0..4], 7i32.to_be_bytes());
    assert_eq!(&response[4..6], 35i16.to_be_bytes());
    let count = i32::from_be_bytes(response[6..10].try_into().unwrap());
    assert!(count >= 13);
    // The same connection keeps working.
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
}

#[test]
fn hostile_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let hostile: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(), // garbage: length 0x47455420
        (-1i32).to_be_bytes().to_vec(),     // negative length
        (200i32 << 20).to_be_bytes().to_vec(), // 200 MiB > socket.request.max.bytes
        // Metadata v0 whose topic array claims i32::MAX entries.
        [
            &14i32.to_be_bytes()[..],
            &[0, 3, 0, 0, 0, 0, 0, 1, 0, 0],
            &i32::MAX.to_be_bytes(),
        ]
        .concat(),
        // A frame too short to hold a request header.
        [&2i32.to_be_bytes()[..], &[0, 3]].concat(),
    ];
    for bytes in hostile {
        let mut client = broker.client();
        client.stream.write_all_bytes(&bytes);
        assert!(client.is_closed(), "{bytes:?}");
    }
    // An unknown API key gets the ApiVersions fallback rather than silence.
    let mut client = broker.client();
    client.send_frame(&[0x7f, 0x00, 0, 0, 0, 0, 0, 9, 0xff, 0xff]);
    let response = client.read_frame().unwrap();
    assert_eq!(&response[0..4], 9i32.to_be_bytes());
    assert_eq!(&response[4..6], 35i16.to_be_bytes());
    // Others are still served.
    let meta = metadata_for(&mut broker.client(), "still-fine");
    assert_eq!(meta.topics[0].error_code, 0);
}

trait WriteAllBytes {
    fn write_all_bytes(&mut self, bytes: &[u8]);
}

impl WriteAllBytes for std::net::TcpStream {
    fn write_all_bytes(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.write_all(bytes).unwrap();
    }
}

#[test]
fn a_thousand_connections_opened_and_dropped_leave_the_broker_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    for _ in 0..1000 {
        drop(std::net::TcpStream::connect(broker.kafka).unwrap());
    }
    let meta = metadata_for(&mut broker.client(), "after-churn");
    assert_eq!(meta.topics[0].error_code, 0);
}

#[test]
fn topics_and_producer_ids_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(
        create_topic(&mut client, "durable", 2, &[("retention.ms", "60000")]),
        0
    );
    let id_before = metadata_for(&mut client, "durable").topics[0].topic_id;
    assert_eq!(produce(&mut client, "durable", 1, batch(4)), (0, 0));
    let pid_before: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: None,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    drop(client);
    broker.stop();

    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    let meta = metadata_for(&mut client, "durable");
    assert_eq!(meta.topics[0].topic_id, id_before);
    assert_eq!(meta.topics[0].partitions.len(), 2);
    assert_eq!(produce(&mut client, "durable", 1, batch(1)), (0, 4));
    let pid_after: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: None,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    assert!(
        pid_after.producer_id > pid_before.producer_id,
        "{pid_before:?} then {pid_after:?}"
    );
}

#[test]
fn acks_zero_gets_no_response_and_later_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    produce_to_new_topic(&mut client, "fire");
    let request = ProduceRequest {
        acks: 0,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: "fire".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(batch(1)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut frame = bytes::BytesMut::new();
    spate_protocol::header::RequestHeader {
        request_api_key: 0,
        request_api_version: 9,
        correlation_id: 1000,
        client_id: None,
        ..Default::default()
    }
    .encode(&mut frame, 2)
    .unwrap();
    request.encode(&mut frame, 9).unwrap();
    client.send_frame(&frame);
    // Every later response on the wire belongs to a later request (`call` checks the
    // correlation ids), and the acks=0 append lands.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, high_watermark, _) = fetch(&mut client, "fire", 0, 0);
        if high_watermark == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "acks=0 append never landed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn describe_topic_config(client: &mut Client, topic: &str, key: &str) -> (String, i8) {
    use spate_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let response: DescribeConfigsResponse = client.call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: 2,
                resource_name: topic.into(),
                configuration_keys: None,
                ..Default::default()
            }],
            include_synonyms: true,
            ..Default::default()
        },
    );
    let result = &response.results[0];
    assert_eq!(result.error_code, 0);
    let entry = result.configs.iter().find(|c| c.name == key).unwrap();
    (entry.value.clone().unwrap(), entry.config_source)
}

fn incremental(client: &mut Client, topic: &str, name: &str, op: i8, value: Option<&str>) -> i16 {
    use spate_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let response: IncrementalAlterConfigsResponse = client.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: 2,
                resource_name: topic.into(),
                configs: vec![AlterableConfig {
                    name: name.into(),
                    config_operation: op,
                    value: value.map(str::to_owned),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    response.responses[0].error_code
}

#[test]
fn topic_configs_are_altered_described_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(
        create_topic(&mut client, "tuned", 1, &[("segment.bytes", "1048576")]),
        0
    );
    assert_eq!(
        describe_topic_config(&mut client, "tuned", "segment.bytes"),
        ("1048576".into(), 1)
    );
    assert_eq!(
        describe_topic_config(&mut client, "tuned", "retention.ms").1,
        5
    );
    assert_eq!(
        incremental(&mut client, "tuned", "retention.ms", 0, Some("1234")),
        0
    );
    assert_eq!(
        describe_topic_config(&mut client, "tuned", "retention.ms"),
        ("1234".into(), 1)
    );
    // The earlier override is kept by an incremental change.
    assert_eq!(
        describe_topic_config(&mut client, "tuned", "segment.bytes").0,
        "1048576"
    );
    assert_eq!(
        incremental(&mut client, "tuned", "retention.ms", 1, None),
        0
    );
    assert_eq!(
        describe_topic_config(&mut client, "tuned", "retention.ms"),
        ("604800000".into(), 5)
    );
    assert_eq!(
        incremental(&mut client, "tuned", "no.such.config", 0, Some("1")),
        40
    );
    assert_eq!(
        incremental(&mut client, "tuned", "cleanup.policy", 0, Some("compact")),
        40
    );
    assert_eq!(
        incremental(&mut client, "missing", "retention.ms", 0, Some("1")),
        3
    );
}

#[test]
fn partitions_grow_and_topics_are_deleted() {
    use spate_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "grow", 1, &[]), 0);
    let grow = |client: &mut Client, count| -> i16 {
        let response: CreatePartitionsResponse = client.call(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: "grow".into(),
                    count,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 5000,
                ..Default::default()
            },
        );
        response.results[0].error_code
    };
    assert_eq!(grow(&mut client, 3), 0);
    assert_eq!(grow(&mut client, 2), 37);
    assert_eq!(
        metadata_for(&mut client, "grow").topics[0].partitions.len(),
        3
    );
    assert_eq!(produce(&mut client, "grow", 2, batch(1)), (0, 0));

    let response: DeleteTopicsResponse = client.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest {
            topic_names: vec!["grow".into(), "never-was".into()],
            timeout_ms: 5000,
            ..Default::default()
        },
    );
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(response.responses[1].error_code, 3);
    assert_eq!(produce(&mut client, "grow", 0, batch(1)).0, 3);
}

#[test]
fn shutdown_answers_requests_already_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "idle", 1, &[]), 0);
    let poller = std::thread::spawn(move || fetch(&mut client, "idle", 0, 1500));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    broker.stop();
    // The long poll was answered (not cut off) before the broker finished stopping.
    let (code, high_watermark, records) = poller.join().unwrap();
    assert_eq!((code, high_watermark), (0, 0));
    assert!(records.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}
