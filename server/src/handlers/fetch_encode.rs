//! Hand encoding of the Fetch response around file slices (zero-copy).
//!
//! The generated codec would need the records in memory. Here every field is written into
//! buffers, and each partition's records field becomes its length prefix followed by
//! [`ResponsePart::File`] pieces that the connection sends with `sendfile`. The records
//! length is the sum of the slices, computed before anything is written, so the frame's
//! size prefix is exact.
//!
//! Covers versions 4 to 17: v4 adds the last stable offset and aborted transactions, v5 the
//! log start offset, v7 sessions, v11 the preferred read replica, v12 flexible encoding
//! (compact lengths and tagged fields), v13 topic ids instead of names.

use bytes::{BufMut, BytesMut};
use spate_protocol::wire::{Uuid, write_uvarint};

use crate::response::{ResponsePart, SharedFile, frame_parts};

/// First flexible Fetch version.
const FLEXIBLE_VERSION_MIN: i16 = 12;
/// First version naming topics by id.
const TOPIC_ID_VERSION_MIN: i16 = 13;
/// First version with the top-level `NodeEndpoints` tagged field (KIP-951).
const NODE_ENDPOINTS_VERSION_MIN: i16 = 16;
/// Tag of a partition's `CurrentLeader`, and of the response's `NodeEndpoints`.
const CURRENT_LEADER_TAG: u32 = 1;
const NODE_ENDPOINTS_TAG: u32 = 0;

/// One slice of a segment file holding whole batches.
pub struct RecordSlice {
    pub file: SharedFile,
    pub position: u64,
    pub len: u32,
}

/// One partition's answer.
pub struct PartitionAnswer {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `true` for read_committed fetches: an empty aborted-transactions list instead of null.
    pub read_committed: bool,
    /// With NOT_LEADER_OR_FOLLOWER (and the epoch errors): the leader and epoch the client
    /// should use (KIP-951's `CurrentLeader`, v12+).
    pub current_leader: Option<(i32, i32)>,
    pub records: Vec<RecordSlice>,
}

/// A leader named in a partition's `current_leader`, with how to reach it (v16+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl PartitionAnswer {
    pub fn records_len_bytes(&self) -> usize {
        self.records.iter().map(|s| s.len as usize).sum()
    }
}

/// One topic's answer.
pub struct TopicAnswer {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionAnswer>,
}

/// The whole response frame: size prefix, response header, body with file slices.
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    error_code: i16,
    session_id: i32,
    topics: Vec<TopicAnswer>,
    node_endpoints: &[LeaderEndpoint],
) -> Vec<ResponsePart> {
    let flexible = version >= FLEXIBLE_VERSION_MIN;
    let mut parts = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(correlation_id);
    if flexible {
        write_uvarint(&mut buf, 0); // response header tagged fields
    }
    buf.put_i32(0); // throttle_time_ms (v1+)
    if version >= 7 {
        buf.put_i16(error_code);
        buf.put_i32(session_id);
    }
    put_array_len(&mut buf, flexible, topics.len());
    for topic in topics {
        if version >= TOPIC_ID_VERSION_MIN {
            buf.put_slice(&topic.topic_id.0);
        } else {
            put_string(&mut buf, flexible, &topic.name);
        }
        put_array_len(&mut buf, flexible, topic.partitions.len());
        for partition in topic.partitions {
            put_partition_head(&mut buf, version, &partition);
            let records_len = partition.records_len_bytes();
            if flexible {
                write_uvarint(&mut buf, saturating_u32(records_len + 1));
            } else {
                buf.put_i32(saturating_i32(records_len));
            }
            if !partition.records.is_empty() {
                parts.push(ResponsePart::Bytes(buf.split().freeze()));
                for slice in partition.records {
                    parts.push(ResponsePart::File {
                        file: slice.file,
                        position: slice.position,
                        len: slice.len,
                    });
                }
            }
            if flexible {
                match partition.current_leader {
                    Some((leader_id, leader_epoch)) => {
                        write_uvarint(&mut buf, 1);
                        write_uvarint(&mut buf, CURRENT_LEADER_TAG);
                        write_uvarint(&mut buf, 9);
                        buf.put_i32(leader_id);
                        buf.put_i32(leader_epoch);
                        write_uvarint(&mut buf, 0);
                    }
                    None => write_uvarint(&mut buf, 0), // partition tagged fields
                }
            }
        }
        if flexible {
            write_uvarint(&mut buf, 0); // topic tagged fields
        }
    }
    if flexible {
        if version >= NODE_ENDPOINTS_VERSION_MIN && !node_endpoints.is_empty() {
            let mut field = BytesMut::new();
            put_array_len(&mut field, true, node_endpoints.len());
            for endpoint in node_endpoints {
                field.put_i32(endpoint.node_id);
                put_string(&mut field, true, &endpoint.host);
                field.put_i32(endpoint.port);
                match &endpoint.rack {
                    Some(rack) => put_string(&mut field, true, rack),
                    None => write_uvarint(&mut field, 0),
                }
                write_uvarint(&mut field, 0);
            }
            write_uvarint(&mut buf, 1);
            write_uvarint(&mut buf, NODE_ENDPOINTS_TAG);
            write_uvarint(&mut buf, saturating_u32(field.len()));
            buf.put_slice(&field);
        } else {
            write_uvarint(&mut buf, 0); // top-level tagged fields
        }
    }
    parts.push(ResponsePart::Bytes(buf.freeze()));
    frame_parts(parts)
}

fn put_partition_head(buf: &mut BytesMut, version: i16, partition: &PartitionAnswer) {
    let flexible = version >= FLEXIBLE_VERSION_MIN;
    buf.put_i32(partition.partition_index);
    buf.put_i16(partition.error_code);
    buf.put_i64(partition.high_watermark);
    buf.put_i64(partition.last_stable_offset);
    if version >= 5 {
        buf.put_i64(partition.log_start_offset);
    }
    // aborted_transactions: nullable array; empty for read_committed, null otherwise.
    match (partition.read_committed, flexible) {
        (true, true) => write_uvarint(buf, 1),
        (true, false) => buf.put_i32(0),
        (false, true) => write_uvarint(buf, 0),
        (false, false) => buf.put_i32(-1),
    }
    if version >= 11 {
        buf.put_i32(-1); // preferred_read_replica: none
    }
}

fn put_array_len(buf: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        write_uvarint(buf, saturating_u32(len + 1));
    } else {
        buf.put_i32(saturating_i32(len));
    }
}

fn put_string(buf: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        write_uvarint(buf, saturating_u32(s.len() + 1));
    } else {
        buf.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    }
    buf.put_slice(s.as_bytes());
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use bytes::Bytes;
    use spate_protocol::messages::FetchResponse;
    use spate_protocol::wire::Decode;

    use super::*;
    use crate::net::sendfile::read_exact_at;

    /// Materializes the parts (reading file slices) into one frame.
    fn flatten(parts: Vec<ResponsePart>) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                ResponsePart::Bytes(b) => out.extend_from_slice(&b),
                ResponsePart::File {
                    file,
                    position,
                    len,
                } => {
                    let mut buf = vec![0u8; len as usize];
                    read_exact_at(&*file, position, &mut buf).unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    fn answer(file: &SharedFile) -> Vec<TopicAnswer> {
        vec![TopicAnswer {
            name: "orders".into(),
            topic_id: Uuid([7; 16]),
            partitions: vec![
                PartitionAnswer {
                    partition_index: 0,
                    error_code: 0,
                    high_watermark: 10,
                    last_stable_offset: 10,
                    log_start_offset: 0,
                    read_committed: false,
                    current_leader: None,
                    records: vec![
                        RecordSlice {
                            file: file.clone(),
                            position: 2,
                            len: 5,
                        },
                        RecordSlice {
                            file: file.clone(),
                            position: 10,
                            len: 3,
                        },
                    ],
                },
                PartitionAnswer {
                    partition_index: 1,
                    error_code: 1,
                    high_watermark: 4,
                    last_stable_offset: 4,
                    log_start_offset: 0,
                    read_committed: true,
                    current_leader: Some((3, 7)),
                    records: Vec::new(),
                },
            ],
        }]
    }

    #[test]
    fn every_version_decodes_with_the_generated_codec() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789abcdef").unwrap();
        let file: SharedFile = Arc::new(f);
        for version in 4..=17 {
            let endpoints = [LeaderEndpoint {
                node_id: 3,
                host: "broker-3".into(),
                port: 9092,
                rack: Some("r1".into()),
            }];
            let frame = flatten(encode_fetch_response(
                version,
                99,
                0,
                0,
                answer(&file),
                &endpoints,
            ));
            let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(size, frame.len() - 4, "v{version}: size prefix");
            let header_len = if version >= 12 { 5 } else { 4 };
            assert_eq!(&frame[4..8], 99i32.to_be_bytes());
            let mut body = Bytes::copy_from_slice(&frame[4 + header_len..]);
            let decoded = FetchResponse::decode(&mut body, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert!(body.is_empty(), "v{version}: trailing bytes");
            let topic = &decoded.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id, Uuid([7; 16]));
            } else {
                assert_eq!(topic.topic, "orders");
            }
            let p0 = &topic.partitions[0];
            assert_eq!(p0.records.as_deref(), Some(&b"23456abc"[..]));
            assert_eq!(p0.high_watermark, 10);
            let p1 = &topic.partitions[1];
            assert_eq!(p1.error_code, 1);
            assert_eq!(p1.records.as_deref().map(<[u8]>::len).unwrap_or(0), 0);
            assert_eq!(p1.aborted_transactions.as_ref().map(Vec::len), Some(0));
            assert!(p0.aborted_transactions.is_none());
            if version >= 12 {
                assert_eq!(p1.current_leader.leader_id, 3, "v{version}");
                assert_eq!(p1.current_leader.leader_epoch, 7, "v{version}");
                assert_eq!(p0.current_leader.leader_id, -1, "v{version}");
            }
            if version >= 16 {
                assert_eq!(decoded.node_endpoints.len(), 1);
                assert_eq!(decoded.node_endpoints[0].host, "broker-3");
                assert_eq!(decoded.node_endpoints[0].rack.as_deref(), Some("r1"));
            } else {
                assert!(decoded.node_endpoints.is_empty());
            }
        }
    }
}
