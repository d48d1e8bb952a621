//! Building RecordBatch v2 bytes by hand, for requests no well-behaved client would send.
//!
//! The hostile-input tests need batches we can break on purpose: a wrong CRC, an oversized
//! value. This writes the format from the Kafka protocol guide directly (61-byte header, then
//! zigzag-varint records, CRC-32C over everything from `attributes` on), uncompressed only.

/// Size of the RecordBatch v2 header, from `baseOffset` through `recordCount`.
pub const BATCH_HEADER_SIZE_BYTES: usize = 61;

/// Byte offset of the CRC field within a batch.
pub const CRC_OFFSET: usize = 17;

/// The CRC covers the batch from `attributes` (byte 21) to its end.
pub const CRC_COVERAGE_START: usize = 21;

/// One record to put in a batch.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TestRecord {
    /// A record with only a value.
    pub fn value(value: impl Into<Vec<u8>>) -> Self {
        TestRecord {
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }
}

/// The idempotent-producer fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchProducer {
    /// The values a non-idempotent producer writes: no id, no epoch, no sequence.
    pub const NONE: BatchProducer = BatchProducer {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Encodes `records` as one uncompressed RecordBatch v2 at base offset 0, with a correct CRC.
pub fn encode_batch(records: &[TestRecord], base_timestamp_ms: i64) -> Vec<u8> {
    encode_producer_batch(records, base_timestamp_ms, BatchProducer::NONE)
}

/// Like [`encode_batch`], with the idempotent producer's id, epoch and base sequence.
pub fn encode_producer_batch(
    records: &[TestRecord],
    base_timestamp_ms: i64,
    producer: BatchProducer,
) -> Vec<u8> {
    let mut body = Vec::new();
    for (index, record) in records.iter().enumerate() {
        encode_record(&mut body, record, i64::try_from(index).unwrap_or(i64::MAX));
    }
    let record_count = i32::try_from(records.len()).unwrap_or(i32::MAX);
    let mut batch = Vec::with_capacity(BATCH_HEADER_SIZE_BYTES + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes()); // baseOffset: the broker assigns it
    let batch_length = i32::try_from(BATCH_HEADER_SIZE_BYTES - 12 + body.len()).unwrap_or(i32::MAX);
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, filled in below
    batch.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    batch.extend_from_slice(&(record_count - 1).max(0).to_be_bytes()); // lastOffsetDelta
    batch.extend_from_slice(&base_timestamp_ms.to_be_bytes()); // baseTimestamp
    batch.extend_from_slice(&base_timestamp_ms.to_be_bytes()); // maxTimestamp
    batch.extend_from_slice(&producer.producer_id.to_be_bytes());
    batch.extend_from_slice(&producer.producer_epoch.to_be_bytes());
    batch.extend_from_slice(&producer.base_sequence.to_be_bytes());
    batch.extend_from_slice(&record_count.to_be_bytes());
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[CRC_COVERAGE_START..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn encode_record(out: &mut Vec<u8>, record: &TestRecord, offset_delta: i64) {
    let mut body = Vec::new();
    body.push(0); // attributes
    put_varlong(&mut body, 0); // timestampDelta
    put_varlong(&mut body, offset_delta);
    put_nullable_bytes(&mut body, record.key.as_deref());
    put_nullable_bytes(&mut body, record.value.as_deref());
    put_varlong(&mut body, len_i64(record.headers.len()));
    for (key, value) in &record.headers {
        put_nullable_bytes(&mut body, Some(key.as_bytes()));
        put_nullable_bytes(&mut body, Some(value));
    }
    put_varlong(out, len_i64(body.len()));
    out.extend_from_slice(&body);
}

fn len_i64(length: usize) -> i64 {
    i64::try_from(length).unwrap_or(i64::MAX)
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varlong(out, len_i64(bytes.len()));
            out.extend_from_slice(bytes);
        }
        None => put_varlong(out, -1),
    }
}

/// Zigzag varint, as Kafka's records use for every length and delta.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_batch_has_consistent_length_and_crc() {
        let batch = encode_batch(&[TestRecord::value("a"), TestRecord::value("bc")], 1_000);
        let length = i32::from_be_bytes(batch[8..12].try_into().unwrap());
        assert_eq!(length as usize + 12, batch.len());
        let crc = u32::from_be_bytes(batch[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&batch[CRC_COVERAGE_START..]));
        assert_eq!(i32::from_be_bytes(batch[57..61].try_into().unwrap()), 2);
    }

    #[test]
    fn varlong_is_zigzag_encoded() {
        let mut out = Vec::new();
        put_varlong(&mut out, -1);
        put_varlong(&mut out, 1);
        put_varlong(&mut out, 300);
        assert_eq!(out, vec![0x01, 0x02, 0xd8, 0x04]);
    }
}
