//! A leader that refuses a batch with NOT_LEADER_OR_FOLLOWER makes the producer refresh
//! metadata and resend the very same batch (same bytes, same sequence numbers), so the
//! idempotent producer's guarantees hold across leader moves. Scripted with a fake broker:
//! a single real broker never moves its leaders.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::fake_broker::{FakeBroker, single_partition_metadata};
use spate_client::{Producer, ProducerConfig, ProducerRecord};
use spate_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use spate_protocol::messages::{MetadataResponse, ProduceResponse};
use spate_protocol::{ErrorCode, RequestBody, ResponseBody};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_refreshes_metadata_and_resends_the_same_batch() {
    let metadata_requests = Arc::new(AtomicUsize::new(0));
    let produced: Arc<Mutex<Vec<(usize, Bytes)>>> = Arc::new(Mutex::new(Vec::new()));
    let port = Arc::new(Mutex::new(0));
    let handler = {
        let metadata_requests = metadata_requests.clone();
        let produced = produced.clone();
        let port = port.clone();
        Arc::new(
            move |_: &spate_protocol::RequestHeader, request: RequestBody| {
                Some(match request {
                    RequestBody::Metadata(_) => {
                        metadata_requests.fetch_add(1, Ordering::SeqCst);
                        single_partition_metadata("moving", *port.lock().unwrap())
                    }
                    RequestBody::InitProducerId(_) => {
                        ResponseBody::InitProducerId(InitProducerIdResponse {
                            producer_id: 1_000,
                            producer_epoch: 0,
                            ..Default::default()
                        })
                    }
                    RequestBody::Produce(request) => {
                        let records = request.topic_data[0].partition_data[0]
                            .records
                            .clone()
                            .unwrap();
                        let mut produced = produced.lock().unwrap();
                        let metadata_seen = metadata_requests.load(Ordering::SeqCst);
                        produced.push((metadata_seen, records));
                        let first = produced.len() == 1;
                        ResponseBody::Produce(ProduceResponse {
                            responses: vec![TopicProduceResponse {
                                name: "moving".into(),
                                partition_responses: vec![PartitionProduceResponse {
                                    index: 0,
                                    error_code: if first {
                                        ErrorCode::NotLeaderOrFollower.code()
                                    } else {
                                        0
                                    },
                                    base_offset: if first { -1 } else { 7 },
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                    }
                    other => panic!("unexpected request {other:?}"),
                })
            },
        )
    };
    let fake = FakeBroker::start(handler).await;
    *port.lock().unwrap() = fake.port;

    let producer = Producer::new(ProducerConfig::new(fake.bootstrap()))
        .await
        .unwrap();
    let delivered = producer
        .send(ProducerRecord::new("moving", "v").key("k"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((delivered.partition, delivered.offset), (0, 7));

    let produced = produced.lock().unwrap();
    assert_eq!(produced.len(), 2, "one refusal, one retry");
    let (metadata_before, first) = &produced[0];
    let (_, retry) = &produced[1];
    assert_eq!(
        first, retry,
        "the retry resends the sealed batch byte for byte"
    );
    assert!(
        metadata_requests.load(Ordering::SeqCst) > *metadata_before,
        "the refusal triggered a metadata refresh"
    );
    // Producer id 1000, epoch 0, base sequence 0 in the v2 batch header.
    assert_eq!(&first[43..51], &1_000i64.to_be_bytes());
    assert_eq!(&first[53..57], &0i32.to_be_bytes());
}

/// The consumer's side: a Fetch refused with NOT_LEADER_OR_FOLLOWER makes it refresh
/// metadata, back off, and fetch again from the same offset without losing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_refetches_after_not_leader() {
    use spate_client::{Consumer, ConsumerConfig, OffsetReset};
    use spate_protocol::Uuid;
    use spate_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use spate_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use spate_protocol::messages::{FetchResponse, ListOffsetsResponse};
    use spate_protocol::records::{BatchBuilder, NewRecord};

    let topic_id = Uuid::from_u64_pair(7, 7);
    let mut builder = BatchBuilder::new();
    for value in ["a", "b"] {
        builder
            .push(&NewRecord {
                value: Some(Bytes::from(value)),
                ..Default::default()
            })
            .unwrap();
    }
    let batch = builder.build().unwrap();
    let metadata_requests = Arc::new(AtomicUsize::new(0));
    let fetches: Arc<Mutex<Vec<(usize, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let port = Arc::new(Mutex::new(0));
    let handler = {
        let metadata_requests = metadata_requests.clone();
        let fetches = fetches.clone();
        let port = port.clone();
        Arc::new(
            move |_: &spate_protocol::RequestHeader, request: RequestBody| {
                Some(match request {
                    RequestBody::Metadata(_) => {
                        metadata_requests.fetch_add(1, Ordering::SeqCst);
                        ResponseBody::Metadata(MetadataResponse {
                            brokers: vec![MetadataResponseBroker {
                                node_id: 0,
                                host: "127.0.0.1".into(),
                                port: *port.lock().unwrap(),
                                ..Default::default()
                            }],
                            topics: vec![MetadataResponseTopic {
                                name: Some("moving".into()),
                                topic_id,
                                partitions: vec![MetadataResponsePartition {
                                    partition_index: 0,
                                    leader_id: 0,
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                    }
                    RequestBody::ListOffsets(_) => ResponseBody::ListOffsets(ListOffsetsResponse {
                        topics: vec![ListOffsetsTopicResponse {
                            name: "moving".into(),
                            partitions: vec![ListOffsetsPartitionResponse {
                                partition_index: 0,
                                offset: 0,
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    RequestBody::Fetch(request) => {
                        let topic = &request.topics[0];
                        assert_eq!(topic.topic_id, topic_id, "Fetch v13+ names the topic by id");
                        let offset = topic.partitions[0].fetch_offset;
                        let mut fetches = fetches.lock().unwrap();
                        fetches.push((metadata_requests.load(Ordering::SeqCst), offset));
                        let (error_code, records) = match (fetches.len(), offset) {
                            (1, _) => (ErrorCode::NotLeaderOrFollower.code(), None),
                            (_, 0) => (0, Some(batch.clone())),
                            _ => (0, Some(Bytes::new())),
                        };
                        ResponseBody::Fetch(FetchResponse {
                            responses: vec![FetchableTopicResponse {
                                topic_id,
                                partitions: vec![PartitionData {
                                    partition_index: 0,
                                    error_code,
                                    high_watermark: 2,
                                    records,
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                    }
                    other => panic!("unexpected request {other:?}"),
                })
            },
        )
    };
    let fake = FakeBroker::start(handler).await;
    *port.lock().unwrap() = fake.port;

    let mut config = ConsumerConfig::new(fake.bootstrap());
    config.auto_offset_reset = OffsetReset::Earliest;
    let consumer = Consumer::new(config).await.unwrap();
    consumer.assign([("moving".to_string(), 0)]);
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while records.len() < 2 && std::time::Instant::now() < deadline {
        records.extend(
            consumer
                .poll(std::time::Duration::from_millis(100))
                .await
                .unwrap(),
        );
    }
    let values: Vec<&[u8]> = records
        .iter()
        .map(|r| r.value.as_deref().unwrap())
        .collect();
    assert_eq!(values, vec![&b"a"[..], &b"b"[..]]);
    assert_eq!(consumer.position("moving", 0).unwrap(), Some(2));
    let fetches = fetches.lock().unwrap();
    let (metadata_at_refusal, refused_offset) = fetches[0];
    let (metadata_at_retry, retried_offset) = fetches[1];
    assert_eq!(
        (refused_offset, retried_offset),
        (0, 0),
        "same offset again"
    );
    assert!(
        metadata_at_retry > metadata_at_refusal,
        "metadata refreshed in between"
    );
}
