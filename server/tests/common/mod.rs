//! An in-process broker on ephemeral ports and a minimal blocking Kafka client built on the
//! protocol crate, for tests that need exact control of the bytes sent.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spate_protocol::api_key::ApiKey;
use spate_protocol::header::{RequestHeader, ResponseHeader};
use spate_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use spate_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use spate_protocol::messages::metadata_request::MetadataRequestTopic;
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::*;
use spate_protocol::records::builder::{BatchBuilder, NewRecord};
use spate_protocol::wire::{Decode, Encode};
use spate_server::ServerConfig;

/// A broker running on a background thread; stopped (cleanly) on drop.
pub struct TestBroker {
    pub kafka: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    pub fn start(data_dir: &Path) -> TestBroker {
        Self::start_with(data_dir, |_| {})
    }

    pub fn start_with(data_dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> TestBroker {
        let mut config = ServerConfig {
            data_dir: data_dir.to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            cores: 1,
            pin_threads: false,
            ..ServerConfig::default()
        };
        tweak(&mut config);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let stop = async move {
                let _ = stop_rx.await;
            };
            spate_server::broker::run_until(config, stop, |ready| {
                ready_tx.send((ready.kafka.unwrap(), ready.admin)).unwrap();
            })
            .unwrap();
        });
        let (kafka, admin) = ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        TestBroker {
            kafka,
            admin,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.kafka)
    }

    /// Stops the broker and waits until it has flushed and exited.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A blocking client speaking raw frames.
pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends `body` as `api` at `version` and returns the response body bytes.
    pub fn call_raw<T: Encode>(&mut self, api: ApiKey, version: i16, body: &T) -> Bytes {
        self.correlation_id += 1;
        let header = RequestHeader {
            request_api_key: api.id(),
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some("spate-server-tests".into()),
            ..Default::default()
        };
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, api.request_header_version(version))
            .unwrap();
        body.encode(&mut frame, version).unwrap();
        self.send_frame(&frame);
        let mut response = self.read_frame().expect("connection closed");
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        response
    }

    pub fn call<T: Encode, R: Decode>(&mut self, api: ApiKey, version: i16, body: &T) -> R {
        let mut response = self.call_raw(api, version, body);
        let decoded = R::decode(&mut response, version).unwrap();
        assert!(response.is_empty(), "trailing bytes in the response");
        decoded
    }

    pub fn send_frame(&mut self, payload: &[u8]) {
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        self.stream.write_all(&out).unwrap();
    }

    /// The next frame's payload, or `None` once the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some(Bytes::from(payload))
    }

    /// Whether the broker closed the connection (reads EOF or reset within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// One uncompressed batch of `count` records `key-i` → `value-i`.
pub fn batch(count: usize) -> Bytes {
    let mut builder = BatchBuilder::new();
    for i in 0..count {
        builder
            .push(&NewRecord {
                timestamp_ms: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: Vec::new(),
            })
            .unwrap();
    }
    builder.build().unwrap()
}

/// Produces `records` to `topic`-`partition` with acks=all; returns (error code, base offset).
pub fn produce(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        9,
        &ProduceRequest {
            acks: -1,
            timeout_ms: 5000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(records),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch(client: &mut Client, topic: &str, offset: i64, max_wait_ms: i32) -> (i16, i64, Bytes) {
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        12,
        &FetchRequest {
            replica_id: -1,
            max_wait_ms,
            min_bytes: 1,
            max_bytes: 1 << 20,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: offset,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let p = &response.responses[0].partitions[0];
    (
        p.error_code,
        p.high_watermark,
        p.records.clone().unwrap_or_default(),
    )
}

pub fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let response: CreateTopicsResponse = client.call(
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: 1,
                configs: configs
                    .iter()
                    .map(|(k, v)| CreatableTopicConfig {
                        name: (*k).into(),
                        value: Some((*v).into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            timeout_ms: 5000,
            ..Default::default()
        },
    );
    response.topics[0].error_code
}

/// Metadata v12 (the first version with topic ids) for one topic, auto-creating it.
pub fn metadata_for(client: &mut Client, topic: &str) -> MetadataResponse {
    client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: Some(vec![MetadataRequestTopic {
                name: Some(topic.into()),
                ..Default::default()
            }]),
            allow_auto_topic_creation: true,
            ..Default::default()
        },
    )
}
