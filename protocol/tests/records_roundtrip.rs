//! Batches built by `BatchBuilder` read back identically through `BatchRecords`, for every
//! codec, and pass the broker's own structural check.

// A panic in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, BatchBuilder, BatchRecords, Compression, NewRecord, Record,
    RecordBatchHeader, TimestampType, check_batch, decompress_records, read_all_records,
};
use zerocopy::FromBytes;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn build(records: &[NewRecord], compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new()
        .base_offset(1000)
        .compression(compression);
    for record in records {
        builder.push(record).unwrap();
    }
    builder.build().unwrap()
}

fn read(batch: Bytes) -> Vec<Record> {
    BatchRecords::new(batch)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn expected(records: &[NewRecord], base_offset: i64) -> Vec<Record> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| Record {
            offset: base_offset + index as i64,
            timestamp_ms: record.timestamp_ms,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
        })
        .collect()
}

fn arb_bytes(max_len: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max_len).prop_map(Bytes::from))
}

fn arb_record() -> impl Strategy<Value = NewRecord> {
    (
        any::<i64>(),
        arb_bytes(64),
        arb_bytes(512),
        proptest::collection::vec(("[a-z\u{e9}]{0,8}", arb_bytes(16)), 0..4),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| NewRecord {
            timestamp_ms,
            key,
            value,
            headers,
        })
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(CODECS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn built_batches_read_back_identically_with_every_codec(
        records in proptest::collection::vec(arb_record(), 1..20),
        compression in arb_codec(),
    ) {
        let batch = build(&records, compression);
        let summary = check_batch(&batch).unwrap();
        prop_assert_eq!(summary.size_bytes, batch.len());
        prop_assert_eq!(summary.records_count as usize, records.len());
        let max_timestamp_ms = records.iter().map(|r| r.timestamp_ms).max().unwrap();
        prop_assert_eq!(summary.max_timestamp, max_timestamp_ms);
        prop_assert_eq!(read(batch), expected(&records, 1000));
    }
}

#[test]
fn every_codec_sets_its_attribute_and_round_trips() {
    let records: Vec<NewRecord> = (0..50)
        .map(|index| NewRecord {
            timestamp_ms: 1_700_000_000_000 + index,
            key: Some(Bytes::from(format!("key-{index}"))),
            value: Some(Bytes::from(vec![b'v'; 200])),
            headers: vec![("trace".into(), Some(Bytes::from_static(b"abc")))],
        })
        .collect();
    for compression in CODECS {
        let batch = build(&records, compression);
        let (header, _) = RecordBatchHeader::ref_from_prefix(&batch).unwrap();
        assert_eq!(header.compression(), Some(compression));
        if compression != Compression::None {
            assert!(batch.len() < build(&records, Compression::None).len());
        }
        let batch_records = BatchRecords::new(batch.clone()).unwrap();
        assert_eq!(batch_records.compression(), compression);
        assert_eq!(batch_records.size_bytes(), batch.len());
        assert_eq!(read(batch), expected(&records, 1000), "{compression:?}");
    }
}

#[test]
fn producer_identity_and_flags_land_in_the_header() {
    let mut builder = BatchBuilder::new()
        .producer(42, 3, 17)
        .partition_leader_epoch(5)
        .transactional(true);
    builder.push(&NewRecord::default()).unwrap();
    let batch = builder.build().unwrap();
    let summary = check_batch(&batch).unwrap();
    assert_eq!(
        (
            summary.producer_id,
            summary.producer_epoch,
            summary.base_sequence
        ),
        (42, 3, 17)
    );
    assert!(summary.is_transactional);
    assert!(!summary.is_control);
    let (header, _) = RecordBatchHeader::ref_from_prefix(&batch).unwrap();
    assert_eq!(header.partition_leader_epoch.get(), 5);
}

#[test]
fn log_append_time_batches_give_every_record_the_max_timestamp() {
    let mut builder = BatchBuilder::new().log_append_time(true);
    for timestamp_ms in [10, 30, 20] {
        builder
            .push(&NewRecord {
                timestamp_ms,
                ..NewRecord::default()
            })
            .unwrap();
    }
    let batch = builder.build().unwrap();
    let (header, _) = RecordBatchHeader::ref_from_prefix(&batch).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    let timestamps: Vec<i64> = read(batch).iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(timestamps, vec![30, 30, 30]);
}

#[test]
fn null_key_and_value_differ_from_empty_ones() {
    let records = vec![
        NewRecord {
            key: None,
            value: None,
            ..NewRecord::default()
        },
        NewRecord {
            key: Some(Bytes::new()),
            value: Some(Bytes::new()),
            headers: vec![("h".into(), None), ("h".into(), Some(Bytes::new()))],
            ..NewRecord::default()
        },
    ];
    assert_eq!(
        read(build(&records, Compression::None)),
        expected(&records, 1000)
    );
}

#[test]
fn uncompressed_values_are_slices_of_the_batch() {
    let records = vec![NewRecord {
        value: Some(Bytes::from_static(b"zero-copy payload")),
        ..NewRecord::default()
    }];
    let batch = build(&records, Compression::None);
    let batch_range = batch.as_ptr_range();
    let value = read(batch.clone()).remove(0).value.unwrap();
    assert!(batch_range.contains(&value.as_ptr()));
}

#[test]
fn empty_builder_gives_a_zero_record_batch_that_the_iterator_accepts() {
    let batch = BatchBuilder::new().build().unwrap();
    assert!(
        check_batch(&batch).is_err(),
        "producers may not send empty batches"
    );
    assert_eq!(read(batch), vec![]);
}

#[test]
fn concatenated_batches_read_in_order() {
    let first = build(
        &[NewRecord {
            value: Some(Bytes::from_static(b"a")),
            ..NewRecord::default()
        }],
        Compression::Lz4,
    );
    let mut builder = BatchBuilder::new().base_offset(1001);
    builder
        .push(&NewRecord {
            value: Some(Bytes::from_static(b"b")),
            ..NewRecord::default()
        })
        .unwrap();
    let second = builder.build().unwrap();
    let buffer = Bytes::from([first.as_ref(), second.as_ref()].concat());
    let records = read_all_records(&buffer, 1 << 20).unwrap();
    let offsets_values: Vec<(i64, Bytes)> = records
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap()))
        .collect();
    assert_eq!(
        offsets_values,
        vec![(1000, Bytes::from("a")), (1001, Bytes::from("b"))]
    );
}

#[test]
fn decompress_records_gives_the_uncompressed_records_section() {
    let records: Vec<NewRecord> = (0..10)
        .map(|index| NewRecord {
            value: Some(Bytes::from(vec![index as u8; 100])),
            ..NewRecord::default()
        })
        .collect();
    let plain = build(&records, Compression::None);
    let plain_body = plain.slice(BATCH_HEADER_SIZE_BYTES..);
    for compression in CODECS {
        let batch = build(&records, compression);
        let (header, _) = RecordBatchHeader::ref_from_prefix(&batch).unwrap();
        let body = batch.slice(BATCH_HEADER_SIZE_BYTES..);
        let section = decompress_records(header, &body, 1 << 20).unwrap();
        assert_eq!(section, plain_body, "{compression:?}");
    }
}
