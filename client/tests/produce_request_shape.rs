//! What the producer puts on the wire: each Produce request stays within
//! `max.request.size` even when many partitions have full batches at once, and every
//! record still arrives. Observed through a fake broker that records the requests.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_broker::FakeBroker;
use spate_client::{Producer, ProducerConfig, ProducerRecord};
use spate_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use spate_protocol::messages::{MetadataResponse, ProduceResponse};
use spate_protocol::records::read_all_records;
use spate_protocol::{RequestBody, ResponseBody};

const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_requests_stay_within_max_request_size() {
    // Per request: bytes of record batches, the records they held, and how many batches.
    let requests: Arc<Mutex<Vec<(usize, usize, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let port = Arc::new(Mutex::new(0));
    let next_offsets = Arc::new(Mutex::new(vec![0i64; PARTITIONS as usize]));
    let handler = {
        let requests = requests.clone();
        let port = port.clone();
        Arc::new(
            move |_: &spate_protocol::RequestHeader, request: RequestBody| {
                Some(match request {
                    RequestBody::Metadata(_) => ResponseBody::Metadata(MetadataResponse {
                        brokers: vec![MetadataResponseBroker {
                            node_id: 0,
                            host: "127.0.0.1".into(),
                            port: *port.lock().unwrap(),
                            ..Default::default()
                        }],
                        topics: vec![MetadataResponseTopic {
                            name: Some("wide".into()),
                            partitions: (0..PARTITIONS)
                                .map(|p| MetadataResponsePartition {
                                    partition_index: p,
                                    leader_id: 0,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    RequestBody::InitProducerId(_) => {
                        ResponseBody::InitProducerId(InitProducerIdResponse {
                            producer_id: 1,
                            ..Default::default()
                        })
                    }
                    RequestBody::Produce(request) => {
                        let mut bytes = 0;
                        let mut records = 0;
                        let mut answers = Vec::new();
                        let mut offsets = next_offsets.lock().unwrap();
                        for data in &request.topic_data[0].partition_data {
                            let batch = data.records.clone().unwrap();
                            let count = read_all_records(&batch, 1 << 24).unwrap().len();
                            bytes += batch.len();
                            records += count;
                            let offset = &mut offsets[data.index as usize];
                            answers.push(PartitionProduceResponse {
                                index: data.index,
                                base_offset: *offset,
                                ..Default::default()
                            });
                            *offset += count as i64;
                        }
                        let batches = answers.len();
                        requests.lock().unwrap().push((bytes, records, batches));
                        ResponseBody::Produce(ProduceResponse {
                            responses: vec![TopicProduceResponse {
                                name: "wide".into(),
                                partition_responses: answers,
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

    let mut config = ProducerConfig::new(fake.bootstrap());
    config.max_request_size_bytes = 20_000;
    config.linger = Duration::from_millis(200);
    let producer = Producer::new(config).await.unwrap();
    let mut futures = Vec::new();
    for index in 0..400 {
        let record = ProducerRecord::new("wide", vec![b'v'; 200]).partition(index % PARTITIONS);
        futures.push(producer.send(record).await.unwrap());
    }
    let mut per_partition = vec![Vec::new(); PARTITIONS as usize];
    for future in futures {
        let metadata = future.await.unwrap();
        per_partition[metadata.partition as usize].push(metadata.offset);
    }
    for offsets in &per_partition {
        assert_eq!(
            *offsets,
            (0..100).collect::<Vec<i64>>(),
            "in order, none lost"
        );
    }
    let requests = requests.lock().unwrap();
    let total: usize = requests.iter().map(|(_, records, _)| records).sum();
    assert_eq!(total, 400);
    let largest = requests.iter().map(|(bytes, _, _)| *bytes).max().unwrap();
    assert!(
        largest <= 20_000,
        "a request carried {largest} bytes of batches"
    );
    assert!(
        requests.iter().any(|(_, _, batches)| *batches > 1),
        "small batches still share a request: {requests:?}"
    );
}
