//! Fuzzes the record iterator: arbitrary bytes as the records section of a v2 batch whose
//! header (and CRC) is made valid, so every input reaches record decoding and, for
//! compressed codecs, the bounded decompressors. Also feeds the raw bytes to
//! `read_all_records` as a buffer of batches. Must never panic or allocate past the limit.

#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, BatchRecords, compute_batch_crc, read_all_records,
};

/// Small cap so that the fuzzer finds limit handling, not memory exhaustion.
const DECOMPRESSED_SIZE_MAX_BYTES: usize = 1 << 20;
/// Records the iterator may yield before we stop pulling; bounded by the header's count anyway.
const RECORDS_PULLED_MAX: usize = 4096;

fn batch_with_body(body: &[u8], records_count: i32, codec_id: i16) -> Bytes {
    let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE_BYTES + body.len());
    out.put_i64(0);
    out.put_i32((BATCH_HEADER_SIZE_BYTES - 12 + body.len()) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(0);
    out.put_i16(codec_id);
    out.put_i32(records_count.wrapping_sub(1));
    out.put_i64(0);
    out.put_i64(0);
    out.put_i64(-1);
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i32(records_count);
    out.extend_from_slice(body);
    let crc = compute_batch_crc(&out).unwrap_or(0);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let codec_id = i16::from(control % 5);
    let records_count = i32::from(control >> 3);
    let batch = batch_with_body(body, records_count, codec_id);
    if let Ok(records) = BatchRecords::with_limit(batch, DECOMPRESSED_SIZE_MAX_BYTES) {
        for record in records.take(RECORDS_PULLED_MAX) {
            if record.is_err() {
                break;
            }
        }
    }
    let _ = read_all_records(&Bytes::copy_from_slice(data), DECOMPRESSED_SIZE_MAX_BYTES);
});
