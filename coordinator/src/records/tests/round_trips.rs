//! Property tests: every record shape and every value version survives a round trip, and
//! arbitrary bytes never panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s).{0,12}").expect("valid regex")
}

fn offset_value() -> impl Strategy<Value = OffsetValue> {
    let expiry = prop_oneof![Just(-1i64), any::<i64>()];
    (any::<i64>(), any::<i32>(), text(), any::<i64>(), expiry).prop_map(
        |(offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms)| OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        },
    )
}

fn member_value() -> impl Strategy<Value = MemberValue> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
    (
        (text(), proptest::option::of(text()), text(), text()),
        (any::<i32>(), any::<i32>(), bytes(), bytes()),
    )
        .prop_map(
            |((member_id, group_instance_id, client_id, client_host), rest)| MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: rest.0,
                session_timeout_ms: rest.1,
                subscription: rest.2,
                assignment: rest.3,
            },
        )
}

fn group_value() -> impl Strategy<Value = GroupValue> {
    (
        text(),
        any::<i32>(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        any::<i64>(),
        proptest::collection::vec(member_value(), 0..4),
    )
        .prop_map(
            |(protocol_type, generation, protocol, leader, timestamp, members)| GroupValue {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp_ms: timestamp,
                members,
            },
        )
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            text(),
            text(),
            any::<i32>(),
            proptest::option::of(offset_value())
        )
            .prop_map(|(group, topic, partition, value)| Record::Offset {
                group,
                topic,
                partition,
                value,
            }),
        (text(), proptest::option::of(group_value()))
            .prop_map(|(group, value)| Record::Group { group, value }),
    ]
}

/// What survives a trip through `version`: fields it lacks come back as defaults.
fn offset_value_at(version: i16, value: &OffsetValue) -> OffsetValue {
    OffsetValue {
        leader_epoch: if version >= 3 { value.leader_epoch } else { -1 },
        expire_timestamp_ms: if version == 1 {
            value.expire_timestamp_ms
        } else {
            -1
        },
        ..value.clone()
    }
}

fn group_value_at(version: i16, value: &GroupValue) -> GroupValue {
    let members = value
        .members
        .iter()
        .map(|m| MemberValue {
            group_instance_id: if version >= 3 {
                m.group_instance_id.clone()
            } else {
                None
            },
            rebalance_timeout_ms: if version >= 1 {
                m.rebalance_timeout_ms
            } else {
                m.session_timeout_ms
            },
            ..m.clone()
        })
        .collect();
    GroupValue {
        current_state_timestamp_ms: if version >= 2 {
            value.current_state_timestamp_ms
        } else {
            -1
        },
        members,
        ..value.clone()
    }
}

proptest! {
    #[test]
    fn every_record_survives_encode_then_decode(record in record()) {
        let decoded = Record::decode(&record.encode_key(), record.encode_value().as_deref())
            .unwrap();
        let expected = match &record {
            Record::Offset { group, topic, partition, value: Some(value) } => Record::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(offset_value_at(offset_value::version_for(value), value)),
            },
            other => other.clone(),
        };
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn offset_values_of_every_version_decode_to_what_was_written(
        value in offset_value(),
        version in 0..=offset_value::VERSION_MAX,
    ) {
        let mut bytes = BytesMut::new();
        offset_value::write(&mut bytes, version, &value);
        let decoded = offset_value::decode(&bytes).unwrap();
        prop_assert_eq!(decoded, offset_value_at(version, &value));
    }

    #[test]
    fn group_values_of_every_version_decode_to_what_was_written(
        value in group_value(),
        version in 0..=group_value::VERSION_MAX,
    ) {
        let mut bytes = BytesMut::new();
        group_value::write(&mut bytes, version, &value);
        let decoded = group_value::decode(&bytes).unwrap();
        prop_assert_eq!(decoded, group_value_at(version, &value));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        key in proptest::collection::vec(any::<u8>(), 0..48),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..96)),
    ) {
        if let Ok(record) = Record::decode(&key, value.as_deref()) {
            let again = Record::decode(&record.encode_key(), record.encode_value().as_deref());
            prop_assert_eq!(again, Ok(record));
        }
    }

    #[test]
    fn every_cut_of_a_valid_value_is_refused(value in group_value(), cut in any::<prop::sample::Index>()) {
        let record = Record::Group { group: "g".into(), value: Some(value) };
        let bytes = record.encode_value().unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(Record::decode(&record.encode_key(), Some(&bytes[..cut])).is_err());
    }
}
