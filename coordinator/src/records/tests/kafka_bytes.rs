//! Spate writes, and reads, the bytes Kafka's own layouts prescribe.

use bytes::Bytes;

use super::*;

#[test]
fn offset_key_is_written_as_kafka_v1() {
    assert_eq!(
        offset_record(None).encode_key().as_ref(),
        offset_key_bytes(1)
    );
}

#[test]
fn group_key_is_written_as_kafka_v2() {
    let record = Record::Group {
        group: "grp".into(),
        value: None,
    };
    assert_eq!(record.encode_key().as_ref(), group_key_bytes());
}

#[test]
fn offset_value_is_written_as_kafka_v3() {
    let value = OffsetValue {
        offset: 42,
        leader_epoch: 3,
        metadata: "meta".into(),
        commit_timestamp_ms: 1_000,
        expire_timestamp_ms: -1,
    };
    let expected = Layout::default()
        .i16(3)
        .i64(42)
        .i32(3)
        .str("meta")
        .i64(1_000)
        .done();
    let encoded = offset_record(Some(value.clone())).encode_value();
    assert_eq!(encoded.as_deref(), Some(expected.as_slice()));
    let decoded = Record::decode(&offset_key_bytes(1), Some(&expected)).unwrap();
    assert_eq!(decoded, offset_record(Some(value)));
}

#[test]
fn offset_value_with_expiry_is_written_as_v1_and_loses_the_leader_epoch() {
    let value = OffsetValue {
        offset: 42,
        leader_epoch: 3,
        metadata: String::new(),
        commit_timestamp_ms: 1_000,
        expire_timestamp_ms: 2_000,
    };
    let expected = Layout::default()
        .i16(1)
        .i64(42)
        .str("")
        .i64(1_000)
        .i64(2_000)
        .done();
    let encoded = offset_record(Some(value.clone())).encode_value();
    assert_eq!(encoded.as_deref(), Some(expected.as_slice()));
    let decoded = Record::decode(&offset_key_bytes(1), Some(&expected)).unwrap();
    let without_epoch = OffsetValue {
        leader_epoch: -1,
        ..value
    };
    assert_eq!(decoded, offset_record(Some(without_epoch)));
}

#[test]
fn group_value_is_written_as_kafka_v3() {
    let record = Record::Group {
        group: "grp".into(),
        value: Some(sample_group_value()),
    };
    let expected = group_value_v3_bytes();
    assert_eq!(record.encode_value().as_deref(), Some(expected.as_slice()));
    assert_eq!(
        Record::decode(&group_key_bytes(), Some(&expected)).unwrap(),
        record
    );
}

#[test]
fn legacy_v0_offset_key_reads_like_v1() {
    let decoded = Record::decode(&offset_key_bytes(0), None).unwrap();
    assert_eq!(decoded, offset_record(None));
}

#[test]
fn offset_values_v0_and_v2_default_epoch_and_expiry() {
    for version in [0, 2] {
        let bytes = Layout::default()
            .i16(version)
            .i64(10)
            .str("m")
            .i64(99)
            .done();
        let decoded = Record::decode(&offset_key_bytes(1), Some(&bytes)).unwrap();
        let expected = OffsetValue {
            offset: 10,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_timestamp_ms: 99,
            expire_timestamp_ms: -1,
        };
        assert_eq!(decoded, offset_record(Some(expected)), "v{version}");
    }
}

#[test]
fn flexible_v4_offset_value_skips_unknown_tagged_fields() {
    // Two tagged fields: tag 0 with 3 bytes, tag 5 with 0 bytes.
    let bytes = Layout::default()
        .i16(4)
        .i64(10)
        .i32(2)
        .cstr("m")
        .i64(99)
        .raw(&[2, 0, 3, 0xaa, 0xbb, 0xcc, 5, 0])
        .done();
    let decoded = Record::decode(&offset_key_bytes(1), Some(&bytes)).unwrap();
    let expected = OffsetValue {
        offset: 10,
        leader_epoch: 2,
        metadata: "m".into(),
        commit_timestamp_ms: 99,
        expire_timestamp_ms: -1,
    };
    assert_eq!(decoded, offset_record(Some(expected)));
}

#[test]
fn group_value_v0_uses_the_session_timeout_as_rebalance_timeout() {
    let bytes = Layout::default()
        .i16(0)
        .str("consumer")
        .i32(1)
        .i16(-1)
        .i16(-1)
        .i32(1)
        .str("m")
        .str("c")
        .str("h")
        .i32(10_000)
        .bytes(b"sub")
        .bytes(b"")
        .done();
    let decoded = Record::decode(&group_key_bytes(), Some(&bytes)).unwrap();
    let expected = GroupValue {
        protocol_type: "consumer".into(),
        generation: 1,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: vec![MemberValue {
            member_id: "m".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::new(),
        }],
    };
    let record = Record::Group {
        group: "grp".into(),
        value: Some(expected),
    };
    assert_eq!(decoded, record);
}

#[test]
fn flexible_v4_group_value_reads_compact_fields_and_skips_tags() {
    let bytes = Layout::default()
        .i16(4)
        .cstr("consumer")
        .i32(5)
        .cstr("range")
        .cstr("m-1")
        .i64(1_700_000_000_000)
        .raw(&[2]) // one member
        .cstr("m-1")
        .cstr("i-1")
        .cstr("cli")
        .cstr("/10.0.0.1")
        .i32(300_000)
        .i32(45_000)
        .raw(&[4, 0, 1, 2]) // subscription, compact bytes
        .raw(&[2, 9]) // assignment
        .raw(&[1, 7, 1, 0xff]) // member tags: tag 7, 1 byte
        .raw(&[0]) // value tags: none
        .done();
    let decoded = Record::decode(&group_key_bytes(), Some(&bytes)).unwrap();
    let record = Record::Group {
        group: "grp".into(),
        value: Some(sample_group_value()),
    };
    assert_eq!(decoded, record);
}

#[test]
fn tombstones_have_no_value_either_way() {
    let offset = offset_record(None);
    assert_eq!(offset.encode_value(), None);
    assert_eq!(Record::decode(&offset.encode_key(), None).unwrap(), offset);
    let group = Record::Group {
        group: "g".into(),
        value: None,
    };
    assert_eq!(group.encode_value(), None);
    assert_eq!(Record::decode(&group.encode_key(), None).unwrap(), group);
}
