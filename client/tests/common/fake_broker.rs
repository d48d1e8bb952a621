//! A scripted broker for behaviour the real one cannot be made to show on demand (a leader
//! that refuses a batch once, say). It answers ApiVersions itself, advertising every API at
//! every version this codec knows, and hands every other request to the test's handler.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::{finish_frame, start_frame};
use spate_protocol::messages::api_versions_response::ApiVersion;
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::{
    ApiVersionsResponse, MetadataResponse, decode_request, encode_response,
};
use spate_protocol::{
    ApiKey, Encode, RequestBody, RequestHeader, ResponseBody, ResponseHeader, decode_request_header,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers one request; `None` sends nothing back (as for `acks=0`).
pub type Handler = Arc<dyn Fn(&RequestHeader, RequestBody) -> Option<ResponseBody> + Send + Sync>;

pub struct FakeBroker {
    pub host: String,
    pub port: i32,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Metadata answer naming this fake (node 0 at `port`) the leader of partition 0 of
/// `topic`, the only partition.
pub fn single_partition_metadata(topic: &str, port: i32) -> ResponseBody {
    ResponseBody::Metadata(MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 0,
            host: "127.0.0.1".into(),
            port,
            ..Default::default()
        }],
        topics: vec![MetadataResponseTopic {
            name: Some(topic.into()),
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

impl FakeBroker {
    pub async fn start(handler: Handler) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = i32::from(listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, handler.clone()));
            }
        });
        FakeBroker {
            host: "127.0.0.1".into(),
            port,
            task,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

async fn serve(mut stream: TcpStream, handler: Handler) {
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut payload = vec![0u8; size as usize];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let mut body = Bytes::from(payload);
        let header = decode_request_header(&mut body).unwrap();
        let key = ApiKey::from_i16(header.request_api_key).unwrap();
        let version = header.request_api_version;
        let response = if key == ApiKey::ApiVersions {
            Some(ResponseBody::ApiVersions(ApiVersionsResponse {
                api_keys: ApiKey::ALL
                    .iter()
                    .map(|k| ApiVersion {
                        api_key: k.id(),
                        min_version: *k.valid_versions().start(),
                        max_version: *k.valid_versions().end(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }))
        } else {
            let request = decode_request(key, version, &mut body).unwrap();
            handler(&header, request)
        };
        let Some(response) = response else {
            continue;
        };
        let mut out = BytesMut::new();
        let start = start_frame(&mut out);
        ResponseHeader {
            correlation_id: header.correlation_id,
            ..Default::default()
        }
        .encode(&mut out, key.response_header_version(version))
        .unwrap();
        encode_response(&response, version, &mut out).unwrap();
        finish_frame(&mut out, start).unwrap();
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
