//! Replica fetches on the wire: Kafka's own Fetch (v17), as Spate's nodes carry it over
//! their cluster transport (the server moves the bytes; this module only encodes them).
//!
//! A follower asks its leader with a `FetchRequest` as a Kafka follower would (its
//! `replica_state` names it and its broker epoch; each partition carries its current leader
//! epoch, its fetch offset, the epoch of the last batch it appended, and its log start), and
//! the leader answers with a `FetchResponse` (records, high watermark, log start, and a
//! diverging epoch when the follower's log has to be truncated first, KIP-595). Reusing the
//! codec keeps one encoding of these fields and their fuzz target.
//!
//! Spate adds one field Kafka does not have: each partition's **durable offset**, the end of
//! what the follower has synced (under `flush=always`), which the leader's high watermark and
//! `acks=all` count instead of the fetch offset (replication-notes §5). It travels as a tagged
//! field of the partition, [`DURABLE_OFFSET_TAG`], which Kafka's codec keeps and any other
//! reader skips.
//!
//! A transport message carrying a replica fetch starts with [`REPLICA_FETCH_MAGIC`]; control
//! messages are JSON and start with `{`, so one byte tells them apart.

use crate::messages::fetch_request::FetchPartition;
use crate::messages::{FetchRequest, FetchResponse};
use crate::wire::{Decode, Encode, RawTaggedField};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// First byte of a transport message that carries a replica fetch or its answer.
pub const REPLICA_FETCH_MAGIC: u8 = 0x01;
/// The Fetch version replica fetches use: the newest (KIP-903's broker epoch, KIP-595's
/// last fetched epoch and diverging epoch, topic ids).
pub const REPLICA_FETCH_VERSION: i16 = 17;
/// Tag of a partition's durable offset in a replica `FetchRequest` (an `i64`, big-endian).
/// High enough never to collide with a tag Kafka assigns to this struct.
pub const DURABLE_OFFSET_TAG: u32 = 0x5350;

/// Why a replica fetch message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a replica fetch message (first byte {0:#04x})")]
    NotReplicaFetch(u8),
    #[error("empty message")]
    Empty,
    #[error("malformed replica fetch: {0}")]
    Malformed(String),
}

/// Whether a transport message is a replica fetch (rather than a JSON control message).
pub fn is_replica_fetch(message: &[u8]) -> bool {
    message.first() == Some(&REPLICA_FETCH_MAGIC)
}

/// The transport message for `request`.
pub fn encode_request(request: &FetchRequest) -> Result<Bytes, WireError> {
    encode(request)
}

/// The transport message for `response`.
pub fn encode_response(response: &FetchResponse) -> Result<Bytes, WireError> {
    encode(response)
}

fn encode<T: Encode>(message: &T) -> Result<Bytes, WireError> {
    let len = message
        .encoded_len(REPLICA_FETCH_VERSION)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(len + 1);
    buf.put_u8(REPLICA_FETCH_MAGIC);
    message
        .encode(&mut buf, REPLICA_FETCH_VERSION)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(buf.freeze())
}

/// Reads a replica fetch request. The records of a response are slices of `message`.
pub fn decode_request(message: Bytes) -> Result<FetchRequest, WireError> {
    decode(message)
}

/// Reads a replica fetch answer.
pub fn decode_response(message: Bytes) -> Result<FetchResponse, WireError> {
    decode(message)
}

fn decode<T: Decode>(mut message: Bytes) -> Result<T, WireError> {
    let Some(&first) = message.first() else {
        return Err(WireError::Empty);
    };
    if first != REPLICA_FETCH_MAGIC {
        return Err(WireError::NotReplicaFetch(first));
    }
    message.advance(1);
    let decoded = T::decode(&mut message, REPLICA_FETCH_VERSION)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if !message.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes after the message",
            message.len()
        )));
    }
    Ok(decoded)
}

/// The follower's durable offset in `partition`, if it sent one.
pub fn durable_offset(partition: &FetchPartition) -> Option<i64> {
    partition
        .unknown_tagged_fields
        .iter()
        .find(|f| f.tag == DURABLE_OFFSET_TAG)
        .and_then(|f| <[u8; 8]>::try_from(&f.data[..]).ok())
        .map(i64::from_be_bytes)
}

/// Sets the follower's durable offset in `partition`.
pub fn set_durable_offset(partition: &mut FetchPartition, offset: i64) {
    partition
        .unknown_tagged_fields
        .retain(|f| f.tag != DURABLE_OFFSET_TAG);
    partition.unknown_tagged_fields.push(RawTaggedField {
        tag: DURABLE_OFFSET_TAG,
        data: Bytes::copy_from_slice(&offset.to_be_bytes()),
    });
}

/// A RecordBatch v2 header: base offset, length, leader epoch, magic, CRC, attributes,
/// last offset delta, timestamps, producer id and epoch, base sequence, record count.
const BATCH_HEADER_BYTES: usize = 61;

/// The offset after the last batch of `records` (whole batches, as the leader sends them),
/// or `from` when there are none. Reads only the batch headers: the engine checks every
/// batch (CRC included) when it appends them.
pub fn records_end(records: &Bytes, from: i64) -> Result<i64, String> {
    let mut end = from;
    let mut rest: &[u8] = records;
    while !rest.is_empty() {
        let header = rest
            .get(..BATCH_HEADER_BYTES)
            .ok_or("a truncated batch header")?;
        let base_offset = i64::from_be_bytes(header[0..8].try_into().map_err(|_| "header")?);
        let batch_length = i32::from_be_bytes(header[8..12].try_into().map_err(|_| "header")?);
        let last_offset_delta =
            i32::from_be_bytes(header[23..27].try_into().map_err(|_| "header")?);
        let size = usize::try_from(batch_length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|&size| size >= BATCH_HEADER_BYTES && size <= rest.len())
            .ok_or_else(|| format!("a batch of {batch_length} bytes does not fit the answer"))?;
        if last_offset_delta < 0 {
            return Err(format!(
                "a negative last offset delta ({last_offset_delta})"
            ));
        }
        end = base_offset
            .checked_add(i64::from(last_offset_delta) + 1)
            .ok_or("offset overflow")?;
        rest = &rest[size..];
    }
    Ok(end)
}

/// An answer refusing a whole replica fetch with `code` (the node cannot serve it yet).
pub fn refusal(code: i16) -> Bytes {
    let response = FetchResponse {
        error_code: code,
        ..Default::default()
    };
    encode_response(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::messages::fetch_request::{FetchTopic, ReplicaState};
    use crate::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use crate::wire::Uuid;

    use super::*;

    #[test]
    fn a_replica_fetch_round_trips_with_its_durable_offset() {
        let mut partition = FetchPartition {
            partition: 3,
            current_leader_epoch: 7,
            fetch_offset: 120,
            last_fetched_epoch: 6,
            log_start_offset: 0,
            partition_max_bytes: 1 << 20,
            ..Default::default()
        };
        set_durable_offset(&mut partition, 100);
        set_durable_offset(&mut partition, 110);
        let request = FetchRequest {
            replica_state: ReplicaState {
                replica_id: 2,
                replica_epoch: 42,
                ..Default::default()
            },
            max_wait_ms: 500,
            topics: vec![FetchTopic {
                topic_id: Uuid([9; 16]),
                partitions: vec![partition],
                ..Default::default()
            }],
            ..Default::default()
        };
        let message = encode_request(&request).unwrap();
        assert!(is_replica_fetch(&message));
        let decoded = decode_request(message).unwrap();
        let p = &decoded.topics[0].partitions[0];
        assert_eq!(durable_offset(p), Some(110));
        assert_eq!((p.fetch_offset, p.last_fetched_epoch), (120, 6));
        assert_eq!(decoded.replica_state.replica_epoch, 42);
    }

    #[test]
    fn an_answer_round_trips_and_garbage_is_an_error() {
        let response = FetchResponse {
            responses: vec![FetchableTopicResponse {
                topic_id: Uuid([9; 16]),
                partitions: vec![PartitionData {
                    partition_index: 3,
                    high_watermark: 100,
                    records: Some(Bytes::from_static(b"batches")),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let decoded = decode_response(encode_response(&response).unwrap()).unwrap();
        assert_eq!(decoded.responses[0].partitions[0].high_watermark, 100);
        assert!(decode_response(Bytes::from_static(b"{\"json\":1}")).is_err());
        assert!(decode_response(Bytes::from_static(&[REPLICA_FETCH_MAGIC, 0xff])).is_err());
        assert!(decode_request(Bytes::new()).is_err());
    }
    fn batch(base_offset: i64, records: usize) -> Bytes {
        let mut builder = crate::records::BatchBuilder::new().base_offset(base_offset);
        for i in 0..records {
            let record = crate::records::NewRecord {
                timestamp_ms: 1,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Vec::new(),
            };
            assert!(builder.push(&record).is_ok());
        }
        builder.build().unwrap_or_default()
    }

    #[test]
    fn records_end_is_after_the_last_whole_batch() {
        let mut records = BytesMut::new();
        records.extend_from_slice(&batch(10, 3));
        records.extend_from_slice(&batch(13, 5));
        let records = records.freeze();
        assert_eq!(records_end(&records, 10), Ok(18));
        assert_eq!(
            records_end(&Bytes::new(), 42),
            Ok(42),
            "no records: the fetch offset"
        );
    }

    #[test]
    fn records_end_refuses_a_cut_batch_or_a_lying_header() {
        let whole = batch(0, 4);
        let cut = whole.slice(..whole.len() - 1);
        assert!(records_end(&cut, 0).is_err(), "a batch cut short");
        assert!(
            records_end(&whole.slice(..20), 0).is_err(),
            "a header cut short"
        );
        let mut lying = BytesMut::from(&whole[..]);
        lying[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(
            records_end(&lying.freeze(), 0).is_err(),
            "a negative length"
        );
        let mut backwards = BytesMut::from(&whole[..]);
        backwards[23..27].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(
            records_end(&backwards.freeze(), 0).is_err(),
            "a negative offset delta"
        );
        let mut overflowing = BytesMut::from(&whole[..]);
        overflowing[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(
            records_end(&overflowing.freeze(), 0).is_err(),
            "an offset past i64"
        );
    }
}
