//! Truncated, garbled and hostile record bytes produce errors that name the field, never a
//! panic or an allocation sized by a lying length.

// A panic in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use spate_protocol::compression::{Codec, CompressionError, Gzip};
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, BatchBuilder, BatchError, BatchRecords, Compression, NewRecord,
    Record, RecordError, read_all_records,
};

/// A batch with the given records section (already compressed, if `compression` says so),
/// a correct header and a correct CRC, so that decoding gets as far as the records.
fn batch_with_body(body: &[u8], records_count: i32, compression: Compression) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i64(0);
    out.put_i32((BATCH_HEADER_SIZE_BYTES - 12 + body.len()) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(0);
    out.put_i16(compression.id());
    out.put_i32(records_count - 1);
    out.put_i64(0);
    out.put_i64(0);
    out.put_i64(-1);
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i32(records_count);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

fn read(batch: Bytes) -> Result<Vec<Record>, RecordError> {
    BatchRecords::new(batch)?.collect()
}

fn one_record_batch() -> Bytes {
    let mut builder = BatchBuilder::new();
    builder
        .push(&NewRecord {
            timestamp_ms: 5,
            key: Some(Bytes::from_static(b"key")),
            value: Some(Bytes::from_static(b"value")),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
        })
        .unwrap();
    builder.build().unwrap()
}

#[test]
fn every_truncation_of_a_valid_batch_is_an_error() {
    let batch = one_record_batch();
    for length in 0..batch.len() {
        assert!(read(batch.slice(..length)).is_err(), "length {length}");
    }
    assert!(read(batch).is_ok());
}

#[test]
fn flipped_byte_fails_the_crc() {
    let mut bytes = one_record_batch().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(matches!(
        read(Bytes::from(bytes)),
        Err(RecordError::Batch(BatchError::CrcMismatch { .. }))
    ));
}

#[test]
fn negative_record_length_names_the_field() {
    // length = -5 (zig-zag 9)
    let batch = batch_with_body(&[9], 1, Compression::None);
    assert_eq!(
        read(batch),
        Err(RecordError::InvalidLength {
            field: "length",
            length: -5
        })
    );
}

#[test]
fn key_length_below_minus_one_is_invalid() {
    // length 6: attributes, tsDelta 0, offsetDelta 0, keyLength -2 (zig-zag 3), ...
    let batch = batch_with_body(&[12, 0, 0, 0, 3, 1, 0], 1, Compression::None);
    assert_eq!(
        read(batch),
        Err(RecordError::InvalidLength {
            field: "keyLength",
            length: -2
        })
    );
}

#[test]
fn value_longer_than_the_record_is_truncated_not_allocated() {
    // valueLength i32::MAX-ish (zig-zag of 0x3fff_ffff) inside a 9-byte record.
    let body = [18, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x07];
    let error = read(batch_with_body(&body, 1, Compression::None)).unwrap_err();
    assert!(
        matches!(error, RecordError::Truncated { field: "value", .. }),
        "{error:?}"
    );
}

#[test]
fn huge_header_count_fails_on_the_bytes_not_the_allocator() {
    // headersCount = i32::MAX (zig-zag 0xffff_fffe) with no header bytes after it.
    let body = [20, 0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    let error = read(batch_with_body(&body, 1, Compression::None)).unwrap_err();
    assert!(
        matches!(
            error,
            RecordError::Truncated {
                field: "headerKeyLength",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn header_key_must_be_utf8() {
    // One header with key [0xff] and null value.
    let body = [16, 0, 0, 0, 1, 1, 2, 2, 0xff, 1];
    let mut body = body.to_vec();
    body[0] = ((body.len() - 1) * 2) as u8;
    assert_eq!(
        read(batch_with_body(&body, 1, Compression::None)),
        Err(RecordError::InvalidUtf8 { field: "headerKey" })
    );
}

#[test]
fn record_with_unused_bytes_is_a_size_mismatch() {
    // Declares 7 bytes; its fields use 6.
    let body = [14, 0, 0, 0, 1, 1, 0, 0];
    assert_eq!(
        read(batch_with_body(&body, 1, Compression::None)),
        Err(RecordError::RecordSizeMismatch {
            declared_bytes: 7,
            consumed_bytes: 6
        })
    );
}

#[test]
fn fewer_records_than_declared_is_an_error() {
    let body = [12, 0, 0, 0, 1, 1, 0];
    assert_eq!(
        read(batch_with_body(&body, 2, Compression::None)),
        Err(RecordError::MissingRecords {
            records_count: 2,
            records_read: 1
        })
    );
}

#[test]
fn bytes_after_the_declared_records_are_an_error() {
    let body = [12, 0, 0, 0, 1, 1, 0, 12, 0, 0, 2, 1, 1, 0];
    assert_eq!(
        read(batch_with_body(&body, 1, Compression::None)),
        Err(RecordError::TrailingBytes {
            records_count: 1,
            remaining_bytes: 7
        })
    );
}

#[test]
fn decompression_bomb_in_a_batch_fails_cleanly() {
    let records: Vec<u8> = vec![0; 8 * 1024 * 1024];
    let bomb = Gzip.compress(&records).unwrap();
    assert!(bomb.len() < 64 * 1024);
    let batch = batch_with_body(&bomb, 1, Compression::Gzip);
    let result = BatchRecords::with_limit(batch.clone(), 1024 * 1024);
    assert!(matches!(
        result,
        Err(RecordError::Decompress(CompressionError::OutputTooLarge {
            codec: "gzip",
            limit_bytes: 1_048_576
        }))
    ));
    assert!(read_all_records(&batch, 1024 * 1024).is_err());
}

#[test]
fn reserved_codec_is_refused() {
    let batch = batch_with_body(&[], 1, Compression::None);
    let mut bytes = batch.to_vec();
    bytes[22] |= 6; // codec id 6
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        read(Bytes::from(bytes)),
        Err(RecordError::UnknownCompression { id: 6 })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_records_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        records_count in -2i32..8,
    ) {
        let batch = batch_with_body(&body, records_count, Compression::None);
        if let Ok(records) = BatchRecords::new(batch) {
            let decoded = records.take(64).count();
            prop_assert!(decoded <= records_count.max(0) as usize + 1);
        }
    }

    #[test]
    fn arbitrary_compressed_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        codec_id in 1i16..5,
    ) {
        let compression = Compression::from_id(codec_id).unwrap();
        let batch = batch_with_body(&body, 1, compression);
        if let Ok(records) = BatchRecords::with_limit(batch, 1 << 16) {
            let _ = records.take(4).count();
        }
    }

    #[test]
    fn arbitrary_whole_buffers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = read_all_records(&Bytes::from(bytes), 1 << 16);
    }

    #[test]
    fn mutated_valid_records_never_panic(
        index in 0usize..30,
        byte in any::<u8>(),
    ) {
        let batch = one_record_batch();
        let mut body = batch[BATCH_HEADER_SIZE_BYTES..].to_vec();
        let position = index % body.len();
        body[position] = byte;
        let _ = read(batch_with_body(&body, 1, Compression::None));
    }
}
