//! Every kind of malformed input is refused with the field it failed on; strings Kafka
//! cannot store are reported before they are written.

use super::*;

#[test]
fn key_shorter_than_its_version_is_refused() {
    assert!(malformed(&[], None).contains("key.version"));
    assert!(malformed(&[0], None).contains("key.version"));
}

#[test]
fn unknown_record_types_are_refused_by_number() {
    for version in [3i16, 4, 17, -1, i16::MIN] {
        let key = Layout::default().i16(version).str("g").done();
        assert!(malformed(&key, None).contains(&format!("key version) {version}")));
    }
}

#[test]
fn truncated_key_fields_are_named() {
    let key = offset_key_bytes(1);
    // Cut inside the partition, inside the topic, and inside the group.
    assert!(malformed(&key[..key.len() - 1], None).contains("OffsetCommitKey.partition"));
    assert!(malformed(&key[..10], None).contains("OffsetCommitKey.topic"));
    assert!(malformed(&key[..4], None).contains("OffsetCommitKey.group"));
    assert!(malformed(&group_key_bytes()[..3], None).contains("GroupMetadataKey.group"));
}

#[test]
fn null_and_negative_string_lengths_are_refused() {
    let null_group = Layout::default().i16(2).i16(-1).done();
    assert!(malformed(&null_group, None).contains("null is not allowed"));
    let negative = Layout::default().i16(2).i16(-2).done();
    assert!(malformed(&negative, None).contains("invalid string length -2"));
}

#[test]
fn invalid_utf8_is_refused() {
    let key = Layout::default().i16(2).i16(2).raw(&[0xc3, 0x28]).done();
    assert!(malformed(&key, None).contains("UTF-8"));
}

#[test]
fn trailing_bytes_after_a_known_version_are_refused() {
    let mut key = offset_key_bytes(1);
    key.push(0);
    assert!(malformed(&key, None).contains("after the last field (1)"));
    let mut group_key = group_key_bytes();
    group_key.extend_from_slice(&[1, 2]);
    assert!(malformed(&group_key, None).contains("after the last field (2)"));
    let mut value = group_value_v3_bytes();
    value.push(0);
    assert!(malformed(&group_key_bytes(), Some(&value)).contains("GroupMetadataValue v3"));
    let offset_value = Layout::default().i16(2).i64(1).str("").i64(2).i32(0).done();
    assert!(
        malformed(&offset_key_bytes(1), Some(&offset_value)).contains("after the last field (4)")
    );
}

#[test]
fn value_versions_outside_kafka_4_are_refused() {
    for version in [-1i16, 5, i16::MAX] {
        let value = Layout::default().i16(version).i64(1).str("").i64(2).done();
        let message = malformed(&offset_key_bytes(1), Some(&value));
        assert!(message.contains(&format!("version {version}")), "{message}");
        let message = malformed(&group_key_bytes(), Some(&value));
        assert!(message.contains(&format!("version {version}")), "{message}");
    }
}

#[test]
fn empty_and_truncated_values_are_refused() {
    assert!(malformed(&offset_key_bytes(1), Some(&[])).contains("OffsetCommitValue.version"));
    assert!(malformed(&group_key_bytes(), Some(&[0])).contains("GroupMetadataValue.version"));
    let value = Layout::default().i16(3).i64(1).i32(0).str("meta").done();
    let message = malformed(&offset_key_bytes(1), Some(&value));
    assert!(
        message.contains("OffsetCommitValue.commitTimestamp"),
        "{message}"
    );
    let full = group_value_v3_bytes();
    for cut in 2..full.len() {
        let message = malformed(&group_key_bytes(), Some(&full[..cut]));
        assert!(message.starts_with("GroupMetadataValue v3: "), "{message}");
    }
}

#[test]
fn a_member_count_the_bytes_cannot_hold_is_refused_before_allocating() {
    let value = Layout::default()
        .i16(3)
        .str("consumer")
        .i32(1)
        .i16(-1)
        .i16(-1)
        .i64(0)
        .i32(i32::MAX)
        .raw(&[0; 64])
        .done();
    let message = malformed(&group_key_bytes(), Some(&value));
    assert!(message.contains("GroupMetadataValue.members"), "{message}");
    assert!(message.contains("array length 2147483647"), "{message}");
    // Two members need at least 2 × 24 bytes at v3; 47 are not enough even though 2 < 47.
    let two_members = Layout::default()
        .i16(3)
        .str("")
        .i32(1)
        .i16(-1)
        .i16(-1)
        .i64(0)
        .i32(2)
        .raw(&[0; 47])
        .done();
    assert!(malformed(&group_key_bytes(), Some(&two_members)).contains("members"));
}

#[test]
fn a_byte_field_longer_than_the_value_is_refused() {
    let value = Layout::default()
        .i16(1)
        .str("consumer")
        .i32(1)
        .i16(-1)
        .i16(-1)
        .i32(1)
        .str("m")
        .str("c")
        .str("h")
        .i32(1)
        .i32(1)
        .i32(1 << 30)
        .raw(b"short")
        .done();
    let message = malformed(&group_key_bytes(), Some(&value));
    assert!(message.contains("MemberMetadata.subscription"), "{message}");
}

#[test]
fn compact_strings_longer_than_kafka_allows_are_refused() {
    let long = "x".repeat(STRING_LENGTH_MAX_BYTES + 1);
    let mut value = Layout::default().i16(4).i64(1).i32(0).done();
    // uvarint(32769): 0x81 0x80 0x02.
    value.extend_from_slice(&[0x81, 0x80, 0x02]);
    value.extend_from_slice(long.as_bytes());
    value.extend_from_slice(&[0; 8]);
    value.push(0);
    let message = malformed(&offset_key_bytes(1), Some(&value));
    assert!(message.contains("OffsetCommitValue.metadata"), "{message}");
    assert!(message.contains("invalid string length 32768"), "{message}");
}

#[test]
fn malformed_tagged_fields_are_refused() {
    let prefix = Layout::default().i16(4).i64(1).i32(0).cstr("").i64(0);
    let too_many = prefix.raw(&[0xff, 0x7f]).done();
    let message = malformed(&offset_key_bytes(1), Some(&too_many));
    assert!(message.contains("taggedFields"), "{message}");
    let prefix = Layout::default().i16(4).i64(1).i32(0).cstr("").i64(0);
    let overlong_field = prefix.raw(&[1, 0, 10, 1, 2]).done();
    let message = malformed(&offset_key_bytes(1), Some(&overlong_field));
    assert!(message.contains("taggedFields"), "{message}");
    let prefix = Layout::default().i16(4).i64(1).i32(0).cstr("").i64(0);
    let endless_varint = prefix.raw(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).done();
    let message = malformed(&offset_key_bytes(1), Some(&endless_varint));
    assert!(message.contains("varint"), "{message}");
}

// ---- strings Kafka cannot store ----

#[test]
fn overlong_strings_are_reported_and_cut_at_a_character_boundary() {
    // 'é' is two bytes, so the limit (32767, odd) falls inside a character.
    let long = "é".repeat(STRING_LENGTH_MAX_BYTES / 2 + 1);
    let record = Record::Offset {
        group: "g".into(),
        topic: long.clone(),
        partition: 0,
        value: None,
    };
    let message = match record.check_encodable() {
        Err(RecordError::Malformed(message)) => message,
        Ok(()) => panic!("accepted"),
    };
    assert!(message.starts_with("topic: 32768 bytes"), "{message}");
    let Record::Offset { topic, .. } = Record::decode(&record.encode_key(), None).unwrap() else {
        panic!("not an offset");
    };
    assert_eq!(topic.len(), STRING_LENGTH_MAX_BYTES - 1);
    assert!(long.starts_with(&topic));
}

#[test]
fn group_member_fields_are_checked_for_length() {
    let mut value = sample_group_value();
    value.members[0].client_host = "h".repeat(STRING_LENGTH_MAX_BYTES + 1);
    let record = Record::Group {
        group: "g".into(),
        value: Some(value),
    };
    let Err(RecordError::Malformed(message)) = record.check_encodable() else {
        panic!("accepted");
    };
    assert!(message.starts_with("members.clientHost"), "{message}");
    let fits = Record::Group {
        group: "g".into(),
        value: Some(sample_group_value()),
    };
    assert_eq!(fits.check_encodable(), Ok(()));
}
