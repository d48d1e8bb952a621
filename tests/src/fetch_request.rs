//! Fetch v5 by hand (the last version before flexible encoding that reports the log start
//! offset), and a summary of the batches in the answer, for tests of fetch semantics: long
//! polling, whole batches, partition max bytes, watermarks.

use crate::HarnessError;
use crate::wire::{Decoder, Encoder, KafkaConnection, api_key};

/// Fetch request parameters for one partition.
#[derive(Debug, Clone)]
pub struct FetchParams<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

/// One RecordBatch found in a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub size_bytes: usize,
}

/// What a Fetch answer said about the partition.
#[derive(Debug, Clone)]
pub struct FetchReply {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records_size_bytes: usize,
    /// Whole batches, in order.
    pub batches: Vec<FetchedBatch>,
    /// Bytes at the end that do not form a whole batch (Kafka allows a truncated last batch).
    pub trailing_partial_bytes: usize,
}

/// The body of a Fetch v5 request for one partition.
pub fn fetch_v5_body(params: &FetchParams<'_>) -> Vec<u8> {
    let mut request = Encoder::default();
    request
        .i32(-1) // replica_id: a consumer
        .i32(params.max_wait_ms)
        .i32(params.min_bytes)
        .i32(params.max_bytes)
        .i8(0) // isolation_level: read uncommitted
        .array_len(1)
        .string(params.topic)
        .array_len(1)
        .i32(params.partition)
        .i64(params.fetch_offset)
        .i64(-1) // log_start_offset: only followers send one
        .i32(params.partition_max_bytes);
    request.bytes
}

/// Sends Fetch v5 and decodes the first partition of the answer.
pub fn fetch_v5(
    connection: &mut KafkaConnection,
    params: &FetchParams<'_>,
) -> Result<FetchReply, HarnessError> {
    let body = connection.round_trip(api_key::FETCH, 5, &fetch_v5_body(params))?;
    decode_fetch_v5(&body)
}

/// Decodes a Fetch v5 response body (after the correlation id).
pub fn decode_fetch_v5(body: &[u8]) -> Result<FetchReply, HarnessError> {
    let mut decoder = Decoder::new(body);
    let _throttle_time_ms = decoder.i32()?;
    let topic_count = decoder.array_len(6)?;
    if topic_count == 0 {
        return Err(HarnessError::MalformedResponse(
            "fetch answer names no topic".into(),
        ));
    }
    let _topic = decoder.string()?;
    let partition_count = decoder.array_len(38)?;
    if partition_count == 0 {
        return Err(HarnessError::MalformedResponse(
            "fetch answer names no partition".into(),
        ));
    }
    let _partition = decoder.i32()?;
    let error_code = decoder.i16()?;
    let high_watermark = decoder.i64()?;
    let _last_stable_offset = decoder.i64()?;
    let log_start_offset = decoder.i64()?;
    let aborted = decoder.i32()?;
    if aborted > 0 {
        let count = usize::try_from(aborted).unwrap_or(0);
        decoder.take(count.saturating_mul(16))?;
    }
    let records_length = decoder.i32()?;
    let records = if records_length < 0 {
        &[][..]
    } else {
        decoder.take(usize::try_from(records_length).unwrap_or(0))?
    };
    let (batches, trailing_partial_bytes) = split_batches(records)?;
    Ok(FetchReply {
        error_code,
        high_watermark,
        log_start_offset,
        records_size_bytes: records.len(),
        batches,
        trailing_partial_bytes,
    })
}

/// Walks the batch headers (base offset, length, last offset delta) without decoding records.
fn split_batches(records: &[u8]) -> Result<(Vec<FetchedBatch>, usize), HarnessError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while records.len() - position >= 27 {
        let mut header = Decoder::new(&records[position..]);
        let base_offset = header.i64()?;
        let batch_length = header.i32()?;
        let size_bytes = usize::try_from(batch_length)
            .ok()
            .and_then(|length| length.checked_add(12))
            .ok_or_else(|| {
                HarnessError::MalformedResponse(format!("batch length {batch_length}"))
            })?;
        if size_bytes > records.len() - position {
            break;
        }
        header.take(11)?; // partitionLeaderEpoch, magic, crc, attributes
        let last_offset_delta = header.i32()?;
        batches.push(FetchedBatch {
            base_offset,
            last_offset: base_offset + i64::from(last_offset_delta),
            size_bytes,
        });
        position += size_bytes;
    }
    Ok((batches, records.len() - position))
}
