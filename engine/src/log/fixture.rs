//! Builds valid RecordBatch v2 bytes, for tests, benches and the crash test.
//!
//! Deliberately small and independent of the protocol crate's full batch builder: it writes
//! uncompressed records with null keys and no headers, and the correct CRC-32C.

use bytes::{BufMut, BytesMut};
use spate_protocol::records::{BATCH_HEADER_SIZE_BYTES, MAGIC_V2, compute_batch_crc};

/// Describes one batch to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBatch {
    pub values: Vec<Vec<u8>>,
    /// Timestamp of the first record; record `i` gets `timestamp_ms + i`.
    pub timestamp_ms: i64,
    /// -1 for a non-idempotent producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl TestBatch {
    /// A non-idempotent batch of `record_count` records of `value_size_bytes` bytes each.
    pub fn new(record_count: usize, value_size_bytes: usize, timestamp_ms: i64) -> Self {
        let values = (0..record_count)
            .map(|i| {
                (0..value_size_bytes)
                    .map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8)
                    .collect()
            })
            .collect();
        Self {
            values,
            timestamp_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// The same batch, sent by idempotent producer `producer_id`.
    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// The batch's bytes, with baseOffset 0 as a producer sends it.
    pub fn encode(&self) -> BytesMut {
        let mut records = BytesMut::new();
        for (index, value) in self.values.iter().enumerate() {
            let mut body = BytesMut::new();
            body.put_i8(0);
            put_varlong(&mut body, index as i64);
            put_varlong(&mut body, index as i64);
            put_varlong(&mut body, -1);
            put_varlong(&mut body, value.len() as i64);
            body.put_slice(value);
            put_varlong(&mut body, 0);
            put_varlong(&mut records, body.len() as i64);
            records.put_slice(&body);
        }
        let count = self.values.len() as i32;
        let mut batch = BytesMut::with_capacity(BATCH_HEADER_SIZE_BYTES + records.len());
        batch.put_i64(0);
        batch.put_i32((BATCH_HEADER_SIZE_BYTES - 12 + records.len()) as i32);
        batch.put_i32(-1);
        batch.put_i8(MAGIC_V2);
        batch.put_u32(0);
        batch.put_i16(0);
        batch.put_i32(count - 1);
        batch.put_i64(self.timestamp_ms);
        batch.put_i64(self.timestamp_ms + i64::from(count.max(1) - 1));
        batch.put_i64(self.producer_id);
        batch.put_i16(self.producer_epoch);
        batch.put_i32(self.base_sequence);
        batch.put_i32(count);
        batch.put_slice(&records);
        let crc = compute_batch_crc(&batch).unwrap_or(0);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }
}

/// Zigzag varint, as Kafka's record format uses.
fn put_varlong(buffer: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buffer.put_u8((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    buffer.put_u8(zigzag as u8);
}

/// One non-idempotent batch's bytes.
pub fn batch_bytes(record_count: usize, value_size_bytes: usize, timestamp_ms: i64) -> BytesMut {
    TestBatch::new(record_count, value_size_bytes, timestamp_ms).encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_protocol::records::check_batch;

    #[test]
    fn built_batches_pass_the_append_checks() {
        let bytes = TestBatch::new(3, 10, 1_000).idempotent(5, 1, 7).encode();
        let summary = check_batch(&bytes).unwrap();
        assert_eq!(summary.size_bytes, bytes.len());
        assert_eq!(summary.records_count, 3);
        assert_eq!(summary.max_timestamp, 1_002);
        assert_eq!(summary.producer_id, 5);
        assert_eq!(summary.base_sequence, 7);
    }
}
